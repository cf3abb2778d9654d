"""Killing the daemon with SIGKILL at any moment loses nothing, applies
nothing twice and sends nothing twice: a run killed again and again ends
with the same record and the same mail as a run left alone."""

from __future__ import annotations

import email
import email.policy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import ROOT, faked_clock, make_mail, sample

from mailbot.store import Store

START = "2027-01-12 10:00:00"  # a working Tuesday, under faketime
CONTACTS = [
    ("Alan Reid", "a.reid@glenbrae-ps.fife.example.sch.uk"),
    ("Fiona Baird", "headteacher@kirkton-ps.fife.example.sch.uk"),
    ("Declan O'Neill", "d.oneill@stserfs.fife.example.sch.uk"),
    ("Shona Grant", "s.grant@inverbrora-ps.highland.example.sch.uk"),
    ("Iain Munro", "admin@lochside-ps.highland.example.sch.uk"),
    ("Paul Kerr", "pkerr@carronvale-hs.falkirk.example.sch.uk"),
    ("Lynn Shaw", "lshaw@westquarter-ps.falkirk.example.sch.uk"),
]


def mail_batch(count: int) -> list[bytes]:
    """Nominations, then a realistic mix from the schools they name."""
    rng = random.Random(7)
    batch = [sample(n) for n in ("01-nomination-list", "02-nomination-csv",
                                 "03-nomination-outlook-html",
                                 "10-nomination-incomplete")]
    for n in range(count - len(batch)):
        name, address = rng.choice(CONTACTS)
        kind = rng.random()
        if kind < 0.7:
            body = f"Comment number {n}: our digital leaders met today."
        elif kind < 0.8:
            body = "We have completed the self-review."
        elif kind < 0.9:
            body = "Thank you for your email. I am out of the office."
        else:
            body = f"Question {n}: is there a dress code for the visit?"
        raw = make_mail(f"{name} <{address}>", f"Message {n}", body,
                        Message_ID=f"<crash-{n}@school.example.org>")
        if 0.8 <= kind < 0.9:
            raw = b"Auto-Submitted: auto-replied\r\n" + raw
        batch.append(raw)
    return batch


def prepare(home: Path, batch: list[bytes]) -> None:
    home.mkdir()
    config = (ROOT / "config.example.toml").read_text()
    (home / "config.toml").write_text(config.replace("poll_seconds = 60",
                                                     "poll_seconds = 1"))
    for sub in ("rules", "templates"):
        os.symlink(ROOT / sub, home / sub)
    new = home / "data" / "inbox" / "new"
    new.mkdir(parents=True)
    # One signing key for every home, so that two runs of the same mail
    # put the same references in the subjects they send.
    key = home / "data" / "mailbot.key"
    key.write_text("crash-test-key-" + "k" * 40 + "\n")
    key.chmod(0o600)
    for n, raw in enumerate(batch):
        (new / f"{1_800_000_000 + n}.M{n:04d}.crash").write_bytes(raw)


def mailbot(home: Path, *args: str, at: str = START
            ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", *args],
        cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=faked_clock(at), start_new_session=True)


def events(history: list[dict[str, object]]) -> list[tuple[str, int]]:
    return sorted(Counter(str(entry.get("event")) for entry in history).items())


def outcome(home: Path) -> tuple[dict[str, object], Counter[tuple[str, ...]]]:
    """The record and the mail sent, without the times and ids that differ
    between two runs of the same mail."""
    out = subprocess.run([sys.executable, "-m", "mailbot", "export"], cwd=home,
                         capture_output=True, check=True).stdout
    record = json.loads(out)
    for cluster in record["clusters"]:
        # Times (created_at, activated_at, started_at...) follow the clock,
        # which runs on from each start: a busy machine moves them.
        for key in [k for k in cluster if k.endswith("_at")]:
            cluster.pop(key)
        for key in [k for k in cluster.get("support_proposal") or {}
                    if k.endswith("_at")]:
            cluster["support_proposal"].pop(key)
        # Histories as what happened, how often: their times and the ids
        # of the mail mailbot sent differ between runs.
        cluster["history"] = events(cluster.get("history", []))
        for school in cluster["schools"]:
            school["history"] = events(school.get("history", []))
            for key in [k for k in school if k.endswith("_at")]:
                school.pop(key)
            # Its invitation's status counts; when it was due and went
            # follow the clock.
            if school.get("invitation"):
                school["invitation"] = school["invitation"]["status"]
            for comment in school["comments"]:
                comment.pop("received_at")
    for item in record["set_aside"]:
        item.pop("received_at", None)
    sent: Counter[tuple[str, ...]] = Counter()
    for path in (home / "data" / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(),
                                           policy=email.policy.default)
        sent[(str(message["X-Mailbot-Kind"]), str(message["To"]),
              str(message["Cc"] or ""), str(message["Subject"]))] += 1
    return record, sent


def test_killed_runs_end_as_an_uninterrupted_run(tmp_path: Path) -> None:
    batch = mail_batch(300)
    calm, killed = tmp_path / "calm", tmp_path / "killed"
    prepare(calm, batch)
    prepare(killed, batch)

    started = time.monotonic()
    assert mailbot(calm, "run", "--once").wait(timeout=300) == 0
    # Kills land anywhere from start-up to just past the end of a run,
    # however fast the machine is today: a run of the whole batch takes
    # this long here. (Fixed delays made the test vacuous on a loaded
    # machine: every kill came before the first commit.)
    whole = time.monotonic() - started

    rng = random.Random(11)
    for _ in range(15):
        daemon = mailbot(killed, "run")
        time.sleep(rng.uniform(0.1, 1.2) * whole)
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()
    # Real progress: some kills came once mail was being recorded (moves
    # come only at the end of a poll, so the inbox is no measure of it).
    assert len(Store(killed / "data" / "mailbot.json").all_messages()) > 0
    # One last calm run finishes whatever the last kill interrupted. Each
    # start went back to START (faketime), so it comes a little later, as
    # it would in life, when everything queued is due.
    assert mailbot(killed, "run", "--once", at="2027-01-12 10:30:00"
                   ).wait(timeout=300) == 0

    calm_record, calm_sent = outcome(calm)
    killed_record, killed_sent = outcome(killed)
    assert killed_record == calm_record
    assert killed_sent == calm_sent
    assert sum(calm_sent.values()) > 50  # receipts are capped per address
    ids = [email.message_from_bytes(p.read_bytes())["Message-ID"]
           for p in (killed / "data" / "outbox").glob("*.eml")]
    assert len(ids) == len(set(ids))
    handled = list((killed / "data" / "inbox").glob(".*/cur/*"))
    assert len(handled) == len(batch)
    shutil.rmtree(tmp_path)
