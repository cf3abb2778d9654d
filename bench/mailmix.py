"""Realistic programme mail for the benchmarks, from a fixed seed.

A *world* of invented clusters (each a secondary school and its primaries,
with one contact each, on example.sch.uk addresses in one of Scotland's
councils) and the mail it sends: first one nomination per cluster, in the
numbered-list form of mailbot/demo_mail/01-nomination-list.eml, then mail
from the schools' contacts and from elsewhere, in these shares:

    comments            60 %  a few paragraphs, some with quoted history,
                              a signature, HTML alternative or attachment
    completion notices  10 %  "We have completed the self-review."
    out-of-office       10 %  Auto-Submitted: auto-replied
    bounces              5 %  multipart/report naming a known contact
    newsletters          5 %  Precedence: bulk, List-Id
    visit requests       5 %
    strangers            5 %  not a contact: set aside for a person

Everything here is generated: names, places and text are invented.
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from mailbot.councils import COUNCILS

PROGRAMME = "Digital Schools Programme <programme@dsa.example.org>"
PROGRAMME_ADDRESS = "programme@dsa.example.org"
SEED = 20270112

# Kinds of mail, with their shares of the mail that follows the nominations.
COMMENT = "comment"
COMPLETION = "completion"
OUT_OF_OFFICE = "out-of-office"
BOUNCE = "bounce"
NEWSLETTER = "newsletter"
VISIT = "visit-request"
STRANGER = "stranger"
NOMINATION = "nomination"
SHARES: tuple[tuple[str, int], ...] = (
    (COMMENT, 60), (COMPLETION, 10), (OUT_OF_OFFICE, 10), (BOUNCE, 5),
    (NEWSLETTER, 5), (VISIT, 5), (STRANGER, 5))

_HEADS = ("Glen", "Kirk", "Bal", "Strath", "Inver", "Auch", "Dun", "Craig",
          "Loch", "Ard", "Carn", "Bel", "Tor", "Ben", "Ros", "Mon", "Cul",
          "Drum", "Kil", "Pit", "Fin", "Lin", "Auld", "Cra", "Kin", "Sal",
          "Mor", "Dal")
_MIDS = ("", "a", "er", "an", "el", "o", "in", "ar", "en", "ul", "ie", "or")
_TAILS = ("brae", "ton", "more", "gowan", "lea", "field", "haven", "side",
          "mill", "burn", "holm", "wood", "bank", "law", "muir", "dale")
_GIVEN = ("Morag", "Alan", "Fiona", "Declan", "Ewan", "Shona", "Iain",
          "Catriona", "Kenneth", "Lynn", "Paul", "Anne-Marie", "Gordon",
          "Eilidh", "Callum", "Mhairi", "Ross", "Kirsty", "Ruaridh", "Ailsa",
          "Niamh", "Graham", "Heather", "Duncan", "Isla", "Fraser", "Lorna",
          "Hamish", "Siobhan", "Euan")
_FAMILY = ("Lindsay", "Reid", "Baird", "O'Neill", "Hart", "Grant", "Munro",
           "MacRae", "Shaw", "Kerr", "Fleming", "Doyle", "Campbell", "Stewart",
           "MacLeod", "Robertson", "Thomson", "Paterson", "Murray", "Cameron",
           "Henderson", "Ross", "Sinclair", "Gillespie", "Ferguson",
           "MacKenzie", "Docherty", "Wallace", "Hamilton", "Buchanan")
_ROLES = ("Head Teacher", "Depute Head Teacher", "Principal Teacher",
          "Digital Learning Lead", "Acting Head Teacher")
_CLUSTER_WORDS = ("Cluster", "ASG", "Learning Community", "Cluster")

COMMENT_SENTENCES = (
    ("All of our P5 to P7 pupils now have their own device, and the P1 to P4 "
     "classes share two trolleys of tablets between them."),
    ("Our digital leaders run a coding club every Wednesday lunchtime and "
     "have started teaching the younger pupils how to use Scratch."),
    ("Staff use Teams for all of their planning, and most of our parents' "
     "evening bookings now go through the online system."),
    ("Our Acceptable Usage Policy dates from 2019 and we know it needs a "
     "refresh before the end of the session."),
    ("We do not yet have a written digital strategy, although the senior "
     "leadership team has discussed one at the last two in-service days."),
    ("Parents are not yet very involved, but the Parent Council has offered "
     "to help with an online safety evening in the spring."),
    ("The wifi in the older part of the building drops out regularly, which "
     "makes whole-class lessons with devices difficult upstairs."),
    ("Two members of staff completed the Apple Teacher programme last term "
     "and have been sharing what they learned at staff meetings."),
    ("We would welcome some advice on how other schools in the cluster have "
     "approached the section on leadership and vision."),
    ("Our pupil council surveyed every class about how they use technology "
     "at home, and the results surprised a few of us."),
    ("The local authority has promised new laptops for the upper school, "
     "but we have no date for their delivery yet."),
    ("Our nursery class has started using floor robots, and the children "
     "love planning routes across the big map of the village."),
    ("We ran a digital citizenship week in November with workshops from "
     "the community police officer and a local software company."),
    ("Could you tell us whether the evidence we upload to the website can "
     "be shared with the other schools in the cluster?"),
    ("The secondary department has offered us time in their computing "
     "suite, which would help our P7 transition programme a great deal."),
    ("I am still working through the curriculum section and hope to have "
     "a first draft of our answers ready after the holidays."),
    ("We have set up a shared folder for the cluster so that the schools "
     "can see each other's policies and lesson plans."),
    ("Several of our support staff would like training in accessibility "
     "tools such as immersive reader and text-to-speech."),
    ("Our school improvement plan now includes a priority on digital "
     "learning, which the staff agreed at the start of term."),
    ("We have found the self-review questions useful for starting "
     "conversations in the staffroom about what we do well."),
)
_GREETINGS = ("Hi,", "Hello,", "Good morning,", "Dear Digital Schools team,",
              "Hi there,", "Good afternoon,")
_SIGN_OFFS = ("Best wishes", "Kind regards", "Many thanks", "Regards",
              "Thanks", "All the best")
_CHARSET_TOUCHES = ("Gàidhlig", "café", "naïve", "Ròs", "Seònaid")


@dataclass(frozen=True)
class School:
    name: str
    phase: str
    contact_name: str
    contact_email: str
    already_awarded: bool = False


@dataclass(frozen=True)
class Cluster:
    name: str
    council: str
    lead_name: str
    lead_email: str
    lead_role: str
    schools: tuple[School, ...]


@dataclass(frozen=True)
class Mail:
    kind: str
    data: bytes


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _places(rng: random.Random) -> list[str]:
    names = sorted({h + m + t for h in _HEADS for m in _MIDS for t in _TAILS})
    rng.shuffle(names)
    return names


def make_world(clusters: int, seed: int = SEED) -> list[Cluster]:
    """`clusters` clusters of 6 to 10 schools, every name and address
    unique, one contact per school."""
    rng = random.Random(seed)
    places = _places(rng)
    if clusters * 10 > len(places):
        raise ValueError(f"at most {len(places) // 10} clusters")
    world: list[Cluster] = []
    used = 0
    for n in range(clusters):
        council = COUNCILS[n % len(COUNCILS)]
        area = _slug(council)
        size = rng.randint(6, 10)
        schools: list[School] = []
        for k in range(size):
            place = places[used]
            used += 1
            given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
            secondary = k == 0
            if secondary:
                name = f"{place} {rng.choice(('High School', 'Academy'))}"
                host = f"{_slug(place)}-hs"
            else:
                name = f"{place} Primary School"
                host = f"{_slug(place)}-ps"
            local = rng.choice((
                f"{given[0]}.{_slug(family)}", f"{_slug(given)}.{_slug(family)}",
                "headteacher", "office"))
            schools.append(School(
                name=name, phase="secondary" if secondary else "primary",
                contact_name=f"{given} {family}",
                contact_email=f"{local}@{host}.{area}.example.sch.uk",
                already_awarded=rng.random() < 0.05 and not secondary))
        lead = schools[0]
        head = lead.name.split()[0]
        world.append(Cluster(
            name=f"{head} {rng.choice(_CLUSTER_WORDS)}", council=council,
            lead_name=lead.contact_name, lead_email=lead.contact_email,
            lead_role=rng.choice(_ROLES), schools=tuple(schools)))
    return world


class MailMaker:
    """Makes each kind of message; every Message-ID is unique."""

    def __init__(self, world: list[Cluster], seed: int = SEED,
                 start: datetime | None = None) -> None:
        self.world = world
        self.rng = random.Random(seed + 1)
        self.when = start or datetime(2027, 1, 12, 8, 0, tzinfo=UTC)
        self.count = 0
        self.contacts = [(c, s) for c in world for s in c.schools]

    # -- common ---------------------------------------------------------

    def _next(self, domain: str) -> tuple[str, str]:
        self.count += 1
        self.when += timedelta(seconds=self.rng.randint(5, 90))
        message_id = (f"<{SEED}.{self.count}.{self.rng.getrandbits(40):x}"
                      f"@{domain}>")
        return message_id, format_datetime(self.when)

    def _plain(self, sender: str, subject: str, body: str,
               headers: dict[str, str] | None = None,
               html: str | None = None,
               attachment: tuple[str, bytes] | None = None) -> bytes:
        domain = sender.rpartition("@")[2].rstrip(">")
        message_id, date = self._next(domain)
        message = EmailMessage()
        message["From"] = sender
        message["To"] = PROGRAMME
        message["Subject"] = subject
        message["Date"] = date
        message["Message-ID"] = message_id
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(body)
        if html is not None:
            message.add_alternative(html, subtype="html")
        if attachment is not None:
            filename, data = attachment
            message.add_attachment(data, maintype="application",
                                   subtype="pdf", filename=filename)
        return message.as_bytes()

    # -- the kinds ------------------------------------------------------

    def nomination(self, cluster: Cluster) -> bytes:
        lines = [
            "Hi,", "",
            ("Please find below the details of our cluster for the Digital "
             "Schools Awards"), "Cluster Initiative.", "",
            f"Cluster name: {cluster.name}",
            f"Local authority: {cluster.council} Council",
            (f"Lead contact: {cluster.lead_name}, {cluster.lead_role}, "
             f"{cluster.lead_email}"), "", "Schools:",
        ]
        for n, school in enumerate(cluster.schools, start=1):
            line = (f"{n}. {school.name} ({school.phase}) - "
                    f"{school.contact_name} - {school.contact_email}")
            if school.already_awarded:
                line += " - we were awarded Digital School status in 2024"
            lines.append(line)
        first = cluster.lead_name.split()[0]
        lines += ["", "Many thanks,", first, "", "--", cluster.lead_name,
                  f"{cluster.lead_role} | {cluster.schools[0].name}",
                  "Tel 01592 000000"]
        return self._plain(f"{cluster.lead_name} <{cluster.lead_email}>",
                           f"Cluster nomination - {cluster.name}",
                           "\n".join(lines) + "\n")

    def comment(self, cluster: Cluster, school: School) -> bytes:
        rng = self.rng
        paragraphs = []
        for _ in range(rng.randint(3, 6)):
            picked = rng.sample(COMMENT_SENTENCES, rng.randint(3, 5))
            paragraphs.append(textwrap.fill(" ".join(picked), 76))
        if rng.random() < 0.2:
            paragraphs.append(f"(Our P6 class is learning "
                              f"{rng.choice(_CHARSET_TOUCHES)} words this term.)")
        # A reference number keeps each comment's text its own.
        paragraphs.append(f"Our ref: {school.name[:3].upper()}-"
                          f"{self.count + 1:06d}")
        first = school.contact_name.split()[0]
        signature = (f"{rng.choice(_SIGN_OFFS)}\n{first}\n\n"
                     f"{school.contact_name}\n{rng.choice(_ROLES)}\n"
                     f"{school.name}\n")
        body = (f"{rng.choice(_GREETINGS)}\n\n" + "\n\n".join(paragraphs)
                + f"\n\n{signature}")
        headers = {}
        subject = f"Digital Schools Awards - {school.name}"
        quoted = rng.random() < 0.5
        if quoted:
            subject = ("RE: Digital Schools Awards - your invitation to "
                       "register and complete the self-review")
            previous = f"<invite-{rng.getrandbits(32):x}@dsa.example.org>"
            headers = {"In-Reply-To": previous, "References": previous}
            history = self._history(cluster, school)
            if rng.random() < 0.5:
                body += "\n" + history
            else:
                when = format_datetime(self.when - timedelta(days=2))
                body += (f"\nOn {when}, Digital Schools Programme "
                         f"<{PROGRAMME_ADDRESS}> wrote:\n"
                         + "".join(f"> {line}\n"
                                   for line in history.splitlines()[5:]))
        html = None
        if rng.random() < 0.35:
            html = ("<html><body>" + "".join(
                f"<p style='font-family:Calibri'>{p}</p>"
                for p in body.split("\n\n")[:len(paragraphs) + 1])
                + "</body></html>")
        attachment = None
        if rng.random() < 0.05:
            attachment = ("evidence.pdf", b"%PDF-1.4\n" + rng.randbytes(1200))
        return self._plain(f"{school.contact_name} <{school.contact_email}>",
                           subject, body, headers, html, attachment)

    def _history(self, cluster: Cluster, school: School) -> str:
        first = school.contact_name.split()[0]
        return (
            f"From: {PROGRAMME}\n"
            f"Sent: {self.when - timedelta(days=2):%d %B %Y %H:%M}\n"
            f"To: {school.contact_name} <{school.contact_email}>\n"
            "Subject: Digital Schools Awards - your invitation to register "
            "and complete the self-review\n\n"
            f"Dear {first},\n\n"
            f"{school.name} is part of {cluster.name}, which has joined the\n"
            "Digital Schools Awards Cluster Initiative. Please register on\n"
            "the Digital Schools Awards website and work through the\n"
            "self-review with your staff within the next fourteen days.\n\n"
            "If you have questions, simply reply to this message.\n\n"
            "Digital Schools Programme\n")

    def completion(self, cluster: Cluster, school: School) -> bytes:
        first = school.contact_name.split()[0]
        body = (f"{self.rng.choice(_GREETINGS)}\n\n"
                "We have completed the self-review.\n\n"
                f"{self.rng.choice(_SIGN_OFFS)},\n{first}\n")
        return self._plain(f"{school.contact_name} <{school.contact_email}>",
                           f"Self-review completed - {school.name}", body)

    def visit_request(self, cluster: Cluster, school: School) -> bytes:
        body = ("Hello,\n\nWe have updated our self-review and feel ready. "
                "We would like to apply\nfor a validation visit. Any date "
                "in the next few weeks suits us.\n\n"
                f"{school.contact_name}\n{school.name}\n")
        return self._plain(f"{school.contact_name} <{school.contact_email}>",
                           f"Validation visit request - {school.name}", body)

    def out_of_office(self, cluster: Cluster, school: School) -> bytes:
        body = ("Thank you for your email. I am out of the office until "
                "Monday with limited\naccess to email. For urgent matters "
                "please contact the school office.\n")
        return self._plain(
            f"{school.contact_name} <{school.contact_email}>",
            "Automatic reply: Digital Schools Awards - your invitation to "
            "register and complete the self-review", body,
            {"Auto-Submitted": "auto-replied",
             "X-Auto-Response-Suppress": "All"})

    def bounce(self, cluster: Cluster, school: School) -> bytes:
        message_id, date = self._next("mx.dsa.example.org")
        address = school.contact_email
        host = address.partition("@")[2]
        boundary = f"=_bounce_{self.count}"
        text = (
            "From: Mail Delivery System <MAILER-DAEMON@mx.dsa.example.org>\n"
            f"To: {PROGRAMME}\n"
            "Subject: Undelivered Mail Returned to Sender\n"
            f"Date: {date}\n"
            f"Message-ID: {message_id}\n"
            "Auto-Submitted: auto-replied\n"
            "MIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; "
            f'boundary="{boundary}"\n\n'
            f"--{boundary}\n"
            "Content-Description: Notification\n"
            "Content-Type: text/plain; charset=us-ascii\n\n"
            "This is the mail system at host mx.dsa.example.org.\n\n"
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients.\n\n"
            f"<{address}>: host mx.{host} said:\n"
            f"    550 5.1.1 <{address}>: Recipient address rejected:\n"
            "    User unknown in virtual mailbox table\n\n"
            f"--{boundary}\n"
            "Content-Description: Delivery report\n"
            "Content-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.dsa.example.org\n\n"
            f"Final-Recipient: rfc822; {address}\n"
            f"Original-Recipient: rfc822;{address}\n"
            "Action: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 Recipient address rejected\n\n"
            f"--{boundary}\n"
            "Content-Description: Undelivered Message Headers\n"
            "Content-Type: text/rfc822-headers\n\n"
            f"From: {PROGRAMME}\nTo: {address}\n"
            "Subject: Digital Schools Awards - your invitation to register\n"
            "Auto-Submitted: auto-generated\n\n"
            f"--{boundary}--\n")
        return text.encode("ascii")

    def newsletter(self) -> bytes:
        rng = self.rng
        source = rng.choice(("EdTech Weekly", "Primary Computing News",
                             "Scottish Schools Bulletin"))
        slug = _slug(source)
        items = []
        for n in range(rng.randint(5, 8)):
            picked = " ".join(rng.sample(COMMENT_SENTENCES, 2))
            items.append(f"{n + 1}. " + textwrap.fill(picked, 74,
                                                      subsequent_indent="   "))
        body = (f"This week from {source}:\n\n" + "\n\n".join(items)
                + f"\n\nTo unsubscribe visit https://{slug}.example.com/u\n")
        return self._plain(
            f"{source} <news@{slug}.example.com>",
            f"{source}: {rng.randint(3, 12)} ideas for your classroom", body,
            {"Precedence": "bulk",
             "List-Unsubscribe": f"<mailto:unsubscribe@{slug}.example.com>",
             "List-Id": f"{source} <weekly.{slug}.example.com>"})

    def stranger(self) -> bytes:
        rng = self.rng
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        address = (f"{_slug(given)}.{_slug(family)}{rng.randint(1, 999)}"
                   f"@{rng.choice(('mail', 'post', 'inbox'))}.example.com")
        body = ("Hello,\n\nMy daughter's school mentioned a digital award. "
                "How would our school\ntake part, and is there a cost? "
                "I could not find the details on the\nwebsite.\n\n"
                + textwrap.fill(" ".join(rng.sample(COMMENT_SENTENCES, 3)),
                                76)
                + f"\n\nThanks\n{given} {family}\n")
        return self._plain(f"{given} {family} <{address}>",
                           "A question about the awards", body)

    def school_mail(self, kind: str) -> bytes:
        if kind == NEWSLETTER:
            return self.newsletter()
        if kind == STRANGER:
            return self.stranger()
        cluster, school = self.rng.choice(self.contacts)
        make = {COMMENT: self.comment, COMPLETION: self.completion,
                OUT_OF_OFFICE: self.out_of_office, BOUNCE: self.bounce,
                VISIT: self.visit_request}[kind]
        return make(cluster, school)

    def mix(self, count: int) -> list[Mail]:
        """`count` messages of the school mix (no nominations), in the
        shares above, shuffled."""
        total = sum(share for _, share in SHARES)
        kinds: list[str] = []
        for kind, share in SHARES:
            kinds += [kind] * round(count * share / total)
        kinds = (kinds + [COMMENT] * count)[:count]
        self.rng.shuffle(kinds)
        return [Mail(kind, self.school_mail(kind)) for kind in kinds]


def generate(count: int, clusters: int = 40, seed: int = SEED
             ) -> tuple[list[Cluster], list[Mail]]:
    """The world and `count` messages: its nominations first, then the mix."""
    world = make_world(clusters, seed)
    maker = MailMaker(world, seed)
    nominations = [Mail(NOMINATION, maker.nomination(c)) for c in world]
    rest = maker.mix(max(count - len(nominations), 0))
    return world, (nominations + rest)[:count]
