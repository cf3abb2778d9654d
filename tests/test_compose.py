"""Building outgoing messages: headers, ids and the text people wrote.

Every message is read back with the standard library (policy.default), the
way a mail program would read it, and what it decodes to is checked
against what was meant."""

from __future__ import annotations

import email
import re
import shutil
import textwrap
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot import compose
from mailbot.compose import (
    Composed,
    Composer,
    Draft,
    address_field,
    date_field,
    mailbox_field,
    one_line,
    reflow,
    replace_fields,
    text_field,
)
from mailbot.examples import contexts

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 1, 12, 9, 35, tzinfo=UTC)
GLOBALS = {"programme_name": "Digital Schools Awards Cluster Initiative",
           "programme_address": "programme@dsa.example.org",
           "sender_name": "Digital Schools Programme"}
# An encoded-word holding CR LF and a header, as a name might carry it.
INJECTION = "=?utf-8?q?=0D=0AReply-To=3A_attacker=40evil=2Eexample=0D=0AX-Pad=3A?="


def composer(salt: str = "record-1", templates: Path = ROOT / "templates",
             sender_name: str = "Digital Schools Programme") -> Composer:
    return Composer(templates, sender_name, "programme@dsa.example.org",
                    GLOBALS, salt=salt)


def draft(**changes: object) -> Draft:
    fields: dict[str, object] = {
        "key": "invitation:7", "kind": "invitation",
        "template": "invitation-primary", "to": ("head@kirkton.example.org",),
        "context": contexts()["invitation-primary"]}
    fields.update(changes)
    return Draft(**fields)  # type: ignore[arg-type]


def parsed(built: Composed | str) -> EmailMessage:
    raw = built.raw if isinstance(built, Composed) else built
    message = email.message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_lines(raw: str) -> list[str]:
    return raw.split("\r\n\r\n", 1)[0].split("\r\n")


def header_names(raw: str) -> list[str]:
    return [line.split(":", 1)[0].lower() for line in header_lines(raw)
            if line and not line[0].isspace()]


def assert_well_formed(raw: str) -> None:
    """CRLF only, no line over 998, encoded-word lines within 76, and the
    parser finds nothing wrong."""
    assert "\r" not in raw.replace("\r\n", "") and "\n" not in raw.replace("\r\n", "")
    assert raw.endswith("\r\n")
    for line in raw.split("\r\n"):
        assert len(line.encode()) <= 998
    for line in header_lines(raw):
        assert line.isascii()
        if "=?" in line:
            assert len(line) <= 76
            assert all(len(w) <= 75 for w in re.findall(r"=\?\S*?\?=", line))
    message = parsed(raw)
    assert not message.defects
    assert all(not part.defects for part in message.walk())


@pytest.fixture()
def own_templates(tmp_path: Path) -> Path:
    """A template that writes what its context says, as it is."""
    (tmp_path / "raw.txt").write_text("Subject: {{ subject }}\n\n{{ text }}")
    (tmp_path / "raw.html").write_text("{{ html|safe }}")
    return tmp_path


def own(folder: Path, subject: str = "Hello", text: str = "Hi.\n",
        html: str = "<p>Hi.</p>\n", **changes: object) -> Composed:
    context = {"subject": subject, "text": text, "html": html}
    return composer(templates=folder).build(
        draft(template="raw", context=context, **changes), NOW)


# -- headers ---------------------------------------------------------------

def test_every_message_carries_the_loop_headers() -> None:
    built = composer().build(draft(), NOW)
    message = parsed(built)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Mailbot-Kind"] == "invitation"
    assert message["From"] == "Digital Schools Programme <programme@dsa.example.org>"
    assert message["Date"] == "Tue, 12 Jan 2027 09:35:00 +0000"
    assert message["To"] == "head@kirkton.example.org"
    assert message["Cc"] is None
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert_well_formed(built.raw)


def test_the_value_carries_what_the_queue_records() -> None:
    built = composer().build(draft(cc=("lead@example.org",)), NOW)
    message = parsed(built)
    assert built.message_id == message["Message-ID"] == \
        composer().message_id("invitation:7")
    assert built.subject == message["Subject"] == (
        "Invitation: Digital Schools Awards self-review for Kirkton Primary School")
    assert built.to == ("head@kirkton.example.org",)
    assert built.cc == ("lead@example.org",) and message["Cc"] == "lead@example.org"


