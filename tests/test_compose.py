"""Building outgoing messages: headers, ids and the text people wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.compose import Composer, Draft, reflow
from mailbot.examples import contexts

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 1, 12, 9, 35, tzinfo=UTC)
GLOBALS = {"programme_name": "Digital Schools Awards Cluster Initiative",
           "programme_address": "programme@dsa.example.org",
           "sender_name": "Digital Schools Programme"}


def composer(salt: str = "record-1") -> Composer:
    return Composer(ROOT / "templates", "Digital Schools Programme",
                    "programme@dsa.example.org", GLOBALS, salt=salt)


def draft(**changes: object) -> Draft:
    fields: dict[str, object] = {
        "key": "invitation:7", "kind": "invitation",
        "template": "invitation-primary", "to": ("head@kirkton.example.org",),
        "context": contexts()["invitation-primary"]}
    fields.update(changes)
    return Draft(**fields)  # type: ignore[arg-type]


def test_every_message_carries_the_loop_headers() -> None:
    message = composer().build(draft(), NOW)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Mailbot-Kind"] == "invitation"
    assert message["From"] == "Digital Schools Programme <programme@dsa.example.org>"
    assert message["Date"] == "Tue, 12 Jan 2027 09:35:00 +0000"
    assert message.get_content_type() == "multipart/alternative"


def test_a_reply_threads_with_in_reply_to_and_references() -> None:
    message = composer().build(draft(reply_to_id="<b@x>",
                                     references=("<a@x>", "<b@x>")), NOW)
    assert message["In-Reply-To"] == "<b@x>"
    assert message["References"] == "<a@x> <b@x>"


def test_long_headers_are_not_folded() -> None:
    raw = composer().build(draft(reply_to_id="<" + "x" * 90 + "@example.org>"),
                           NOW).as_bytes()
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\n " not in headers and b"\r\n\t" not in headers


def test_message_ids_follow_the_key_within_a_record_only() -> None:
    first, again = composer("record-1"), composer("record-1")
    other = composer("record-2")
    assert first.message_id("invitation:7") == again.message_id("invitation:7")
    assert first.message_id("invitation:7") != first.message_id("invitation:8")
    assert first.message_id("invitation:7") != other.message_id("invitation:7")
    assert first.message_id("x").endswith("@dsa.example.org>")


def test_a_name_cannot_add_a_header() -> None:
    context = contexts()["invitation-primary"]
    school = dict(context["school"], name="Kirkton\r\nBcc: thief@evil.example")
    message = composer().build(draft(context={**context, "school": school}),
                               NOW)
    assert message["Bcc"] is None
    headers = message.as_string().split("\r\n\r\n", 1)[0].split("\r\n")
    assert not [h for h in headers if h.lower().startswith("bcc")]
    assert "\n" not in message["Subject"]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        composer().build(draft(kind="newsletter"), NOW)


def test_reflow_joins_a_paragraph_and_keeps_lists() -> None:
    text = ("Strengths: all P5-P7 pupils have their own device and our "
            "digital leaders run\na weekly coding club.\n\nWeaknesses:\n"
            "- our policy dates from 2019\n- no strategy yet\n")
    assert reflow(text, 40).splitlines() == [
        "Strengths: all P5-P7 pupils have their",
        "own device and our digital leaders run a",
        "weekly coding club.",
        "",
        "Weaknesses:",
        "- our policy dates from 2019",
        "- no strategy yet",
    ]
