"""Signed references: proof that a message answers one mailbot sent.

Every message mailbot sends carries a reference such as `s12-k3j4h5g6m7`
(school 12) or `p-x9c2v8b7n6` (a person: staff, validator, lead) in its
subject, its Message-ID and, with plus addressing, its Reply-To. The part
after the dash is an HMAC of what the reference names under a key that
only mailbot holds, so a reference cannot be made up or moved to another
school; a person's reference names no one and only holds for mail from
the address it was sent to. Providers that rewrite Message-IDs keep the
subject, so a reply is still matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from mailbot.errors import ConfigError

log = logging.getLogger(__name__)

KEY_BYTES = 32
MAC_CHARS = 10   # 50 bits: each guess costs a forger one email
SUBJECT_LABEL = "ref"

# A reference anywhere in a header: school or person, then the MAC.
_FOUND = re.compile(r"(?<![0-9a-z])(s[1-9][0-9]{0,8}|p)-([a-z2-7]{"
                    + str(MAC_CHARS) + r"})(?![0-9a-z])")


@dataclass(frozen=True)
class Reference:
    """What a verified reference names: a school, or the address it was
    sent to (a person)."""

    school_id: int | None = None
    address: str = ""


# References remembered, at most (then forgotten all at once).
RECENT_MACS = 20_000


class Tokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a token key must be at least 16 bytes")
        self._key = key
        self._recent: dict[str, str] = {}

    def _mac(self, subject: str) -> str:
        # Every message to a school or person carries its reference, and
        # the same one each time: the recent ones are kept.
        mac = self._recent.get(subject)
        if mac is None:
            digest = hmac.new(self._key, subject.encode(), hashlib.sha256).digest()
            mac = base64.b32encode(digest).decode().lower()[:MAC_CHARS]
            if len(self._recent) >= RECENT_MACS:
                self._recent.clear()
            self._recent[subject] = mac
        return mac

    def for_school(self, school_id: int) -> str:
        return f"s{school_id}-{self._mac(f'school:{school_id}')}"

    def for_person(self, address: str) -> str:
        return f"p-{self._mac(f'person:{address.lower()}')}"

    def verify(self, token: str, sender: str) -> Reference | None:
        """What `token` names, if mailbot made it; a person's token holds
        only for mail from the address it was made for."""
        found = _FOUND.fullmatch(token.lower())
        if found is None:
            return None
        what, mac = found.groups()
        if what == "p":
            expected = self.for_person(sender)
            if hmac.compare_digest(expected, f"p-{mac}"):
                return Reference(address=sender.lower())
            return None
        school_id = int(what[1:])
        if hmac.compare_digest(self.for_school(school_id), f"{what}-{mac}"):
            return Reference(school_id=school_id)
        return None

    def found(self, texts: list[str], sender: str) -> list[Reference]:
        """Every valid reference in `texts` (subject, thread ids, the
        addresses written to), in order, without repeats; forged or
        mistyped ones are dropped."""
        seen: list[Reference] = []
        for text in texts:
            for match in _FOUND.finditer(text.lower()):
                reference = self.verify(match.group(0), sender)
                if reference is not None and reference not in seen:
                    seen.append(reference)
        return seen


def subject_tag(token: str) -> str:
    return f"[{SUBJECT_LABEL} {token}]"


def load_key(path: Path) -> bytes:
    """The signing key in `path`, made (readable by its owner only) the
    first time. A key that others may read is used, with a warning."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = secrets.token_hex(KEY_BYTES).encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.info("%s: made a new key for signing references", path)
        return data
    if path.stat().st_mode & 0o077:
        log.warning("%s: others may read the signing key; "
                    "chmod 600 it", path)
    key = data.strip()
    if len(key) < 32:
        raise ConfigError(path, "", "the key is too short (at least 32 "
                          "characters): put back the one mailbot made, from "
                          "a backup; a new one (remove the file) leaves the "
                          "references in mail already sent unreadable")
    return key
