"""How fast mailbot handles mail, against what the machine allows.

    .venv/bin/python bench/run.py [--messages N] [--sizes 1000,10000,100000]
                                  [--trials 5] [--profile] [--keep]

(a) the raw limit: a throwaway Dovecot on 127.0.0.1 holding N generated
    messages (bench/mailmix.py); every one fetched with imapclient (UID
    FETCH BODY.PEEK[] in batches of 500) and parsed with mail-parser,
    reading the usual fields;
(b) mailbot end to end on the same mailbox: one `pipeline.poll()` over the
    whole inbox, with a fresh record, the file outbox and a ManualClock,
    timed from a connection already logged in, as (a) is;
    sending what was queued (deliver_pending, at the end of the poll) is
    timed apart as well;
(c) growth: a record already holding 1k, 10k, 100k handled messages, and
    500 more messages handled from a local Maildir (no server).

(a) and (b) are measured in turn, --trials times, each trial on a mailbox
of its own; the figures are the medians (the ratio: of each trial's own
ratio), for the machine's speed drifts by several percent from one
second to the next. So is (c): the records are built once, then polled
--trials times, the sizes in turn, each poll on a fresh copy.

It prints figures and asserts nothing. Everything runs on 127.0.0.1 and in
temporary folders, removed at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import io
import logging
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in (ROOT, ROOT / "tests", HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import mailmix  # noqa: E402
import mailparser  # noqa: E402
from harness import example_config  # noqa: E402
from servers import DovecotMailbox, DovecotServer  # noqa: E402

import mailbot.pipeline as pipeline_module  # noqa: E402
from mailbot.app import open_mailbot  # noqa: E402
from mailbot.assign import choose_validator  # noqa: E402
from mailbot.clock import ManualClock  # noqa: E402
from mailbot.config import Config, Validator  # noqa: E402
from mailbot.delivery import deliver_pending  # noqa: E402
from mailbot.results import comment_tags  # noqa: E402
from mailbot.sources.imap import header_message_id  # noqa: E402
from mailbot.storage import journal_of  # noqa: E402
from mailbot.store import VALIDATOR_ASSIGNED, Store, stamp  # noqa: E402

UK = ZoneInfo("Europe/London")
START = datetime(2027, 1, 12, 10, 0, tzinfo=UK)   # a Tuesday, working hours
BATCH = 500
GROWTH_MESSAGES = 500
MAILDIR_OWNER = 65534   # Dovecot reads mail as `nobody` (tests/servers.py)

log = logging.getLogger("bench")


# ----------------------------------------------------------------- helpers

def maxrss_mib() -> float:
    """The peak resident size of this process so far (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class DeliveryTimer:
    """Time spent in deliver_pending during a poll."""

    seconds: float = 0.0
    calls: int = 0


@contextlib.contextmanager
def timed_delivery() -> Iterator[DeliveryTimer]:
    """Wrap the deliver_pending that Pipeline.poll calls, to time it apart
    (only the name in mailbot.pipeline is replaced, and put back after)."""
    timer = DeliveryTimer()
    names = vars(pipeline_module)
    original = deliver_pending

    def wrapped(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timer.seconds += time.perf_counter() - started
            timer.calls += 1

    names["deliver_pending"] = wrapped
    try:
        yield timer
    finally:
        names["deliver_pending"] = original


def log_to(path: Path) -> None:
    """The daemon logs one INFO line per message: so does the benchmark,
    to a file rather than the terminal."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("mailparser").setLevel(logging.ERROR)


# ------------------------------------------------------- filling a mailbox

def fill_maildir(mailbox: DovecotMailbox, mails: list[mailmix.Mail]) -> float:
    """Write the messages straight into the user's Maildir, owned by the
    user Dovecot reads mail as, nominations first: Dovecot numbers them
    (and so the inbox order) when the folder is next looked at."""
    started = time.perf_counter()
    root = mailbox.maildir
    owner = MAILDIR_OWNER if os.geteuid() == 0 else os.getuid()
    group = MAILDIR_OWNER if os.geteuid() == 0 else os.getgid()
    for sub in ("", "cur", "new", "tmp"):
        (root / sub).mkdir(exist_ok=True)
        os.chown(root / sub, owner, group)
    base = 1_800_000_000
    nominations = [m for m in mails if m.kind == mailmix.NOMINATION]
    rest = [m for m in mails if m.kind != mailmix.NOMINATION]
    n = 0
    for group_of_mail in (nominations, rest):
        for message in group_of_mail:
            name = f"{base + n}.M{n}P{os.getpid()}.bench"
            temp = root / "tmp" / name
            temp.write_bytes(message.data)
            os.chown(temp, owner, group)
            temp.rename(root / "new" / name)
            n += 1
        # Selecting the folder makes Dovecot number what it finds.
        imap = mailbox.client()
        try:
            imap.select_folder("INBOX", readonly=True)
        finally:
            imap.logout()
    return time.perf_counter() - started


# ------------------------------------------------------ (a) the raw limit

@dataclass
class RawResult:
    count: int
    seconds: float
    fetch_seconds: float
    parse_seconds: float
    in_order: bool
    bytes: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def raw_limit(mailbox: DovecotMailbox, expected_ids: list[str]) -> RawResult:
    imap = mailbox.client()
    fetch_seconds = parse_seconds = 0.0
    seen: list[str] = []
    size = 0
    try:
        started = time.perf_counter()
        imap.select_folder("INBOX", readonly=True)
        uids = sorted(imap.search("ALL"))
        for i in range(0, len(uids), BATCH):
            batch = uids[i:i + BATCH]
            t0 = time.perf_counter()
            found = imap.fetch(batch, ["BODY.PEEK[]"])
            t1 = time.perf_counter()
            for uid in batch:
                data: bytes = found[uid][b"BODY[]"]
                size += len(data)
                parsed = mailparser.parse_from_bytes(data)
                fields = (parsed.from_, parsed.to, parsed.subject, parsed.date,
                          parsed.message_id, parsed.text_plain,
                          parsed.text_html, parsed.attachments)
                seen.append(str(fields[4] or ""))
            parse_seconds += time.perf_counter() - t1
            fetch_seconds += t1 - t0
        seconds = time.perf_counter() - started
    finally:
        imap.logout()
    return RawResult(len(seen), seconds, fetch_seconds, parse_seconds,
                     [s.strip("<>") for s in seen]
                     == [e.strip("<>") for e in expected_ids], size)


# ----------------------------------------------- (b) mailbot end to end

@dataclass
class PollResult:
    count: int
    seconds: float
    deliver_seconds: float
    maxrss_mib: float
    cpu_seconds: float = 0.0          # in this process, deliver_pending too
    worker_cpu_seconds: float = 0.0   # in the parsing processes
    outcomes: dict[str, int] = field(default_factory=dict)
    outgoing: dict[str, int] = field(default_factory=dict)
    left_in_inbox: int = 0
    profile: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def handle_rate(self) -> float:
        return self.count / (self.seconds - self.deliver_seconds)


def poll_once(config: Config, profile: bool = False) -> PollResult:
    """Open a mailbot on `config` at START and time one poll."""
    clock = ManualClock(START)
    bot = open_mailbot(config, clock)
    # A running daemon is already logged in when it polls (its last poll
    # or IDLE left the connection open), and (a) is timed after logging
    # in too: a wait of no time connects, and looks for news.
    bot.pipeline.source.wait(0)
    profiler = cProfile.Profile() if profile else None
    try:
        with timed_delivery() as delivery:
            started, cpu, children = (time.perf_counter(),
                                      time.process_time(), _children_cpu())
            if profiler is not None:
                profiler.enable()
            count = bot.pipeline.poll()
            if profiler is not None:
                profiler.disable()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
            children = _children_cpu() - children
        store = bot.store
        outcomes = collections.Counter(
            f"{m['kind']}/{m['outcome']}" for m in store.all_messages())
        outgoing = collections.Counter(
            str(o["status"]) for o in store.all_outgoing())
        outgoing["reply-limited"] = len(store.reply_limited_since(""))
    finally:
        bot.close()
    report = ""
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
        report = out.getvalue()
    return PollResult(count, seconds, delivery.seconds, maxrss_mib(),
                      cpu, children, dict(sorted(outcomes.items())),
                      dict(outgoing), profile=report)


def _children_cpu() -> float:
    """CPU seconds of the child processes ended so far (the parsing
    workers end with the poll)."""
    times = os.times()
    return times.children_user + times.children_system


def end_to_end(mailbox: DovecotMailbox, work: Path,
               profile: bool = False) -> PollResult:
    config = example_config(work, mailbox=mailbox.mailbox_config())
    result = poll_once(config, profile)
    result.left_in_inbox = len(mailbox.folder_messages("INBOX"))
    return result


# ------------------------------------------------------------- (c) growth

@dataclass
class GrowthResult:
    """A record built to one size, and the polls timed on copies of it."""

    size: int
    clusters: int
    schools: int
    build_seconds: float
    record_mib: float
    base: Path  # the record and its inbox, copied for each poll
    polls: list[PollResult] = field(default_factory=list)

    @property
    def each_ms(self) -> list[float]:
        return [1000 * p.seconds / p.count for p in self.polls]

    @property
    def ms_per_message(self) -> float:
        return median(self.each_ms)

    @property
    def handle_ms_per_message(self) -> float:
        return median(1000 * (p.seconds - p.deliver_seconds) / p.count
                      for p in self.polls)


def _kind_for(rng: random.Random) -> str:
    kinds = [k for k, _ in mailmix.SHARES]
    weights = [w for _, w in mailmix.SHARES]
    return rng.choices(kinds, weights)[0]


_HANDLED_AS: dict[str, tuple[str, str, str]] = {
    # mix kind: (record kind, outcome, event)
    mailmix.COMMENT: ("comment", "handled", "comment"),
    mailmix.COMPLETION: ("completion", "handled", "self-review-complete"),
    mailmix.OUT_OF_OFFICE: ("auto-reply", "ignored", "auto-reply"),
    mailmix.BOUNCE: ("bounce", "handled", "undeliverable"),
    mailmix.NEWSLETTER: ("bulk", "set_aside", ""),
    mailmix.VISIT: ("visit-request", "handled", "visit-requested"),
    mailmix.STRANGER: ("other", "set_aside", ""),
}
_RECEIPT = {mailmix.COMMENT: "comment-receipt",
            mailmix.COMPLETION: "completion-receipt",
            mailmix.VISIT: "acknowledgment"}


def build_record(path: Path, size: int, seed: int,
                 validators: Sequence[Validator] = ()
                 ) -> tuple[list[mailmix.Cluster], int]:
    """A record as it would be after `size` handled messages: the clusters
    and schools (as enrolment records them, with the comments they sent),
    one history event per message, the mail sent (invitations, notices,
    receipts), each cluster whose schools have all finished with its
    validator, written through the Store in commits of 2,000 messages."""
    rng = random.Random(seed)
    clusters = max(40, size // 250)
    world = mailmix.make_world(clusters, seed)
    store = Store(path)
    begin = datetime(2026, 8, 17, 9, 0, tzinfo=UTC)
    span = (START.astimezone(UTC) - timedelta(days=2) - begin).total_seconds()
    sent = 0

    def outgoing(kind: str, to: str, at: str, cluster_id: int,
                 school_id: int | None, reply_to: str = "") -> None:
        nonlocal sent
        sent += 1
        store.queue_outgoing({
            "key": f"{kind}:built:{sent}", "kind": kind, "to": [to],
            "cc": [], "subject": f"Digital Schools Awards - {kind}",
            "message_id": f"<built-out.{sent}@dsa.example.org>",
            "status": "sent", "not_before": at, "created_at": at,
            "sent_at": at, "cluster_id": cluster_id, "school_id": school_id,
            "raw": "", "in_reply_to": reply_to})

    contacts: list[tuple[int, int, mailmix.School]] = []
    cluster_ids: list[int] = []  # world's, in order
    created = stamp(begin)
    for cluster in world:
        cluster_id = store.add_cluster({
            "name": cluster.name, "local_authority": cluster.council,
            "status": "active",
            "lead": {"name": cluster.lead_name, "email": cluster.lead_email},
            "validator": None, "created_at": created,
            "message_id": f"<built-nomination.{len(contacts)}@example.sch.uk>",
            "draft": None, "missing": [], "activated_at": created})
        cluster_ids.append(cluster_id)
        for who in ("acknowledgment", "welcome", "council-notice",
                    "council-notice"):
            outgoing(who, cluster.lead_email, created, cluster_id, None)
        for school in cluster.schools:
            school_id = store.add_school({
                "cluster_id": cluster_id, "name": school.name,
                "phase": school.phase, "contact_name": school.contact_name,
                "contact_email": school.contact_email,
                "status": ("already_awarded" if school.already_awarded
                           else "invited"),
                "invited_at": created, "deadline": "2026-09-04",
                "reminders": [], "undeliverable": False})
            outgoing("invitation", school.contact_email, created, cluster_id,
                     school_id)
            contacts.append((cluster_id, school_id, school))
    store.commit()

    completed: set[int] = set()
    sentences = list(mailmix.COMMENT_SENTENCES)
    for n in range(size):
        at = stamp(begin + timedelta(seconds=span * n / size))
        kind = _kind_for(rng)
        cluster_id, school_id, school = rng.choice(contacts)
        sender = school.contact_email
        if kind in (mailmix.NEWSLETTER, mailmix.STRANGER):
            sender = f"someone{n}@elsewhere.example.com"
        record_kind, outcome, event = _HANDLED_AS[kind]
        message_id = f"<built.{n}@{sender.partition('@')[2]}>"
        store.record_message({
            "key": f"maildir:built.{n}", "message_id": message_id,
            "from": sender, "subject": f"{record_kind} from {school.name}",
            "received_at": at, "outcome": outcome, "kind": record_kind,
            "reason": f"{record_kind} ({school.name})",
            "cluster_id": cluster_id if event else None,
            "school_id": school_id if event else None})
        if kind == mailmix.COMMENT:
            text = "\n\n".join(" ".join(rng.sample(sentences, 4))
                               for _ in range(rng.randint(2, 4)))
            # Tagged as the workflow tags a comment when it arrives.
            store.add_comment(school_id, {"received_at": at, "text": text,
                                          "message_id": message_id,
                                          "tags": comment_tags(text)})
        elif kind == mailmix.COMPLETION:
            completed.add(school_id)
        if event:
            detail = sender if kind == mailmix.BOUNCE else ""
            store.add_event(datetime.fromisoformat(at), event,
                            cluster_id=cluster_id, school_id=school_id,
                            message_id=message_id, detail=detail)
        if kind in _RECEIPT:
            outgoing(_RECEIPT[kind], sender, at, cluster_id, school_id,
                     message_id)
        if n % 2000 == 1999:
            store.commit()
    for _, school_id, _ in contacts:
        if school_id in completed:
            store.update_school(school_id, {"status": "self_review_complete",
                                            "completed_at": created})
    # mailbot gives a cluster its validator (and proposes its matrix of
    # supports) with the message that finishes its last school, so a
    # record after that message has them. Without this, most clusters of
    # the larger records (most of whose schools have finished) waited for
    # their validator until the poll timed on them, which then did for
    # thirty clusters what earlier messages would have done.
    load: collections.Counter[str] = collections.Counter()
    unfinished = {cluster_id for cluster_id, school_id, school in contacts
                  if school_id not in completed and not school.already_awarded}
    for cluster, cluster_id in zip(world, cluster_ids, strict=True):
        chosen = None if cluster_id in unfinished else choose_validator(
            validators, cluster.council, load)
        if chosen is None:
            continue
        load[chosen.email] += 1
        store.update_cluster(cluster_id, {
            "status": VALIDATOR_ASSIGNED,
            "validator": {"name": chosen.name, "email": chosen.email},
            "validator_assigned_at": created, "ready_at": created,
            "support_proposal": {
                "standings": {}, "unknown": [], "ties": [], "fallbacks": [],
                "status": "proposed", "version": 1, "by": "mailbot",
                "proposed_at": created}})
        store.add_event(begin, "validator-assigned", cluster_id=cluster_id,
                        detail=chosen.email)
        outgoing("validator-assignment", chosen.email, created, cluster_id,
                 None)
        outgoing("validator-assignment", cluster.lead_email, created,
                 cluster_id, None)
    store.commit()
    store.close()
    return world, sum(len(c.schools) for c in world)


def build_growth(size: int, work: Path, seed: int) -> GrowthResult:
    """A record of `size` handled messages under work/base, with an inbox
    of GROWTH_MESSAGES more beside it; no poll yet."""
    base = work / "base"
    config = example_config(base)
    started = time.perf_counter()
    world, schools = build_record(config.store_path, size, seed,
                                  config.validators)
    build_seconds = time.perf_counter() - started
    store = config.store_path
    record_bytes = sum(p.stat().st_size for p in (store, journal_of(store))
                       if p.exists())

    maker = mailmix.MailMaker(world, seed + size,
                              start=START.astimezone(UTC) - timedelta(hours=2))
    inbox = config.mailbox.path
    for sub in ("cur", "new", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    for n, message in enumerate(maker.mix(GROWTH_MESSAGES)):
        name = f"{1_800_000_000 + n}.M{n}P{os.getpid()}.bench"
        (inbox / "tmp" / name).write_bytes(message.data)
        (inbox / "tmp" / name).rename(inbox / "new" / name)
    return GrowthResult(size, len(world), schools, build_seconds,
                        record_bytes / 2**20, base)


def poll_growth(grown: GrowthResult, run: Path) -> PollResult:
    """One poll of the inbox on a fresh copy of the record, in `run`."""
    shutil.copytree(grown.base, run)
    # The copy (up to 200 MB) reaches the disk before the timing starts:
    # the poll's own commits must not wait behind it.
    os.sync()
    try:
        return poll_once(example_config(run))
    finally:
        shutil.rmtree(run, ignore_errors=True)


# -------------------------------------------------------------- reporting

def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(f"  {name:<{width}}{value}" for name, value in rows)


def timed(what: str, step: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = step()
    say(f"  {what}: {time.perf_counter() - started:.1f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000,
                        help="messages in the mailbox for (a) and (b)")
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="record sizes for (c), comma-separated")
    parser.add_argument("--trials", type=int, default=5,
                        help="times (a) and (b) are measured, in turn; "
                        "the medians are reported")
    parser.add_argument("--seed", type=int, default=mailmix.SEED)
    parser.add_argument("--profile", action="store_true",
                        help="also run (b) again under cProfile, on a fresh "
                        "mailbox, and print the top functions")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folders (and say where)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    log_to(work / "bench.log")
    say(f"mailbot benchmark: {args.messages} messages, record sizes "
        f"{', '.join(map(str, sizes))}; seed {args.seed}; "
        f"{os.cpu_count()} cores")

    world, mails = timed("generating mail", lambda: mailmix.generate(
        args.messages, seed=args.seed))
    kinds = collections.Counter(m.kind for m in mails)
    average = sum(len(m.data) for m in mails) / max(len(mails), 1)
    say(f"  {len(world)} clusters, "
        f"{sum(len(c.schools) for c in world)} schools; "
        f"average message {average / 1024:.1f} KiB; "
        + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))

    server = DovecotServer()
    server.start()
    trials: list[tuple[RawResult, PollResult]] = []
    try:
        expected = [header_message_id(m.data) for m in mails]
        for trial in range(1, max(args.trials, 1) + 1):
            mailbox = server.new_mailbox()
            seconds = fill_maildir(mailbox, mails)
            say(f"trial {trial}: filling the Maildir: {seconds:.1f} s")
            raw = raw_limit(mailbox, expected)
            e2e = end_to_end(mailbox, work / f"e2e-{trial}")
            trials.append((raw, e2e))
            say(f"  (a) raw limit: {raw.count} messages in {raw.seconds:.2f} s"
                f" (fetch {raw.fetch_seconds:.2f} s, parse "
                f"{raw.parse_seconds:.2f} s), {raw.rate:,.0f} msg/s; "
                f"{raw.bytes / raw.count / 1024:.1f} KiB each over IMAP; "
                f"inbox order as generated: {'yes' if raw.in_order else 'NO'}")
            say(f"  (b) mailbot, one poll: {e2e.count} messages in "
                f"{e2e.seconds:.2f} s, of which deliver_pending "
                f"{e2e.deliver_seconds:.2f} s; {e2e.handle_rate:,.0f} msg/s "
                f"to record + queue, ratio {e2e.handle_rate / raw.rate:.3f}; "
                f"{e2e.left_in_inbox} left in the inbox")
            say(f"      CPU: {1000 * e2e.cpu_seconds / e2e.count:.2f} ms per "
                f"message in mailbot's process (sending included), "
                f"{1000 * e2e.worker_cpu_seconds / e2e.count:.2f} ms in its "
                "parsing processes")
        say("  (b) outcomes: " + ", ".join(
            f"{k} {v}" for k, v in e2e.outcomes.items()))
        say("  (b) outgoing: " + ", ".join(
            f"{k} {v}" for k, v in e2e.outgoing.items()))

        profiled: PollResult | None = None
        if args.profile:
            say("(b) again under cProfile, on a fresh mailbox")
            second = server.new_mailbox()
            fill_maildir(second, mails)
            profiled = end_to_end(second, work / "profiled", profile=True)
    finally:
        server.remove()

    say("(c) growth: 500 more messages on a record of each size")
    grown: list[GrowthResult] = []
    for size in sizes:
        result = build_growth(size, work / f"growth-{size}", args.seed)
        grown.append(result)
        say(f"  {size:>7} messages ({result.clusters} clusters, "
            f"{result.schools} schools): built in "
            f"{result.build_seconds:.1f} s ({result.record_mib:.0f} MiB on "
            "disk)")
    # The sizes in turn, each poll on a fresh copy of its record: a drift
    # of the machine's speed then falls on every size alike.
    for trial in range(1, max(args.trials, 1) + 1):
        for result in grown:
            result.polls.append(poll_growth(
                result, work / f"growth-{result.size}" / f"run-{trial}"))
    for result in grown:
        say(f"  {result.size:>7} messages: {result.ms_per_message:.1f} ms per "
            f"message (each turn: "
            + ", ".join(f"{ms:.1f}" for ms in result.each_ms)
            + f"), {result.handle_ms_per_message:.1f} ms without "
            "deliver_pending")
        if not args.keep:
            shutil.rmtree(work / f"growth-{result.size}", ignore_errors=True)

    raws = [r.rate for r, _ in trials]
    handled = [e.handle_rate for _, e in trials]
    ratios = [e.handle_rate / r.rate for r, e in trials]
    sent = [e.rate / r.rate for r, e in trials]
    rows = [
        ("raw limit (fetch+parse)", f"{median(raws):,.0f} msg/s"
         + _spread(raws, ",.0f")),
        ("mailbot to record + queue", f"{median(handled):,.0f} msg/s"
         + _spread(handled, ",.0f")),
        ("  ratio", f"{median(ratios):.2f} (target >= 0.5)"
         + _spread(ratios, ".2f")),
        ("  and sending the queue",
         (f"{median(e.rate for _, e in trials):,.0f} msg/s   "
          f"ratio {median(sent):.2f}")),
        ("peak memory (after b)",
         f"{max(e.maxrss_mib for _, e in trials):,.0f} MiB"),
    ]
    if grown:
        first, last = grown[0], grown[-1]
        labels = " / ".join(_short(g.size) for g in grown)
        rows.append((f"per message at {labels}",
                     " / ".join(f"{g.ms_per_message:.1f}" for g in grown)
                     + f" ms   ratio {_short(last.size)}/{_short(first.size)}"
                     f" = {last.ms_per_message / first.ms_per_message:.2f}"
                     " (target <= 2)"))
        rows.append(("  without deliver_pending",
                     " / ".join(f"{g.handle_ms_per_message:.1f}"
                                for g in grown) + " ms"))
        rows.append(("building the records",
                     " / ".join(f"{g.build_seconds:.1f}" for g in grown)
                     + " s"))
        rows.append(("peak memory (after c)", f"{maxrss_mib():,.0f} MiB"))
    rows.append(("whole benchmark", f"{time.perf_counter() - began:.0f} s"))
    say("")
    say(table(rows))

    if profiled is not None:
        say("\n(b) under cProfile (slower than above), top by cumulative "
            "and by own time:")
        say(profiled.profile)
    if args.keep:
        say(f"\nkept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _spread(values: list[float], form: str) -> str:
    """'   (3 trials: low to high)', or nothing for one trial."""
    if len(values) < 2:
        return ""
    return (f"   ({len(values)} trials: {format(min(values), form)} to "
            f"{format(max(values), form)})")


def _short(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


if __name__ == "__main__":
    raise SystemExit(main())
