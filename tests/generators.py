"""Hypothesis strategies for broken, odd and hostile mail, as raw bytes.

Every strategy gives a whole message as a mail server might hand it over.
Two tokens are filled in by the fuzz rig (tests/test_fuzz.py) as each
message is thrown: FUZZ-ID, so that Message-IDs stay unique and a message
is not skipped as a duplicate, and FUZZ-REF, the Message-ID of some mail
mailbot queued earlier, so that replies reach the threads they answer.
"""

from __future__ import annotations

import base64
import functools
import io
import quopri
import re
import zipfile
from collections.abc import Callable, Sequence

import openpyxl
from harness import SAMPLES
from hypothesis import strategies as st

Header = tuple[bytes, bytes]
# A MIME part: its own header fields and its body, not yet joined.
Part = tuple[list[Header], bytes]
Draw = Callable[[st.SearchStrategy], object]

FUZZ_ID = b"FUZZ-ID"
FUZZ_REF = b"FUZZ-REF"
MESSAGE_ID = b"<" + FUZZ_ID + b"@fuzz.example.org>"
# Mostly well formed; the rest as broken clients and mutations make them.
MESSAGE_IDS = (MESSAGE_ID,) * 6 + (
    FUZZ_ID + b"@fuzz.example.org", b"<" + FUZZ_ID + b"@fuzz.example.org",
    b"<<" + FUZZ_ID + b"@fuzz.example.org>>", b"<" + FUZZ_ID + b"\xe9@x.org>",
    b"<" + FUZZ_ID + b" @ spaced . org>", b"")

# --- who writes -----------------------------------------------------------

# Contacts the sample mail records (the rig plays the good samples first),
# so that mail from them reaches the comment, completion and visit paths.
PEOPLE = (
    "Alan Reid <a.reid@glenbrae-ps.fife.example.sch.uk>",
    "Fiona Baird <headteacher@kirkton-ps.fife.example.sch.uk>",
    "Morag Lindsay <m.lindsay@glenbrae-hs.fife.example.sch.uk>",
    '"MacRae, Kenneth" <k.macrae@inverbrora-academy.highland.example.sch.uk>',
    "Paul Kerr <pkerr@carronvale-hs.falkirk.example.sch.uk>",
    "Gordon Fleming <gfleming@burnside-ps.example.sch.uk>",
    "lee@lead.example.sch.uk (Lee Lead)",
    "=?utf-8?q?Ei=C3=B0ur_N=C3=AD_Bhriain?= <eidur@gaelic.example.sch.uk>",
)
# Robots and the programme itself: the loop guard must turn these away.
ROBOTS = (
    "Mail Delivery System <MAILER-DAEMON@mx.example.org>",
    "postmaster@school.example.sch.uk",
    "noreply@portal.example.com",
    "No Reply <no-reply@portal.example.com>",
    "donotreply@council.example.gov.uk",
    "Digital Schools Programme <programme@dsa.example.org>",
    "PROGRAMME@DSA.EXAMPLE.ORG",
    "Online forms <no_reply@forms.example.org>",
    "do_not_reply@council.example.gov.uk",
)
# From fields a parser may choke on.
ODD_SENDERS = (
    "", "undisclosed-recipients:;", "a.reid@", "@glenbrae-ps.example.sch.uk",
    "not an address at all", "<>",
    "Alan <a.reid@glenbrae-ps.fife.example.sch.uk",
    "a.reid@glenbrae-ps.fife.example.sch.uk, lee@lead.example.sch.uk",
    "=?x-unknown?q?Alan?= <alan@x.example.org>",
    "=?utf-8?b?!!!?= <alan@x.example.org>",
    "group: a@b.example.org, c@d.example.org;",
    '"unterminated <a@b.example.org>',
)

SUBJECTS = (
    "Cluster nomination - Fuzz Cluster", "Re: Your invitation",
    "Self-review completed", "Validation visit request",
    "Automatic reply: away", "Undeliverable: Digital Schools Awards",
    "RE: FW: Re: Our cluster", "=?utf-8?q?Cl=C3=BAster_nomination?=",
    "=?utf-8?b?not base64?=", "=?x-klingon?q?Qapla=27?=",
    "=?utf-8?q?=0D=0ABcc=3A_victim=40example=2Eorg?=", "", "\t",
)

