"""Understanding a cluster nomination, from the samples and many other shapes."""

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

import pytest
from harness import workbook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.mail import Incoming, parse
from mailbot.nomination import (
    Nomination,
    SchoolEntry,
    cluster_from_subject,
    looks_like_nomination,
    merge,
    parse_nomination,
    school_key,
)

SAMPLES = Path(__file__).parent.parent / "mailbot" / "demo_mail"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LEAD = ("Morag Lindsay", "m.lindsay@glenbrae-hs.example.sch.uk")


def make_mail(body: str = "", *, subject: str = "Cluster nomination",
              sender: tuple[str, str] = LEAD, html: str | None = None,
              attachments: Sequence[tuple[str, str, bytes]] = (),
              headers: dict[str, str] | None = None) -> Incoming:
    """A parsed message, built the way a mail client would send it."""
    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="test.example")
    for name, value in (headers or {}).items():
        message[name] = value
    if body:
        message.set_content(body)
    if html is not None:
        if body:
            message.add_alternative(html, subtype="html")
        else:
            message.set_content(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename=filename)
    return parse(message.as_bytes())


def sample(prefix: str) -> Incoming:
    [path] = SAMPLES.glob(f"{prefix}-*.eml")
    return parse(path.read_bytes())


def by_name(nomination: Nomination) -> dict[str, SchoolEntry]:
    return {school.name: school for school in nomination.schools}


def never(text: str) -> bool:
    return False


# --- the samples -----------------------------------------------------------

def test_sample_01_labelled_fields_and_numbered_list() -> None:
    nomination = parse_nomination(sample("01"))
    assert nomination.cluster_name == "Glenbrae Cluster"
    assert nomination.local_authority == "Fife"
    assert nomination.lead_name == "Morag Lindsay"
    assert nomination.lead_email == "m.lindsay@glenbrae-hs.fife.example.sch.uk"
    schools = by_name(nomination)
    assert list(schools) == [
        "Glenbrae High School", "Glenbrae Primary School",
        "Kirkton Primary School", "St Serf's RC Primary School",
        "Balgonie Primary School"]
    assert schools["Glenbrae High School"].phase == "secondary"
    assert all(s.phase == "primary" for n, s in schools.items()
               if "Primary" in n)
    assert [s.already_awarded for s in nomination.schools] == [
        False, False, False, False, True]
    serf = schools["St Serf's RC Primary School"]
    assert serf.contact_name == "Declan O'Neill"
    assert serf.contact_email == "d.oneill@stserfs.fife.example.sch.uk"
    assert nomination.complete


def test_sample_01_with_the_rules_phrases_check() -> None:
    awarded_lines = []

    def awarded(text: str) -> bool:
        awarded_lines.append(text)
        return "awarded" in text

    nomination = parse_nomination(sample("01"), awarded)
    assert [s.already_awarded for s in nomination.schools] == [
        False, False, False, False, True]
    assert awarded_lines == ["we were awarded Digital School status in 2024"]


def test_sample_02_csv_attachment() -> None:
    nomination = parse_nomination(sample("02"))
    assert nomination.cluster_name == "Inverbrora ASG"
    assert nomination.local_authority == "Highland"
    assert nomination.lead_name == "Kenneth MacRae"
    assert nomination.lead_email \
        == "k.macrae@inverbrora-academy.highland.example.sch.uk"
    assert len(nomination.schools) == 4
    gaelic = by_name(nomination)["Bun-sgoil Ghàidhlig Inbhir Bhrùra"]
    assert gaelic.phase == "primary"
    assert gaelic.contact_name == "Catrìona NicLeòid"
    assert not any(s.already_awarded for s in nomination.schools)
    assert nomination.complete


def test_sample_03_outlook_html_and_tabs_footer_is_not_a_school() -> None:
    nomination = parse_nomination(sample("03"))
    assert nomination.cluster_name == "Carronvale Learning Community"
    assert nomination.local_authority == "Falkirk"
    assert nomination.lead_name == "Anne-Marie Doyle"
    assert nomination.lead_email \
        == "amdoyle@carronvale-ps.falkirk.example.sch.uk"
    assert [(s.name, s.phase) for s in nomination.schools] == [
        ("Carronvale High School", "secondary"),
        ("Carronvale Primary School", "primary"),
        ("Westquarter Primary School", "primary")]
    assert nomination.complete


def test_a_colleague_named_as_a_council_is_not_the_council() -> None:
    # Guards a bug: "Angus" the colleague made a Fife cluster Angus's, and
    # Angus's council was sent the cluster's details.
    nomination = parse_nomination(make_mail(
        "Hi,\n\nMy colleague Angus and I have put together our cluster's "
        "details. All our\nschools are in Fife.\n\n"
        "Cluster name: Glenbrae Cluster\n"
        "Lead contact: Morag Lindsay, m.lindsay@glenbrae-hs.fife.example.sch.uk"
        "\n\nSchools:\n1. Glenbrae High School (secondary) - Morag Lindsay - "
        "m.lindsay@glenbrae-hs.fife.example.sch.uk\n"
        "2. Glenbrae Primary School (primary) - Alan Reid - "
        "a.reid@glenbrae-ps.fife.example.sch.uk\n"))
    assert nomination.local_authority == "Fife"