def test_a_reply_threads_with_in_reply_to_and_references() -> None:
    message = parsed(composer().build(
        draft(reply_to_id="<b@x>", references=("<a@x>", "<b@x>")), NOW))
    assert message["In-Reply-To"] == "<b@x>"
    assert message["References"] == "<a@x> <b@x>"


def test_ids_that_are_not_message_ids_stay_out_of_the_headers() -> None:
    built = composer().build(draft(reply_to_id="<b@x>", references=(
        "<a@x>\r\nBcc: thief@evil.example", "no brackets", "<c@x>")), NOW)
    assert parsed(built)["References"] == "<c@x> <b@x>"
    assert "bcc" not in header_names(built.raw)

    built = composer().build(draft(reply_to_id="<b@x>\r\nBcc: t@evil.example",
                                   references=("<a@x>",)), NOW)
    names = header_names(built.raw)
    assert "in-reply-to" not in names and "references" not in names
    assert "bcc" not in names


def test_many_references_fold_between_ids() -> None:
    refs = tuple(f"<ref.{n}.{'x' * 30}@example.org>" for n in range(40))
    built = composer().build(draft(reply_to_id="<b@x>", references=refs), NOW)
    assert_well_formed(built.raw)
    assert parsed(built)["References"] == " ".join([*refs, "<b@x>"])
    assert all(len(line) <= 78 for line in header_lines(built.raw))


def test_a_long_message_id_is_not_broken() -> None:
    long_id = "<" + "x" * 90 + "@example.org>"
    raw = composer().build(draft(reply_to_id=long_id), NOW).raw
    assert f"\r\nIn-Reply-To: {long_id}\r\n" in raw
    assert f"\r\nReferences: {long_id}\r\n" in raw


def test_message_ids_follow_the_key_within_a_record_only() -> None:
    first, again = composer("record-1"), composer("record-1")
    other = composer("record-2")
    assert first.message_id("invitation:7") == again.message_id("invitation:7")
    assert first.message_id("invitation:7") != first.message_id("invitation:8")
    assert first.message_id("invitation:7") != other.message_id("invitation:7")
    assert first.message_id("x").endswith("@dsa.example.org>")


@pytest.mark.parametrize("subject", [
    "Invitation for Bun-sgoil Ghàidhlig Inbhir Bhrùra",
    "Ŝkolo 😀 " * 20,
    "Ελληνικό σχολείο",
    "a ü b",
])
def test_a_non_ascii_subject_is_encoded_and_reads_back(
        own_templates: Path, subject: str) -> None:
    built = own(own_templates, subject=subject)
    assert_well_formed(built.raw)
    assert parsed(built)["Subject"] == built.subject == one_line(subject)


def test_ascii_words_stay_readable_beside_encoded_ones(
        own_templates: Path) -> None:
    built = own(own_templates, subject="Invitation: Bun-sgoil Ghàidhlig")
    (line,) = [h for h in header_lines(built.raw) if h.startswith("Subject:")]
    assert line.startswith("Subject: Invitation: Bun-sgoil =?utf-8?q?Gh=C3=A0idhlig?=")


def test_a_long_subject_is_folded_and_reads_back(own_templates: Path) -> None:
    subject = "Invitation: " + " ".join(f"word{n}" for n in range(60))
    built = own(own_templates, subject=subject)
    assert_well_formed(built.raw)
    assert parsed(built)["Subject"] == subject
    lines = header_lines(built.raw)
    start = next(n for n, h in enumerate(lines) if h.startswith("Subject:"))
    assert lines[start + 1].startswith(" ")  # folded
    assert all(len(h) <= 78 for h in lines)


@pytest.mark.parametrize("name", [
    "Kirkton\r\nBcc: thief@evil.example",
    "Kirkton\nBcc: thief@evil.example\n\nbody",
    "Kirkton\rBcc: thief@evil.example",
    f"Victim {INJECTION} Primary",
    f"Vïctim {INJECTION} Primary",
    "\u2028Bcc: thief@evil.example\x85\x00\x1b",
    "Kirkton " * 2000 + "\r\nBcc: thief@evil.example",
    "K" * 10000 + "\r\nBcc: thief@evil.example",
    "Ä" * 5000 + "\nBcc: thief@evil.example",
])
def test_a_name_cannot_add_a_header(name: str) -> None:
    context = contexts()["invitation-primary"]
    school = dict(context["school"], name=name)
    built = composer().build(draft(context={**context, "school": school}), NOW)
    assert_well_formed(built.raw)
    names = header_names(built.raw)
    assert "bcc" not in names and "reply-to" not in names
    assert "x-pad" not in names and names.count("subject") == 1
    message = parsed(built)
    assert message["Bcc"] is None and message["Reply-To"] is None
    subject = str(message["Subject"])
    assert subject == built.subject
    assert "\n" not in subject and "\r" not in subject
    # An encoded-word in a name is never decoded into the subject.
    assert "Reply-To: attacker" not in subject


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        composer().build(draft(kind="newsletter"), NOW)