# What people write, as the workflow would understand it.
TEXTS = (
    ("Cluster name: Fuzz FUZZ-ID Cluster\nLocal authority: Fife\n"
     "Lead contact: Lee Lead, lee@lead.example.sch.uk\n\nSchools:\n"
     "1. Fuzz Primary School (primary) - Ann Bee - "
     "ann@fuzz-ps.example.sch.uk\n"),
    "Strengths: a weekly coding club.\nWeaknesses: no digital strategy yet.",
    "We have completed our self-review.",
    "We would like to apply for a validation visit.",
    "Thank you for your email.",
    "I am out of the office until Monday.",
    ("Schools:\n| School | Phase | Contact | Email |\n|---|---|---|---|\n"
     "| Fuzz High | secondary | Sam Lee | sam@fuzz-hs.example.sch.uk |\n"),
    "> quoted only\n> nothing new\n",
    ("This is the mail system.\n\n<coordinator@dsa.example.org>: host "
     "mx.dsa.example.org said: 550 5.1.1 User unknown\n"),
    "",
    # A long word: a pasted token, an attachment read as text (a longer
    # one is in test_fuzz.py's test_a_long_word_does_not_stall_the_poll).
    "Cluster details: " + "Q" * 3000,
)

# --- bytes and text -------------------------------------------------------

CHARSETS = ("utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16",
            "utf-7", "x-klingon", "unknown-8bit", "", '"utf-8', "UTF8",
            "iso-2022-jp", "utf-8; format=flowed; delsp=yes")
ENCODINGS = ("7bit", "8bit", "binary", "base64", "quoted-printable",
             "x-uuencode", "bogus", "", "BASE64 ")


def text_bytes(text: str, charset: str) -> bytes:
    """The text in its declared charset, or as UTF-8 where that fails
    (which is itself a message that lies about its charset)."""
    try:
        return text.encode(charset.split(";")[0].strip('" ') or "ascii")
    except (LookupError, UnicodeError):
        return text.encode("utf-8", "surrogatepass")


def transfer_encode(data: bytes, encoding: str, honest: bool) -> bytes:
    """`data` under a Content-Transfer-Encoding, or a broken imitation."""
    name = encoding.strip().lower()
    if name == "base64":
        if honest:
            return base64.encodebytes(data)
        # Declared base64, but not: bad padding, alphabet and length.
        return b"!!" + data[:200] + b"=\r\n" + base64.b64encode(data)[1:]
    if name == "quoted-printable":
        if honest:
            return quopri.encodestring(data)
        return data.replace(b" ", b"=ZZ", 3) + b"=\r\n=e9=\r\n=4"
    return data


words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                max_size=40)
junk = st.binary(max_size=300)
# Sizes chosen to sit on the limits: one line past RFC 5322's 998, a
# 100 KB line, and one byte past spreadsheets.MAX_BYTES (5 MB).
BIG = (0, 1, 998, 999, 100_000)
HUGE_ATTACHMENT = 5_000_001


def header(name: str | bytes, value: str | bytes) -> Header:
    as_bytes = [v if isinstance(v, bytes) else v.encode("utf-8", "replace")
                for v in (name, value)]
    return as_bytes[0], as_bytes[1]


def render(part: Part) -> bytes:
    fields = b"".join(name + b": " + value + b"\r\n"
                      for name, value in part[0])
    return fields + b"\r\n" + part[1]


@st.composite
def header_values(draw: Draw) -> bytes:
    """A header value: plain, 8-bit, encoded-word, folded, huge or hostile."""
    kind = draw(st.sampled_from(("text", "8bit", "encoded", "folded", "huge",
                                 "control", "junk")))
    if kind == "text":
        return str(draw(words)).encode("utf-8")
    if kind == "8bit":
        return b"caf\xe9 \xff\xfe na\xc3\xafve " + bytes(draw(junk)[:20])
    if kind == "encoded":
        charset = draw(st.sampled_from(CHARSETS))
        code = draw(st.sampled_from(("q", "b", "x", "")))
        body = draw(st.sampled_from(("Caf=C3=A9", "w6k=", "=ZZ", "", "?=")))
        return f"=?{charset}?{code}?{body}?= tail".encode("utf-8", "replace")
    if kind == "folded":
        return b"first\r\n second\r\n\tthird\r\n \r\n fourth"
    if kind == "huge":
        return b"x" * draw(st.sampled_from(BIG))
    if kind == "control":
        return b"a\x00b\rc\x1bd\x7f\x0be\nf"
    return bytes(draw(junk)).replace(b"\n", b" ").replace(b"\r", b" ")


HEADER_NAMES = ("X-Junk", "Subject", "From", "To", "Cc", "Reply-To",
                "Content-Type", "Content-Transfer-Encoding", "MIME-Version",
                "Message-ID", "In-Reply-To", "References", "Date",
                "Auto-Submitted", "Precedence", "Return-Path", "List-Id",
                "X-Mailbot-Kind", "Sender", "Content-Disposition")