def test_sample_10_incomplete_prose() -> None:
    nomination = parse_nomination(sample("10"))
    assert nomination.cluster_name is None
    assert nomination.local_authority is None
    assert nomination.lead_name == "Gordon Fleming"
    assert nomination.lead_email == "gfleming@burnside-ps.example.sch.uk"
    assert [(s.name, s.phase) for s in nomination.schools] == [
        ("Burnside Primary", "primary"), ("Hillhead Primary", "primary"),
        ("Burnside Academy", "secondary")]
    hillhead = by_name(nomination)["Hillhead Primary"]
    assert hillhead.contact_email == "mrs.kaur@hillhead-ps.example.sch.uk"
    assert not nomination.complete
    assert nomination.missing() == [
        "the cluster's name",
        "the local authority",
        "the name of the contact at Burnside Primary",
        "the email address of the contact at Burnside Primary",
        "the name of the contact at Hillhead Primary",
        "the name of the contact at Burnside Academy",
        "the email address of the contact at Burnside Academy",
    ]


@pytest.mark.parametrize(("prefix", "expected"), [
    ("01", True), ("02", True), ("03", True), ("10", True),
    ("04", False), ("05", False), ("06", False), ("07", False),
    ("08", False), ("09", False),
])
def test_looks_like_nomination_on_the_samples(prefix: str,
                                              expected: bool) -> None:
    assert looks_like_nomination(sample(prefix)) is expected


# --- attachments and tables --------------------------------------------------

def test_semicolon_csv_in_cp1252_with_labelled_body() -> None:
    csv_text = ("School;Sector;Head Teacher;E-mail;Status\r\n"
                "Oban High School;Secondary;Mòrag Campbell;"
                "m.campbell@obanhs.example.sch.uk;Registered\r\n"
                "St Columba\u2019s RC Primary;Primary;Seán Ó Briain;"
                "s.obriain@stcolumbas.example.sch.uk;Awarded 2024\r\n")
    mail = make_mail(
        "Cluster name: Oban Learning Community\n"
        "Council: Argyll & Bute\n\nOur schools are in the attached file.\n",
        attachments=[("schools.csv", "text/csv", csv_text.encode("cp1252"))])
    nomination = parse_nomination(mail)
    assert nomination.cluster_name == "Oban Learning Community"
    assert nomination.local_authority == "Argyll and Bute"
    schools = by_name(nomination)
    assert list(schools) == ["Oban High School", "St Columba\u2019s RC Primary"]
    assert schools["Oban High School"].contact_name == "Mòrag Campbell"
    assert not schools["Oban High School"].already_awarded
    assert schools["St Columba\u2019s RC Primary"].already_awarded
    assert schools["St Columba\u2019s RC Primary"].contact_name \
        == "Seán Ó Briain"
    assert looks_like_nomination(mail)




def test_xlsx_with_title_rows_and_the_header_at_row_four() -> None:
    data = workbook([
        ["Digital Schools Awards: cluster nomination"],
        ["Cluster", "Sgoil Lionacleit ASG"],
        [],
        ["Contact email", "Type", "Contact", "School name", "Already awarded?"],
        ["office@lionacleit.example.sch.uk", "Secondary", "Iain Mac Aoidh",
         "Àrd-sgoil Lionacleit", "N"],
        ["bsg@baile.example.sch.uk", None, "Ceit NicDhòmhnaill",
         "Bun-sgoil Bhaile a' Mhanaich", "Y"],
        [],
        ["Notes: all schools are Gaelic medium"],
    ])
    mail = make_mail("Please see attached. LA: Comhairle nan Eilean Siar\n",
                     subject="Nomination",
                     attachments=[("cluster.xlsx", XLSX, data)])
    nomination = parse_nomination(mail)
    assert nomination.cluster_name == "Sgoil Lionacleit ASG"
    assert nomination.local_authority == "Na h-Eileanan Siar"
    assert [(s.name, s.phase, s.already_awarded)
            for s in nomination.schools] == [
        ("Àrd-sgoil Lionacleit", "secondary", False),
        ("Bun-sgoil Bhaile a' Mhanaich", "primary", True)]
    assert nomination.schools[1].contact_name == "Ceit NicDhòmhnaill"
    assert looks_like_nomination(mail)


def test_html_only_mail_with_a_word_table() -> None:
    html = """<html><body><p class=MsoNormal>Dear team,</p>
    <p>Our cluster is the Leith Cluster, City of Edinburgh Council.</p>
    <table class=MsoTableGrid>
    <tr><td><p><b>Name of school</b></p></td><td><p><b>Head Teacher</b></p></td>
        <td><p><b>E-mail</b></p></td><td><p><b>Sector</b></p></td></tr>
    <tr><td><p>Leith Academy</p></td><td><p>Ruth Ogilvie</p></td>
        <td><p>r.ogilvie@leith-ac.example.sch.uk</p></td>
        <td><p>Secondary</p></td></tr>
    <tr><td><p>Leith Primary School</p></td><td><p>Sam Okafor</p></td>
        <td><p>s.okafor@leith-ps.example.sch.uk</p></td>
        <td><p>Primary</p></td></tr>
    </table><p>Kind regards,<br>Ruth</p></body></html>"""
    mail = make_mail(html=html, subject="DSA",
                     sender=("Ogilvie, Ruth", "R.Ogilvie@leith-ac.example.sch.uk"))
    nomination = parse_nomination(mail)
    assert nomination.cluster_name == "Leith Cluster"
    assert nomination.local_authority == "City of Edinburgh"
    assert nomination.lead_name == "Ruth Ogilvie"
    assert nomination.lead_email == "r.ogilvie@leith-ac.example.sch.uk"
    assert [(s.name, s.phase, s.contact_name) for s in nomination.schools] == [
        ("Leith Academy", "secondary", "Ruth Ogilvie"),
        ("Leith Primary School", "primary", "Sam Okafor")]
    assert nomination.complete


