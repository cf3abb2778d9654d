"""Separating what a writer wrote from quotes, signatures and footers."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.mail import parse
from mailbot.quoting import new_text, quoted_text

SAMPLES = Path(__file__).resolve().parents[1] / "mailbot" / "demo_mail"

REPLY = "We have finished the self-review.\n\nCould you confirm the date?"
INVITATION = "Dear Alan,\n\nGlenbrae Primary School is part of the cluster."


def sample_text(prefix: str) -> str:
    return parse(next(SAMPLES.glob(f"{prefix}-*.eml")).read_bytes()).text


def body(text: str) -> str:
    """`text` as it comes out of a real message's plain-text part."""
    built = EmailMessage()
    built["From"] = "Alan Reid <a.reid@glenbrae-ps.fife.example.sch.uk>"
    built["To"] = "programme@dsa.example.org"
    built["Subject"] = "RE: Digital Schools Awards"
    built.set_content(text)
    return parse(built.as_bytes()).text


def quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


# ------------------------------------------------------------ the samples

def test_sample_comment_keeps_the_comments_only() -> None:
    text = new_text(sample_text("04"))
    assert "Strengths: all P5-P7 pupils" in text
    assert "Weaknesses: our Acceptable Usage Policy dates from 2019" in text
    assert text.endswith("Parents are not yet involved.")
    for gone in ("Best wishes", "Alan Reid", "Head Teacher",
                 "Sent: 12 January", "Dear Alan", "Glenbrae Cluster"):
        assert gone not in text


def test_sample_comment_keeps_its_paragraphs() -> None:
    text = new_text(sample_text("04"))
    assert text.startswith("Hi,\n\nA few comments on where we are.\n\n")
    assert "run\na weekly coding club" in text


def test_sample_comment_history_can_be_read_back() -> None:
    history = quoted_text(sample_text("04"))
    assert history.startswith("Dear Alan,")
    assert "From: Digital Schools Programme" not in history
    assert "Strengths" not in history


def test_sample_nomination_loses_sign_off_and_signature() -> None:
    text = new_text(sample_text("01"))
    assert text.endswith("we were awarded Digital School status in 2024")
    assert "Many thanks" not in text
    assert "Tel 01592" not in text


def test_sample_outlook_nomination_loses_its_footer() -> None:
    text = new_text(sample_text("03"))
    assert "confidential" not in text
    assert text.endswith("lshaw@westquarter-ps.falkirk.example.sch.uk")


@pytest.mark.parametrize("prefix, last", [
    ("02", "The list of schools is attached."),
    ("05", "self-review on the website this afternoon."),
])
def test_sample_sign_offs(prefix: str, last: str) -> None:
    assert new_text(sample_text(prefix)).endswith(last)


# ------------------------------------------------------------ the history

@pytest.mark.parametrize("header", [
    ("From: Digital Schools Programme <programme@dsa.example.org>\n"
     "Sent: 12 January 2027 09:31\nTo: Alan Reid\nSubject: Invitation"),
    ("________________________________\n"
     "From: Digital Schools Programme <programme@dsa.example.org>\n"
     "Sent: Tuesday, January 12, 2027 9:31 AM\nTo: Alan Reid\n"
     "Subject: Invitation"),
    ("*From:* Digital Schools Programme <programme@dsa.example.org>\n"
     "*Sent:* Tuesday, January 12, 2027 9:31 AM\n*To:* Alan Reid"),
    ("-----Original Message-----\nFrom: programme@dsa.example.org\n"
     "Sent: 12 January 2027 09:31"),
    ("From: Digital Schools Programme <programme@dsa.example.org>\n"
     "Date: Tuesday, 12 January 2027 at 09:31\nTo: Alan Reid"),
    "---------- Forwarded message ---------\nFrom: Programme",
])
def test_outlook_style_history_is_removed(header: str) -> None:
    text = body(f"{REPLY}\n\n{header}\n\n{INVITATION}\n")
    assert new_text(text) == REPLY
    assert quoted_text(text) == INVITATION


@pytest.mark.parametrize("header", [
    ("On Tue, 12 Jan 2027 at 09:31, Digital Schools Programme "
     "<programme@dsa.example.org> wrote:"),
    ("On Tue, 12 Jan 2027 at 09:31, Digital Schools Programme <\n"
     "programme@dsa.example.org> wrote:"),
    ("On 12 Jan 2027, at 09:31, Digital Schools Programme\n"
     "<programme@dsa.example.org> wrote:"),
    "On 12/01/2027 09:31, Digital Schools Programme wrote:",
])
def test_gmail_and_apple_history_is_removed(header: str) -> None:
    text = f"{REPLY}\n\n{header}\n\n{quote(INVITATION)}\n"
    assert new_text(text) == REPLY
    assert quoted_text(text) == INVITATION


def test_quoted_lines_between_answers_are_removed() -> None:
    text = ("> Which date suits you?\n\nThe week of 29 March.\n\n"
            "> Is the strategy ready?\n>\n\nNot yet.\n")
    assert new_text(text) == "The week of 29 March.\n\nNot yet."
    assert quoted_text(text) == "Which date suits you?\nIs the strategy ready?"