@st.composite
def junk_headers(draw: Draw) -> list[Header]:
    """Extra header lines, from none to thousands, some not headers at all."""
    found = [header(draw(st.sampled_from(HEADER_NAMES)), draw(header_values()))
             for _ in range(draw(st.integers(0, 3)))]
    oddities = draw(st.lists(st.sampled_from((
        (b"No colon at all", b""), (b"Space before colon ", b"v"),
        (b"", b"empty name"), (b"X-\xe9t\xe9", b"8-bit name"),
        (b" Leading-Space", b"v"), (b"X-Long-Name-" + b"n" * 2000, b"v"),
    )), max_size=2))
    found += [(name, value) for name, value in oddities]
    many = draw(st.sampled_from((0, 0, 0, 3000)))
    found += [(b"X-Many-%d" % n, b"value") for n in range(many)]
    return found


# --- MIME parts -----------------------------------------------------------

@st.composite
def text_parts(draw: Draw) -> Part:
    subtype = draw(st.sampled_from(("plain", "plain", "html", "enriched",
                                    "calendar", "rfc822-headers")))
    if subtype == "html":
        text = draw(broken_html())
    else:
        text = draw(st.one_of(st.sampled_from(TEXTS), words))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    body = transfer_encode(text_bytes(str(text), charset), encoding,
                           draw(st.booleans()))
    fields = [header("Content-Type", f"text/{subtype}; charset={charset}")]
    if encoding:
        fields.append(header("Content-Transfer-Encoding", encoding))
    return fields, body


HTML_PIECES = (
    "<table>", "</table>", "<tr>", "</tr>", "<td>", "</td>", "<th>", "<p>",
    "<br>", "<div>", "</div>", "<td colspan=99999 rowspan=-1>", "<li>",
    "<blockquote>", '<div class="gmail_quote">', '<div id="divRplyFwdMsg">',
    "<!--", "-->", "<script>", "</script>", "<style>", "<![CDATA[", "&nbsp;",
    "&#xFFFFFF;", "&", "<", ">", "<table><tr><td><table>", "</html>", "<hr>",
    "School", "Phase", "Contact", "Email", "Fuzz Primary School", "primary",
    "Ann Bee", "ann@fuzz-ps.example.sch.uk", "Cluster name", "Fuzz Cluster",
    "Local authority", "Fife", "\u00a0", "\u202e", "\x00",
)


@st.composite
def broken_html(draw: Draw) -> str:
    """HTML soup: tables without ends, nesting, comments that never close."""
    pieces = draw(st.lists(st.sampled_from(HTML_PIECES), max_size=60))
    return "<html><body>" + "".join(str(p) for p in pieces)


ATTACHMENT_TYPES = (
    ("application/ms-tnef", "winmail.dat"),
    ("text/csv", "schools.csv"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     "schools.xlsx"),
    ("application/octet-stream", "schools.xlsx"),
    ("application/octet-stream", "schools.csv"),
    ("application/pdf", "form.pdf"),
    ("image/png", ""),
    ("application/zip", "../../etc/passwd"),
    ("text/tab-separated-values", "schools.tsv"),
)


@st.composite
def attachment_data(draw: Draw) -> bytes:
    kind = draw(st.sampled_from(("empty", "junk", "csv", "xlsx", "zip",
                                 "tnef", "empty", "junk", "csv", "xlsx",
                                 "zip", "tnef", "huge")))
    if kind == "empty":
        return b""
    if kind == "junk":
        return bytes(draw(junk))
    if kind == "csv":
        return draw(csv_files())
    if kind == "xlsx":
        return draw(workbooks())
    if kind == "zip":
        return draw(junk_zips())
    if kind == "tnef":
        # The TNEF signature and a few attribute bytes, then noise.
        signature = b"\x78\x9f\x3e\x22\x01\x00\x01\x06\x90\x08\x00"
        return signature + bytes(draw(junk))
    return b"\x00" * HUGE_ATTACHMENT


@st.composite
def attachment_parts(draw: Draw) -> Part:
    content_type, filename = draw(st.sampled_from(ATTACHMENT_TYPES))
    data = draw(attachment_data())
    encoding = draw(st.sampled_from(("base64", "base64", "quoted-printable",
                                     "7bit", "bogus")))
    body = transfer_encode(data, encoding, draw(st.booleans()))
    disposition = draw(st.sampled_from((
        f'attachment; filename="{filename}"', "attachment",
        f"attachment; filename*=utf-8''%E9{filename}", "inline",
        f"attachment; filename={filename}; size=-1", "",
        'attachment; filename="' + "n" * 500 + '.csv"')))
    fields = [header("Content-Type", f'{content_type}; name="{filename}"'),
              header("Content-Transfer-Encoding", encoding)]
    if disposition:
        fields.append(header("Content-Disposition", disposition))
    return fields, body


