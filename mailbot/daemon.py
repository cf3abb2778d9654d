"""The long-running job: poll the inbox and sweep on an APScheduler clock.

`run --once` calls the same poll and sweep once and returns; the daemon
runs them on intervals until SIGTERM or Ctrl-C, letting a job in progress
finish before it stops. A failing job is logged and tried again at its
next turn; it never takes the daemon down.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from mailbot.app import Mailbot
from mailbot.errors import TransientError

log = logging.getLogger(__name__)


def cycle(bot: Mailbot) -> bool:
    """One poll and one sweep: the whole of `run --once`. False if either
    failed, so that cron or a script can tell."""
    polled = poll(bot)
    swept = sweep(bot)
    return polled and swept


def poll(bot: Mailbot) -> bool:
    return _guarded("poll", bot.pipeline.poll)


def sweep(bot: Mailbot) -> bool:
    return _guarded("sweep", bot.pipeline.sweep)


def _guarded(job: str, step: Callable[[], object]) -> bool:
    """Run one job; a failure is logged and the job tried at its next turn.

    One message's trouble never gets here (it is set aside): what does is
    the mailbox, the mail server or the disk.
    """
    try:
        result = step()
    except TransientError as exc:
        log.warning("%s failed, will try again: %s", job, exc)
        return False
    except Exception:
        log.exception("%s failed", job)
        return False
    if isinstance(result, int) and result:
        log.info("%s handled %d message%s", job, result,
                 "" if result == 1 else "s")
    return True


def run_forever(bot: Mailbot) -> None:
    schedule = bot.config.schedule
    # One worker thread: the store has one owner, so jobs never overlap.
    scheduler = BlockingScheduler(
        timezone="UTC", executors={"default": ThreadPoolExecutor(1)})
    scheduler.add_job(poll, "interval", args=[bot], id="poll",
                      seconds=schedule.poll_seconds, max_instances=1,
                      coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.add_job(sweep, "interval", args=[bot], id="sweep",
                      seconds=schedule.sweep_seconds, max_instances=1,
                      coalesce=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping after the current job",
                 signal.Signals(signum).name)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("mailbot running: polling every %ss, sweeping every %ss",
             schedule.poll_seconds, schedule.sweep_seconds)
    scheduler.start()
    log.info("mailbot stopped")