@pytest.mark.parametrize("sender_name", [
    "Digital Schools Programme", "Programme Office, Digital Schools",
    'The "Digital" Schools', "Sgoiltean Didseatach Gàidhlig",
    "Ŝkolo Ĝardeno", "Office\r\nBcc: thief@evil.example", ""])
def test_the_sender_name_reads_back(own_templates: Path,
                                    sender_name: str) -> None:
    built = composer(templates=own_templates, sender_name=sender_name).build(
        draft(template="raw", context={"subject": "s", "text": "t",
                                       "html": "h"}), NOW)
    assert_well_formed(built.raw)
    sender = parsed(built)["From"]
    assert sender.addresses[0].display_name == one_line(sender_name)
    assert sender.addresses[0].addr_spec == "programme@dsa.example.org"
    assert "bcc" not in header_names(built.raw)


def test_a_long_non_ascii_sender_name_is_split_as_rfc_2047_says(
        own_templates: Path) -> None:
    name = "Ŝ" * 60
    built = composer(templates=own_templates, sender_name=name).build(
        draft(template="raw", context={"subject": "s", "text": "t",
                                       "html": "h"}), NOW)
    assert_well_formed(built.raw)
    field = built.raw.split("\r\nFrom: ", 1)[-1] if "\r\nFrom: " in built.raw \
        else built.raw.split("From: ", 1)[1]
    value = field.split("\r\nTo:", 1)[0].replace("\r\n", "")
    words, address = value.rsplit(" ", 1)
    assert address == "<programme@dsa.example.org>"
    # Several encoded-words, whose spaces between a reader drops. (Python's
    # address parser keeps them, so it is read here with decode_header.)
    assert len(words.split()) > 1
    assert str(make_header(decode_header(words))) == name


def test_addresses_are_written_as_addresses(own_templates: Path) -> None:
    to = ("head@kirkton.example.org", "o'neil@example.org")
    cc = ("with space@example.org", 'q"uote@example.org',
          *(f"clerk{n}@council.example.org" for n in range(10)))
    built = own(own_templates, to=to, cc=cc)
    assert_well_formed(built.raw)
    message = parsed(built)
    assert [a.addr_spec for a in message["To"].addresses] == list(to)
    assert [a.addr_spec for a in message["Cc"].addresses] == [
        '"with space"@example.org', '"q\\"uote"@example.org', *cc[2:]]
    assert all(len(h) <= 78 for h in header_lines(built.raw))


def test_an_address_with_a_line_break_is_refused(own_templates: Path) -> None:
    with pytest.raises(ValueError, match="header"):
        own(own_templates, to=("head@example.org\r\nBcc: thief@evil.example",))


# -- bodies -----------------------------------------------------------------

def parts(built: Composed) -> tuple[str, str]:
    message = parsed(built)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return (str(plain.get_content()).replace("\r\n", "\n"),
            str(html.get_content()).replace("\r\n", "\n"))


def encodings(built: Composed) -> list[str]:
    return re.findall(r"Content-Transfer-Encoding: (\S+)", built.raw)


def test_the_bodies_are_what_the_templates_rendered() -> None:
    subject, text, html = composer().render(draft())
    built = composer().build(draft(), NOW)
    assert parts(built) == (text, html)
    assert encodings(built) == ["7bit", "7bit"]
    assert_well_formed(built.raw)


@pytest.mark.parametrize(("text", "expected"), [
    ("Plain words.\nTwo lines.\n", "7bit"),
    ("Gàidhlig and Français, mostly ASCII.\n", "quoted-printable"),
    ("Ελληνικά και Русский текст, почти без ASCII.\n" * 5,
     "base64"),
    ("x" * 5000 + "\n", "quoted-printable"),        # a line too long for 7bit
    ("nul\x00 and escape\x1b and a =?utf-8?q?word?=\n", "quoted-printable"),
    ("trailing spaces   \nand a tab\tinside\n", "7bit"),
    ("no line end at the end", "7bit"),
], ids=["ascii", "some-non-ascii", "mostly-non-ascii", "long-line", "control",
        "spaces", "no-line-end"])
