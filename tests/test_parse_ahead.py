"""Parsing ahead in other processes, in a poll of many messages.

Whether a message was parsed here or ahead, it is handled the same, in the
same order; what cannot be parsed is set aside for the same reason; a
parsing process that dies costs a warning and nothing else. The mail is
that of the crash tests: nominations, then a mix from their schools.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, example_config, make_mail, sample
from test_crash import mail_batch

from mailbot import mail, pipeline
from mailbot.errors import SetAside
from mailbot.sources import RawMail

START = "2027-01-12 09:35"
MARK = b"X-Test-Mark: "


@pytest.fixture(scope="module")
def batch() -> list[bytes]:
    return mail_batch(90)


def handled(tmp_path: Path, batch: list[bytes]) -> dict[str, Any]:
    """One poll over `batch`: each message's record in handling order, the
    clusters and schools, and the mail queued."""
    tmp_path.mkdir()
    # One signing key for both runs, so that they send the same subjects.
    key = tmp_path / "mailbot.key"
    key.write_text("parse-ahead-test-key-" + "k" * 40 + "\n")
    key.chmod(0o600)
    harness = Harness(example_config(tmp_path), START)
    try:
        harness.deliver(*batch)
        harness.bot.pipeline.poll()
        store = harness.bot.store
        return {
            "messages": [(m["message_id"], m["outcome"], m["kind"],
                          m["reason"], m["cluster_id"], m["school_id"])
                         for m in store.all_messages()],
            # Our Message-IDs carry a digest salted per record.
            "clusters": json.loads(re.sub(
                r"\.[0-9a-f]{24}@", ".@",
                json.dumps(harness.export()["clusters"]))),
            "outgoing": [(o["kind"], o["to"], o["subject"])
                         for o in store.all_outgoing()],
            "left": list((harness.config.mailbox.path / "new").iterdir()),
        }
    finally:
        harness.close()


def here_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "PARSE_AHEAD", 10**9)


def marked(raw: bytes, mark: str) -> bytes:
    return MARK + mark.encode() + b"\r\n" + raw


def test_parsing_ahead_changes_nothing_but_where(
        batch: list[bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = handled(tmp_path / "ahead", batch)
    here_only(monkeypatch)
    here = handled(tmp_path / "here", batch)
    assert ahead == here
    assert len(ahead["messages"]) == len(batch) and ahead["left"] == []
    assert multiprocessing.active_children() == []


def test_what_cannot_be_parsed_ahead_is_set_aside_as_here(
        batch: list[bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = mail.parse

    def parse(raw: bytes) -> mail.Incoming:
        # In both processes: the parsing one is a fork of this one.
        if raw.startswith(MARK + b"broken"):
            raise SetAside("unreadable message: test")
        if raw.startswith(MARK + b"crash"):
            raise ValueError("a bug in parsing")
        return real(raw)

    monkeypatch.setattr(mail, "parse", parse)
    mixed = list(batch)
    mixed[40] = marked(mixed[40], "broken")
    mixed[60] = marked(mixed[60], "crash")
    ahead = handled(tmp_path / "ahead", mixed)
    here_only(monkeypatch)
    here = handled(tmp_path / "here", mixed)
    assert ahead == here
    assert [m[1:4] for m in ahead["messages"] if m[1] == "set_aside"
            and m[2] in ("unreadable", "error")] == [
        ("set_aside", "unreadable", "unreadable message: test"),
        ("set_aside", "error",
         "error while handling: ValueError: a bug in parsing")]


def test_a_parsing_process_that_dies_costs_only_a_warning(
        batch: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    here_only(monkeypatch)
    here = handled(tmp_path / "here", batch)
    monkeypatch.undo()

    real = mail.parse
    main = os.getpid()

    def parse(raw: bytes) -> mail.Incoming:
        if os.getpid() != main and raw.startswith(MARK):
            os._exit(1)  # the parsing process dies, mid-chunk
        return real(raw)

    monkeypatch.setattr(mail, "parse", parse)
    dying = list(batch)
    dying[50] = marked(dying[50], "die")
    with caplog.at_level(logging.WARNING, logger="mailbot"):
        ahead = handled(tmp_path / "ahead", dying)
    # Every message handled once, in order, as if parsed here.
    assert ahead == here
    assert caplog.text.count("a parsing process ended") == 1
    assert multiprocessing.active_children() == []


def test_a_parsing_process_that_ended_unnoticed_is_logged(
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # As if one had been killed after its last answer came back.
    real = pipeline.Workers.close
    monkeypatch.setattr(pipeline.Workers, "close",
                        lambda self: [*real(self), -9])
    with caplog.at_level(logging.WARNING, logger="mailbot"):
        handed = list(pipeline.parsed_ahead(
            raws(pipeline.PARSE_AHEAD + 8, [])))
    assert len(handed) == pipeline.PARSE_AHEAD + 8
    assert caplog.text.count(
        "a parsing process ended with exit code -9 after its last answer") == 1


def raws(count: int, fetched: list[int], fail: bool = False
         ) -> Iterator[RawMail]:
    for n, raw in enumerate(mail_batch(count)):
        fetched.append(n)
        yield RawMail(f"maildir:{n}", raw)
    if fail:
        raise OSError("the mailbox went away")


def test_a_small_poll_reads_nothing_ahead() -> None:
    fetched: list[int] = []
    for n, (raw, parsed) in enumerate(pipeline.parsed_ahead(
            raws(pipeline.PARSE_AHEAD, fetched))):
        assert raw.key == f"maildir:{n}" and parsed is None
        # Fetched whole before its first message (it is small), so that
        # it is known to be small; no parsing process started.
        assert fetched == list(range(pipeline.PARSE_AHEAD))
        assert multiprocessing.active_children() == []


def test_a_large_poll_is_read_ahead_from_its_start() -> None:
    fetched: list[int] = []
    handed = [(raw.key, parsed is not None) for raw, parsed
              in pipeline.parsed_ahead(raws(pipeline.PARSE_AHEAD + 8, fetched))]
    # Its first chunk parsed here while the processes parse the rest.
    assert handed == [(f"maildir:{n}", n >= pipeline.PARSE_CHUNK)
                      for n in range(pipeline.PARSE_AHEAD + 8)]
    assert multiprocessing.active_children() == []


def test_large_messages_are_not_held_to_see_how_many_come(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "PARSE_WINDOW_BYTES", 1)
    fetched: list[int] = []
    for n, (raw, parsed) in enumerate(pipeline.parsed_ahead(
            raws(pipeline.PARSE_AHEAD, fetched))):
        assert raw.key == f"maildir:{n}" and parsed is None
        assert fetched == list(range(n + 1))


@pytest.mark.parametrize("count", [10, 70])
def test_a_failing_source_fails_after_what_it_gave(count: int) -> None:
    fetched: list[int] = []
    seen = []
    with pytest.raises(OSError, match="went away"):
        for raw, parsed in pipeline.parsed_ahead(raws(count, fetched, True)):
            seen.append(raw.key)
            if len(seen) > pipeline.PARSE_CHUNK and count > pipeline.PARSE_AHEAD:
                # Parsed ahead, as it would be here.
                assert parsed == mail.parse(raw.data)
    assert seen == [f"maildir:{n}" for n in range(count)]
    assert multiprocessing.active_children() == []


def test_an_incoming_message_travels_whole(batch: list[bytes]) -> None:
    for raw in batch[:8]:
        parsed = mail.parse(raw)
        parsed.once("test", lambda: ("read", 1))
        sent = pickle.dumps(parsed)
        again = pickle.loads(sent)
        assert again == parsed
        # The standard library's parse is made again, not sent.
        assert b"email.message" not in sent
        assert again.message.as_bytes() == parsed.message.as_bytes()
        assert again.attachments == parsed.attachments


def test_what_is_read_from_a_message_alone_is_read_ahead_too(
        batch: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = pipeline._parse_all(batch[:6])
    for raw, ahead in zip(batch[:6], parsed, strict=True):
        assert ahead is not None
        here = mail.parse(raw)
        for reading in pipeline.READ_AHEAD:
            assert reading(ahead) == reading(here)
        assert {"quoting.new_text", "results.reading",
                "nomination.read"} <= set(ahead.derived)

    # A reading that fails there leaves the message as parsed; the main
    # process works it out when it needs it (and fails there, if at all).
    def broken(_: mail.Incoming) -> object:
        raise RuntimeError("no")

    monkeypatch.setattr(pipeline, "READ_AHEAD", (broken,))
    again = pipeline._parse_all(batch[:2])
    assert [m.message_id if m else None for m in again] == [
        mail.parse(raw).message_id for raw in batch[:2]]
    assert all(m is not None and not m.derived for m in again)

def test_a_delivery_report_read_ahead_is_not_parsed_again() -> None:
    from mailbot import guard

    report = sample("07-bounce")
    ahead = pickle.loads(pickle.dumps(pipeline._parse_all([report])[0]))
    verdict = guard.check(ahead, frozenset({"programme@dsa.example.org"}))
    assert verdict == guard.check(mail.parse(report),
                                  frozenset({"programme@dsa.example.org"}))
    assert verdict is not None and verdict.kind == guard.BOUNCE
    # Its type and recipients came with it: the message was not parsed
    # again here to read them.
    assert "_message" not in ahead.__dict__


def test_a_robots_mail_is_parsed_ahead_but_not_read() -> None:
    # A bounce, an auto-reply or a list's mail is never read for what it
    # says, so reading it ahead would be work lost.
    robot = make_mail("Person <person@school.example.org>", "Away",
                      "I am out of the office.", Auto_Submitted="auto-replied")
    person = make_mail("Person <person@school.example.org>", "Our club",
                       "Our coding club meets on Tuesdays.")
    from_robot, from_person = pipeline._parse_all([robot, person])
    assert from_robot is not None and from_robot.derived == {}
    assert from_person is not None and "results.comment_tags" in \
        from_person.derived


def test_the_parsing_process_does_not_hold_the_record_lock(
        tmp_path: Path) -> None:
    """A worker forked from the daemon once kept the lock file open, so a
    daemon killed alone left its lock held for a moment longer."""
    from mailbot.store import Store

    store = Store(tmp_path / "mailbot.json")
    store.lock()
    lock_path = os.path.realpath(tmp_path / "mailbot.lock")
    parser = pipeline._start_parser(store.lock_fileno())
    assert parser is not None
    try:
        ticket = parser.submit(os.getpid)
        assert ticket is not None
        pid = parser.result(ticket)
        held = {os.path.realpath(f"/proc/{pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{pid}/fd")}
        assert lock_path not in held
        assert pid != os.getpid()
    finally:
        parser.close()
        store.close()


def test_the_parsing_processes_yield_the_cpu_to_the_daemon() -> None:
    parser = pipeline._start_parser(None)
    assert parser is not None
    try:
        ticket = parser.submit(os.nice, 0)
        assert ticket is not None
        niceness = parser.result(ticket)
    finally:
        parser.close()
    assert niceness == min(os.nice(0) + pipeline.PARSER_NICENESS, 19)