@st.composite
def delivery_status_parts(draw: Draw) -> Part:
    recipient = draw(st.sampled_from((
        "a.reid@glenbrae-ps.fife.example.sch.uk", "programme@dsa.example.org",
        "coordinator@dsa.example.org", "isla.fraser@dsa.example.org",
        "", "not-an-address", "x" * 300 + "@example.org")))
    action = draw(st.sampled_from(("failed", "delayed", "", "FAILED")))
    body = (f"Reporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\n"
            "Status: 5.1.1\r\n").encode()
    encoding = draw(st.sampled_from(ENCODINGS))
    body = transfer_encode(body, encoding, draw(st.booleans()))
    return [header("Content-Type", "message/delivery-status"),
            header("Content-Transfer-Encoding", encoding)], body


leaf_parts = st.one_of(text_parts(), text_parts(), attachment_parts(),
                       delivery_status_parts())

BOUNDARIES = ("B", "B2", "=_fuzz", "a b c", "=?utf-8?q?x?=", "b" * 200, "",
              '"quoted', "--", "B\r\nX-Injected: 1")


@st.composite
def multipart(draw: Draw, children: st.SearchStrategy[list[Part]]) -> Part:
    """A multipart whose boundary may be wrong, reused, missing or unclosed."""
    subtype = draw(st.sampled_from(("mixed", "alternative", "related",
                                    "report; report-type=delivery-status",
                                    "digest", "signed", "x-unknown")))
    boundary = draw(st.sampled_from(BOUNDARIES))
    used = draw(st.sampled_from((boundary, boundary, boundary, "Other")))
    declared = draw(st.sampled_from((f'; boundary="{boundary}"',
                                     f"; boundary={boundary}", "")))
    parts = draw(children)
    delimiter = b"--" + used.encode()
    body = bytes(draw(st.sampled_from((b"", b"This is a preamble.\r\n"))))
    for part in parts:
        body += delimiter + b"\r\n" + render(part) + b"\r\n"
    if draw(st.booleans()):
        body += delimiter + b"--\r\n" + bytes(draw(st.sampled_from(
            (b"", b"epilogue\r\n", b"--" + used.encode() + b"\r\n"))))
    fields = [header("Content-Type", f"multipart/{subtype}{declared}")]
    return fields, body


@st.composite
def rfc822(draw: Draw, inner: st.SearchStrategy[Part]) -> Part:
    """A message/rfc822 part holding a whole message, maybe another one."""
    inside = draw(inner)
    fields = [header("From", draw(st.sampled_from(PEOPLE + ROBOTS))),
              header("Subject", draw(st.sampled_from(SUBJECTS)))]
    body = render((fields + inside[0], inside[1]))
    encoding = draw(st.sampled_from(("", "7bit", "base64")))
    outer = [header("Content-Type", "message/rfc822")]
    if encoding:
        outer.append(header("Content-Transfer-Encoding", encoding))
    return outer, body


mime_trees = st.recursive(
    leaf_parts,
    lambda inner: st.one_of(multipart(st.lists(inner, max_size=4)),
                            rfc822(inner)),
    max_leaves=8,
)


@st.composite
def deep_nesting(draw: Draw) -> Part:
    """Multiparts or message/rfc822 parts nested hundreds of levels deep."""
    depth = draw(st.sampled_from((10, 50, 300, 1000)))
    style = draw(st.sampled_from(("multipart", "rfc822", "both")))
    closed = draw(st.booleans())
    part = draw(text_parts())
    for level in range(depth):
        if style == "rfc822" or (style == "both" and level % 2):
            body = render(([header("Subject", f"level {level}")] + part[0],
                           part[1]))
            part = [header("Content-Type", "message/rfc822")], body
            continue
        boundary = f"L{level}".encode()
        body = b"--" + boundary + b"\r\n" + render(part) + b"\r\n"
        if closed:
            body += b"--" + boundary + b"--\r\n"
        part = [header("Content-Type",
                       f'multipart/mixed; boundary="L{level}"')], body
    return part


@st.composite
def deep_html(draw: Draw) -> Part:
    """An HTML body of blocks or tables opened and never closed."""
    depth = draw(st.sampled_from((20, 200, 1000)))
    unit = draw(st.sampled_from(("<div>", "<p>", "<li>", "<blockquote>",
                                 "<table><tr><td>", "<td>School<td>")))
    html = "<html><body>" + unit * depth + "Cluster name: Deep Cluster"
    return [header("Content-Type", "text/html; charset=utf-8")], html.encode()


# --- whole messages -------------------------------------------------------

