"""The processing order, written down once.

For each message in the inbox:

    1. skip it if the record says it was handled before (restart safety)
    2. parse it, once
    3. guard against loops: our own mail, bounces, auto-replies, bulk
    4. classify: which record, and what kind of message
    5. apply it to the record and queue replies
    6. record the outcome

and for each batch of up to BATCH messages, and at the end of the poll:

    7. commit the batch, in one write, and log one line per message
    8. then, and only then, move its messages to the handled or set-aside
       folder (the source may do that in bulk)

then send what is due. An error in any step sets the message aside with
the reason, undoing what that message alone changed (a savepoint is set
before each one); the poll goes on with the next message.

Why this is safe against a kill at any moment: a message leaves the inbox
only after the commit that records it, and the record says which keys
were handled. A kill before the commit loses the batch's effects with
the batch, whose messages are all still in the inbox and are handled
again; a kill after it leaves handled messages in the inbox, which the
next poll only moves. Outgoing mail is sent by deliver_pending, after
the commit, as before.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass

from mailbot import guard, mail, setaside, tagging
from mailbot.classify import Classifier
from mailbot.clock import Clock
from mailbot.commands import Commands, is_command_mail
from mailbot.delivery import deliver_pending
from mailbot.errors import SetAside
from mailbot.nomination import read_mail
from mailbot.outcome import HANDLED, IGNORED, SET_ASIDE, Outcome
from mailbot.quoting import new_text_of
from mailbot.results import comment_tags_of, reading_of, visit_reply_of
from mailbot.senders import Sender
from mailbot.sources import MailSource, RawMail
from mailbot.sources.imap import renumbered
from mailbot.store import Store, stamp
from mailbot.supports import Supports  # the matrix of supports
from mailbot.sweep import sweep
from mailbot.workers import WorkerEnded, Workers
from mailbot.workflow import Workflow

log = logging.getLogger(__name__)

# Messages committed together (one journal line).
BATCH = 200
# Committed messages are moved out of the inbox together, at the end of a
# poll or once this many wait: moving one message can cost an IMAP server
# as much as moving a thousand (measured with Dovecot: 25 ms for one, 80
# for a thousand, in an inbox of 3,000).
MOVES_AT_ONCE = 2000


@dataclass(frozen=True)
class _Handled:
    """A message handled in the batch, waiting for its commit to be moved
    and logged."""

    key: str
    outcome: Outcome
    message_id: str
    again: bool  # handled before: it is only moved


class Pipeline:
    def __init__(self, store: Store, source: MailSource, sender: Sender,
                 flow: Workflow, classifier: Classifier, clock: Clock) -> None:
        self.store = store
        self.source = source
        self.sender = sender
        self.flow = flow
        self.classifier = classifier
        self.clock = clock
        self.own = flow.config.own_addresses
        # Handled since the last commit, in order: moved after it.
        self._batch: list[_Handled] = []
        self._unmoved = 0  # committed, their moves asked for, not flushed

    def poll(self) -> int:
        """Handle every waiting message, then send; returns how many."""
        count = 0
        try:
            ahead = parsed_ahead(self.source.fetch(), self.store.lock_fileno())
            with closing(ahead) as fetched:
                for raw, parsed in fetched:
                    self._take(raw, parsed)
                    count += 1
                    if len(self._batch) >= BATCH:
                        self.settle(flush=False)
            self.store.set_meta("last_poll", stamp(self.clock.now()))
        except Exception:
            # The mailbox went away mid-poll, say: what was handled is
            # kept and moved if it can be, then the poll fails as it would.
            if self._batch or self._unmoved:
                try:
                    self.settle()
                except Exception:
                    log.exception("could not finish the messages handled "
                                  "so far")
            raise
        self.settle()
        deliver_pending(self.store, self.sender, self.clock,
                        self.flow.config.programme_people)
        return count

    def sweep(self) -> None:
        sweep(self.flow, self.source)
        deliver_pending(self.store, self.sender, self.clock,
                        self.flow.config.programme_people)

    def handle(self, raw: RawMail) -> None:
        """Handle one message whole: recorded, committed and moved."""
        self._take(raw)
        self.settle()

    def settle(self, flush: bool = True) -> None:
        """Commit the messages handled so far, log them, then move them:
        at once if `flush`, else once MOVES_AT_ONCE wait (the moves asked
        for are kept by the source until then).

        If the commit fails they are forgotten (the store undoes them);
        they are still in the inbox and come again at the next poll. If
        a move fails, or a stop comes first, the record says they were
        handled: the next poll moves them.
        """
        batch, self._batch = self._batch, []
        self.store.commit()
        for done in batch:
            if not done.again:
                outcome = done.outcome
                log.info("%s %s %s %s cluster=%s school=%s: %s",
                         outcome.outcome, done.message_id or "-", done.key,
                         outcome.kind, outcome.cluster_id, outcome.school_id,
                         outcome.summary)
        for done in batch:
            self._move(done.key, done.outcome.outcome)
        self._unmoved += len(batch)
        if flush or self._unmoved >= MOVES_AT_ONCE:
            self.source.flush()
            self._unmoved = 0

    def _take(self, raw: RawMail, parsed: mail.Incoming | None = None
              ) -> None:
        """Handle one message into the open batch, not yet committed."""
        key = raw.key
        before = self.store.message_by_key(key)
        if before is None and not raw.unreadable and not self.flow.replaying:
            # A mailbox renumbered (a new UIDVALIDITY) before the move of
            # messages already handled: the same bytes under a new key are
            # the same message, and go where it was to go.
            same = self.store.message_by_fingerprint(_fingerprint(raw, parsed))
            if same is not None and renumbered(same["key"], key):
                before = same
        elif before is not None and before.get("fingerprint") \
                and before["fingerprint"] != _fingerprint(raw, parsed):
            # Another message under a name used before (a Maildir file
            # name given twice): recorded under a key of its own.
            key = f"{raw.key}~{_fingerprint(raw, parsed)[:16]}"
            before = self.store.message_by_key(key)
            if before is None:
                log.warning("%s: a different message under a name handled "
                            "before; recorded as %s", raw.key, key)
        if before is not None:
            # Handled, but the move did not happen before a stop: finish it.
            self._batch.append(_Handled(raw.key, Outcome(
                before["outcome"], before.get("kind", ""), ""), "", True))
            return

        self.store.savepoint()
        try:
            done = self._apply(raw, parsed, key)
        except BaseException:
            # Never half a message in a commit: without its record it would
            # be handled again after a restart.
            self.store.rollback_to_savepoint()
            raise
        self._batch.append(done)

    def _apply(self, raw: RawMail, ahead: mail.Incoming | None, key: str
               ) -> _Handled:
        """Handle `raw`, recorded under `key` (its mailbox key but for a
        name used before)."""
        parsed: mail.Incoming | None = None
        try:
            if raw.unreadable:
                raise SetAside(raw.unreadable)
            parsed = ahead if ahead is not None else mail.parse(raw.data)
            outcome = self._understand(parsed)
        except SetAside as exc:
            self.store.rollback_to_savepoint()
            outcome = Outcome(SET_ASIDE, "unreadable", exc.reason)
        except Exception as exc:  # one bad message must not stop the poll
            self.store.rollback_to_savepoint()
            log.exception("error handling %s", raw.key)
            outcome = Outcome(SET_ASIDE, "error",
                              f"error while handling: {type(exc).__name__}: {exc}")

        self._record(key, raw, parsed, outcome)
        if outcome.outcome == SET_ASIDE and not raw.unreadable:
            # A copy, to replay after a fix.
            setaside.keep(self.store, key, raw.data)
        return _Handled(raw.key, outcome,
                        parsed.message_id if parsed else "", False)

    def _understand(self, parsed: mail.Incoming) -> Outcome:
        earlier = None if self.flow.replaying \
            else self.store.message_by_id(parsed.message_id)
        if earlier is not None:
            if earlier.get("content") in (None, "", content_digest(parsed)):
                return Outcome(IGNORED, DUPLICATE,
                               f"same Message-ID as {earlier['key']}")
            # Not a copy (a copy differs in its delivery headers alone):
            # a mailer that reuses its Message-IDs, say. Never dropped.
            return Outcome(SET_ASIDE, REUSED_ID,
                           f"same Message-ID as {earlier['key']}, but "
                           "another message (its sender's mailer may reuse "
                           "Message-IDs)")
        verdict = guard.check(parsed, self.own)
        if verdict is not None:
            return self.flow.on_robot(parsed, verdict)
        if is_command_mail(parsed, self.flow.config.staff):
            return Commands(self.flow).handle(parsed)
        # results.py: a validator's answer to a visit-request notice (before
        # supports.py, whose match on the validator's reference takes any).
        visit = visit_reply_of(parsed, self.store,
                               self.flow.config.programme_people)
        if visit is not None:
            return self.flow.apply(parsed, visit)
        # supports.py: the validator's answer to a matrix of supports.
        answered = Supports(self.flow).on_mail(parsed)
        if answered is not None:
            return answered
        understood = self.classifier.classify(parsed, self.store)
        return self.flow.apply(parsed, understood)

    def _record(self, key: str, raw: RawMail, parsed: mail.Incoming | None,
                outcome: Outcome) -> None:
        message_id = parsed.message_id if parsed else ""
        duplicate = outcome.kind in (DUPLICATE, REUSED_ID)
        self.store.record_message({
            "key": key,
            # A duplicate does not claim the Message-ID: the message it
            # repeats keeps it, and a replay of that one is not taken for
            # a copy of its own copy.
            "message_id": "" if duplicate else message_id,
            **({"duplicate_of_message_id": message_id} if duplicate else {}),
            "fingerprint": _fingerprint(raw, parsed),
            "content": content_digest(parsed) if parsed else "",
            "from": parsed.sender.email if parsed else "",
            "subject": parsed.subject if parsed else "",
            "received_at": stamp(self.clock.now()),
            "outcome": outcome.outcome,
            "kind": outcome.kind,
            "reason": outcome.summary,
            "cluster_id": outcome.cluster_id,
            "school_id": outcome.school_id,
            # What held it back, and what staff lifted by replaying it:
            # a replay of this record lifts both (setaside.replay).
            "hold": outcome.hold,
            **({"lifted": sorted(self.flow.lifted)}
               if self.flow.replaying else {}),
        })

    def _move(self, key: str, outcome: str) -> None:
        if outcome in (SET_ASIDE, setaside.REPLAYED):  # replayed: was aside
            self.source.set_aside(key)
        elif outcome in (HANDLED, IGNORED):
            self.source.mark_handled(key)


DUPLICATE = "duplicate"
REUSED_ID = "reused-message-id"


def content_digest(parsed: mail.Incoming) -> str:
    """What makes a message the message it is, digested: its sender,
    subject, date, text and attachments, not the headers each delivery
    adds. Two deliveries of one message have the same. Worked out once
    per message (and in the parsing processes, ahead)."""
    return parsed.once("pipeline.content", lambda: _content(parsed))


def _content(parsed: mail.Incoming) -> str:
    digest = hashlib.sha256()
    # The text past TEXT_LIMIT and attachments too large to read count by
    # their size, which is all that is known of them.
    for part in (parsed.sender.email, parsed.subject,
                 parsed.date.isoformat() if parsed.date else "",
                 parsed.text, str(parsed.omitted), parsed.html,
                 *(f"{a.filename}:{a.content_type}:{a.unread}:"
                   f"{hashlib.sha256(a.data).hexdigest()}"
                   for a in parsed.attachments)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:32]


def _fingerprint(raw: RawMail, parsed: mail.Incoming | None) -> str:
    """SHA-256 of the message's bytes (worked out once, when parsed); for
    a message the source did not read, of why (its size with it)."""
    if raw.unreadable:
        return "unread:" + hashlib.sha256(
            raw.unreadable.encode()).hexdigest()[:32]
    if parsed is not None and parsed.fingerprint:
        return parsed.fingerprint
    return hashlib.sha256(raw.data).hexdigest()


# -- parsing ahead, in other processes ---------------------------------------
#
# Parsing a message (mail-parser) and reading what it says alone (its new
# text, its results, a nomination's tables, a comment's tags) is most of
# handling it and needs nothing of the record. A poll of more than
# PARSE_AHEAD messages is read ahead from its start: its first chunk is
# parsed here while PARSE_WORKERS processes parse the chunks after it, in
# turn; a poll of fewer messages reads none ahead. Messages are still
# handled one at a time, in inbox order. One a worker cannot parse, or
# whose parse cannot come back, is parsed again here, where it fails as
# it always did; if a worker dies, every message not yet back is parsed
# here, with a warning. The workers live for one poll, and end with the
# daemon however that ends.

PARSE_AHEAD = 32
PARSE_CHUNK = 16
# Two where there are two cores or more: one alone, with the comments'
# tagging, kept this process waiting for it.
PARSE_WORKERS = min(2, os.cpu_count() or 1)
# The parsing processes yield the CPU to this one, which handles each
# message in turn and so sets the pace: on a machine with as many cores
# as processes, a message handled here waited for a core while the
# parsing processes, already ahead, used both (measured: about 5% more
# messages a second with this than without).
PARSER_NICENESS = 5
# At most this many chunks, and about this many bytes, are read ahead:
# enough that the parsing processes go on while this one waits for the
# disk (a commit) or the server (moving messages), for they get new work
# only when this one asks for the next message (measured: about 5% more
# messages a second than with 6).
PARSE_WINDOW = 16
PARSE_WINDOW_BYTES = 4 * 1024 * 1024

Parsed = list[mail.Incoming | None]


def parsed_ahead(fetched: Iterable[RawMail], lock_fd: int | None = None
                 ) -> Generator[tuple[RawMail, mail.Incoming | None], None,
                                None]:
    """The messages fetched, in order, each with its parse if it was made
    ahead (None: parse it where it is handled). A failure of the source
    comes after the messages it gave before it."""
    source = iter(fetched)
    # Whether the poll is a large one is known before its first message is
    # handled, so that the parsing processes start with it: the first
    # messages are often the slowest to handle (nominations), and a core
    # stood idle while they were parsed and handled here alone.
    first: list[RawMail] = []
    size = 0
    failure: Exception | None = None
    try:
        for raw in source:
            first.append(raw)
            size += len(raw.data)
            if len(first) > PARSE_AHEAD:
                break
            if size >= PARSE_WINDOW_BYTES:
                # Large messages are handled as they come, not held.
                yield from ((held, None) for held in first)
                first, size = [], 0
    except Exception as exc:  # handled after what came before it
        failure = exc
    if len(first) <= PARSE_AHEAD or failure is not None:
        yield from ((held, None) for held in first)
        if failure is not None:
            raise failure
        return
    parser = _start_parser(lock_fd)
    try:
        # The first chunk is parsed here while the processes start on the
        # chunks after it.
        yield from _ahead(itertools.chain(first[PARSE_CHUNK:], source),
                          parser, first[:PARSE_CHUNK])
    finally:
        if parser is not None:
            for code in parser.close():
                # It had answered all it was given: nothing is lost, but a
                # process killed (for memory, say) is worth a look.
                log.warning("a parsing process ended with exit code %s "
                            "after its last answer", code)


@dataclass
class _Chunk:
    """Messages read ahead together, and the ticket of their parse once
    a parsing process has them (HERE: parse them here)."""

    raws: list[RawMail]
    ticket: int | None = None

    @property
    def size(self) -> int:
        return sum(len(raw.data) for raw in self.raws)


HERE = 0  # no ticket is 0


def _ahead(source: Iterator[RawMail], parser: Workers | None,
           here: list[RawMail]
           ) -> Iterator[tuple[RawMail, mail.Incoming | None]]:
    """The messages of `here`, to parse in this process, then those of
    `source`, each with its parse from `parser` where it has one."""
    waiting = deque([_Chunk(here, HERE)] if here else [])
    failure: Exception | None = None
    ended = False
    while True:
        while (not ended and failure is None and len(waiting) < PARSE_WINDOW
               and sum(c.size for c in waiting) < PARSE_WINDOW_BYTES):
            chunk = _Chunk([])
            try:
                for raw in source:
                    chunk.raws.append(raw)
                    if len(chunk.raws) == PARSE_CHUNK \
                            or chunk.size >= PARSE_WINDOW_BYTES // PARSE_WINDOW:
                        break
                else:
                    ended = True
            except Exception as exc:  # handled after what came before it
                failure = exc
            if chunk.raws:
                waiting.append(chunk)
        parser = _hand_over(parser, waiting)
        if not waiting:
            break
        chunk = waiting.popleft()
        results: Parsed = [None] * len(chunk.raws)
        if parser is not None and chunk.ticket:
            try:
                results = parser.result(chunk.ticket)
            except WorkerEnded:
                _given_up(parser)
                parser = None
            except Exception:
                log.warning("parsing ahead failed for %d messages; parsing "
                            "them here", len(chunk.raws), exc_info=True)
        yield from zip(chunk.raws, results, strict=True)
    if failure is not None:
        raise failure


def _hand_over(parser: Workers | None, waiting: Iterable[_Chunk]
               ) -> Workers | None:
    """Give the parsing processes the waiting chunks not yet theirs, in
    order, while one can take the next (a chunk that finds none free
    waits for one, behind those handed over). The parser, or None once
    one of its processes ended: the rest is parsed here."""
    if parser is None:
        return None
    try:
        parser.gather()
        for chunk in waiting:
            if chunk.ticket is None:
                chunk.ticket = _submit(parser, chunk)
                if chunk.ticket is None:
                    break
    except WorkerEnded:
        _given_up(parser)
        return None
    return parser


def _given_up(parser: Workers) -> None:
    """One of the parser's processes ended: the rest is parsed here."""
    log.warning("a parsing process ended; parsing the rest of this poll here")
    parser.close()


