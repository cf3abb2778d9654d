"""Authentication-Results (RFC 8601): did a server we trust vouch for a
message's sender?

A receiving mail server checks SPF, DKIM and DMARC and writes what it
found at the top of the message:

    Authentication-Results: mx.example.org;
        dkim=pass (2048-bit key) header.d=example.org header.i=@example.org;
        dmarc=pass (p=reject) header.from=example.org

Anyone can write such a header into the mail they send, so only headers
naming one of the configured authserv-ids are read, and of those only the
topmost contiguous block: the header fields, one after the other with
nothing between them, that the receiving server added last. A header
further down, even one naming a trusted server, may have come with the
message. Within the block a pass counts only for the sender's own domain
(DKIM: header.d, or the domain of header.i; DMARC: header.from), and
none counts if the block also says a DKIM or DMARC check of that domain
failed (one of the two came with the message).

The parser follows RFC 8601's grammar: an authserv-id (a token or a
quoted string), an optional version, then `none` or `;`-separated
results, each `method[/version]=result`, an optional `reason=...` and
properties `ptype.property=value`. Comments in parentheses (nested, with
backslash escapes) are dropped wherever they stand, so `(dkim=pass)` in
a comment is never read as a result; quoted strings keep their `;` and
`=`. Names compare without case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import TYPE_CHECKING

from mailbot.mail import Incoming
from mailbot.tokens import Reference

if TYPE_CHECKING:
    from tinydb.table import Document

    from mailbot.store import Store
    from mailbot.tokens import Tokens

HEADER = "authentication-results"
# Methods whose pass, for the sender's domain, authenticates a message.
TRUSTED_METHODS = ("dmarc", "dkim")


@dataclass(frozen=True)
class Result:
    """One result: `dkim=pass header.d=example.org`."""

    method: str                 # lower case, without a version
    result: str                 # lower case
    reason: str = ""
    properties: dict[str, str] = field(default_factory=dict)  # "header.d" -> value

    def prop(self, name: str) -> str:
        return self.properties.get(name, "")


@dataclass(frozen=True)
class AuthResults:
    """One Authentication-Results header field."""

    authserv_id: str            # lower case; "" when the field names none
    version: str = ""
    results: tuple[Result, ...] = ()


class _Token(str):
    """A word of the header with comments gone; `quoted` if it was a
    quoted string (then it is never punctuation)."""

    quoted: bool = False


def _quoted(text: str) -> _Token:
    token = _Token(text)
    token.quoted = True
    return token


def _tokens(value: str) -> list[_Token]:
    """Words, quoted strings and the punctuation ';', '=' and '/'."""
    out: list[_Token] = []
    word: list[str] = []
    i, n = 0, len(value)

    def flush() -> None:
        if word:
            out.append(_Token("".join(word)))
            word.clear()

    while i < n:
        char = value[i]
        if char == "(":
            flush()
            depth = 0
            while i < n:
                if value[i] == "\\":
                    i += 2
                    continue
                if value[i] == "(":
                    depth += 1
                elif value[i] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
        elif char == '"':
            flush()
            text: list[str] = []
            i += 1
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                text.append(value[i])
                i += 1
            i += 1
            out.append(_quoted("".join(text)))
        elif char in ";=/":
            flush()
            out.append(_Token(char))
            i += 1
        elif char.isspace():
            flush()
            i += 1
        else:
            word.append(char)
            i += 1
    flush()
    return out


def _split(tokens: list[_Token]) -> list[list[_Token]]:
    parts: list[list[_Token]] = [[]]
    for token in tokens:
        if token == ";" and not token.quoted:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _is(token: _Token, punctuation: str) -> bool:
    return token == punctuation and not token.quoted


def _result(tokens: list[_Token]) -> Result | None:
    """`method[/version] = result [reason=...] [ptype.property=value]...`,
    or None for anything else."""
    if len(tokens) < 3 or tokens[0].quoted or "." in tokens[0]:
        return None
    method = tokens[0].lower()
    rest = tokens[1:]
    if rest and _is(rest[0], "/"):  # a method version
        rest = rest[2:]
    if len(rest) < 2 or not _is(rest[0], "=") or rest[1].quoted \
            or any(c in "=;/" for c in rest[1]):
        return None
    result = rest[1].lower()
    reason = ""
    properties: dict[str, str] = {}
    rest = rest[2:]
    while len(rest) >= 3 and _is(rest[1], "="):
        name, value = rest[0].lower(), str(rest[2])
        if name == "reason":
            reason = value
        elif "." in name and not rest[0].quoted:
            properties.setdefault(name, value)
        rest = rest[3:]
    return Result(method=method, result=str(result), reason=reason,
                  properties=properties)


def parse(value: str) -> AuthResults:
    """One header field's value. What cannot be read is left out: a field
    that is nothing but noise parses to one with no results."""
    parts = _split(_tokens(value))
    head, resinfo = parts[0], parts[1:]
    authserv_id = version = ""
    if any(_is(t, "=") for t in head):
        # No authserv-id at all (Microsoft 365 writes none): the first
        # part is already a result, and no one is named as vouching.
        resinfo = [head, *resinfo]
    elif head:
        authserv_id = head[0].lower()
        if len(head) > 1 and head[1].isdigit():
            version = str(head[1])
    results = []
    for part in resinfo:
        if len(part) == 1 and part[0].lower() == "none" and not part[0].quoted:
            continue
        found = _result(part)
        if found is not None:
            results.append(found)
    return AuthResults(authserv_id=str(authserv_id), version=version,
                       results=tuple(results))


def trusted_block(fields: Iterable[tuple[str, str]],
                  trusted_ids: Sequence[str]) -> list[AuthResults]:
    """The topmost run of consecutive Authentication-Results fields that
    name a trusted authserv-id; `fields` are (name, value) from the top
    of the message down. Any other field, an Authentication-Results from
    another server included, ends the run."""
    trusted = {t.lower() for t in trusted_ids}
    block: list[AuthResults] = []
    for name, value in fields:
        parsed = parse(value) if name.lower() == HEADER else None
        if parsed is not None and parsed.authserv_id in trusted:
            block.append(parsed)
        elif block:
            break
    return block


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(".").lower()


def _vouches(result: Result, domain: str) -> bool:
    """Whether this result, were it a pass, is about the sender's domain."""
    if result.method == "dmarc":
        return _domain(result.prop("header.from")) == domain
    if result.method == "dkim":
        return (result.prop("header.d").strip(".").lower() == domain
                or _domain(result.prop("header.i")) == domain)
    return False


