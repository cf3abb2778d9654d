"""A cluster's nomination, understood from however its lead wrote it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from mailbot import freetext, tables
from mailbot.councils import canonical_council, find_council, mentioned_council
from mailbot.freetext import EMAIL, given, person, phase_of, tidy
from mailbot.mail import Incoming, normalise_address
from mailbot.phrases import Anchored, fold


@dataclass(frozen=True)
class SchoolEntry:
    name: str
    phase: str | None
    contact_name: str | None
    contact_email: str | None
    already_awarded: bool


@dataclass(frozen=True)
class Nomination:
    cluster_name: str | None
    local_authority: str | None
    lead_name: str | None
    lead_email: str | None
    schools: tuple[SchoolEntry, ...]
    # True when nobody was named as lead and the sender stands in; a
    # reply's sender then does not replace a lead named before.
    lead_assumed: bool = False

    def missing(self) -> list[str]:
        """What is still needed, each as a phrase for a reply to the lead."""
        needed = []
        if not self.cluster_name:
            needed.append("the cluster's name")
        if not self.local_authority:
            needed.append("the local authority")
        if not self.lead_name:
            needed.append("the lead contact's name")
        if not self.lead_email:
            needed.append("the lead contact's email address")
        if not self.schools:
            needed.append("at least one school")
        for school in self.schools:
            if not school.phase:
                needed.append(f"whether {school.name} is primary or secondary")
            if not school.contact_name:
                needed.append(f"the name of the contact at {school.name}")
            if not school.contact_email:
                needed.append(
                    f"the email address of the contact at {school.name}")
        return needed

    @property
    def complete(self) -> bool:
        return not self.missing()


_REPLY = re.compile(r"\s*(?:re|aw|sv|antw)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)
_FORWARD = re.compile(r"\s*(?:fwd?|tr|wg)\s*:", re.IGNORECASE)
_CLUSTER_WORDS = re.compile(
    r"\bcluster|\bASG\b|associated schools? group|learning community"
    r"|\bnominat", re.IGNORECASE)
# The same, tried only where one of the words it starts with stands.
_ABOUT_CLUSTERS = Anchored(_CLUSTER_WORDS, (
    "cluster", "asg", "associated", "learning", "nominat"))


def _about_clusters(text: str) -> bool:
    return _ABOUT_CLUSTERS.search(text, fold(text)) is not None


def _says_awarded(text: str) -> bool:
    """The built-in already-awarded check, for when rules are not given."""
    match = re.search(
        r"\b(?:already (?:a |hold |have |has |got )?(?:the )?digital school"
        r"|(?:were|was|have been|has been|already|got) awarded"
        r"|awarded (?:the )?digital school)", text, re.IGNORECASE)
    if not match:
        return False
    before = text[:match.start()].lower()
    return not re.search(r"(?:\bnot|n't|\bnever|\byet to|\bno)(?:\W+\w+){0,3}"
                         r"\W*$", before)


def _yes(cell: str) -> bool:
    """Whether an "Already awarded?" cell says yes."""
    value = cell.strip().lower()
    if not value or re.search(r"\bno\b|\bnot\b|n't|\bnever\b|\bpending\b"
                              r"|progress|\bfalse\b|^n$|^0$", value):
        return False
    return bool(re.fullmatch(r"y|yes|true|1|[\u2713\u2714x]", value)
                or re.search(r"\byes\b|awarded|achieved|digital school",
                             value))


def school_key(name: str) -> str:
    """A school's name as compared: no case, accents, punctuation or
    "School", so "Burnside Primary" is "Burnside Primary School"."""
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"['\u2019`.]", "", text)
    words = re.sub(r"[^\w]+", " ", text).split()
    aliases = {"ps": "primary", "pri": "primary", "hs": "high",
               "saint": "st", "acad": "academy"}
    return " ".join(aliases.get(w, w) for w in words
                    if w not in ("school", "the", "and"))


def _combine(old: SchoolEntry, new: SchoolEntry, prefer_new: bool
             ) -> SchoolEntry:
    first, second = (new, old) if prefer_new else (old, new)
    return SchoolEntry(
        name=max(old.name, new.name, key=len),
        phase=first.phase or second.phase,
        contact_name=first.contact_name or second.contact_name,
        contact_email=first.contact_email or second.contact_email,
        already_awarded=old.already_awarded or new.already_awarded,
    )


def _gather(entries: Iterable[SchoolEntry], prefer_new: bool = False
            ) -> tuple[SchoolEntry, ...]:
    found: dict[str, SchoolEntry] = {}
    for entry in entries:
        key = school_key(entry.name)
        found[key] = (_combine(found[key], entry, prefer_new)
                      if key in found else entry)
    return tuple(found.values())


def _address(text: str | None) -> str | None:
    found = EMAIL.search(text or "")
    return normalise_address(found.group()) if found else None


def _from_row(row: tables.SchoolRow,
              awarded: Callable[[str], bool]) -> SchoolEntry:
    contact = given(EMAIL.sub(" ", re.sub(r"[<>()\[\]]", " ", row.contact)))
    name = tidy(row.school)
    return SchoolEntry(
        name=name,
        phase=phase_of(row.phase) or phase_of(name),
        contact_name=contact,
        contact_email=_address(row.email) or _address(row.contact),
        already_awarded=_yes(row.awarded)
        or bool(row.notes and awarded(row.notes)),
    )


def _from_mention(found: freetext.Mention,
                  awarded: Callable[[str], bool]) -> SchoolEntry:
    return SchoolEntry(
        name=found.name,
        phase=found.phase or phase_of(found.name),
        contact_name=found.contact,
        contact_email=_address(found.email),
        already_awarded=_yes(found.awarded_cell)
        or bool(found.remark and awarded(found.remark)),
    )


def _sender_name(mail: Incoming) -> str | None:
    name = tidy(mail.sender.name.strip("'\""))
    if name.count(",") == 1:  # Outlook's "Lindsay, Morag"
        surname, forename = (part.strip() for part in name.split(","))
        name = f"{forename} {surname}"
    return name or None


def _generic(words: Iterable[str]) -> bool:
    generic = {
        "our", "the", "a", "an", "my", "your", "cluster", "clusters",
        "nomination", "nominations", "nominate", "nominating", "details",
        "info", "information", "digital", "school", "schools", "award",
        "awards", "dsa", "initiative", "programme", "program", "application",
        "join", "joining", "to", "for", "of", "and", "in", "form", "missing",
        "new", "please", "request", "registration", "list", "taking", "take",
        "part", "entry", "submission", "here", "is", "are", "updated",
        "update", "from", "re", "fwd", "fw",
    }
    return all(word.lower() in generic for word in words)


def _subject_names(subject: str) -> list[str]:
    if _REPLY.match(subject) or not _CLUSTER_WORDS.search(subject):
        return []  # a reply's subject is ours, not the sender's
    subject = re.sub(r"^(?:\s*(?:fwd?|tr|wg)\s*:)+", "", subject,
                     flags=re.IGNORECASE)
    names = []
    for piece in re.split(r"\s+[-\u2013\u2014|]\s+|[:,]\s+|\s*\|\s*", subject):
        name = _trim_generic(re.sub(r"\([^()]*\)", "", piece))
        if name and not canonical_council(name):
            names.append(name)
    return names


def cluster_from_subject(subject: str) -> str | None:
    """The cluster's name in a subject such as "Inverbrora ASG - details".

    Only a subject about a cluster or nomination counts, and a part that
    says "Cluster" or "ASG" is preferred over one that does not.
    """
    names = _subject_names(subject)
    return next((n for n in names if _CLUSTER_WORDS.search(n)),
                names[0] if names else None)


def _cluster_name(stated: str | None, subject: str, text: str) -> str | None:
    """A labelled name, else one that says "Cluster" in the subject or the
    text, else whatever else the subject offers."""
    if stated and _trim_generic(stated):
        return _trim_generic(stated)
    names = _subject_names(subject)
    return next((n for n in names if _CLUSTER_WORDS.search(n)), None) \
        or _cluster_in_prose(text) or (names[0] if names else None)


def _trim_generic(text: str) -> str | None:
    keep_last = {"cluster", "asg", "schools", "group", "community"}
    words = tidy(text).strip(" .,;:!?").split()
    while words and _generic(words[:1]) and not _our_lady(words):
        words.pop(0)
    while words and _generic(words[-1:]) \
            and words[-1].lower() not in keep_last:
        words.pop()
    return " ".join(words) if words and not _generic(words) else None


def _our_lady(words: list[str]) -> bool:
    """Whether the words start with "Our Lady", as the names of many
    Catholic schools do: that "Our" is a name's, not a generic word."""
    return len(words) > 1 and words[0].lower() == "our" \
        and words[1].lower().startswith("lady")