LINE_ENDINGS = (b"\r\n", b"\r\n", b"\n", b"\r")


@st.composite
def messages(draw: Draw, bodies: st.SearchStrategy[Part] = mime_trees
             ) -> bytes:
    """A whole message: top headers, each maybe missing or odd, then a
    MIME tree, then perhaps a truncation or a change of line endings."""
    fields: list[Header] = []
    choices: list[tuple[str, Sequence[str]]] = [
        ("From", PEOPLE + PEOPLE + ROBOTS + ODD_SENDERS),
        ("To", ("Digital Schools Programme <programme@dsa.example.org>",
                "", "undisclosed-recipients:;")),
        ("Subject", SUBJECTS),
        ("Date", ("Tue, 12 Jan 2027 09:30:00 +0000", "yesterday",
                  "Tue, 31 Feb 2027 25:61:00 +9999", "")),
        ("In-Reply-To", ("<" + FUZZ_REF.decode() + ">", "<unknown@x>", "",
                         "<" * 500)),
        ("References", ("<a@x> <" + FUZZ_REF.decode() + ">", "a>b",
                        "<<x@y>>", "<caf\u00e9@x.org>", "<unclosed@x")),
        ("Auto-Submitted", ("no", "auto-replied", "")),
    ]
    for name, values in choices:
        if draw(st.integers(0, 3)):
            fields.append(header(name, draw(st.sampled_from(values))))
    if draw(st.integers(0, 5)):
        fields.append((b"Message-ID", draw(st.sampled_from(MESSAGE_IDS))))
    if draw(st.booleans()):
        fields.append(header("MIME-Version", "1.0"))
    fields += draw(junk_headers())
    fields = draw(st.permutations(fields))

    tree = draw(bodies)
    raw = render((list(fields) + tree[0], tree[1]))
    return draw(finishing(raw))


@st.composite
def finishing(draw: Draw, raw: bytes) -> bytes:
    ending = draw(st.sampled_from(LINE_ENDINGS))
    if ending != b"\r\n":
        raw = raw.replace(b"\r\n", ending)
    if draw(st.integers(0, 7)) == 0:
        raw = raw[:draw(st.integers(0, len(raw)))]
    return raw


@st.composite
def headers_only(draw: Draw) -> bytes:
    """Mail that is nearly all header: none, huge, many, or no body."""
    shape = draw(st.sampled_from(("no headers", "no body", "only headers",
                                  "huge", "empty", "binary")))
    if shape == "no headers":
        return str(draw(st.sampled_from(TEXTS))).encode() + bytes(draw(junk))
    if shape == "empty":
        return bytes(draw(st.sampled_from((b"", b"\r\n", b"\r\n\r\n", b" "))))
    if shape == "binary":
        return bytes(draw(st.binary(min_size=1, max_size=2000)))
    fields = [header(draw(st.sampled_from(HEADER_NAMES)),
                     draw(header_values()))
              for _ in range(draw(st.integers(0, 6)))]
    fields += draw(junk_headers())
    if shape == "huge":
        size = draw(st.sampled_from(BIG))
        fields.append(header(draw(st.sampled_from(HEADER_NAMES)), b"y" * size))
    fields.append((b"Message-ID", MESSAGE_ID))
    block = b"".join(n + b": " + v + b"\r\n" for n, v in fields)
    if shape == "only headers":
        return block
    return block + b"\r\n"


# --- nominations with odd tables -----------------------------------------

SCHOOL_NAMES = ("Fuzz Primary School", "Fuzz High", "St Fuzz's RC PS",
                "Sgoil \u00c0raich", "", "School", "Primary schools:",
                "x" * 150, "Fuzz | Pipe", "Fuzz\tTab", 'Fuzz "Quoted"',
                "=?utf-8?q?Fuzz?=", "Total")
PHASES = ("primary", "Secondary", "P", "S", "", "special", "nursery",
          "primary/secondary", "3-18")
CONTACTS = ("Ann Bee", "Mrs A. Bee", "", "Bee, Ann", "Head Teacher",
            "Ann Bee <ann@fuzz-ps.example.sch.uk>", "\u00c9ilis N\u00ed Bh")
EMAILS = ("ann@fuzz-ps.example.sch.uk", "ANN@FUZZ-PS.EXAMPLE.SCH.UK", "",
          "ann@", "ann at fuzz-ps dot sch dot uk", "a@b@c.example.org",
          "ann@fuzz-ps.example.sch.uk.", "\u00e9l\u00e8ve@\u00e9cole.example",
          "ann@fuzz-ps.example.sch.uk; bob@fuzz-ps.example.sch.uk",
          "postmaster@fuzz-ps.example.sch.uk",
          "noreply@fuzz-ps.example.sch.uk",
          "programme@dsa.example.org")