def verdict(block: Sequence[AuthResults], sender: str) -> tuple[bool, str]:
    """Whether the block authenticates `sender`, and why (or why not)."""
    domain = _domain(sender)
    if not domain:
        return False, "no sender domain"
    if not block:
        return False, "no Authentication-Results from a trusted server"
    server = block[0].authserv_id
    results = [r for b in block for r in b.results
               if r.method in TRUSTED_METHODS]
    about = [r for r in results if _vouches(r, domain)]
    failed = [r for r in about if r.result not in ("pass", "none")]
    passed = [r for r in about if r.result == "pass"]
    if passed and failed:
        # A trusted server does not say both of one domain: one of them
        # came with the message.
        return False, (f"{server} reports "
                       + ", ".join(f"{r.method}={r.result}" for r in about)
                       + f" for {domain}: both pass and not")
    for method in TRUSTED_METHODS:
        if any(r.method == method for r in passed):
            return True, f"{method}=pass for {domain} ({server})"
    seen = [f"{r.method}={r.result}" for r in results]
    said = ", ".join(dict.fromkeys(seen)) or "no DKIM or DMARC result"
    return False, f"{server} says {said}, not a DMARC or DKIM pass for {domain}"


def header_fields(message: Message) -> list[tuple[str, str]]:
    """Every header field of a message, in order, as text."""
    return [(str(name), " ".join(str(value).split()))
            for name, value in message.items()]


def block_of(incoming: Incoming,
             trusted_ids: Sequence[str]) -> list[AuthResults]:
    """The message's topmost block of Authentication-Results from a trusted
    server; empty when there is none (or no server is trusted). While a
    block is there, its word on the sender is final: nothing else
    (commands.py's answered references) may stand in for a pass."""
    if not trusted_ids:
        return []
    return trusted_block(header_fields(incoming.message), trusted_ids)


def authenticated(incoming: Incoming, trusted_ids: Sequence[str],
                  sender: str) -> tuple[bool, str]:
    """Whether a trusted receiving server says DMARC or DKIM passed for
    `sender`'s domain; and the reason, for the reply and the digest."""
    if not trusted_ids:
        return False, ("no receiving server is trusted "
                       "([security] authserv_ids is empty)")
    return verdict(block_of(incoming, trusted_ids), sender)


def answered(store: Store, tokens: Tokens, mail: Incoming, *, kind: str = "",
             oldest: datetime | None = None) -> Document | None:
    """The message of mailbot's that `mail` answers (its In-Reply-To or
    References), if it was sent to the sender and carried the sender's
    own signed reference: proof, short of a trusted server's, that the
    sender reads that mailbox. Only of `kind`, and no older than `oldest`,
    when those are given."""
    sender = mail.sender.email
    person = Reference(address=sender)
    for message_id in mail.thread_ids:
        sent = store.outgoing_by_message_id(message_id)
        if sent is None or sent.get("status") != "sent" \
                or (kind and sent.get("kind") != kind):
            continue
        written_to = {str(a).lower() for a in (*sent.get("to", ()),
                                               *sent.get("cc", ()))}
        if sender not in written_to or (
                oldest is not None and not _since(sent.get("created_at"), oldest)):
            continue
        if tokens.verify(str(sent.get("reference") or ""), sender) == person:
            return sent
    return None


def _since(value: object, oldest: datetime) -> bool:
    """Whether a time of the record (stamp()) is `oldest` or later."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment >= oldest