def _cluster_in_prose(text: str) -> str | None:
    # Possessive quantifiers and a word-start look-behind keep this linear:
    # a long run of letters must not be tried from every position in it.
    pattern = (r"(?<![\w'\u2019-])(?:[A-Z][\w'\u2019-]*+\s++){1,4}"
               r"(?:Cluster|ASG|Learning Community|Associated Schools Group"
               r"|Learning Partnership)\b")
    for match in re.finditer(pattern, text):
        name = _trim_generic(match.group())
        if name:
            return name
    return None


def _lead(fields: dict[str, str], reading: freetext.Reading, mail: Incoming,
          schools: tuple[SchoolEntry, ...]) -> tuple[str | None, str | None,
                                                     bool]:
    stated = fields.get("lead", "")
    email = _address(stated) or _address(fields.get("lead_email"))
    parts = re.split(r"\s*[,;|(\u2013]\s*|\s+-\s+", EMAIL.sub(" ", stated))
    name = next((p for p in map(person, parts) if p), None)
    sender_name = _sender_name(mail)
    sender_email = mail.sender.email or None

    if reading.lead_is_sender or re.search(r"\b(?:me|myself)\b", stated,
                                              re.IGNORECASE):
        name, email = name or sender_name, email or sender_email
    assumed = not name and not email
    if assumed:
        name, email = sender_name, sender_email

    if name and not email:
        if sender_name and name.lower() == sender_name.lower():
            email = sender_email
        email = email or next((s.contact_email for s in schools
                               if s.contact_name == name), None)
    if email and not name:
        if email == sender_email:
            name = sender_name
        name = name or next((s.contact_name for s in schools
                             if s.contact_email == email), None)
    return name, email, assumed