def test_pasted_pipe_table_and_stated_lead() -> None:
    body = """Hello,

Cluster name: Kelso Cluster
Local authority: Borders
Lead contact: Jane Smith (jane.smith@kelso-hs.example.sch.uk)

| Name of school | Head Teacher | E-mail | Sector |
|---|---|---|---|
| Kelso High School | Jane Smith | jane.smith@kelso-hs.example.sch.uk | Secondary |
| Edenside Primary | Tom Hall | t.hall@edenside.example.sch.uk | Primary |

Sent on behalf of Jane by the school office.
"""
    nomination = parse_nomination(make_mail(
        body, sender=("Kelso HS Office", "office@kelso-hs.example.sch.uk")))
    assert nomination.local_authority == "Scottish Borders"
    assert nomination.lead_name == "Jane Smith"
    assert nomination.lead_email == "jane.smith@kelso-hs.example.sch.uk"
    assert not nomination.lead_assumed
    assert len(nomination.schools) == 2
    assert nomination.complete


# --- free text ---------------------------------------------------------------

def test_bullets_with_dots_and_dashes_and_other_separators() -> None:
    body = """Hi,

Name of cluster: Ayr Academy Cluster
Local authority: South Ayrshire

Schools in our cluster:
\u2022 Ayr Academy (secondary) \u2013 Neil Boyd \u2013 n.boyd@ayr-ac.example.sch.uk
\u2022 Holmston Primary; Lisa Grant; l.grant@holmston.example.sch.uk
- Grammar Primary School | Raj Patel | r.patel@grammar-ps.example.sch.uk
- St John's Primary, Mr Kerr, kerr@stjohns.example.sch.uk, already a Digital School
-\tWallacetown ELC Primary\tAmy Wood\ta.wood@wallacetown.example.sch.uk

Thanks
Neil
Neil Boyd | Head Teacher | Ayr Academy
"""
    nomination = parse_nomination(make_mail(body))
    assert nomination.cluster_name == "Ayr Academy Cluster"
    assert nomination.local_authority == "South Ayrshire"
    assert [(s.name, s.phase, s.contact_name) for s in nomination.schools] == [
        ("Ayr Academy", "secondary", "Neil Boyd"),
        ("Holmston Primary", "primary", "Lisa Grant"),
        ("Grammar Primary School", "primary", "Raj Patel"),
        ("St John's Primary", "primary", "Mr Kerr"),
        ("Wallacetown ELC Primary", "primary", "Amy Wood")]
    assert [s.already_awarded for s in nomination.schools] == [
        False, False, False, True, False]
    assert nomination.schools[2].contact_email \
        == "r.patel@grammar-ps.example.sch.uk"


def test_lettered_items_and_a_one_line_list() -> None:
    body = ("Schools: Kirkton Primary, Glenbrae High School and Burnside "
            "Academy\nMore schools:\nA. Balgonie PS\nb) Markinch HS\n")
    assert [s.name for s in parse_nomination(make_mail(body)).schools] == [
        "Kirkton Primary", "Glenbrae High School", "Burnside Academy",
        "Balgonie PS", "Markinch HS"]


def test_a_school_described_over_several_lines() -> None:
    body = """Cluster: Lomond Cluster
Local authority: West Dunbartonshire
Schools:
Lomond Academy
Contact: Anna Bell
Email: A.Bell@Lomond.example.sch.uk

Balloch Primary School
Head teacher: Jo Reid
E-mail: jo.reid@balloch.example.sch.uk
Already awarded: yes
"""
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.contact_name, s.contact_email, s.already_awarded)
            for s in nomination.schools] == [
        ("Lomond Academy", "Anna Bell", "a.bell@lomond.example.sch.uk", False),
        ("Balloch Primary School", "Jo Reid",
         "jo.reid@balloch.example.sch.uk", True)]
    assert nomination.lead_name == "Morag Lindsay"
    assert nomination.lead_assumed


@pytest.mark.parametrize(("line", "awarded"), [
    ("we were awarded Digital School status in 2024", True),
    ("already a Digital School", True),
    ("has been awarded", True),
    ("not yet awarded Digital School status", False),
    ("we have never been awarded anything", False),
    ("working towards the award", False),
])
def test_already_awarded_by_the_built_in_check(line: str,
                                               awarded: bool) -> None:
    body = f"Schools:\n1. Kirkton Primary School - Fiona Baird - {line}\n"
    [school] = parse_nomination(make_mail(body)).schools
    assert school.already_awarded is awarded


def test_the_awarded_callable_is_used() -> None:
    body = "Schools:\n1. Kirkton Primary School - we are a Digital School\n"
    mail = make_mail(body)
    assert not parse_nomination(mail, never).schools[0].already_awarded
    assert parse_nomination(mail, lambda t: "Digital" in t) \
        .schools[0].already_awarded