def _submit(parser: Workers, chunk: _Chunk) -> int | None:
    """The chunk's ticket from the parser (None: none can take it yet),
    or HERE if it cannot be sent at all."""
    try:
        return parser.submit(_parse_all, [raw.data for raw in chunk.raws])
    except WorkerEnded:
        raise
    except Exception:  # it cannot be sent: parsed here
        log.warning("cannot hand %d messages to a parsing process; "
                    "parsing them here", len(chunk.raws), exc_info=True)
        return HERE


def _start_parser(lock_fd: int | None) -> Workers | None:
    # The workers are forked from this process: what it has built, they
    # have, instead of building it each.
    tagging.default_tagger()
    try:
        return Workers(PARSE_WORKERS, _parser_started, (lock_fd,))
    except (OSError, ValueError) as exc:
        log.warning("parsing in this process only: %s", exc)
        return None


def _parser_started(lock_fd: int | None) -> None:
    """In a parsing process: it runs at a lower priority than the daemon
    (PARSER_NICENESS); signals are for the daemon, the record's
    lock is the daemon's alone (so a restart after the daemon is killed
    never waits for this process), and the process ends with the daemon,
    however that ends."""
    if lock_fd is not None:
        os.close(lock_fd)
    with suppress(OSError):  # a priority that cannot be lowered: as it is
        os.nice(PARSER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # mail-parser's remarks on a message would only reach the daemon's
    # stderr from here; what mailbot makes of it is logged when handled.
    logging.disable(logging.CRITICAL)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent.sentinel,),
                         daemon=True).start()


def _end_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(0)


def _parse_all(datas: list[bytes]) -> Parsed:
    """In a parsing process. A message it cannot parse is None: parsed
    again in the main process, it fails there as it would have."""
    out: Parsed = []
    for data in datas:
        try:
            parsed = mail.parse(data)
        except Exception:
            out.append(None)
            continue
        # Mail from a robot (a bounce, an auto-reply, a list) is never read
        # for what it says: reading it ahead would be lost work.
        with suppress(Exception):
            if guard.check(parsed, frozenset()) is None:
                for reading in READ_AHEAD:
                    # What fails here is worked out again where needed.
                    with suppress(Exception):
                        reading(parsed)
        out.append(parsed)
    return out


# What handling a message reads from it alone (each kept with the message
# by Incoming.once), read in the workers too: the writer's new text, the
# results it gives, a nomination's tables and text, a comment's tags, and
# the digest of its content that tells a copy from another message.
READ_AHEAD: tuple[Callable[[mail.Incoming], object], ...] = (
    new_text_of, reading_of, read_mail, comment_tags_of, content_digest)
