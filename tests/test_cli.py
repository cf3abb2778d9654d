"""The `mailbot` command as a person runs it: in a folder of its own, with
config.toml copied from the example."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import faked_clock

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "mailbot" / "demo_mail"


def mailbot(home: Path, *args: str, at: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailbot", *args]
    # A fixed moment in working hours, so that the outcome does not depend
    # on when the suite runs.
    env = faked_clock(at) if at else {**os.environ, "TZ": "UTC"}
    result = subprocess.run(command, cwd=home, capture_output=True, text=True,
                            timeout=120, env=env, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def deliver(home: Path, name: str) -> None:
    new = home / "data" / "inbox" / "new"
    new.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / f"{name}.eml", new / f"{time.time_ns()}.{name}")


def test_check_config_passes_on_the_example(home: Path) -> None:
    result = mailbot(home, "check-config")
    assert "OK" in result.stdout
    assert "3 validators, 32 council contacts" in result.stdout


def test_a_bad_config_is_named_by_file_and_key(home: Path) -> None:
    config = home / "config.toml"
    config.write_text(config.read_text().replace("poll_seconds = 60",
                                                 "poll_seconds = -5"))
    result = mailbot(home, "check-config", check=False)
    assert result.returncode == 2
    assert f"{config}: schedule.poll_seconds: must be at least 1" in result.stderr


def test_a_mistake_in_a_branch_of_a_template_stops_check_config(
        home: Path) -> None:
    """Line 5 of reminder.txt, the subject of a reminder not yet overdue,
    is in a branch the main example (overdue) does not take."""
    (home / "templates").unlink()
    shutil.copytree(ROOT / "templates", home / "templates")
    reminder = home / "templates" / "reminder.txt"
    lines = reminder.read_text().splitlines()
    lines[4] = "Subject: Reminder: due {{ deadline|nosuchfilter }}"
    reminder.write_text("\n".join(lines) + "\n")
    result = mailbot(home, "check-config", check=False)
    assert result.returncode == 2
    assert f"{reminder}: line 5: No filter named 'nosuchfilter'" in result.stderr


def test_a_missing_config_says_what_to_do(tmp_path: Path) -> None:
    result = mailbot(tmp_path, "status", check=False)
    assert result.returncode == 2
    assert "config.toml" in result.stderr and "config.example.toml" in result.stderr


def test_run_once_then_export_status_and_digest(home: Path) -> None:
    deliver(home, "01-nomination-list")
    deliver(home, "09-newsletter")
    run = mailbot(home, "run", "--once", at="2027-01-12 12:00:00")
    assert "handled" in run.stderr  # one line per message

    exported = json.loads(mailbot(home, "export").stdout)
    cluster = exported["clusters"][0]
    assert set(cluster) >= {"name", "local_authority", "status", "lead_contact",
                            "validator", "schools"}
    assert cluster["lead_contact"]["email"] == \
        "m.lindsay@glenbrae-hs.fife.example.sch.uk"
    assert cluster["validator"] is None
    school = cluster["schools"][0]
    assert set(school) >= {"name", "phase", "contact_name", "contact_email",
                           "status", "comments"}
    assert {s["status"] for s in cluster["schools"]} == {"invited",
                                                         "already_awarded"}
    assert exported["set_aside"][0]["from"] == "news@edtech-weekly.example.com"
    assert set(exported["set_aside"][0]) >= {"message_id", "from", "subject",
                                             "reason"}

    status = mailbot(home, "status").stdout
    assert "Glenbrae Cluster" in status and "St Serf's RC Primary School" in status
    # Both name each cluster and school by the number staff commands take.
    assert f"#{cluster['id']} Glenbrae Cluster" in status
    assert {f"#{s['id']} {s['name']}" in status
            for s in cluster["schools"]} == {True}
    assert len({s["id"] for s in cluster["schools"]}) == 5
    assert "Last poll: 20" in status

    preview = mailbot(home, "digest", "--preview").stdout
    assert preview.startswith("To: coordinator@dsa.example.org\nSubject: ")
    # The digest went out with the run; the preview shows the next one.
    assert "1 cluster, 5 schools" in preview

    outbox = list((home / "data" / "outbox").glob("*.eml"))
    assert len(outbox) >= 9
    assert (home / "data" / "inbox" / ".Handled").is_dir()
    assert not list((home / "data" / "inbox" / "new").iterdir())


def test_the_daemon_stops_cleanly_on_sigterm(home: Path) -> None:
    config = home / "config.toml"
    config.write_text(config.read_text().replace("poll_seconds = 60",
                                                 "poll_seconds = 1"))
    daemon = subprocess.Popen([sys.executable, "-m", "mailbot", "run"], cwd=home,
                              stderr=subprocess.PIPE, text=True)
    try:
        deliver(home, "05-self-review-complete")
        _wait_for(lambda: not list((home / "data/inbox/new").iterdir()))

        second = mailbot(home, "run", "--once", check=False)
        assert second.returncode == 1
        assert "another mailbot" in second.stderr

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    log = daemon.stderr.read() if daemon.stderr else ""
    assert "received SIGTERM" in log and "mailbot stopped" in log


def test_demo_plays_the_journey(home: Path) -> None:
    result = mailbot(home, "demo")
    assert "Isla Fraser" in result.stdout  # Glenbrae's validator
    sent = list((home / "data" / "demo" / "outbox").glob("*.eml"))
    assert len(sent) > 30
    assert not (home / "data" / "outbox").exists()  # real data untouched
    # Its own signing key too: its references must not hold for the real
    # record (the demo once signed with the real key).
    assert (home / "data" / "demo" / "mailbot.key").exists()
    assert not (home / "data" / "mailbot.key").exists()


def _wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_check_config_finds_a_missing_password_and_clear_text_login(
        home: Path) -> None:
    config = home / "config.toml"
    config.write_text(config.read_text().replace(
        'kind = "file"', 'kind = "smtp"\nhost = "smtp.example.org"\n'
        'security = "none"\nusername = "programme"\n'
        'password_env = "MAILBOT_TEST_UNSET"'))
    result = mailbot(home, "check-config", check=False)
    assert result.returncode == 2
    assert ("config.toml: sending.password_env: the environment variable "
            "MAILBOT_TEST_UNSET is not set") in result.stderr

    env_file = home / "smtp-password"
    env_file.write_text("secret\n")
    config.write_text(config.read_text().replace(
        'password_env = "MAILBOT_TEST_UNSET"', 'password_file = "smtp-password"'))
    result = mailbot(home, "check-config")
    assert 'sending.security = "none" sends the password in clear' in result.stdout
    assert "secret" not in result.stdout + result.stderr


def test_a_username_without_a_password_source_is_refused(home: Path) -> None:
    config = home / "config.toml"
    config.write_text(config.read_text().replace(
        'kind = "file"', 'kind = "smtp"\nhost = "smtp.example.org"\n'
        'username = "programme"'))
    result = mailbot(home, "check-config", check=False)
    assert result.returncode == 2
    assert "sending.password_env: a username needs" in result.stderr


def test_check_config_finds_a_missing_oauth_secret(home: Path) -> None:
    """OAuth sections have no password: check-config looks for the client
    secret and refresh token instead (it once passed with neither set)."""
    config = home / "config.toml"
    config.write_text(config.read_text().replace(
        'kind = "file"', 'kind = "smtp"\nhost = "smtp.gmail.com"\n'
        'username = "programme@dsa.example.org"\nauth = "google"\n'
        'client_id = "123.apps.googleusercontent.com"\n'
        'client_secret_file = "google-secret"\n'
        'refresh_token_env = "MAILBOT_TEST_UNSET_REFRESH"'))
    (home / "google-secret").write_text("s3cret-value\n")
    result = mailbot(home, "check-config", check=False)
    assert result.returncode == 2
    assert ("sending.refresh_token_env: the environment variable "
            "MAILBOT_TEST_UNSET_REFRESH is not set") in result.stderr
    assert "s3cret-value" not in result.stdout + result.stderr


def test_a_misspelt_key_is_named_with_the_one_it_was_meant_to_be(
        home: Path) -> None:
    config = home / "config.toml"
    config.write_text(config.read_text().replace("poll_seconds = 60",
                                                 "pol_seconds = 60"))
    result = mailbot(home, "check-config", check=False)
    assert result.returncode == 2
    assert (f"{config}: schedule.pol_seconds: unknown key (did you mean "
            "poll_seconds?)") in result.stderr


def test_a_data_folder_that_cannot_be_used_is_said_in_one_line(
        home: Path) -> None:
    # Guards a bug found so: a record that could not be opened (a full or
    # read-only disk, a folder in the way) stopped start-up with a traceback.
    (home / "data").write_text("not a folder")
    result = mailbot(home, "status", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("mailbot: cannot go on: ")
    assert "data" in result.stderr and "Traceback" not in result.stderr


def test_terminal_controls_from_mail_reach_neither_terminal_nor_log(
        home: Path) -> None:
    # Guards a bug found so: a cluster named with an escape sequence in a
    # nomination was written raw by `status`, `digest --preview` and the
    # daemon's log, for the terminal of whoever read them to act on.
    nomination = (SAMPLES / "01-nomination-list.eml").read_bytes().replace(
        b"Cluster name: Glenbrae Cluster",
        b"Cluster name: Glen=1B]0;PWNED=07=1B[2Jbrae =C2=9B31m Cluster")
    new = home / "data" / "inbox" / "new"
    new.mkdir(parents=True)
    (new / "1.nomination").write_bytes(nomination)
    at = "2027-01-12 12:00:00"
    ran = mailbot(home, "run", "--once", at=at)
    shown = [ran.stderr] + [mailbot(home, *command, at=at).stdout
                            for command in (("status",), ("digest", "--preview"),
                                            ("export",))]

    assert "PWNED" in "".join(shown[:3])  # the name is there, written out
    for text in shown:
        assert not any(ch in text for ch in "\x1b\x07\x9b"), text[:200]
    assert json.loads(shown[3])["clusters"][0]["name"].startswith(
        "Glen\x1b]0;PWNED")  # the record itself is unchanged
