"""The loop guard on the samples and on messages built for each rule."""

from __future__ import annotations

import base64
import email
import quopri
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.guard import Verdict, check
from mailbot.mail import Incoming, parse

SAMPLES = Path(__file__).resolve().parents[1] / "mailbot" / "demo_mail"
PROGRAMME = "programme@dsa.example.org"
OWN = frozenset({PROGRAMME})
SCHOOL = "Alan Reid <a.reid@glenbrae-ps.fife.example.sch.uk>"


def sample(prefix: str) -> Incoming:
    return parse(next(SAMPLES.glob(f"{prefix}-*.eml")).read_bytes())


def message(*, sender: str = SCHOOL, subject: str = "Our comments",
            body: str = "Hello,\n\nA few comments.\n",
            **headers: str) -> Incoming:
    """A plain message; keyword headers use '_' for '-' (List_Id)."""
    built = EmailMessage()
    built["From"] = sender
    built["To"] = f"Digital Schools Programme <{PROGRAMME}>"
    built["Subject"] = subject
    built["Message-ID"] = "<test.1@glenbrae-ps.fife.example.sch.uk>"
    for name, value in headers.items():
        built[name.replace("_", "-")] = value
    built.set_content(body)
    return parse(built.as_bytes())


def report(*blocks: str, text: str = "Your message could not be delivered.",
           report_type: str = "delivery-status",
           sender: str = "MAILER-DAEMON@mx.dsa.example.org") -> Incoming:
    """A multipart/report with one delivery-status block per recipient."""
    status = ["Reporting-MTA: dns; mx.dsa.example.org", *blocks]
    built = EmailMessage()
    built["From"] = f"Mail Delivery System <{sender}>"
    built["To"] = PROGRAMME
    built["Subject"] = "Undelivered Mail Returned to Sender"
    built.set_content(text)
    built.make_mixed()
    built.replace_header(
        "Content-Type",
        f"multipart/report; report-type={report_type}; "
        f"boundary=\"{built.get_boundary()}\"")
    part = EmailMessage()
    part["Content-Type"] = f"message/{report_type}"
    # The standard library holds each block of fields as a Message.
    part.set_payload([email.message_from_string(b + "\n") for b in status])
    built.attach(part)
    return parse(built.as_bytes())


def recipient(address: str, action: str) -> str:
    return (f"Final-Recipient: rfc822; {address}\n"
            f"Action: {action}\nStatus: 5.1.1")


# ------------------------------------------------------------ the samples

@pytest.mark.parametrize("prefix", ["01", "02", "03", "04", "05", "08", "10"])
def test_samples_from_people_pass(prefix: str) -> None:
    assert check(sample(prefix), OWN) is None


def test_sample_out_of_office_is_an_auto_reply() -> None:
    verdict = check(sample("06"), OWN)
    assert verdict == Verdict("auto-reply", "Auto-Submitted: auto-replied")


def test_sample_bounce_names_the_failed_recipient() -> None:
    # Sample 07 also carries Auto-Submitted: the bounce rule must win.
    verdict = check(sample("07"), OWN)
    assert verdict is not None
    assert verdict.kind == "bounce"
    assert verdict.bounced == ("e.hart@balgonie-ps.fife.example.sch.uk",)


def test_sample_newsletter_is_bulk() -> None:
    verdict = check(sample("09"), OWN)
    assert verdict is not None and verdict.kind == "bulk"
    assert "bulk" in verdict.reason


# ---------------------------------------------------------------- our own

def test_our_kind_header_marks_our_own_mail() -> None:
    verdict = check(message(X_Mailbot_Kind="invitation"), OWN)
    assert verdict == Verdict("own", "X-Mailbot-Kind: invitation")


def test_our_own_address_in_any_case_is_ours() -> None:
    mail = message(sender="Programme <Programme@DSA.example.org>")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "own"


def test_staff_in_our_domain_are_people() -> None:
    mail = message(sender="Coordinator <coordinator@dsa.example.org>")
    assert check(mail, OWN) is None


def test_own_domain_marks_every_sender_in_it() -> None:
    mail = message(sender="Mailbot <bot@bot.dsa.example.org>")
    verdict = check(mail, OWN, frozenset({"bot.dsa.example.org"}))
    assert verdict is not None and verdict.kind == "own"


def test_a_bounce_from_our_own_domain_is_still_a_bounce() -> None:
    mail = report(recipient("x@school.example.sch.uk", "failed"),
                  sender="MAILER-DAEMON@dsa.example.org")
    verdict = check(mail, OWN, frozenset({"dsa.example.org"}))
    assert verdict is not None and verdict.kind == "bounce"


# ---------------------------------------------------------------- bounces

