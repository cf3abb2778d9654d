"""The long-running job: poll the inbox and sweep on an APScheduler clock.

`run --once` calls the same poll and sweep once and returns; the daemon
runs them on intervals until SIGTERM or Ctrl-C, letting a job in progress
finish before it stops. A failing job is logged and tried again at its
next turn; it never takes the daemon down.
"""

from __future__ import annotations

import logging
import signal
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
    try:
        count = bot.pipeline.poll()
    except TransientError as exc:
        log.warning("poll failed, will try again: %s", exc)
        return False
    except Exception:
        # Not one message's fault (those are set aside): the mailbox or
        # the disk. Say so loudly and try again at the next turn.
        log.exception("poll failed")
        return False
    if count:
        log.info("poll handled %d message%s", count, "" if count == 1 else "s")
    return True


def sweep(bot: Mailbot) -> bool:
    try:
        bot.pipeline.sweep()
    except TransientError as exc:
        log.warning("sweep failed, will try again: %s", exc)
        return False
    except Exception:
        log.exception("sweep failed")
        return False
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
