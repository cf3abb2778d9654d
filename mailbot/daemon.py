"""The long-running job: poll the inbox, wait for mail, sweep when due.

Everything that touches the record runs in the main thread, one step at
a time, because the store has one owner:

    poll -> sweep, if one fell due -> wait on the mailbox -> poll ...

The wait ends when new mail may have arrived (IMAP IDLE, a delivery to a
Maildir) or when the next poll is due, whichever comes first. APScheduler
only keeps the sweep's clock: its job raises a flag that the loop takes
up after the next poll, so a poll and a sweep never run at once.
SIGTERM and Ctrl-C end the wait at once, or let a poll or sweep in
progress finish, then stop.

`run --once` is the same poll and sweep, once. A failing job is logged
and tried again at its next turn; it never takes the daemon down.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from mailbot import health
from mailbot.app import Mailbot
from mailbot.errors import ConfigError, TransientError

log = logging.getLogger(__name__)


def cycle(bot: Mailbot) -> bool:
    """One poll and one sweep: the whole of `run --once`. False if either
    failed, so that cron or a script can tell."""
    polled = poll(bot)
    swept = sweep(bot)
    return polled and swept


def poll(bot: Mailbot) -> bool:
    pipeline = bot.pipeline
    failure = _attempt("poll", pipeline.poll)
    _attempt("poll watch", lambda: health.after_poll(
        pipeline.flow, pipeline.sender, failure))
    return failure is None


def sweep(bot: Mailbot) -> bool:
    return _attempt("sweep", bot.pipeline.sweep) is None


def _attempt(job: str, step: Callable[[], object]) -> Exception | None:
    """Run one job; a failure is logged, returned, and the job tried at
    its next turn.

    One message's trouble never gets here (it is set aside): what does is
    the mailbox, the mail server or the disk.
    """
    try:
        result = step()
    except TransientError as exc:
        log.warning("%s failed, will try again: %s", job, exc)
        return exc
    except ConfigError as exc:
        # A setting to fix (a password not set, a certificate not
        # trusted): the message says which; a traceback would bury it.
        log.error("%s failed until the configuration is fixed: %s", job, exc)
        return exc
    except Exception as exc:
        log.exception("%s failed", job)
        return exc
    if isinstance(result, int) and result:
        log.info("%s handled %d message%s", job, result,
                 "" if result == 1 else "s")
    return None


class Daemon:
    """The loop of `mailbot run`; `stop()` may come from a signal."""

    def __init__(self, bot: Mailbot) -> None:
        self.bot = bot
        self.source = bot.pipeline.source
        self._stopping = threading.Event()
        # Set by the scheduler's thread, taken up by the loop. The first
        # turn sweeps, as `run --once` does.
        self._sweep_due = threading.Event()
        self._sweep_due.set()

    def run(self) -> None:
        schedule = self.bot.config.schedule
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(self._sweep_due.set, "interval", id="sweep",
                          seconds=schedule.sweep_seconds, coalesce=True,
                          max_instances=1)
        scheduler.start()
        log.info("mailbot running: polling at least every %ss, sweeping "
                 "every %ss", schedule.poll_seconds, schedule.sweep_seconds)
        try:
            while not self._stopping.is_set():
                self.turn()
        finally:
            scheduler.shutdown(wait=False)
        log.info("mailbot stopped")

    def turn(self) -> None:
        """Poll, sweep if one is due, then wait until the next poll."""
        started = time.monotonic()
        poll(self.bot)
        if self._sweep_due.is_set() and not self._stopping.is_set():
            self._sweep_due.clear()
            sweep(self.bot)
        if self._stopping.is_set():
            return
        left = self.bot.config.schedule.poll_seconds - (
            time.monotonic() - started)
        if left <= 0:
            return
        try:
            self.source.wait(left)
        except Exception:
            # Waiting is only a shortcut to the next poll: never fatal.
            log.exception("waiting for new mail failed")
            self._stopping.wait(left)

    def stop(self) -> None:
        """Stop after the step in progress; safe from a signal handler."""
        self._stopping.set()
        self.source.interrupt()


def run_forever(bot: Mailbot) -> None:
    daemon = Daemon(bot)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping after the current job",
                 signal.Signals(signum).name)
        daemon.stop()

    previous = {number: signal.signal(number, stop)
                for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.run()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