LEADS = ("Lee Lead, lee@lead.example.sch.uk", "me", "", "Lee Lead",
         "Lee Lead, programme@dsa.example.org",
         "Lee Lead <postmaster@lead.example.sch.uk>")
HEADS = (("School", "Phase", "Contact", "Email"),
         ("Name", "Sector", "Head Teacher", "E-mail address",
          "Already awarded?", "Notes"),
         ("Establishment", "P/S", "Name", "email"),
         ("School", "School", "Email", "Email"),
         ("Email",), ())


@st.composite
def school_rows(draw: Draw) -> list[list[str]]:
    size = draw(st.sampled_from((0, 1, 3, 41)))
    rows = []
    for n in range(size):
        row = [draw(st.sampled_from(SCHOOL_NAMES)) or f"Fuzz {n} Primary",
               draw(st.sampled_from(PHASES)), draw(st.sampled_from(CONTACTS)),
               draw(st.sampled_from(EMAILS))]
        if draw(st.integers(0, 4)) == 0:
            row = row[:draw(st.integers(0, 3))] or [""]
        rows.append([str(cell) for cell in row])
    return rows


@st.composite
def grids(draw: Draw) -> list[list[str]]:
    """A grid of cells: maybe a title, labelled fields, a header, rows."""
    grid: list[list[str]] = []
    if draw(st.booleans()):
        grid.append(["Digital Schools Awards - cluster nomination"])
    if draw(st.booleans()):
        grid += [["Cluster name", draw(st.sampled_from(("Fuzz Cluster", "",
                                                        "x" * 300)))],
                 ["Local authority", draw(st.sampled_from(
                     ("Fife", "Fife Council", "Atlantis", "")))],
                 ["Lead contact", "Lee Lead, lee@lead.example.sch.uk"]]
    grid.append([str(h) for h in draw(st.sampled_from(HEADS))])
    grid += draw(school_rows())
    if draw(st.integers(0, 4)) == 0:
        grid += [[""]] * 60 + [["School", "Email"], ["Late School", "l@l.org"]]
    return grid


def _csv(grid: list[list[str]], delimiter: str) -> str:
    def cell(value: str) -> str:
        if any(c in value for c in (delimiter, '"', "\n")):
            return '"' + value.replace('"', '""') + '"'
        return value
    return "\r\n".join(delimiter.join(cell(c) for c in row) for row in grid)


@st.composite
def csv_files(draw: Draw) -> bytes:
    grid = draw(grids())
    delimiter = draw(st.sampled_from((",", ";", "\t", "|")))
    text = _csv(grid, delimiter)
    if draw(st.booleans()):
        quirk = draw(st.sampled_from(("sep=;\r\n", '"sep=', '"unclosed,')))
        text = quirk + text
    encoding = draw(st.sampled_from(("utf-8", "utf-8-sig", "utf-16",
                                     "utf-16-le", "cp1252", "latin-1")))
    data = text.encode(encoding, "replace")
    if draw(st.integers(0, 3)) == 0:
        data = data.replace(b"\n", b"\x00\n")  # NUL bytes, as Excel can write
    return data


_WORKBOOKS: dict[tuple[bool, tuple[tuple[str, ...], ...]], bytes] = {}


@st.composite
def workbooks(draw: Draw) -> bytes:
    """An XLSX: whole, truncated, with a flipped byte, or not a zip."""
    grid = draw(grids())
    merged = draw(st.booleans())
    # Cached: shrinking builds the same workbook many times over.
    key = (merged, tuple(tuple(row) for row in grid))
    if key not in _WORKBOOKS:
        book = openpyxl.Workbook()
        sheet = book.active
        for row in grid:
            sheet.append([_xlsx_safe(cell) for cell in row])
        if merged:
            sheet.merge_cells("A1:D2")
            sheet["F3"] = "=1/0"
        out = io.BytesIO()
        book.save(out)
        _WORKBOOKS[key] = out.getvalue()
    data = _WORKBOOKS[key]
    damage = draw(st.sampled_from(("none", "none", "truncate", "flip")
                                  + ZIP_DAMAGE))
    if damage == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    elif damage != "none":
        data = damage_zip(data, damage)
    return data


ZIP_DAMAGE = ("deflate", "deflate64", "encrypted")