@pytest.mark.parametrize(("name", "phase"), [
    ("St Serf's RC Primary School", "primary"),
    ("Bun-sgoil Ghàidhlig Inbhir Bhrùra", "primary"),
    ("Àrd-sgoil MhicNeacail", "secondary"),
    ("Hutchesons' Grammar", "secondary"),
    ("Kirkton PS", "primary"),
    ("Westfield P.S", "primary"),    # found by trying mailbot's nominations
    ("Riverside H. S", "secondary"),
    ("Glenbrae High", "secondary"),
    ("Portree Secondary", "secondary"),
    ("Sgoil Lionacleit", None),
    ("Kinloch Community School", None),
])
def test_phase_is_inferred_from_the_name(name: str, phase: str | None) -> None:
    body = f"Schools:\n1. {name} - Fiona Baird - f@k.example.sch.uk\n"
    [school] = parse_nomination(make_mail(body)).schools
    assert (school.name, school.phase) == (name, phase)


def test_phase_written_beside_the_name_wins() -> None:
    body = "Schools:\n1. Kinloch Community School (secondary)\n"
    [school] = parse_nomination(make_mail(body)).schools
    assert school.phase == "secondary"


def test_prose_with_commas_and_and() -> None:
    body = ("The schools in the cluster are Dalry Primary, Gorgie Mills "
            "School (contact Mrs Brown, brown@gorgie.example.sch.uk) and "
            "Tynecastle High School. We are in Edinburgh.\n")
    nomination = parse_nomination(make_mail(body, subject="Our cluster"))
    assert nomination.cluster_name is None
    assert nomination.local_authority == "City of Edinburgh"
    assert [(s.name, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Dalry Primary", None, None),
        ("Gorgie Mills School", "Mrs Brown", "brown@gorgie.example.sch.uk"),
        ("Tynecastle High School", None, None)]


def test_signature_footer_and_quoted_history_are_not_schools() -> None:
    body = """Cluster name: Dornoch Cluster
Local authority: Highland
Schools:
1. Dornoch Academy (secondary) - Ali Ross - a.ross@dornoch.example.sch.uk

Regards
Ali Ross
Depute Head Teacher
Dornoch Primary School
- Golspie High School

This email and any attachments are confidential and intended solely for
the addressee. If you are not the intended recipient please delete it.

On Mon, 11 Jan 2027 at 10:00, Programme <programme@dsa.example.org> wrote:
> Schools:
> 1. Embo Primary School - Old Contact - old@embo.example.sch.uk
"""
    nomination = parse_nomination(make_mail(body))
    assert [s.name for s in nomination.schools] == ["Dornoch Academy"]


def test_outlook_history_below_a_reply_is_ignored() -> None:
    body = """Local authority is Fife, sorry I missed it.

Gordon

From: Digital Schools Programme <programme@dsa.example.org>
Sent: 13 January 2027 10:00
To: Gordon Fleming <gfleming@burnside-ps.example.sch.uk>
Subject: Your cluster nomination

Schools:
1. Old Primary School - Old Name - old@old.example.sch.uk
"""
    nomination = parse_nomination(make_mail(body, subject="RE: Your cluster"))
    assert nomination.schools == ()
    assert nomination.local_authority == "Fife"
    assert nomination.cluster_name is None


def test_a_forwarded_nomination_is_read_below_the_forward_line() -> None:
    body = """FYI - please see below.

---------- Forwarded message ---------
From: Kenneth MacRae <k.macrae@inverbrora.example.sch.uk>
Date: Mon, 11 Jan 2027 at 09:00
Subject: Cluster nomination
To: Office <office@highland.example.gov.uk>

Cluster name: Inverbrora ASG
Local authority: Highland
Lead contact: Kenneth MacRae, k.macrae@inverbrora.example.sch.uk
Schools:
1. Inverbrora Academy (secondary) - Kenneth MacRae - k.macrae@inverbrora.example.sch.uk
"""
    nomination = parse_nomination(make_mail(
        body, subject="Fwd: Cluster nomination",
        sender=("Office", "office@highland.example.gov.uk")))
    assert nomination.cluster_name == "Inverbrora ASG"
    assert nomination.lead_name == "Kenneth MacRae"
    assert [s.name for s in nomination.schools] == ["Inverbrora Academy"]


@pytest.mark.parametrize(("subject", "name"), [
    ("Inverbrora ASG - cluster details", "Inverbrora ASG"),
    ("Cluster nomination - Glenbrae Cluster", "Glenbrae Cluster"),
    ("Fwd: Nomination for Kinloch Learning Community",
     "Kinloch Learning Community"),
    ("FW: Fwd: Glenbrae Cluster nomination (Fife)", "Glenbrae Cluster"),
    ("Our cluster", None),
    ("Cluster nomination", None),
    ("Digital Schools Awards cluster initiative", None),
    ("Re: Cluster nomination - Glenbrae Cluster", None),
    ("Fife", None),
    ("Nomination - Glenbrae Cluster, Fife", "Glenbrae Cluster"),
])
def test_cluster_name_from_the_subject(subject: str, name: str | None) -> None:
    assert cluster_from_subject(subject) == name


def test_cluster_name_from_prose_when_neither_labelled_nor_in_subject() -> None:
    body = ("The Kinloch Cluster would like to join the Digital Schools "
            "Awards Cluster Initiative.\nSchools:\n1. Kinloch Primary\n")
    nomination = parse_nomination(make_mail(body, subject="Hello"))
    assert nomination.cluster_name == "Kinloch Cluster"


@pytest.mark.parametrize("body", [
    "Lead contact: me\n",
    "I am the lead for our cluster.\n",
    "I'll be the lead contact.\n",
    "",
])
def test_the_lead_defaults_to_the_sender(body: str) -> None:
    nomination = parse_nomination(make_mail(
        body + "Schools:\n1. Kirkton PS\n", sender=("Baird, Fiona",
                                                    "F.Baird@kirkton.example")))
    assert (nomination.lead_name, nomination.lead_email) \
        == ("Fiona Baird", "f.baird@kirkton.example")


def test_a_lead_named_without_address_is_found_in_the_schools() -> None:
    body = ("Lead contact: Alan Reid, Head Teacher\nSchools:\n"
            "1. Glenbrae Primary School - Alan Reid - a.reid@g.example\n")
    nomination = parse_nomination(make_mail(body))
    assert (nomination.lead_name, nomination.lead_email) \
        == ("Alan Reid", "a.reid@g.example")


# --- our own form, filled in and sent back ----------------------------------

FORM = """Cluster name: ____
Local authority: ____
Lead contact: Gordon Fleming, gfleming@burnside-ps.example.sch.uk
Schools (one per line: name (primary or secondary) - contact name - email address):
1. Burnside Primary (primary) - ____ - ____
2. Hillhead Primary (primary) - ____ - mrs.kaur@hillhead-ps.example.sch.uk
3. Burnside Academy (secondary) - ____ - ____
"""


def filled_in(form: str) -> str:
    return (form.replace("Cluster name: ____", "Cluster name: Burnside ASG")
            .replace("Local authority: ____", "Local authority: Fife")
            .replace("Primary (primary) - ____ - ____",
                     "Primary (primary) - Gordon Fleming - "
                     "gfleming@burnside-ps.example.sch.uk")
            .replace("Hillhead Primary (primary) - ____",
                     "Hillhead Primary (primary) - Mrs Kaur")
            .replace("Academy (secondary) - ____ - ____",
                     "Academy (secondary) - Ian Dow - [missing]"))


def test_the_blank_form_gives_nothing_new() -> None:
    nomination = parse_nomination(make_mail(FORM, subject="Re: Our cluster"))
    assert nomination.cluster_name is None
    assert nomination.local_authority is None
    assert [(s.contact_name, s.contact_email) for s in nomination.schools] \
        == [(None, None), (None, "mrs.kaur@hillhead-ps.example.sch.uk"),
            (None, None)]


def test_merge_completes_sample_10_from_a_quoted_filled_in_form() -> None:
    quoted = "".join(f"> {line}\n" for line in filled_in(FORM).splitlines())
    reply = make_mail(
        "Here you are - all filled in.\n\nGordon\n\n"
        "On 13 Jan 2027, at 10:00, Digital Schools Programme wrote:\n"
        "> Thank you. We still need:\n>\n" + quoted,
        subject="Re: Your cluster nomination: a few details missing",
        sender=("Gordon Fleming", "gfleming@burnside-ps.example.sch.uk"))
    update = parse_nomination(reply)
    merged = merge(parse_nomination(sample("10")), update)
    assert merged.cluster_name == "Burnside ASG"
    assert merged.local_authority == "Fife"
    assert [(s.name, s.contact_name, s.contact_email)
            for s in merged.schools] == [
        ("Burnside Primary", "Gordon Fleming",
         "gfleming@burnside-ps.example.sch.uk"),
        ("Hillhead Primary", "Mrs Kaur", "mrs.kaur@hillhead-ps.example.sch.uk"),
        ("Burnside Academy", "Ian Dow", None)]
    assert merged.missing() == [
        "the email address of the contact at Burnside Academy"]


def test_merge_from_an_unquoted_form_pasted_into_a_reply() -> None:
    reply = make_mail(filled_in(FORM).replace("[missing]", "i.dow@b.example"),
                      subject="RE: Our cluster")
    merged = merge(parse_nomination(sample("10")), parse_nomination(reply))
    assert merged.complete


# --- merge -------------------------------------------------------------------

def entry(name: str, **given: object) -> SchoolEntry:
    fields: dict[str, object] = {"phase": None, "contact_name": None,
                                 "contact_email": None,
                                 "already_awarded": False}
    fields.update(given)
    return SchoolEntry(name, **fields)  # type: ignore[arg-type]


def test_merge_matches_schools_by_normalised_name() -> None:
    base = Nomination("Glenbrae Cluster", None, "Morag Lindsay", "m@g.example",
                      (entry("St. Serf's R.C. Primary", phase="primary"),
                       entry("Kirkton PS", contact_email="old@k.example")))
    update = Nomination(None, "Fife", None, None, (
        entry("ST SERFS RC PRIMARY SCHOOL", contact_name="Declan O'Neill"),
        entry("Kirkton Primary School", contact_email="new@k.example",
              already_awarded=True),
        entry("Balgonie Primary School")))
    merged = merge(base, update)
    assert merged.cluster_name == "Glenbrae Cluster"
    assert merged.local_authority == "Fife"
    assert merged.lead_name == "Morag Lindsay"
    assert merged.schools == (
        entry("ST SERFS RC PRIMARY SCHOOL", phase="primary",
              contact_name="Declan O'Neill"),
        entry("Kirkton Primary School", contact_email="new@k.example",
              already_awarded=True),
        entry("Balgonie Primary School"))


def test_merge_keeps_a_named_lead_over_an_assumed_one() -> None:
    base = Nomination(None, None, "Jane Smith", "jane@k.example", ())
    update = Nomination(None, None, "Office", "office@k.example", (),
                        lead_assumed=True)
    assert (merge(base, update).lead_name, merge(base, update).lead_email) \
        == ("Jane Smith", "jane@k.example")
    stated = Nomination(None, None, "Tom Hall", "tom@k.example", ())
    assert merge(base, stated).lead_name == "Tom Hall"
    unaddressed = Nomination(None, None, "Tom Hall", None, ())
    assert (merge(base, unaddressed).lead_name,
            merge(base, unaddressed).lead_email) == ("Tom Hall", None)
    addressed = Nomination(None, None, None, "j.smith@k.example", ())
    assert (merge(base, addressed).lead_name,
            merge(base, addressed).lead_email) \
        == ("Jane Smith", "j.smith@k.example")


@pytest.mark.parametrize(("one", "other"), [
    ("Burnside Primary", "Burnside Primary School"),
    ("Kirkton PS", "kirkton primary school"),
    ("St Serf's RC Primary", "St. Serfs R.C. Primary School"),
    ("Bun-sgoil Ghàidhlig Inbhir Bhrùra", "Bun-sgoil Ghaidhlig Inbhir Bhrura"),
    ("Glenbrae High", "Glenbrae HS"),
])
def test_school_key_ignores_what_people_vary(one: str, other: str) -> None:
    assert school_key(one) == school_key(other)


def test_school_key_keeps_different_schools_apart() -> None:
    assert school_key("Burnside Primary") != school_key("Burnside Academy")


# --- what is missing -----------------------------------------------------------

def test_missing_lists_each_gap_in_order() -> None:
    nomination = Nomination(None, None, None, None, ())
    assert nomination.missing() == [
        "the cluster's name", "the local authority",
        "the lead contact's name", "the lead contact's email address",
        "at least one school"]
    assert not nomination.complete
    school = entry("Burnside Primary School")
    assert Nomination("C", "Fife", "A B", "a@b", (school,)).missing() == [
        "whether Burnside Primary School is primary or secondary",
        "the name of the contact at Burnside Primary School",
        "the email address of the contact at Burnside Primary School"]


# --- what is not a nomination -----------------------------------------------------

@pytest.mark.parametrize(("body", "subject", "headers"), [
    (("Strengths: our cluster of P7 digital leaders run a coding club.\n"
      "Weaknesses: no written digital strategy yet.\n"),
     "Re: your invitation", {}),
    ("Just to let you know we completed our self-review today.\n",
     "Self-review - Kirkton Primary School", {}),
    (("This week: ten apps. Schools are Kirkton Primary, Glenbrae High.\n"
      "Join our cluster webinar!\n"), "EdTech news", {"List-Id": "<n.example>"}),
    ("Could you tell me more about the cluster initiative?\n",
     "Question about clusters", {}),
])
def test_looks_like_nomination_is_conservative(
        body: str, subject: str, headers: dict[str, str]) -> None:
    assert not looks_like_nomination(make_mail(body, subject=subject,
                                               headers=headers))


def test_a_csv_of_schools_alone_looks_like_a_nomination() -> None:
    mail = make_mail("See attached.", subject="Schools",
                     attachments=[("s.csv", "text/csv",
                                   b"School,Phase\nKirkton PS,Primary\n")])
    assert looks_like_nomination(mail)


def test_the_form_as_the_workflow_writes_it_with_blank_phases() -> None:
    form = """> Cluster name: Burnside ASG
> Local authority: ____
> Lead contact: Gordon Fleming, gfleming@burnside-ps.example.sch.uk
> Schools (one per line: name (primary or secondary) - contact name - email address):
> 1. Burnside Primary (primary) - ____ - ____
> 2. Kinloch Community School (secondary) - Ann Lee - a.lee@kinloch.example
> 3. ____ (____) - ____ - ____
"""
    nomination = parse_nomination(make_mail(
        "Done, see below.\n\n" + form, subject="Re: Your cluster nomination"))
    assert nomination.cluster_name == "Burnside ASG"
    assert nomination.local_authority is None
    assert [(s.name, s.phase, s.contact_name) for s in nomination.schools] == [
        ("Burnside Primary", "primary", None),
        ("Kinloch Community School", "secondary", "Ann Lee")]


def test_html_reply_leaves_out_tables_in_the_quoted_history() -> None:
    html = """<div>Local authority: Fife</div>
    <div id="appendonsend"></div><hr>
    <div id="divRplyFwdMsg"><b>From:</b> Programme</div>
    <div><table><tr><th>School</th><th>Email</th></tr>
    <tr><td>Old Primary School</td><td>old@old.example</td></tr></table></div>"""
    nomination = parse_nomination(make_mail(html=html,
                                            subject="RE: Your cluster"))
    assert nomination.schools == ()
    assert nomination.local_authority == "Fife"


@pytest.mark.parametrize("marker", [
    # Found by attacking the parser: Yahoo's and Outlook on the web's.
    '<div class="yahoo_quoted">',
    '<div id="mail-editor-reference-message-container">'])
def test_more_mail_clients_quoted_history_in_html(marker: str) -> None:
    html = (f"<p>Local authority: Fife</p>{marker}<div>On Monday, 11 "
            "January 2027, Programme &lt;programme@dsa.example.org&gt; "
            "wrote:</div><table><tr><th>School</th>"
            "<th>Email</th></tr><tr><td>Old Primary School</td>"
            "<td>old@old.example</td></tr></table></div>")
    nomination = parse_nomination(make_mail(html=html, subject="RE: Cluster"))
    assert nomination.schools == ()


def test_an_awarded_column_with_words_for_status() -> None:
    csv_text = ("School,Status\nA Primary,Awarded 2024\nB Primary,Registered\n"
                "C Primary,Self-review in progress\nD Primary,Yes\n"
                "E Primary,Not yet\n")
    mail = make_mail("Cluster: Test Cluster", attachments=[
        ("s.csv", "text/csv", csv_text.encode())])
    assert [s.already_awarded for s in parse_nomination(mail).schools] == [
        True, False, False, True, False]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(
    list("abcXYZ ,;:|-()\t\n.@_>1") + [
        "School", "Primary", "Cluster", "Schools:", "Fife", "\u2022 ",
        "Lead contact:", " - ", "____", "x@y.example"]),
    max_size=120).map("".join))