def test_a_body_reads_back_as_written(own_templates: Path, text: str,
                                      expected: str) -> None:
    built = own(own_templates, text=text, html=f"<p>{text}</p>")
    assert_well_formed(built.raw)
    want = text if text.endswith("\n") else text + "\n"
    assert parts(built) == (want, f"<p>{text}</p>\n")
    assert encodings(built)[0] == expected


def test_bare_cr_and_crlf_become_line_breaks(own_templates: Path) -> None:
    built = own(own_templates, text="one\rtwo\r\nthree\n")
    assert_well_formed(built.raw)
    assert parts(built)[0] == "one\ntwo\nthree\n"


def test_the_boundary_is_never_in_a_body(own_templates: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["aaaa", "bbbb"])
    monkeypatch.setattr(compose.secrets, "token_hex", lambda n: next(tokens))
    built = own(own_templates, text="--=_aaaa\nstill the body\n--=_aaaa--\n")
    assert 'boundary="=_bbbb"' in built.raw
    assert parts(built)[0] == "--=_aaaa\nstill the body\n--=_aaaa--\n"
    assert len(parsed(built).get_payload()) == 2  # type: ignore[arg-type]


# -- changing a written message ----------------------------------------------

def test_replace_fields_changes_only_the_fields_named() -> None:
    built = composer().build(draft(to=("a@x.org", "b@x.org"),
                                   cc=("c@x.org", "d@x.org")), NOW)
    later = datetime(2027, 1, 13, 8, 0, tzinfo=UTC)
    raw = replace_fields(built.raw, {
        "To": address_field("To", ["a@x.org"]), "cc": None,
        "Date": date_field(later)})
    assert_well_formed(raw)
    message = parsed(raw)
    assert message["To"] == "a@x.org" and message["Cc"] is None
    assert message["Date"] == "Wed, 13 Jan 2027 08:00:00 +0000"
    assert header_names(raw) == [n for n in header_names(built.raw) if n != "cc"]
    assert raw.split("\r\n\r\n", 1)[1] == built.raw.split("\r\n\r\n", 1)[1]


def test_replace_fields_replaces_folded_and_repeated_fields() -> None:
    raw = ("From: a@x.org\r\nTo: one@x.org,\r\n two@x.org,\r\n\tthree@x.org\r\n"
           f"Subject: {INJECTION}\r\nto: again@x.org\r\n\r\nTo: body@x.org\r\n")
    new = replace_fields(raw, {"To": address_field("To", ["four@x.org"]),
                               "Date": date_field(NOW)})
    assert new == (f"From: a@x.org\r\nTo: four@x.org\r\nSubject: {INJECTION}\r\n"
                   "Date: Tue, 12 Jan 2027 09:35:00 +0000\r\n"
                   "\r\nTo: body@x.org\r\n")


def test_replace_fields_keeps_lf_line_ends() -> None:
    raw = "From: a@x.org\nTo: one@x.org\n\nbody\n"
    new = replace_fields(raw, {"To": address_field("To", ["b@x.org", "c@x.org"])})
    assert new == "From: a@x.org\nTo: b@x.org, c@x.org\n\nbody\n"


def test_replace_fields_refuses_what_is_not_a_message_or_a_field() -> None:
    with pytest.raises(ValueError, match="header block"):
        replace_fields("", {"Date": date_field(NOW)})
    with pytest.raises(ValueError, match="header block"):
        replace_fields("From: a@x.org\r\n", {"Date": date_field(NOW)})
    raw = "From: a@x.org\r\n\r\nbody\r\n"
    for bad in ("To: a@x.org", "To: a@x.org\r\nBcc: t@evil.example\r\n",
                "To: a@x.org\nBcc: t@evil.example\r\n", "a@x.org\r\n"):
        with pytest.raises(ValueError, match="not a header field"):
            replace_fields(raw, {"To": bad})


def test_the_field_writers_write_one_field_each() -> None:
    for field in (text_field("Subject", "a\r\nBcc: b" * 300),
                  mailbox_field("From", "Ä\r\nBcc: b" * 50, "a@x.org"),
                  address_field("To", [f"a{n}@x.org" for n in range(100)])):
        assert re.fullmatch(r"[A-Za-z-]+:[^\r\n]*\r\n(?: [^\r\n]*\r\n)*", field)
    assert text_field("Subject", "") == "Subject:\r\n"