def damage_zip(data: bytes, how: str) -> bytes:
    """A zip damaged as real ones are: its first deflate stream garbage,
    its parts in Deflate64 (which Windows writes for big archives and
    zipfile cannot read), or its parts flagged as encrypted."""
    out = bytearray(data)
    if how == "deflate":
        name, extra = out[26:28], out[28:30]  # of the first local header
        start = 30 + int.from_bytes(name, "little") \
            + int.from_bytes(extra, "little")
        out[start:start + 4] = b"\xff" * 4
        return bytes(out)
    # Local headers keep the flags 6 bytes in, the central directory 8;
    # the compression method follows the flags in both.
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = out.find(signature)
        while at >= 0:
            if how == "deflate64":
                out[at + flags + 2:at + flags + 4] = b"\x09\x00"
            else:
                out[at + flags] |= 1
            at = out.find(signature, at + 4)
    return bytes(out)


def _xlsx_safe(cell: str) -> str:
    # openpyxl refuses control characters in cells when it writes.
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", cell)


@st.composite
def junk_zips(draw: Draw) -> bytes:
    """A zip that claims to be a workbook: wrong parts, bad XML, a bomb."""
    kind = draw(st.sampled_from(("empty", "bad xml", "bomb")))
    if kind == "bomb":
        return zip_bomb()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if kind == "bad xml":
            archive.writestr("[Content_Types].xml", "<Types><broken")
            archive.writestr("xl/workbook.xml", bytes(draw(junk)))
    return out.getvalue()


@functools.cache
def zip_bomb() -> bytes:
    """A zip whose directory claims 60 MB unzipped, past
    spreadsheets.MAX_UNZIPPED. (A real one, deflated zeros, is a long run
    of one letter: see test_a_long_word_does_not_stall_the_poll.)"""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"<worksheet/>")
    data = bytearray(out.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature) + offset
        data[at:at + 4] = (60_000_000).to_bytes(4, "little")
    return bytes(data)


@st.composite
def html_tables(draw: Draw, grid: list[list[str]]) -> str:
    close = draw(st.booleans())
    rows = []
    for n, row in enumerate(grid):
        tag = "th" if n == 0 and draw(st.booleans()) else "td"
        end = f"</{tag}>" if close else ""
        cells = "".join(f"<{tag}>{cell}{end}" for cell in row)
        rows.append(f"<tr>{cells}" + ("</tr>" if close else ""))
    nested = draw(st.sampled_from(
        ("", "<table><tr><td>inner</td></tr></table>")))
    table = "<table border=1>" + nested + "".join(rows)
    return table + ("</table>" if close else "")


@st.composite
def nominations(draw: Draw) -> bytes:
    """A nomination, its schools in a list, a pasted or HTML table, or a
    CSV or XLSX attachment, each odd in its own way."""
    grid = draw(grids())
    shape = draw(st.sampled_from(("list", "tabs", "pipes", "spaces", "html",
                                  "html only", "csv", "xlsx")))
    lead = draw(st.sampled_from(LEADS))
    intro = ("Please find our cluster nomination below.\n\n"
             "Cluster name: Fuzz FUZZ-ID Cluster\nLocal authority: Fife\n"
             f"Lead contact: {lead}\n\n")
    text = intro
    if shape == "list":
        text += "Schools:\n" + "\n".join(
            f"{n}. " + " - ".join(row) for n, row in enumerate(grid, 1))
    elif shape in ("tabs", "pipes", "spaces"):
        joiner = {"tabs": "\t", "pipes": " | ", "spaces": "   "}[shape]
        text += "\n".join(joiner.join(row) for row in grid)

    parts: list[Part] = []
    if shape != "html only":
        parts.append(([header("Content-Type", "text/plain; charset=utf-8"),
                       header("Content-Transfer-Encoding", "8bit")],
                      text.encode("utf-8")))
    if shape in ("html", "html only"):
        html = draw(html_tables(grid))
        parts.append(([header("Content-Type", "text/html; charset=utf-8")],
                       f"<html><body><p>{intro}</p>{html}".encode()))
    if shape in ("csv", "xlsx"):
        content_type, name = {
            "csv": ("text/csv", "schools.csv"),
            "xlsx": (ATTACHMENT_TYPES[2][0], "schools.xlsx")}[shape]
        data = draw(csv_files() if shape == "csv" else workbooks())
        parts.append(([header("Content-Type", content_type),
                       header("Content-Transfer-Encoding", "base64"),
                       header("Content-Disposition",
                              f'attachment; filename="{name}"')],
                      base64.encodebytes(data)))

    if len(parts) == 1:
        tree = parts[0]
    else:
        subtype = "alternative" if shape == "html" else "mixed"
        tree = ([header("Content-Type",
                        f'multipart/{subtype}; boundary="NOM"')],
                b"".join(b"--NOM\r\n" + render(p) + b"\r\n" for p in parts)
                + b"--NOM--\r\n")
    fields = [header("From", draw(st.sampled_from(PEOPLE))),
              header("To", "programme@dsa.example.org"),
              header("Subject", draw(st.sampled_from((
                  "Cluster nomination - Fuzz Cluster", "Our cluster",
                  "Fwd: cluster details", "Re: Fuzz ASG", "")))),
              (b"Message-ID", MESSAGE_ID), header("MIME-Version", "1.0")]
    return render((fields + tree[0], tree[1]))