def test_any_text_parses_without_error(body: str) -> None:
    mail = make_mail(body or " ", subject=body[:60].replace("\n", " "))
    nomination = parse_nomination(mail)
    looks_like_nomination(mail)
    assert isinstance(nomination.missing(), list)
    assert merge(nomination, nomination).schools == nomination.schools


def test_a_contact_given_in_a_clause_after_the_school_in_prose() -> None:
    # Found by trying mailbot as a new user: a contact written after the
    # school, in a clause of its own, was left out, and asked for again.
    body = ("The schools in our cluster are Nethermuir Primary School, "
            "whose head teacher is Ewan Guthrie "
            "(e.guthrie@nethermuir.example.sch.uk), Lochside Primary, "
            "where Dr Priya Nair at p.nair@lochside.example.sch.uk is the "
            "contact, and Strathmore Academy, which I lead. Please write "
            "to me, Calum Reid, at c.reid@strathmore.example.sch.uk.\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Nethermuir Primary School", "Ewan Guthrie",
         "e.guthrie@nethermuir.example.sch.uk"),
        ("Lochside Primary", "Dr Priya Nair", "p.nair@lochside.example.sch.uk"),
        ("Strathmore Academy", None, None)]


def test_an_address_after_a_school_without_a_name_is_not_its_contact() -> None:
    body = ("The schools are Kelty Primary School and Lumphinnans Primary "
            "School, and for anything else please write to "
            "office@kelty-cluster.example.org.\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.contact_email) for s in nomination.schools] == [
        ("Kelty Primary School", None), ("Lumphinnans Primary School", None)]