# -- reflow ----------------------------------------------------------------

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


def reflow_with_textwrap(text: str, width: int = 72) -> str:
    """reflow as it was, on textwrap alone: the reference."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.extend(textwrap.wrap(" ".join(para), width,
                                     break_long_words=False,
                                     break_on_hyphens=False) or [""])
            para.clear()

    for line in str(text).strip().splitlines():
        if not line.strip():
            flush()
            out.append("")
        elif compose._LIST_ITEM.match(line):
            flush()
            para.append(line.strip())
        else:
            para.append(line.strip())
    flush()
    return "\n".join(out)


@given(st.lists(st.sampled_from(
    ["a", "bb", "ccccc", "x" * 30, " ", " ", " ", "  ", "\n", "\n\n", "\t",
     "- ", "1. ", "é", "\u00a0", "\u2003", "-", "\r\n"]), max_size=60).map("".join),
    st.integers(min_value=1, max_value=80))
def test_reflow_wraps_as_textwrap_does(text: str, width: int) -> None:
    assert reflow(text, width) == reflow_with_textwrap(text, width)


# The templates wrap prose with the `wrap` filter: what Jinja's
# `wordwrap(width, false, none, false)` gives, without its cost.

@given(st.lists(st.sampled_from(
    ["a", "bb", "ccccc", "x" * 30, "y" * 80, " ", " ", " ", "  ", "\n",
     "\r\n", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u2028", "é",
     "\u00a0", "\u2003", "-"]), max_size=60).map("".join),
    st.integers(min_value=-1, max_value=80))
def test_the_wrap_filter_is_jinjas_wordwrap(text: str, width: int) -> None:
    env = jinja2.Environment()
    try:
        expected = jinja2.filters.do_wordwrap(env, text, width, False, None,
                                              False)
    except ValueError:  # textwrap refuses a width under 1
        with pytest.raises(ValueError):
            compose.wrap(text, width)
        return
    assert compose.wrap(text, width) == expected


@given(st.lists(st.lists(st.sampled_from(
    ["a", "bb", "ccccc", "x" * 9, "y" * 30, "é", "-", "\u00a0"]),
    min_size=1, max_size=4).map("".join), max_size=40).map(" ".join),
    st.integers(min_value=1, max_value=40))
def test_the_wrap_filter_wraps_words_as_jinja_does(text: str,
                                                   width: int) -> None:
    env = jinja2.Environment()
    assert compose.wrap(text, width) == jinja2.filters.do_wordwrap(
        env, text, width, False, None, False)


def test_templates_say_what_they_said_with_jinjas_wordwrap(
        tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    macros = folder / "_macros.txt"
    text = macros.read_text()
    assert "|wrap(" in text
    macros.write_text(re.sub(r"\|wrap\(([^()]*(?:\([^()]*\))?[^()]*)\)",
                             r"|wordwrap(\1, false, none, false)", text))
    assert "|wrap(" not in macros.read_text()
    ours, jinjas = composer(), composer(templates=folder)
    for name, context in contexts().items():
        # Long names and comments, to make the wrapping work.
        for variant in (context, _stretched(context)):
            made = Draft(key="k", kind="digest", template=name,
                         to=("a@example.org",), context=variant)
            assert ours.render(made) == jinjas.render(made), name


@given(st.lists(st.sampled_from(
    ["a", "bb", "ccccc", "x" * 30, "y" * 80, " ", "  ", "\n", "\r\n", "\t",
     "\x0b", "\x85", "\u2028", "é", "\u00a0", "-"]), max_size=60).map("".join),
    st.sampled_from(["", "  - ", "  1. ", "10. ", "* ", "\t"]))
def test_rewrap_with_a_hang_is_rewrap_then_jinjas_indent(text: str,
                                                       hang: str) -> None:
    assert compose.rewrap(text, 72, hang) == hang + jinja2.filters.do_indent(
        compose.rewrap(text, 72 - len(hang)), len(hang))


def test_templates_say_what_they_said_with_jinja_as_it_comes() -> None:
    """What the environment does its own way (globals, a dict's items,
    signature() and footer() run once, para's hanging indent and line
    break) changes no message: Jinja's own environment, with para as
    |indent and a line break, agrees."""
    ours, jinjas = composer(), composer()
    plain = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)
    plain.filters.update({name: jinjas.env.filters[name] for name in (
        "long_date", "long_time", "reflow", "wrap", "rewrap", "br_lines")})
    plain.filters["para"] = lambda text, hang="": hang + jinja2.filters.do_indent(
        compose.rewrap(text, 72 - len(hang)), len(hang)) + "\n"
    plain.globals.update(GLOBALS)
    jinjas.env = plain
    for name, context in contexts().items():
        for variant in (context, _stretched(context)):
            made = Draft(key="k", kind="digest", template=name,
                         to=("a@example.org",), context=variant)
            for _ in range(2):  # the second time, from what was kept
                assert ours.render(made) == jinjas.render(made), name


def _stretched(value: object) -> object:
    if isinstance(value, str) and not value[:1].isdigit():  # not a date
        return f"{value} {value}\tand  {value}-{value} " * 3
    if isinstance(value, dict):
        return {k: v if k in ("status", "phase") else _stretched(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_stretched(v) for v in value]
    return value


# -- attachments (supports.py sends the matrix of supports as CSV) ----------


def with_files(*files: compose.FileAttachment) -> Composed:
    return composer().build(draft(attachments=files), NOW)


def test_without_attachments_the_message_stays_alternative() -> None:
    assert parsed(composer().build(draft(), NOW)).get_content_type() == \
        "multipart/alternative"


def test_attachments_make_a_mixed_message_that_reads_back() -> None:
    table = b"criterion,mentee\r\nSchool Culture,Kirkton\r\n"
    blob = bytes(range(256)) * 40
    built = with_files(
        compose.FileAttachment("matrix.csv", "text/csv; charset=utf-8", table),
        compose.FileAttachment("data.bin", "application/octet-stream", blob))
    assert_well_formed(built.raw)
    assert built.raw.isascii()
    message = parsed(built)
    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_parts())
    assert parts[0].get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parts[0].iter_parts()] == [
        "text/plain", "text/html"]
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None and "Kirkton" in str(plain.get_content())
    files = list(message.iter_attachments())
    assert [f.get_filename() for f in files] == ["matrix.csv", "data.bin"]
    assert [f.get_content_type() for f in files] == [
        "text/csv", "application/octet-stream"]
    assert all(f["Content-Transfer-Encoding"] == "base64" for f in files)
    assert files[0].get_payload(decode=True) == table
    assert files[1].get_payload(decode=True) == blob
    assert max(map(len, built.raw.split("\r\n"))) <= 998


@pytest.mark.parametrize("name, shown", [
    ("Matrix – Kirkton’s plan.csv", "Matrix – Kirkton’s plan.csv"),
    ("Gàidhlig " * 20 + ".csv", ("Gàidhlig " * 20).strip()[:120]),
    ('../../etc/"passwd"\r\nX-Evil: 1', "'passwd'X-Evil: 1"),
    ("C:\\Users\\isla\\matrix.csv", "matrix.csv"),
    ("", "attachment"),
    ("=?utf-8?q?=0D=0AX-Evil=3A_1?=", "=?utf-8?q?=0D=0AX-Evil=3A_1?="),
])
def test_a_filename_is_made_safe_and_reads_back(name: str, shown: str) -> None:
    built = with_files(compose.FileAttachment(name, "text/csv", b"a,b\r\n"))
    assert_well_formed(built.raw)
    message = parsed(built)
    assert "x-evil" not in header_names(built.raw)
    (file,) = message.iter_attachments()
    assert file.get_filename() == shown
    assert file.get_payload(decode=True) == b"a,b\r\n"
    for line in built.raw.split("\r\n"):
        assert len(line) <= 78 or not line.startswith((" filename", " name"))


@pytest.mark.parametrize("content_type", [
    "text/csv\r\nX-Evil: 1", "nonsense", "", "text/csv; boundary=x"])
def test_a_bad_content_type_becomes_octet_stream(content_type: str) -> None:
    built = with_files(compose.FileAttachment("f.csv", content_type, b"x"))
    assert_well_formed(built.raw)
    (file,) = parsed(built).iter_attachments()
    assert file.get_content_type() == "application/octet-stream"
    assert "x-evil" not in header_names(built.raw)


def test_a_boundary_inside_an_attachment_cannot_end_the_message() -> None:
    # base64 never holds "=_" followed by hex, whatever the bytes are.
    data = b"--=_" + b"0" * 24 + b"--\r\n"
    built = with_files(compose.FileAttachment("x.txt", "text/plain", data))
    (file,) = parsed(built).iter_attachments()
    assert file.get_payload(decode=True) == data