# --- mutations of the real samples --------------------------------------

def _unique(raw: bytes) -> bytes:
    # The samples' own Message-IDs would make every mutant after the first
    # an ignored duplicate: give each one the rig's fresh id instead.
    return re.sub(rb"Message-ID:\s*<[^>]*>", b"Message-ID: " + MESSAGE_ID,
                  raw, count=1, flags=re.IGNORECASE)


SAMPLE_MAIL = tuple(_unique(p.read_bytes())
                    for p in sorted(SAMPLES.glob("*.eml")))


def _lines(raw: bytes) -> list[bytes]:
    return raw.splitlines(keepends=True) or [b""]


def _flip(draw: Draw, raw: bytes) -> bytes:
    if not raw:
        return raw
    at = draw(st.integers(0, len(raw) - 1))
    value = draw(st.sampled_from((0x00, 0x0A, 0x0D, 0x3A, 0x3D, 0x2D, 0x80,
                                  0xFF, raw[at] ^ 0x20)))
    return raw[:at] + bytes([value]) + raw[at + 1:]


def _truncate(draw: Draw, raw: bytes) -> bytes:
    return raw[:draw(st.integers(0, len(raw)))]


def _duplicate_line(draw: Draw, raw: bytes) -> bytes:
    lines = _lines(raw)
    at = draw(st.integers(0, len(lines) - 1))
    times = draw(st.sampled_from((1, 2, 50)))
    return b"".join(lines[:at] + [lines[at]] * (times + 1) + lines[at + 1:])


def _delete_line(draw: Draw, raw: bytes) -> bytes:
    lines = _lines(raw)
    at = draw(st.integers(0, len(lines) - 1))
    return b"".join(lines[:at] + lines[at + 1:])


_FIELD = re.compile(rb"^([!-9;-~]+):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)


def _swap_values(draw: Draw, raw: bytes) -> bytes:
    head, sep, body = raw.partition(b"\n\n") if b"\r\n\r\n" not in raw \
        else raw.partition(b"\r\n\r\n")
    found = list(_FIELD.finditer(head))
    if len(found) < 2:
        return raw
    a, b = sorted(draw(st.lists(st.integers(0, len(found) - 1), min_size=2,
                                max_size=2, unique=True)))
    first, second = found[a], found[b]
    head = (head[:first.start(2)] + second.group(2)
            + head[first.end(2):second.start(2)] + first.group(2)
            + head[second.end(2):])
    return head + sep + body


INJECTED = (
    b"Content-Type: multipart/mixed; boundary=nowhere",
    b"Content-Type: text/plain; charset=x-klingon",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Auto-Submitted: auto-replied", b"Precedence: bulk",
    b"List-Id: <fuzz.example.org>", b"Return-Path: <>",
    b"From: MAILER-DAEMON@mx.example.org", b"From: programme@dsa.example.org",
    b"From:", b"In-Reply-To: <FUZZ-REF>", b"References: <FUZZ-REF> <x@y>",
    b"Message-ID: <FUZZ-ID@fuzz.example.org>", b"X-Mailbot-Kind: invitation",
    b"Subject: =?utf-8?q?=0D=0ABcc=3A_x=40example=2Eorg?=",
    b"Content-Type: message/rfc822", b"MIME-Version: 2.0",
    b"X-8bit: \xe9\xff\x00", b"X-Huge: " + b"h" * 100_000,
)


def _inject(draw: Draw, raw: bytes) -> bytes:
    lines = _lines(raw)
    at = draw(st.integers(0, len(lines)))
    line = draw(st.sampled_from(INJECTED)) + b"\r\n"
    return b"".join(lines[:at] + [line] + lines[at:])


def _splice(draw: Draw, raw: bytes) -> bytes:
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + bytes(draw(junk)) + raw[at:]


MUTATIONS = (_flip, _truncate, _duplicate_line, _delete_line, _swap_values,
             _inject, _splice)


@st.composite
def mutated_samples(draw: Draw) -> bytes:
    """A sample from mailbot/demo_mail, changed one to five times."""
    raw = draw(st.sampled_from(SAMPLE_MAIL))
    for _ in range(draw(st.integers(1, 5))):
        mutate = draw(st.sampled_from(MUTATIONS))
        raw = mutate(draw, raw)
    return raw