def test_a_list_of_primaries_in_prose() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: "our primaries are ..." named no school.
    body = ("I lead the Dunmore cluster in Falkirk and I am head teacher "
            "at Dunmore High School. Our associated primaries are Airth "
            "Primary School, whose head teacher is Mrs Sheena Watt "
            "(s.watt@airth.example.sch.uk), and Letham Primary School.\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.phase, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Airth Primary School", "primary", "Mrs Sheena Watt",
         "s.watt@airth.example.sch.uk"),
        ("Letham Primary School", "primary", None, None)]


def test_a_contact_on_the_line_under_its_school() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: each contact's line was taken for a school of its own.
    body = ("Cluster name: Carden Cluster\nLocal authority: Fife\n\n"
            "Schools:\nCarden Primary School\n"
            "Mr Iain Scott, Head Teacher - i.scott@carden-ps.example.sch.uk\n"
            "Auchtertool Primary School\n"
            "Mrs Lesley Kerr (DHT) lesley.kerr@auchtertool.example.sch.uk\n"
            "Carden High School - secondary\n"
            "Ms Ruth Innes, PT Computing - r.innes@carden-hs.example.sch.uk\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Carden Primary School", "Mr Iain Scott",
         "i.scott@carden-ps.example.sch.uk"),
        ("Auchtertool Primary School", "Mrs Lesley Kerr",
         "lesley.kerr@auchtertool.example.sch.uk"),
        ("Carden High School", "Ms Ruth Innes",
         "r.innes@carden-hs.example.sch.uk")]