def test_failed_recipients_come_from_the_report_normalised() -> None:
    mail = report(recipient("One@School.example.sch.uk", "failed"),
                  recipient("two@school.example.sch.uk", "delivered"),
                  recipient("<three@school.example.sch.uk>", "failed"),
                  recipient("one@school.example.sch.uk", "failed"))
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "bounce"
    assert verdict.bounced == ("one@school.example.sch.uk",
                               "three@school.example.sch.uk")


def test_a_delayed_report_is_not_a_failure() -> None:
    verdict = check(report(recipient("a@school.example.sch.uk", "delayed")),
                    OWN)
    assert verdict is not None
    assert verdict.kind == "auto-reply"
    assert verdict.bounced == ()
    assert "delayed" in verdict.reason


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_an_encoded_report_is_decoded(encoding: str) -> None:
    fields = (b"Reporting-MTA: dns; mx.example.net\n\n"
              b"Final-Recipient: rfc822; k.smith@school.example.sch.uk\n"
              b"Action: failed\nStatus: 5.1.1\n")
    if encoding == "base64":
        status = base64.encodebytes(fields).decode()
    else:
        status = quopri.encodestring(fields, quotetabs=True).decode()
    raw = ("From: MAILER-DAEMON@mx.example.net\n"
           f"To: {PROGRAMME}\nSubject: Undeliverable\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=delivery-status;"
           " boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nFailed.\n"
           "--b\nContent-Type: message/delivery-status\n"
           f"Content-Transfer-Encoding: {encoding}\n\n{status}\n--b--\n")
    verdict = check(parse(raw.encode()), OWN)
    assert verdict is not None and verdict.kind == "bounce"
    assert verdict.bounced == ("k.smith@school.example.sch.uk",)


def test_a_report_without_recipients_falls_back_to_the_text() -> None:
    text = ("Sorry.\n\n<e.hart@balgonie-ps.fife.example.sch.uk>: host "
            "mx said:\n    550 User unknown\n")
    verdict = check(report(text=text), OWN)
    assert verdict is not None and verdict.kind == "bounce"
    assert verdict.bounced == ("e.hart@balgonie-ps.fife.example.sch.uk",)


def test_a_read_receipt_is_an_auto_reply() -> None:
    mail = report("Final-Recipient: rfc822; a@school.example.sch.uk\n"
                  "Disposition: automatic-action/MDN-sent-automatically; "
                  "displayed", report_type="disposition-notification")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "auto-reply"


@pytest.mark.parametrize("sender", [
    "MAILER-DAEMON@mx.example.net", "postmaster@school.example.sch.uk"])
def test_a_plain_text_bounce_from_a_mail_server(sender: str) -> None:
    body = ("This message was created automatically by mail delivery "
            "software.\n\n<K.Smith@School.example.sch.uk>: 550 no such "
            "user\n")
    mail = message(sender=sender, body=body,
                   subject="Mail delivery failed: returning message")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "bounce"
    assert verdict.bounced == ("k.smith@school.example.sch.uk",)


def test_a_null_return_path_with_a_bounce_subject_is_a_bounce() -> None:
    body = "<k.smith@school.example.sch.uk>: mailbox full\n"
    mail = message(sender="Mail System <mail@example.net>", body=body,
                   subject="Undeliverable: Your invitation",
                   Return_Path="<>")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "bounce"
    assert verdict.bounced == ("k.smith@school.example.sch.uk",)


def test_a_delay_warning_from_a_mail_server_is_not_a_bounce() -> None:
    mail = message(sender="MAILER-DAEMON@mx.example.net",
                   subject="Delivery Status Notification (Delay)")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "auto-reply"


def test_anything_else_from_a_mail_server_is_still_a_robot() -> None:
    mail = message(sender="postmaster@school.example.sch.uk",
                   subject="Your mailbox settings")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "auto-reply"


def test_our_own_address_is_never_reported_as_bounced() -> None:
    body = f"<{PROGRAMME}>: sender\n<k.smith@school.example.sch.uk>: 550\n"
    mail = message(sender="MAILER-DAEMON@mx.example.net", body=body,
                   subject="Undelivered Mail Returned to Sender")
    verdict = check(mail, OWN)
    assert verdict is not None
    assert verdict.bounced == ("k.smith@school.example.sch.uk",)


# ----------------------------------------------------------- auto-replies

@pytest.mark.parametrize("value", [
    "auto-replied", "auto-generated", "auto-notified",
    "auto-replied; owner-email=\"head@school.example.sch.uk\""])
def test_auto_submitted_other_than_no(value: str) -> None:
    verdict = check(message(Auto_Submitted=value), OWN)
    assert verdict is not None and verdict.kind == "auto-reply"
    assert verdict.reason.startswith("Auto-Submitted:")


def test_auto_submitted_no_is_a_person() -> None:
    assert check(message(Auto_Submitted="no"), OWN) is None