def test_a_reply_below_the_quote_is_kept() -> None:
    text = (f"On Tue, 12 Jan 2027 at 09:31, Programme wrote:\n"
            f"{quote(INVITATION)}\n\n{REPLY}\n")
    assert new_text(text) == REPLY
    assert quoted_text(text) == INVITATION


def test_a_reply_below_a_bare_quote_is_kept() -> None:
    assert new_text(f"{quote(INVITATION)}\n\n{REPLY}\n") == REPLY


def test_nested_quotes_lose_every_mark() -> None:
    text = f"{REPLY}\n\n> > {INVITATION.splitlines()[0]}\n"
    assert quoted_text(text) == "Dear Alan,"


@pytest.mark.parametrize("text", [
    quote(INVITATION),
    f"On Tue, 12 Jan 2027, Programme wrote:\n{quote(INVITATION)}",
    (f"From: Programme <programme@dsa.example.org>\nSent: Tuesday\n\n"
     f"{INVITATION}"),
    f"\n\n-----Original Message-----\n{INVITATION}",
])
def test_a_message_that_is_only_a_quote_has_no_new_text(text: str) -> None:
    assert new_text(text) == ""


def test_plain_text_is_unchanged() -> None:
    text = ("Hello,\n\nWe have three schools in the cluster.\n"
            "  Indented line stays indented.\n\n\nTwo blank lines above.")
    assert new_text(text) == text
    assert quoted_text(text) == ""


def test_crlf_is_normalised_and_trailing_blank_lines_go() -> None:
    assert new_text("Line one\r\nLine two\r\n\r\n\r\n") == "Line one\nLine two"


def test_header_like_lines_in_a_body_are_not_history() -> None:
    # mail-parser-reply takes two "Field:" lines in a row for a header.
    text = "Notes for the visit\nTo: all staff\nDate: Friday 29 March\nThe end"
    assert new_text(text) == text


def test_a_form_quoted_in_a_reply_can_be_read_back() -> None:
    form = "Cluster name: Burnside Cluster\nLocal authority: Glasgow City"
    text = (f"Here it is.\n\nOn Tue, 12 Jan 2027, Programme wrote:\n"
            f"> Please fill in:\n>\n{quote(form)}\n")
    assert quoted_text(text) == f"Please fill in:\n\n{form}"


# ------------------------------------------------ signatures and footers

@pytest.mark.parametrize("sign_off", [
    "Best wishes", "Kind regards,", "Regards", "Many thanks,", "Thanks",
    "Thank you!", "Cheers", "Yours sincerely,", "All the best",
    "Warm regards", "Thanks, Alan", "Best wishes, Alan Reid"])
def test_a_sign_off_and_what_follows_go(sign_off: str) -> None:
    text = (f"{REPLY}\n\n{sign_off}\nAlan\n\nAlan Reid\nHead Teacher\n"
            "Glenbrae Primary School\nTel: 01592 000000\n")
    assert new_text(text) == REPLY


def test_the_dash_dash_space_signature_goes() -> None:
    assert new_text(f"{REPLY}\n-- \nAlan Reid\nHead Teacher\n") == REPLY
    assert new_text(f"{REPLY}\n--\nAlan Reid\n") == REPLY


def test_thanks_alone_is_the_message() -> None:
    assert new_text("Thanks!") == "Thanks!"


def test_thanks_in_the_middle_is_kept() -> None:
    text = ("We have finished.\n\nThanks\n\nWe would also like to know "
            "when the validator can visit the school.\nAlan")
    assert new_text(text) == text


def test_a_question_after_thanks_is_kept() -> None:
    text = "We have finished.\n\nThanks\n\nWhen can you visit?"
    assert new_text(text) == text


def test_a_long_signature_is_not_taken_for_one() -> None:
    lines = "\n".join(f"Point {n}" for n in range(12))
    text = f"Intro\nRegards\n{lines}"
    assert new_text(text) == text


@pytest.mark.parametrize("footer", [
    ("This email and any attachments are confidential and intended solely "
     "for the addressee."),
    "This e-mail and any files transmitted with it are confidential.",
    "The information contained in this email is confidential.",
    "Please consider the environment before printing this email.",
    "Sent from my iPhone",
    "Sent from Outlook for iOS",
    "Get Outlook for Android",
])
def test_footers_go(footer: str) -> None:
    assert new_text(f"{REPLY}\n\n{footer}\nMore footer text.\n") == REPLY


def test_everything_together() -> None:
    text = body(
        f"{REPLY}\n\nKind regards\nAlan\n\nSent from my iPhone\n\n"
        f"On Tue, 12 Jan 2027 at 09:31, Programme wrote:\n"
        f"{quote(INVITATION)}\n")
    assert new_text(text) == REPLY


# ------------------------------------------------------------- properties

@given(st.text(max_size=400))
def test_new_text_keeps_only_lines_it_was_given(text: str) -> None:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    given_lines = set(normalised.split("\n"))
    kept = new_text(text)
    assert len(kept) <= len(normalised)
    assert all(line in given_lines for line in kept.split("\n") if kept)
    quoted_text(text)  # never raises


def test_a_very_long_line_is_handled() -> None:
    # mail-parser-reply alone takes minutes over this; see LIBRARY_LINE.
    text = "On " + "and on " * 70_000 + "\n\nThe end."
    assert new_text(text) == text