def test_a_school_named_like_a_person_is_still_a_school() -> None:
    body = ("Schools:\nDalry Primary School - d.head@dalry.example.sch.uk\n"
            "Mary Erskine - m.erskine@me.example.sch.uk\n")
    assert [s.name for s in parse_nomination(make_mail(body)).schools] == [
        "Dalry Primary School", "Mary Erskine"]


def test_contacts_written_as_mailto_links_in_an_html_table() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: Outlook puts a contact's address in a link on the name only.
    html = ("<p>Our cluster: Peebles Cluster, Scottish Borders.</p>"
            "<table><tr><td>School</td><td>Contact</td></tr>"
            "<tr><td>Kingsland Primary School</td><td><a href="
            "\"mailto:j.muir@kingsland.example.sch.uk?subject=DSA\">Jean Muir"
            "</a></td></tr>"
            "<tr><td>Priorsford Primary School</td><td><a href=\"MAILTO:"
            "t.hay@priorsford.example.sch.uk\">t.hay@priorsford.example.sch.uk"
            "</a></td></tr></table>")
    nomination = parse_nomination(make_mail(html=html))
    assert [(s.name, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Kingsland Primary School", "Jean Muir",
         "j.muir@kingsland.example.sch.uk"),
        ("Priorsford Primary School", None,
         "t.hay@priorsford.example.sch.uk")]


