"""Huge mail costs no more than large mail, and a message is read once.

mailbot reads the first mail.TEXT_LIMIT characters of a body (and
mail.HTML_LIMIT of its HTML); the record keeps no more, with a note that
the rest is in the mailbox. Attachments are read whole, so a list of
schools attached to a long message still counts; a table pasted into the
body after the limit does not. These tests assert sizes, not times.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from harness import Harness, example_config, make_mail, sample

from mailbot import nomination, quoting
from mailbot.mail import CUT_NOTE, HEADER_LIMIT, HTML_LIMIT, TEXT_LIMIT, parse

ALAN = "Alan Reid <a.reid@glenbrae-ps.fife.example.sch.uk>"
LEAD = "Morag Lindsay <m.lindsay@glenbrae-hs.example.sch.uk>"
LINE = "Our coding club notes follow, one line of many in the log.\n"
NOTE_END = CUT_NOTE.rpartition("}")[2]  # " are in the copy kept in the mailbox.]"
CSV = ("School,Phase,Contact,Email\r\n"
       "Kirkton Primary School,Primary,Fiona Baird,f.baird@kirkton.example.sch.uk\r\n"
       "Burnside Academy,Secondary,Ewan Hart,e.hart@burnside.example.sch.uk\r\n")
HEAD = ("Cluster name: Longbody Cluster\n"
        "Local authority: Fife\n"
        "Lead contact: Morag Lindsay, m.lindsay@glenbrae-hs.example.sch.uk\n\n")


def long_body(size: int) -> str:
    return LINE * (size // len(LINE) + 1)


def mail_with(body: str, subject: str = "Cluster nomination",
              attachment: bytes | None = None, html: str | None = None,
              sender: str = LEAD) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = subject
    message["Message-ID"] = "<bounds@test.example>"
    if body:
        message.set_content(body)
    if html is not None:
        message.set_content(html, subtype="html")
    if attachment is not None:
        message.add_attachment(attachment, maintype="text", subtype="csv",
                               filename="schools.csv")
    return message.as_bytes()


# --- what is read --------------------------------------------------------

def test_a_body_within_the_limit_is_read_whole() -> None:
    body = long_body(TEXT_LIMIT // 2)
    parsed = parse(mail_with(body))
    assert parsed.text == body
    assert parsed.omitted == 0


def test_a_multi_megabyte_body_is_read_in_part_with_a_note() -> None:
    body = long_body(3_000_000)
    parsed = parse(mail_with(body))
    kept, _, note = parsed.text.rstrip("\n").rpartition("\n\n")
    assert len(kept) <= TEXT_LIMIT
    assert len(kept) > TEXT_LIMIT - len(LINE)  # cut at the end of a line
    assert body.startswith(kept + "\n")
    assert note.startswith("[mailbot read the first") and note.endswith(NOTE_END)
    assert parsed.omitted == len(body) - len(kept) - 1
    assert f"{parsed.omitted:,}" in note


def test_a_body_without_line_breaks_is_cut_at_the_limit() -> None:
    parsed = parse(mail_with("x" * (3 * TEXT_LIMIT)))
    assert parsed.text.startswith("x" * TEXT_LIMIT + "\n\n[mailbot")
    assert parsed.omitted == 2 * TEXT_LIMIT + 1  # and the final line break


def test_huge_html_is_read_in_part() -> None:
    paragraph = "<p>Our digital leaders run a coding club every week.</p>\n"
    html = "<html><body>" + paragraph * (3 * HTML_LIMIT // len(paragraph))
    parsed = parse(mail_with("", html=html + "</body></html>"))
    assert len(parsed.html) <= HTML_LIMIT
    assert len(parsed.text) <= TEXT_LIMIT + len(CUT_NOTE) + 40
    assert parsed.omitted > 0


def test_the_note_reads_as_nothing() -> None:
    # A cut message is understood as the part that was read.
    note = CUT_NOTE.format(kept=TEXT_LIMIT, omitted=123_456)
    assert quoting.new_text(f"Hello\n\n{note}\n") == f"Hello\n\n{note}"
    empty = nomination.parse_nomination(parse(mail_with(note, subject="Notes")))
    assert (empty.cluster_name, empty.local_authority, empty.schools) \
        == (None, None, ())


# --- nominations after a long body -----------------------------------------

def test_a_table_attached_to_a_long_message_is_still_read() -> None:
    raw = mail_with(HEAD + long_body(2_000_000), attachment=CSV.encode())
    parsed = parse(raw)
    assert parsed.omitted > 0
    assert nomination.looks_like_nomination(parsed)
    found = nomination.parse_nomination(parsed)
    assert [s.name for s in found.schools] == [
        "Kirkton Primary School", "Burnside Academy"]
    assert found.cluster_name == "Longbody Cluster"
    assert found.complete


def test_a_table_pasted_after_the_limit_is_not_read() -> None:
    pasted = ("School | Phase | Contact | Email\n"
              "Kirkton Primary School | Primary | Fiona Baird | "
              "f.baird@kirkton.example.sch.uk\n")
    parsed = parse(mail_with(HEAD + long_body(2 * TEXT_LIMIT) + pasted))
    # Still a nomination by its labelled head, so the lead is asked for
    # the schools (as for any nomination that lists none).
    assert nomination.looks_like_nomination(parsed)
    found = nomination.parse_nomination(parsed)
    assert found.schools == ()
    assert "at least one school" in found.missing()


# --- through the pipeline --------------------------------------------------

def test_the_record_keeps_a_bounded_excerpt_of_a_huge_comment(
        tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    bot.deliver(make_mail(ALAN, "Club notes",
                          "Our coding club notes follow.\n\n"
                          + long_body(4_000_000)))
    bot.cycle()
    [comment] = bot.school("Glenbrae Primary School")["comments"]
    text = comment["text"]
    assert text.startswith("Our coding club notes follow.")
    assert TEXT_LIMIT - 2 * len(LINE) < len(text) <= TEXT_LIMIT + len(CUT_NOTE) + 40
    assert text.endswith(NOTE_END)
    [receipt] = bot.sent("comment-receipt")
    assert len(receipt.as_bytes()) < 20_000
    bot.close()


def test_a_long_nomination_with_an_attached_list_is_recorded(
        tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(mail_with(HEAD + long_body(2_000_000), attachment=CSV.encode()))
    bot.cycle()
    cluster = bot.cluster("Longbody")
    assert cluster["status"] == "active"
    assert [s["name"] for s in cluster["schools"]] == [
        "Kirkton Primary School", "Burnside Academy"]
    bot.close()


# --- read once ------------------------------------------------------------

def test_classifying_and_enrolling_read_a_message_once() -> None:
    parsed = parse(mail_with(HEAD + "Our schools are attached.\n",
                             attachment=CSV.encode()))
    assert nomination.looks_like_nomination(parsed)  # by its attachment
    [table] = parsed.derived["nomination.attachment_tables"]
    assert table.schools
    # Enrolment reads the rest, with the attachment as classifying read
    # it: the same table, not a second reading of the file.
    first = nomination.parse_nomination(parsed)
    reading = parsed.derived["nomination.read"]
    assert reading[0][0] is table
    # and asking again reads nothing again.
    assert nomination.parse_nomination(parsed) == first
    assert parsed.derived["nomination.read"] is reading
    assert nomination.looks_like_nomination(parsed)


def test_a_message_without_attachments_is_read_once_too() -> None:
    parsed = parse(mail_with(HEAD + "Schools:\n1. Kirkton Primary School "
                             "(primary) - Fiona Baird - f.baird@kirkton.example"
                             ".sch.uk\n"))
    assert nomination.looks_like_nomination(parsed)
    reading = parsed.derived["nomination.read"]
    found = nomination.parse_nomination(parsed)
    assert parsed.derived["nomination.read"] is reading
    assert [s.name for s in found.schools] == ["Kirkton Primary School"]


def test_new_text_of_the_same_text_is_worked_out_once() -> None:
    text = "Hello\n\nWe finished it.\n\nThanks\nAlan\n"
    assert quoting.new_text(text) is quoting.new_text(text)


# --- headers ---------------------------------------------------------------
# Both guard defects found by hostile testing: a 2 MB subject was kept
# whole in the record, and right-to-left overrides in a subject or a
# cluster's name reached staff's digest and the headers mailbot writes.

RLO, PDI = "\u202e", "\u2069"


def test_the_record_keeps_a_bounded_subject_and_name(tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(make_mail(f"{'N' * 5000} <someone@example.org>",
                          "S" * 2_000_000, "Hello."))
    bot.cycle()
    (kept,) = bot.bot.store.all_messages()
    assert len(kept["subject"]) == HEADER_LIMIT
    assert kept["subject"].endswith("…")
    assert parse(make_mail(f"{'N' * 5000} <someone@example.org>", "Hi",
                           "x")).sender.name == "N" * (HEADER_LIMIT - 1) + "…"
    bot.close()


def test_bidirectional_overrides_reach_neither_record_nor_headers(
        tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(make_mail("Stranger <s@example.org>",
                          f"Invoice from gro.elpmaxe{RLO}@finance{PDI}", "Pay."))
    bot.deliver(sample("01-nomination-list").replace(
        b"Glenbrae Cluster", f"Glen{RLO}brae Cluster".encode()))
    bot.cycle()
    store = bot.bot.store
    assert all(RLO not in m["subject"] and PDI not in m["subject"]
               for m in store.all_messages())
    (cluster,) = store.all_clusters()
    assert cluster["name"] == "Glenbrae Cluster"
    sent = bot.sent()
    assert any("Glenbrae Cluster" in str(m["Subject"]) for m in sent)
    for message in sent:
        assert RLO not in str(message["Subject"]), message["Subject"]
    bot.close()
