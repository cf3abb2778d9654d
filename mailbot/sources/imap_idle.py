"""Waiting for new mail with IMAP IDLE (RFC 2177).

One call is one IDLE command, ended by DONE: the caller issues it again
before the server's limit (RFC 2177 asks for at most 29 minutes). The
wait watches the socket and a Waker together, so a signal ends it at once.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any

from mailbot.sources.imap_login import CONNECTION_ERRORS
from mailbot.sources.waker import Waker

log = logging.getLogger(__name__)

# How an IDLE ended.
NEWS = "news"          # the server announced a new message
TIMEOUT = "timeout"    # nothing happened in the time given
WOKEN = "woken"        # the Waker was set (a stop)
DROPPED = "dropped"    # the connection ended; it is no use any more

_NEW_MAIL = (b"EXISTS", b"RECENT")


def idle(imap: Any, waker: Waker, seconds: float) -> str:
    """IDLE for at most `seconds`; returns how it ended (see above)."""
    try:
        imap.idle()
        outcome = _watch(imap, waker, seconds)
        if outcome == DROPPED:
            return outcome
        # News that came with the end of IDLE counts too.
        _, responses = imap.idle_done()
    except CONNECTION_ERRORS as exc:
        log.debug("IDLE ended by the connection: %s", exc)
        return DROPPED
    if outcome == TIMEOUT and _announces_mail(responses):
        return NEWS
    return outcome


def _watch(imap: Any, waker: Waker, seconds: float) -> str:
    sock = imap.socket()
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return TIMEOUT
        ready, _, _ = select.select([sock, waker], [], [], left)
        if waker in ready:
            waker.clear()
            return WOKEN
        if not ready:
            continue

        # Readable with nothing to read is the end of the connection
        # (imapclient swallows the EOF).
        responses = imap.idle_check(timeout=0)
        if not responses or any(r[0] == b"BYE" for r in responses):
            return DROPPED
        if _announces_mail(responses):
            return NEWS


def _announces_mail(responses: list[Any]) -> bool:
    for response in responses:
        log.debug("IDLE: %r", response)
        if len(response) > 1 and response[1] in _NEW_MAIL:
            return True
    return False