def test_school_rows_without_a_heading() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: whole rows with no "Schools:" above them named no school.
    body = ("Cluster: Menzieshill Cluster\nLA: Dundee\n\n"
            "Menzieshill HS - secondary - Paula Reid - p.reid@mhs.example.sch.uk\n"
            "Camperdown PS - primary - Neil Bain - n.bain@cps.example.sch.uk\n"
            "\nThanks,\nPaula Reid\nMenzieshill HS - secondary - "
            "p.reid@mhs.example.sch.uk\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.phase, s.contact_email)
            for s in nomination.schools] == [
        ("Menzieshill HS", "secondary", "p.reid@mhs.example.sch.uk"),
        ("Camperdown PS", "primary", "n.bain@cps.example.sch.uk")]


def test_one_school_row_alone_is_a_signature_not_a_list() -> None:
    body = ("We had a lovely visit from the cluster last week.\n\n"
            "Paula Reid\nMenzieshill HS - secondary - p.reid@mhs.example.sch.uk\n")
    assert parse_nomination(make_mail(body)).schools == ()


def test_schools_written_as_blocks_of_lines() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: a school's name, then its details one to a line, named none.
    body = ("Cluster name - Tayview Cluster\nLocal authority - Angus\n\n"
            "Tayview Primary School\nPrimary\nMorven Hay\n"
            "m.hay@tayview-ps.example.sch.uk\n\n"
            "Tayview Academy\nContact: Mr Graham Low (DHT)\n"
            "Tel: 01234 567890\nEmail: g.low@tayview-ac.example.sch.uk\n\n"
            "Many thanks\nMorven\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.phase, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Tayview Primary School", "primary", "Morven Hay",
         "m.hay@tayview-ps.example.sch.uk"),
        ("Tayview Academy", "secondary", "Mr Graham Low",
         "g.low@tayview-ac.example.sch.uk")]


def test_one_block_alone_is_a_signature_not_a_school() -> None:
    body = ("Our wifi is much better this term.\n\n"
            "Tayview Primary School\nMorven Hay\n"
            "m.hay@tayview-ps.example.sch.uk\n")
    assert parse_nomination(make_mail(body)).schools == ()


def test_a_subject_s_exclamation_is_not_part_of_the_cluster_name() -> None:
    # Found by trying mailbot with nominations written as people write them.
    nomination = parse_nomination(make_mail(
        "Schools:\n1. Crieff Primary School - r.s@crieff.example.sch.uk\n",
        subject="Crieff cluster!"))
    assert nomination.cluster_name == "Crieff cluster"


def test_contacts_listed_as_a_person_at_a_school() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: a "contacts" heading, and each line a person at a school.
    body = ("I'd like to nominate the Lesmahagow cluster, South "
            "Lanarkshire.\n\nThe contacts for each school are:\n"
            "Mrs Carol Dunn at Milton Primary School "
            "(c.dunn@milton.example.sch.uk)\n"
            "myself at Lesmahagow High School (k.muir@lhs.example.sch.uk)\n")
    nomination = parse_nomination(make_mail(body))
    assert [(s.name, s.contact_name, s.contact_email)
            for s in nomination.schools] == [
        ("Milton Primary School", "Mrs Carol Dunn",
         "c.dunn@milton.example.sch.uk"),
        ("Lesmahagow High School", None, "k.muir@lhs.example.sch.uk")]


def test_the_sender_is_the_contact_of_the_school_given_their_address() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: "Thurso High School - myself, c.mackay@..." had no contact.
    body = ("Schools:\n1. Thurso High School - myself, "
            "C.Mackay@thurso-hs.example.sch.uk\n"
            "2. Pennyland Primary - Gail Sutherland, g.s@pennyland.example.sch.uk\n")
    nomination = parse_nomination(make_mail(
        body, sender=("Colin Mackay", "c.mackay@thurso-hs.example.sch.uk")))
    assert [(s.name, s.contact_name) for s in nomination.schools] == [
        ("Thurso High School", "Colin Mackay"),
        ("Pennyland Primary", "Gail Sutherland")]


def test_our_lady_s_is_part_of_a_cluster_s_name() -> None:
    # Found by trying mailbot with nominations written as people write
    # them: "Our" was dropped as a generic word.
    nomination = parse_nomination(make_mail(
        "Our cluster is the Our Lady's High School Cluster in North "
        "Lanarkshire.\n\nSchools:\n1. St Mary's RC Primary School\n",
        subject="Nomination"))
    assert nomination.cluster_name == "Our Lady's High School Cluster"
