"""Loading the config: the example runs as it is, and every mistake is
named by file and key."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import pytest
from servers import ThrowawayCA

from mailbot import config as config_module
from mailbot import rules as rules_module
from mailbot.councils import COUNCILS
from mailbot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "config.example.toml").read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_runs_on_the_embedded_default(tmp_path: Path) -> None:
    config = config_module.load(write(tmp_path, EXAMPLE))
    assert config.programme_address == "programme@dsa.example.org"
    assert config.staff == ("coordinator@dsa.example.org",)
    assert set(config.councils) == set(COUNCILS)
    assert len(config.validators) >= 2
    assert config.mailbox.kind == "maildir"
    assert config.mailbox.path == tmp_path / "data" / "inbox"
    assert config.sending.kind == "file"
    assert config.sending.path == tmp_path / "data" / "outbox"
    assert config.store_path == tmp_path / "data" / "mailbot.json"
    assert config.schedule.poll_alert_minutes == 30
    assert config.mailbox.reconnect_attempts == 5
    assert config.mailbox.idle_renew_seconds == 1500


@pytest.mark.parametrize("change, key", [
    (('kind = "maildir"', 'kind = "pop3"'), "mailbox.kind"),
    (('poll_seconds = 60', 'poll_seconds = "often"'), "schedule.poll_seconds"),
    (('digest_time = "07:30"', 'digest_time = "half seven"'),
     "schedule.digest_time"),
    (('[store]', '[store]\ncolour = "blue"'), "store.colour"),
    (('address = "programme@dsa.example.org"', 'address = "programme"'),
     "programme.address"),
    (('exclude_councils = ["Fife"]', 'exclude_councils = ["Fyfe"]'),
     "validators[1].exclude_councils"),
    (('"Fife" = {', '"Kingdom of Fife" = {'), "councils.Kingdom of Fife"),
    (('path = "data/mailbot.json"',
      'path = "data/mailbot.json"\n[mailbox2]'), "mailbox2"),
    (('poll_alert_minutes = 30', 'poll_alert_minutes = 0'),
     "schedule.poll_alert_minutes"),
    (('# idle_renew_seconds = 1500', 'idle_renew_seconds = 1800'),
     "mailbox.idle_renew_seconds"),
    (('# reconnect_attempts = 5', 'reconnect_attempts = 0'),
     "mailbox.reconnect_attempts"),
])
def test_a_mistake_is_named_by_file_and_key(tmp_path: Path, change: tuple[str, str],
                                            key: str) -> None:
    old, new = change
    assert old in EXAMPLE
    path = write(tmp_path, EXAMPLE.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    assert caught.value.key == key
    assert str(path.resolve()) in str(caught.value)


def test_a_password_in_the_file_is_refused(tmp_path: Path) -> None:
    text = EXAMPLE.replace('kind = "file"', 'kind = "smtp"\nhost = "smtp.x.org"'
                           '\npassword = "hunter2"')
    with pytest.raises(ConfigError) as caught:
        config_module.load(write(tmp_path, text))
    assert caught.value.key == "sending.password"
    assert "hunter2" not in str(caught.value)


def test_secrets_come_from_the_environment_or_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "imap-secret"
    secret_file.write_text("from-a-file\n")
    text = EXAMPLE.replace(
        'kind = "maildir"',
        'kind = "imap"\nhost = "imap.x.org"\nusername = "u"\n'
        'password_file = "imap-secret"').replace(
        'kind = "file"', 'kind = "smtp"\nhost = "smtp.x.org"\n'
        'password_env = "TEST_SMTP_SECRET"')
    config = config_module.load(write(tmp_path, text))
    assert config.mailbox.password.value() == "from-a-file"
    monkeypatch.setenv("TEST_SMTP_SECRET", "from-the-environment")
    assert config.sending.password.value() == "from-the-environment"
    monkeypatch.delenv("TEST_SMTP_SECRET")
    with pytest.raises(ConfigError, match="TEST_SMTP_SECRET"):
        config.sending.password.value()


CA_LINE = '# ca_file = "our-ca.pem"'


def with_ca_file(section: str, value: str) -> str:
    """The example with `ca_file = value` in [mailbox] or [sending]."""
    assert EXAMPLE.count(CA_LINE) == 2
    before, mailbox_part, sending_part = EXAMPLE.split(CA_LINE)
    line = f"ca_file = {value}"
    if section == "mailbox":
        return before + line + mailbox_part + CA_LINE + sending_part
    return before + CA_LINE + mailbox_part + line + sending_part


@pytest.mark.parametrize("section", ["mailbox", "sending"])
def test_a_ca_file_is_found_from_the_config_folder(
        tmp_path: Path, test_ca: ThrowawayCA, section: str) -> None:
    shutil.copy(test_ca.ca_file, tmp_path / "our-ca.pem")
    config = config_module.load(
        write(tmp_path, with_ca_file(section, '"our-ca.pem"')))
    assert getattr(config, section).ca_file == tmp_path / "our-ca.pem"
    other = config.sending if section == "mailbox" else config.mailbox
    assert other.ca_file is None
    # The CA is added to those the system trusts, and checks stay on.
    context = config_module.tls_context(getattr(config, section).ca_file)
    plain = config_module.tls_context()
    assert len(context.get_ca_certs()) == len(plain.get_ca_certs()) + 1
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("section", ["mailbox", "sending"])
@pytest.mark.parametrize("value, problem", [
    ('"missing.pem"', "no such file"),
    ('"folder"', "not a file"),
    ('"garbage.pem"', "no usable CA certificate"),
    ('"empty.pem"', "no usable CA certificate"),
    ('""', "must name a file"),
    ("true", "must be text in quotes"),
])
def test_a_bad_ca_file_is_named_by_key(tmp_path: Path, section: str,
                                       value: str, problem: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    (tmp_path / "empty.pem").write_text("")
    path = write(tmp_path, with_ca_file(section, value))
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    assert caught.value.key == f"{section}.ca_file"
    assert problem in caught.value.problem
    assert str(path.resolve()) in str(caught.value)


def test_unreadable_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[programme\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_module.load(path)


def test_the_config_path_comes_from_flag_then_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILBOT_CONFIG", "/etc/mailbot.toml")
    assert config_module.config_path("given.toml") == Path("given.toml")
    assert config_module.config_path(None) == Path("/etc/mailbot.toml")
    monkeypatch.delenv("MAILBOT_CONFIG")
    assert config_module.config_path(None) == Path("config.toml")


def test_the_rules_load_and_a_bad_cadence_is_named(tmp_path: Path) -> None:
    rules = rules_module.load(ROOT / "rules")
    assert rules.deadline_days == 14
    assert [r.name for r in rules.reminders] == ["first", "deadline-near",
                                                 "overdue"]
    assert rules.reminders[2].copy_lead is True

    for name in ("programme.toml", "phrases.toml"):
        (tmp_path / name).write_text((ROOT / "rules" / name).read_text())
    programme = tmp_path / "programme.toml"
    programme.write_text(programme.read_text().replace(
        "after_invitation_days = 7",
        "after_invitation_days = 7\nbefore_deadline_days = 3"))
    with pytest.raises(ConfigError) as caught:
        rules_module.load(tmp_path)
    assert caught.value.key == "reminders[0]"
    assert caught.value.path.endswith("programme.toml")


@pytest.mark.parametrize("file, old, new, key", [
    ("programme.toml", "[working_hours]", "[workinghours]", "workinghours"),
    ("programme.toml", "deadline_days = 14", "deadline_day = 14",
     "self_review.deadline_day"),
    ("programme.toml", "\ncopy_lead = true", '\ncopy_lead = "yes"',
     "reminders[2].copy_lead"),
    ("programme.toml", 'public = "GB-SCT"', 'public = "SCOTLAND"',
     "holidays.public"),
    ("phrases.toml", "completion = [", "completon = [", "completon"),
    ("phrases.toml", '    "validation visit",', '    "",', "visit_request[0]"),
])
def test_a_mistake_in_the_rules_is_named_by_file_and_key(
        tmp_path: Path, file: str, old: str, new: str, key: str) -> None:
    for name in ("programme.toml", "phrases.toml"):
        (tmp_path / name).write_text((ROOT / "rules" / name).read_text())
    target = tmp_path / file
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        rules_module.load(tmp_path)
    assert caught.value.key == key
    assert caught.value.path == str(target)


# ------------------------------------------------------------------ OAuth

def with_oauth(mailbox: str = "", sending: str = "") -> str:
    """The example, reading IMAP and sending SMTP, with these keys."""
    text = EXAMPLE.replace(
        'kind = "maildir"',
        'kind = "imap"\nhost = "outlook.office365.com"\n'
        'username = "programme@dsa.example.org"\n' + mailbox, 1)
    return text.replace(
        'kind = "file"',
        'kind = "smtp"\nhost = "smtp.office365.com"\n'
        'username = "programme@dsa.example.org"\n' + sending, 1)


MICROSOFT = ('auth = "microsoft"\ntenant_id = "contoso.onmicrosoft.com"\n'
             'client_id = "0b9e8f2c-app"\n'
             'client_secret_env = "TEST_MS_SECRET"\n')
GOOGLE = ('auth = "google"\nclient_id = "123.apps.googleusercontent.com"\n'
          'client_secret_file = "google-secret"\n'
          'refresh_token_env = "TEST_GOOGLE_REFRESH"\n')


def test_oauth_settings_are_read(tmp_path: Path) -> None:
    config = config_module.load(write(tmp_path, with_oauth(MICROSOFT, GOOGLE)))
    mailbox, sending = config.mailbox.oauth, config.sending.oauth
    assert config.mailbox.auth == "microsoft"
    assert mailbox is not None and sending is not None
    assert mailbox.tenant_id == "contoso.onmicrosoft.com"
    assert mailbox.client_secret.env == "TEST_MS_SECRET"
    assert mailbox.authority == "https://login.microsoftonline.com"
    assert mailbox.scope == "https://outlook.office365.com/.default"
    assert mailbox.key("client_secret") == "mailbox.client_secret_env"
    assert config.sending.auth == "google"
    assert sending.client_secret.file == tmp_path / "google-secret"
    assert sending.refresh_token.env == "TEST_GOOGLE_REFRESH"
    assert sending.token_url == "https://oauth2.googleapis.com/token"
    assert sending.scope == "https://mail.google.com/"
    assert sending.key("refresh_token") == "sending.refresh_token_env"


def test_password_stays_the_default(tmp_path: Path) -> None:
    config = config_module.load(write(tmp_path, with_oauth(
        'password_env = "X"\n', 'password_env = "Y"\n')))
    assert config.mailbox.auth == config.sending.auth == "password"
    assert config.mailbox.oauth is config.sending.oauth is None


def test_the_token_endpoint_can_be_moved_for_tests_or_another_cloud(
        tmp_path: Path) -> None:
    config = config_module.load(write(tmp_path, with_oauth(
        MICROSOFT + 'authority = "https://login.microsoftonline.us/"\n'
        'scope = "https://outlook.office365.us/.default"\n',
        GOOGLE + 'token_url = "https://127.0.0.1:8443/token"\n')))
    assert config.mailbox.oauth is not None
    assert config.mailbox.oauth.authority == "https://login.microsoftonline.us"
    assert config.mailbox.oauth.scope == "https://outlook.office365.us/.default"
    assert config.sending.oauth is not None
    assert config.sending.oauth.token_url == "https://127.0.0.1:8443/token"


@pytest.mark.parametrize("mailbox, key", [
    ('auth = "kerberos"\npassword_env = "X"\n', "mailbox.auth"),
    (MICROSOFT.replace('tenant_id = "contoso.onmicrosoft.com"\n', ""),
     "mailbox.tenant_id"),
    (MICROSOFT.replace('client_id = "0b9e8f2c-app"\n', ""),
     "mailbox.client_id"),
    (MICROSOFT.replace('client_secret_env = "TEST_MS_SECRET"\n', ""),
     "mailbox.client_secret_env"),
    (MICROSOFT + 'client_secret = "hunter2"\n', "mailbox.client_secret"),
    (MICROSOFT + 'client_secret_file = "s"\n', "mailbox.client_secret_env"),
    (MICROSOFT + 'password_env = "X"\n', "mailbox.password_env"),
    (MICROSOFT + 'refresh_token_env = "X"\n', "mailbox.refresh_token_env"),
    (MICROSOFT + 'token_url = "https://x.example/t"\n', "mailbox.token_url"),
    (MICROSOFT + 'authority = "http://login.example"\n', "mailbox.authority"),
    (MICROSOFT + 'authority = "login.example"\n', "mailbox.authority"),
    (MICROSOFT.replace('"contoso.onmicrosoft.com"', '"a/b"'),
     "mailbox.tenant_id"),
    (MICROSOFT.replace('"0b9e8f2c-app"', '""'), "mailbox.client_id"),
    (GOOGLE.replace('refresh_token_env = "TEST_GOOGLE_REFRESH"\n', ""),
     "mailbox.refresh_token_env"),
    (GOOGLE + 'refresh_token = "1//x"\n', "mailbox.refresh_token"),
    (GOOGLE + 'tenant_id = "t"\n', "mailbox.tenant_id"),
    (GOOGLE + 'token_url = "https://x.example/t?a=1"\n', "mailbox.token_url"),
    ('password_env = "X"\nclient_id = "c"\n', "mailbox.client_id"),
])
def test_an_oauth_mistake_is_named_by_key(tmp_path: Path, mailbox: str,
                                          key: str) -> None:
    path = write(tmp_path, with_oauth(mailbox, 'password_env = "Y"\n'))
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    assert caught.value.key == key
    assert str(path.resolve()) in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_oauth_needs_a_server_and_a_username(tmp_path: Path) -> None:
    text = EXAMPLE.replace('kind = "maildir"',
                           'kind = "maildir"\n' + MICROSOFT, 1)
    with pytest.raises(ConfigError) as caught:
        config_module.load(write(tmp_path, text))
    assert caught.value.key == "mailbox.auth"

    text = EXAMPLE.replace('kind = "file"', 'kind = "smtp"\n'
                           'host = "smtp.gmail.com"\n' + GOOGLE, 1)
    with pytest.raises(ConfigError) as caught:
        config_module.load(write(tmp_path, text))
    assert caught.value.key == "sending.username"


def test_a_secret_names_its_setting_when_missing_or_empty(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty password variable once passed check-config, and a missing
    one was reported without the key that names it."""
    empty = tmp_path / "empty-password"
    empty.write_text("\n")
    secret = config_module.Secret(env="MAILBOT_TEST_SECRET", config="c.toml",
                                  key="mailbox.password_env")
    monkeypatch.delenv("MAILBOT_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"^c\.toml: mailbox\.password_env: "
                       "the environment variable MAILBOT_TEST_SECRET is not set"):
        secret.value()
    monkeypatch.setenv("MAILBOT_TEST_SECRET", "  ")
    with pytest.raises(ConfigError, match="MAILBOT_TEST_SECRET is empty"):
        secret.value()
    in_file = config_module.Secret(file=empty, config="c.toml",
                                   key="mailbox.password_file")
    with pytest.raises(ConfigError, match=r"mailbox\.password_file: .* is empty"):
        in_file.value()
