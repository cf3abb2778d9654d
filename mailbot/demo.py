"""`mailbot demo`: the bundled sample mail, played through a fresh mailbot.

The demo keeps its own Maildir, outbox and record in a folder of its own,
so it never touches the real data. It moves a simulated clock through the
programme's first weeks: nominations arrive, schools are invited, write
comments, forget, are reminded, finish, and a validator is assigned.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from mailbot import daemon
from mailbot.app import Mailbot, open_mailbot
from mailbot.clock import ManualClock
from mailbot.config import Config
from mailbot.report import status_table
from mailbot.store import INVITED

UK = ZoneInfo("Europe/London")

# (when, what the reader is told, the sample files that arrive then)
TIMELINE = [
    ("2027-01-12 09:35", ("Nominations arrive, with an out-of-office, a "
     "bounce and a newsletter"), ["01-nomination-list", "02-nomination-csv",
                                 "03-nomination-outlook-html", "06-out-of-office",
                                 "07-bounce", "09-newsletter",
                                 "10-nomination-incomplete"]),
    ("2027-01-14 15:05", "A school writes with comments",
     ["04-comment-reply"]),
    ("2027-01-18 11:05", "A school has finished its self-review",
     ["05-self-review-complete"]),
    ("2027-01-19 10:00", "A week after the invitations: first reminders", []),
    ("2027-01-24 10:00", "Sunday: nothing is sent outside working hours", []),
    ("2027-01-25 09:00", ("Monday: the reminder that fell due on Sunday, "
     "two days before the deadline"), []),
    ("2027-01-26 14:00", ("The rest of Glenbrae finishes (written by the demo)"
     ", so Glenbrae gets its validator"), ["@glenbrae-completions"]),
    ("2027-01-27 09:00", ("The day after the deadline: overdue reminders, "
     "with the lead contacts copied"), []),
    ("2027-03-23 10:05", "A school applies for a validation visit",
     ["08-visit-request"]),
]


def run_demo(config: Config, folder: str) -> int:
    base = config.base_dir / folder
    if base.exists():
        shutil.rmtree(base)
    demo_config = dataclasses.replace(
        config,
        mailbox=dataclasses.replace(config.mailbox, kind="maildir",
                                    path=base / "inbox"),
        sending=dataclasses.replace(config.sending, kind="file",
                                    path=base / "outbox"),
        store_path=base / "mailbot.json",
        # A key of its own: the demo's references must not work for the
        # real record.
        security=dataclasses.replace(config.security,
                                     key_file=base / "mailbot.key"),
    )
    first = datetime.fromisoformat(TIMELINE[0][0]).replace(tzinfo=UK)
    clock = ManualClock(first)
    bot = open_mailbot(demo_config, clock)
    inbox = demo_config.mailbox.path
    outbox = demo_config.sending.path
    try:
        for when, story, arrivals in TIMELINE:
            clock.set(datetime.fromisoformat(when).replace(tzinfo=UK))
            print(f"\n== {clock.now().astimezone(UK):%a %d %b %Y %H:%M}: {story}")
            for name in arrivals:
                for raw in _arrival(name, bot, clock):
                    _deliver(inbox, raw)
            before = _count(outbox)
            daemon.cycle(bot)
            sent = _count(outbox) - before
            print(f"   {sent} message{'' if sent == 1 else 's'} sent")
        print("\n" + status_table(bot.store, clock.now()))
    finally:
        bot.close()
    print(f"Every message sent is in {outbox}; the record is in "
          f"{demo_config.store_path}.")
    return 0


def _arrival(name: str, bot: Mailbot, clock: ManualClock) -> list[bytes]:
    if name == "@glenbrae-completions":
        return _completions(bot, clock)
    sample = resources.files("mailbot") / "demo_mail" / f"{name}.eml"
    return [sample.read_bytes()]


def _completions(bot: Mailbot, clock: ManualClock) -> list[bytes]:
    """Completion notices from the Glenbrae schools still to finish."""
    store = bot.store
    cluster = next(c for c in store.all_clusters()
                   if c.get("name") == "Glenbrae Cluster")
    found = []
    for school in store.schools_of(cluster.doc_id):
        if school["status"] != INVITED:
            continue
        message = EmailMessage()
        message["From"] = f"{school['contact_name']} <{school['contact_email']}>"
        message["To"] = bot.config.programme_address
        message["Subject"] = f"{school['name']}: self-review done"
        message["Date"] = format_datetime(clock.now())
        message["Message-ID"] = make_msgid(domain="demo.example.org")
        message.set_content("Hello,\n\nWe have now completed the self-review "
                            "on the website.\n\nThanks\n")
        found.append(message.as_bytes())
    return found


def _deliver(inbox: Path, raw: bytes) -> None:
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}.demo.mailbot"
    (inbox / "tmp" / name).write_bytes(raw)
    (inbox / "tmp" / name).rename(inbox / "new" / name)


def _count(outbox: Path) -> int:
    return len(list(outbox.glob("*.eml"))) if outbox.exists() else 0