def _attachment_tables(mail: Incoming) -> tuple[tables.Table, ...]:
    """The tables of every attachment, each attachment read once for the
    message however often it is asked."""
    return mail.once("nomination.attachment_tables", lambda: tuple(
        t for a in mail.attachments for t in tables.from_attachment(a)))


def read_mail(mail: Incoming
              ) -> tuple[tuple[tables.Table, ...], freetext.Reading, str]:
    """Tables and free text of the sender's own words, theirs first.

    What the sender typed comes before HTML tables, which may repeat it
    or, in a reply, hold an older version quoted back. Read once per
    message: classifying asks first, enrolment after; neither changes it.
    """
    return mail.once("nomination.read", lambda: _read_now(mail))


def _read_now(mail: Incoming
              ) -> tuple[tuple[tables.Table, ...], freetext.Reading, str]:
    forwarded = bool(_FORWARD.match(mail.subject))
    text = freetext.own_text(mail.text, forwarded)
    found = list(_attachment_tables(mail))
    pasted, rest = tables.from_text(text)
    found += pasted
    if mail.html:
        found += tables.from_html(mail.html, history=forwarded)
    return tuple(found), freetext.read(rest), rest


def parse_nomination(mail: Incoming,
                     awarded: Callable[[str], bool] | None = None
                     ) -> Nomination:
    """Everything a nomination says, with None where it says nothing.

    `awarded` tells whether a school's line says it is already a Digital
    School; by default a few built-in phrases decide.
    """
    says_awarded = awarded or _says_awarded
    found, reading, text = read_mail(mail)

    fields = dict(reading.fields)
    for table in found:
        for key, value in table.fields.items():
            if given(value):
                fields.setdefault(key, value)

    schools = _gather(
        [_from_row(row, says_awarded) for t in found for row in t.schools]
        + [_from_mention(m, says_awarded) for m in reading.schools])
    # A school whose contact is the sender's own address ("Thurso High
    # School - myself, c.mackay@...") has the sender for its contact (both
    # addresses as normalise_address leaves them).
    sender = _sender_name(mail)
    schools = tuple(
        replace(s, contact_name=sender) if sender and not s.contact_name
        and s.contact_email and s.contact_email == mail.sender.email
        else s for s in schools)
    lead_name, lead_email, assumed = _lead(fields, reading, mail, schools)

    return Nomination(
        cluster_name=_cluster_name(given(fields.get("cluster")),
                                   mail.subject, text),
        local_authority=_authority(fields, text, mail.subject, schools),
        lead_name=lead_name,
        lead_email=lead_email,
        schools=schools,
        lead_assumed=assumed,
    )


def _authority(fields: dict[str, str], text: str, subject: str,
               schools: tuple[SchoolEntry, ...]) -> str | None:
    stated = given(fields.get("authority"))
    if stated:
        return canonical_council(stated) or find_council(stated)

    # Unlabelled, a council must stand in the prose by itself: not inside
    # an address or a school's name.
    text = EMAIL.sub(" ", f"{subject}\n{text}")
    for school in schools:
        text = text.replace(school.name, " ")
    return mentioned_council(text)


def looks_like_nomination(mail: Incoming) -> bool:
    """A cheap, conservative guess that `mail` nominates a cluster."""
    if mail.header("list-id") or re.search(
            r"bulk|list|junk", mail.header("precedence"), re.IGNORECASE):
        return False
    if any(t.schools for t in _attachment_tables(mail)):
        return True

    # Otherwise it must name schools or label a cluster's details, and
    # either talk about a cluster or do both.
    found, reading, text = read_mail(mail)
    schools = sum(len(t.schools) for t in found) + len(reading.schools)
    labelled = {"cluster", "authority"} & (
        set(reading.fields) | {k for t in found for k in t.fields})
    about_clusters = _about_clusters(f"{mail.subject}\n{text}")
    return bool(about_clusters and (schools or labelled)
                or labelled and schools)


def merge(base: Nomination, update: Nomination) -> Nomination:
    """`base` completed by a later message: what `update` gives wins."""
    keep_lead = update.lead_assumed and bool(base.lead_name or base.lead_email)
    lead = base if keep_lead else update

    # A newly named lead does not inherit the old lead's address.
    same_person = not (lead.lead_name and base.lead_name) \
        or lead.lead_name.lower() == base.lead_name.lower()
    return replace(
        base,
        cluster_name=update.cluster_name or base.cluster_name,
        local_authority=update.local_authority or base.local_authority,
        lead_name=lead.lead_name or base.lead_name,
        lead_email=lead.lead_email or (base.lead_email if same_person
                                       else None),
        schools=_gather(base.schools + update.schools, prefer_new=True),
        lead_assumed=lead.lead_assumed and base.lead_assumed,
    )