@pytest.mark.parametrize("name", ["X-Autoreply", "X-Autorespond"])
def test_autoreply_headers(name: str) -> None:
    verdict = check(message(**{name: "yes"}), OWN)
    assert verdict is not None and verdict.kind == "auto-reply"
    assert verdict.reason == f"{name}: yes"


def test_precedence_auto_reply() -> None:
    verdict = check(message(Precedence="auto_reply"), OWN)
    assert verdict == Verdict("auto-reply", "Precedence: auto_reply")


@pytest.mark.parametrize("subject", [
    "Automatic reply: Digital Schools Awards",
    "Auto-Reply: away until Monday",
    "Autoreply: your message",
    "Out of Office: Alan Reid",
    "Out of office: back on the 18th",
    "OUT OF OFFICE",
])
def test_auto_reply_subjects(subject: str) -> None:
    verdict = check(message(subject=subject), OWN)
    assert verdict is not None and verdict.kind == "auto-reply"


def test_a_reply_about_an_absence_is_from_a_person() -> None:
    assert check(message(subject="Re: out of office cover"), OWN) is None


def test_outlook_suppression_header_with_an_absence_subject() -> None:
    mail = message(subject="RE: Out of Office until 18 January",
                   X_Auto_Response_Suppress="All")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "auto-reply"


def test_outlook_suppression_header_alone_is_not_enough() -> None:
    # Outlook sets it on some ordinary mail too.
    mail = message(subject="Comments", X_Auto_Response_Suppress="All")
    assert check(mail, OWN) is None


def test_a_null_return_path_alone_is_an_auto_reply() -> None:
    verdict = check(message(Return_Path="<>"), OWN)
    assert verdict == Verdict("auto-reply", "Return-Path: <>")


# ------------------------------------------------------------ bulk, lists

@pytest.mark.parametrize("value", ["bulk", "list", "junk", "Bulk"])
def test_precedence_bulk_list_junk(value: str) -> None:
    verdict = check(message(Precedence=value), OWN)
    assert verdict == Verdict("bulk", f"Precedence: {value.lower()}")


@pytest.mark.parametrize("name, value", [
    ("List-Id", "Teachers <teachers.lists.example.org>"),
    ("List-Unsubscribe", "<mailto:leave@lists.example.org>"),
    ("List-Post", "<mailto:teachers@lists.example.org>"),
    ("X-Mailing-List", "teachers@lists.example.org"),
    ("Feedback-ID", "123:campaign:mailer"),
])
def test_list_headers(name: str, value: str) -> None:
    verdict = check(message(**{name: value}), OWN)
    assert verdict == Verdict("bulk", f"{name}: {value}")


@pytest.mark.parametrize("sender", [
    "noreply@edtech.example.com", "no-reply@edtech.example.com",
    "donotreply@council.example.gov.uk", "No-Reply.News@example.com"])
def test_no_reply_senders_are_bulk(sender: str) -> None:
    verdict = check(message(sender=sender), OWN)
    assert verdict is not None and verdict.kind == "bulk"


def test_a_person_called_norris_is_a_person() -> None:
    assert check(message(sender="norris@school.example.sch.uk"), OWN) is None


def test_an_auto_reply_from_a_list_counts_as_an_auto_reply() -> None:
    mail = message(Auto_Submitted="auto-replied", Precedence="bulk")
    verdict = check(mail, OWN)
    assert verdict is not None and verdict.kind == "auto-reply"


def test_a_list_post_without_list_id_is_bulk() -> None:
    # Guards a past bug: a Mailman post with only Sender: and X-BeenThere
    # was read as a nomination, and the list got the acknowledgment.
    raw = (b"From: Head <head@school.example.org>\r\n"
           b"Sender: heads-bounces@lists.example.org\r\n"
           b"To: heads@lists.example.org\r\nSubject: Our cluster\r\n"
           b"Message-ID: <l1@x>\r\n\r\nCluster name: Heads\r\n")
    verdict = check(parse(raw), OWN)
    assert verdict is not None and verdict.kind == "bulk"
    assert "heads-bounces" in verdict.reason
    been_there = raw.replace(b"Sender: heads-bounces@lists.example.org",
                             b"X-BeenThere: heads@lists.example.org")
    verdict = check(parse(been_there), OWN)
    assert verdict is not None and verdict.kind == "bulk"


def test_a_postmaster_message_not_delivered_is_a_bounce() -> None:
    raw = (b"From: postmaster@mx.example.org\r\n"
           b"Subject: Message not delivered\r\nMessage-ID: <b1@x>\r\n\r\n"
           b"Your message to <head@school.example.org> was not delivered.\r\n"
           b"<head@school.example.org>: mailbox unavailable\r\n")
    verdict = check(parse(raw), OWN)
    assert verdict is not None and verdict.kind == "bounce"
    assert verdict.bounced == ("head@school.example.org",)
