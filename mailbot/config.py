"""The configuration file, loaded once into frozen, typed objects.

Every key is checked here: an unknown key, a wrong type or a missing value
stops start-up with the file and the key named. Relative paths are taken
from the config file's folder. Secrets never sit in the file itself: a
password comes from the environment variable or the file that it names.

TLS to a mail server always checks the server's certificate and name;
`ca_file` only adds CAs (a private one) to those the system trusts.

With `auth = "microsoft"` or `"google"` a section logs in with OAuth 2.0
(XOAUTH2) instead of a password: `OAuthConfig` holds what mailbot.oauth
needs to get an access token, the client secret and refresh token again
only as `Secret`s.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import ssl
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailbot.councils import COUNCILS
from mailbot.errors import ConfigError
from mailbot.mail import normalise_address

DEFAULT_PATH = "config.toml"
IDLE_LIMIT_SECONDS = 29 * 60
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Contact:
    name: str
    email: str


@dataclass(frozen=True)
class Validator:
    name: str
    email: str
    exclude_councils: tuple[str, ...] = ()


@dataclass(frozen=True)
class Secret:
    """Where a password comes from; `value()` reads it when it is needed.
    `config` and `key` name the setting in errors."""

    env: str = ""
    file: Path | None = None
    config: str = ""
    key: str = ""

    def value(self) -> str:
        if self.env:
            found = os.environ.get(self.env)
            if found is None:
                raise self._error(f"the environment variable {self.env} "
                                  "is not set")
            if not found.strip():
                raise self._error(f"the environment variable {self.env} "
                                  "is empty")
            return found
        if self.file is not None:
            try:
                found = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise self._error(f"cannot read {self.file}: "
                                  f"{exc.strerror or exc}") from exc
            if not found:
                raise self._error(f"{self.file} is empty")
            return found
        return ""

    def _error(self, problem: str) -> ConfigError:
        return ConfigError(self.config or "config", self.key, problem)


AUTH_KINDS = ("password", "microsoft", "google")
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_SCOPE = "https://mail.google.com/"
# The keys of [mailbox] and [sending] that only OAuth uses.
OAUTH_KEYS = {"tenant_id", "client_id", "client_secret", "client_secret_env",
              "client_secret_file", "refresh_token", "refresh_token_env",
              "refresh_token_file", "authority", "token_url", "scope"}


@dataclass(frozen=True)
class OAuthConfig:
    """How one section gets its OAuth 2.0 access tokens.

    microsoft: the client credentials flow of an app registered in
    `tenant_id` (msal), at `authority` + "/" + tenant_id.
    google: a refresh token, exchanged at `token_url`.
    """

    provider: str           # "microsoft" or "google"
    section: str            # "mailbox" or "sending", to name keys in errors
    client_id: str
    client_secret: Secret
    scope: str
    tenant_id: str = ""
    refresh_token: Secret = field(default_factory=Secret)
    # Microsoft: the cloud's login address, without the tenant.
    authority: str = MICROSOFT_AUTHORITY
    # Google: where a refresh token is exchanged for an access token.
    token_url: str = GOOGLE_TOKEN_URL
    # CA certificates (PEM) trusted besides the system's, for the token
    # endpoint as for the mail server.
    ca_file: Path | None = None
    timeout_seconds: float = 60.0

    def key(self, name: str) -> str:
        """The config key of a setting, e.g. "mailbox.client_secret_env"."""
        secret = {"client_secret": self.client_secret,
                  "refresh_token": self.refresh_token}.get(name)
        if secret is not None:
            name += "_env" if secret.env else "_file"
        return f"{self.section}.{name}"


@dataclass(frozen=True)
class MailboxConfig:
    kind: str
    path: Path
    handled_folder: str
    set_aside_folder: str
    host: str = ""
    port: int = 0
    security: str = "tls"
    username: str = ""
    password: Secret = field(default_factory=Secret)
    folder: str = "INBOX"
    timeout_seconds: float = 60.0
    # Tries to connect for one step before the poll gives up.
    reconnect_attempts: int = 5
    # IDLE is ended and issued again this often (RFC 2177: under 29 min).
    idle_renew_seconds: float = 1500.0
    # CA certificates (PEM) trusted besides the system's, for TLS.
    ca_file: Path | None = None
    # "password", or "microsoft"/"google" with `oauth` set (XOAUTH2).
    auth: str = "password"
    oauth: OAuthConfig | None = None


@dataclass(frozen=True)
class SendingConfig:
    kind: str
    path: Path
    host: str = ""
    port: int = 0
    security: str = "starttls"
    username: str = ""
    password: Secret = field(default_factory=Secret)
    timeout_seconds: float = 60.0
    # CA certificates (PEM) trusted besides the system's, for TLS.
    ca_file: Path | None = None
    # "password", or "microsoft"/"google" with `oauth` set (XOAUTH2).
    auth: str = "password"
    oauth: OAuthConfig | None = None


@dataclass(frozen=True)
class ScheduleConfig:
    poll_seconds: int
    sweep_seconds: int
    digest_time: time
    digest_weekdays_only: bool
    # Staff are alerted once polling has failed for this long.
    poll_alert_minutes: int = 30


@dataclass(frozen=True)
class SecurityConfig:
    # The key that signs the tokens in mail mailbot sends (mailbot/tokens.py);
    # made on first start when missing, readable by its owner only.
    key_file: Path
    # authserv-ids of the receiving servers whose Authentication-Results
    # headers (RFC 8601) are believed; any other such header is ignored.
    authserv_ids: tuple[str, ...] = ()
    # Replies go to programme+TOKEN@domain (the mail server must deliver
    # plus addresses to the programme mailbox).
    plus_addressing: bool = False


@dataclass(frozen=True)
class PrivacyConfig:
    # Copies of whole messages (set-aside copies, the text of mail sent,
    # handled mail in the mailbox) are removed after this many days; the
    # record of what happened stays.
    keep_raw_days: int = 365


@dataclass(frozen=True)
class Config:
    path: Path
    programme_name: str
    programme_address: str
    sender_name: str
    staff: tuple[str, ...]
    education_scotland: Contact
    councils: dict[str, Contact]
    validators: tuple[Validator, ...]
    mailbox: MailboxConfig
    sending: SendingConfig
    store_path: Path
    schedule: ScheduleConfig
    rules_dir: Path
    templates_dir: Path
    log_level: str
    security: SecurityConfig
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset({self.programme_address})

    @property
    def programme_people(self) -> frozenset[str]:
        """Staff, validators, council contacts and Education Scotland."""
        return frozenset({*self.staff, *(v.email for v in self.validators),
                          *(c.email for c in self.councils.values()),
                          self.education_scotland.email})


def is_loopback(host: str) -> bool:
    """Is `host` this machine (where a password in clear stays local)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A client TLS context for a mail server. The server's certificate
    must chain to a CA that the system trusts, or to one in `ca_file`
    (PEM), and must be for the host name mailbot connected to; neither
    check can be turned off. OSError (ssl.SSLError is one) if `ca_file`
    cannot be read or holds no certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        # Added to the default trust, which create_default_context(cafile=)
        # would replace.
        context.load_verify_locations(cafile=ca_file)
    return context


def config_path(given: str | None) -> Path:
    """The config file to use: --config, else $MAILBOT_CONFIG, else ./config.toml."""
    return Path(given or os.environ.get("MAILBOT_CONFIG") or DEFAULT_PATH)


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    """"unknown key", with the known name it was likely meant to be."""
    near = difflib.get_close_matches(name, list(known), n=1)
    return f"unknown {what}" + (f" (did you mean {near[0]}?)" if near else "")


def load(path: Path) -> Config:
    path = path.absolute()  # errors name the file the same way throughout
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, "", "no such file (copy config.example.toml "
                          "from mailbot's folder, or name another with "
                          "--config or $MAILBOT_CONFIG)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from exc
    return _Reader(path.resolve()).config(raw)


class _Reader:
    """Walks the parsed TOML, naming file and key in every complaint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.path, key, problem)

    def table(self, raw: dict[str, Any], key: str, allowed: set[str],
              required: bool = True) -> dict[str, Any]:
        value = raw.get(key.rsplit(".", 1)[-1])
        if value is None:
            if required:
                raise self.fail(key, "missing section")
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        for name in value:
            if name not in allowed:
                raise self.fail(f"{key}.{name}", unknown("key", name, allowed))
        return value

    def get(self, table: dict[str, Any], section: str, key: str,
            kind: type, default: Any = ...) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{section}.{key}", "missing")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{section}.{key}", f"must be {_KIND_NAMES[kind]}")
        return value

    def email(self, table: dict[str, Any], section: str, key: str) -> str:
        given = self.get(table, section, key, str)
        value = normalise_address(given)
        if not _EMAIL.match(value):
            raise self.fail(f"{section}.{key}", f"{given!r} is not an email address")
        return value

    def file_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    def secret(self, table: dict[str, Any], section: str,
               name: str = "password") -> Secret:
        if name in table:
            what = "passwords" if name == "password" else "secrets"
            raise self.fail(f"{section}.{name}",
                            f"{what} do not belong in the config file; "
                            f"use {name}_env or {name}_file")
        env = self.get(table, section, f"{name}_env", str, "")
        file = self.get(table, section, f"{name}_file", str, "")
        if env and file:
            raise self.fail(f"{section}.{name}_env",
                            f"give {name}_env or {name}_file, not both")
        return Secret(env=env, file=self.file_path(file) if file else None,
                      config=str(self.path),
                      key=f"{section}.{name}_env" if env else f"{section}.{name}_file")

    def auth(self, table: dict[str, Any], section: str, kind: str,
             server_kind: str) -> str:
        """The `auth` key; "password" unless an OAuth provider is named.
        The keys of one way to log in are refused with the other."""
        auth = self.get(table, section, "auth", str, "password")
        if auth not in AUTH_KINDS:
            raise self.fail(f"{section}.auth",
                            "must be password, microsoft or google")
        if auth == "password":
            if extra := sorted(OAUTH_KEYS & set(table)):
                raise self.fail(f"{section}.{extra[0]}", "only used with "
                                "auth = \"microsoft\" or \"google\"")
            return auth
        if kind != server_kind:
            raise self.fail(f"{section}.auth", f"auth = {auth!r} needs "
                            f"kind = \"{server_kind}\"")
        for name in ("password", "password_env", "password_file"):
            if name in table:
                raise self.fail(f"{section}.{name}",
                                f"auth = {auth!r} logs in with OAuth 2.0, "
                                "not a password; remove this key")
        return auth

    def oauth(self, table: dict[str, Any], section: str, auth: str,
              ca_file: Path | None, timeout: float) -> OAuthConfig | None:
        """What OAuth needs, for auth = "microsoft" or "google"."""
        if auth == "password":
            return None
        if not table.get("username"):
            raise self.fail(f"{section}.username",
                            f"auth = {auth!r} needs the mailbox address "
                            "to log in as")
        only = ({"tenant_id", "authority"} if auth == "google" else
                {"refresh_token", "refresh_token_env", "refresh_token_file",
                 "token_url"})
        if extra := sorted(only & set(table)):
            raise self.fail(f"{section}.{extra[0]}",
                            f"not used with auth = {auth!r}")
        client_id = self.word(table, section, "client_id")
        client_secret = self.required_secret(table, section, "client_secret")
        if auth == "microsoft":
            return OAuthConfig(
                provider=auth, section=section, client_id=client_id,
                client_secret=client_secret,
                tenant_id=self.word(table, section, "tenant_id"),
                authority=self.https_url(table, section, "authority",
                                         MICROSOFT_AUTHORITY),
                scope=self.word(table, section, "scope", MICROSOFT_SCOPE),
                ca_file=ca_file, timeout_seconds=timeout)
        return OAuthConfig(
            provider=auth, section=section, client_id=client_id,
            client_secret=client_secret,
            refresh_token=self.required_secret(table, section,
                                               "refresh_token"),
            token_url=self.https_url(table, section, "token_url",
                                     GOOGLE_TOKEN_URL),
            scope=self.word(table, section, "scope", GOOGLE_SCOPE),
            ca_file=ca_file, timeout_seconds=timeout)

    def word(self, table: dict[str, Any], section: str, key: str,
             default: Any = ...) -> str:
        """A value that must not be empty or hold spaces (an id)."""
        value: str = self.get(table, section, key, str, default)
        if not value.strip() or any(c.isspace() for c in value) \
                or ("/" in value and key != "scope"):
            raise self.fail(f"{section}.{key}",
                            "must be an id without spaces"
                            + ("" if key == "scope" else " or slashes"))
        return value

    def required_secret(self, table: dict[str, Any], section: str,
                        name: str) -> Secret:
        secret = self.secret(table, section, name)
        if not (secret.env or secret.file):
            raise self.fail(f"{section}.{name}_env",
                            f"missing: give {name}_env or {name}_file")
        return secret

    def https_url(self, table: dict[str, Any], section: str, key: str,
                  default: str) -> str:
        """An https address (for testing, or a sovereign cloud)."""
        value: str = self.get(table, section, key, str, default)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 -- raises ValueError if malformed
        except ValueError as exc:
            raise self.fail(f"{section}.{key}",
                            f"{value!r} is not a URL") from exc
        if parts.scheme != "https" or not parts.hostname \
                or parts.query or parts.fragment:
            raise self.fail(f"{section}.{key}",
                            f"{value!r} must be an https:// address "
                            "without ?query or #fragment")
        return value.rstrip("/")

    def ca_file(self, table: dict[str, Any], section: str) -> Path | None:
        """The file of extra CA certificates, checked now so that a mistake
        shows at start-up rather than at the first connection."""
        key = f"{section}.ca_file"
        given = self.get(table, section, "ca_file", str, None)
        if given is None:
            return None
        if not given.strip():
            raise self.fail(key, "must name a file of CA certificates (PEM)")
        path = self.file_path(given)
        if not path.exists():
            raise self.fail(key, f"{path}: no such file")
        if not path.is_file():
            raise self.fail(key, f"{path}: not a file")
        try:
            with path.open("rb") as opened:
                opened.read(1)
        except OSError as exc:
            raise self.fail(key, f"{path}: cannot read: "
                            f"{exc.strerror or exc}") from exc
        try:
            tls_context(path)
        except OSError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise self.fail(key, f"{path}: holds no usable CA certificate "
                            f"in PEM form ({reason})") from exc
        return path

    def security(self, table: dict[str, Any], section: str, default: str) -> str:
        value = self.get(table, section, "security", str, default)
        if value not in ("tls", "starttls", "none"):
            raise self.fail(f"{section}.security", "must be tls, starttls or none")
        return value

    def config(self, raw: dict[str, Any]) -> Config:
        for name in raw:
            if name not in _SECTIONS:
                raise self.fail(name, unknown("section or key", name, _SECTIONS))

        prog = self.table(raw, "programme",
                          {"name", "address", "sender_name", "staff"})
        staff = self.get(prog, "programme", "staff", list)
        if not staff:
            raise self.fail("programme.staff", "needs at least one address")
        staff_addresses = tuple(
            self.email({"staff": s}, "programme", "staff") for s in staff
        )

        es = self.table(raw, "education_scotland", {"name", "email"})
        education_scotland = Contact(
            self.get(es, "education_scotland", "name", str),
            self.email(es, "education_scotland", "email"),
        )

        return Config(
            path=self.path,
            programme_name=self.get(prog, "programme", "name", str),
            programme_address=self.email(prog, "programme", "address"),
            sender_name=self.get(prog, "programme", "sender_name", str),
            staff=staff_addresses,
            education_scotland=education_scotland,
            councils=self.councils(raw),
            validators=self.validators(raw),
            mailbox=self.mailbox(raw),
            sending=self.sending(raw),
            store_path=self.file_path(self.get(
                self.table(raw, "store", {"path"}), "store", "path", str)),
            schedule=self.schedule(raw),
            rules_dir=self.file_path(self.get(
                self.table(raw, "paths", {"rules", "templates"}),
                "paths", "rules", str)),
            templates_dir=self.file_path(self.get(
                self.table(raw, "paths", {"rules", "templates"}),
                "paths", "templates", str)),
            log_level=self.log_level(raw),
            security=self.security_section(raw),
            privacy=self.privacy(raw),
        )

    def councils(self, raw: dict[str, Any]) -> dict[str, Contact]:
        table = self.table(raw, "councils", set(COUNCILS))
        found = {}
        for council, entry in table.items():
            key = f"councils.{council}"
            if not isinstance(entry, dict):
                raise self.fail(key, "must be a table with name and email")
            for name in entry:
                if name not in ("name", "email"):
                    raise self.fail(f"{key}.{name}", "unknown key")
            found[council] = Contact(self.get(entry, key, "name", str),
                                     self.email(entry, key, "email"))
        return found

    def validators(self, raw: dict[str, Any]) -> tuple[Validator, ...]:
        entries = raw.get("validators", [])
        if not isinstance(entries, list):
            raise self.fail("validators", "must be an array of tables")
        pool = []
        for n, entry in enumerate(entries):
            key = f"validators[{n}]"
            if not isinstance(entry, dict):
                raise self.fail(key, "must be a table")
            for name in entry:
                if name not in ("name", "email", "exclude_councils"):
                    raise self.fail(f"{key}.{name}", "unknown key")
            excluded = self.get(entry, key, "exclude_councils", list, [])
            for council in excluded:
                if council not in COUNCILS:
                    raise self.fail(f"{key}.exclude_councils",
                                    f"{council!r} is not one of the 32 councils")
            pool.append(Validator(self.get(entry, key, "name", str),
                                  self.email(entry, key, "email"),
                                  tuple(excluded)))
        emails = [v.email for v in pool]
        if len(set(emails)) != len(emails):
            raise self.fail("validators", "the same address appears twice")
        return tuple(pool)

    def mailbox(self, raw: dict[str, Any]) -> MailboxConfig:
        s = "mailbox"
        t = self.table(raw, s, {
            "kind", "path", "handled_folder", "set_aside_folder", "host",
            "port", "security", "username", "password", "password_env",
            "password_file", "folder", "timeout_seconds",
            "reconnect_attempts", "idle_renew_seconds", "ca_file", "auth",
            *OAUTH_KEYS})
        kind = self.get(t, s, "kind", str)
        if kind not in ("maildir", "imap"):
            raise self.fail(f"{s}.kind", "must be maildir or imap")
        security = self.security(t, s, "tls")
        auth = self.auth(t, s, kind, "imap")
        if kind == "imap" and auth == "password" and not (
                "password_env" in t or "password_file" in t):
            raise self.fail(f"{s}.password_env",
                            "imap needs password_env or password_file")
        attempts = self.get(t, s, "reconnect_attempts", int, 5)
        if attempts < 1:
            raise self.fail(f"{s}.reconnect_attempts", "must be at least 1")
        renew = self.get(t, s, "idle_renew_seconds", float, 1500.0)
        if not 1 <= renew <= IDLE_LIMIT_SECONDS:  # RFC 2177: 29 minutes
            raise self.fail(f"{s}.idle_renew_seconds",
                            f"must be from 1 to {IDLE_LIMIT_SECONDS}")
        ca_file = self.ca_file(t, s)
        timeout = self.get(t, s, "timeout_seconds", float, 60.0)
        return MailboxConfig(
            kind=kind,
            path=self.file_path(self.get(t, s, "path", str, "data/inbox")),
            handled_folder=self.get(t, s, "handled_folder", str, "Handled"),
            set_aside_folder=self.get(t, s, "set_aside_folder", str, "Set aside"),
            host=self.get(t, s, "host", str, "" if kind == "maildir" else ...),
            port=self.get(t, s, "port", int, 993 if security == "tls" else 143),
            security=security,
            username=self.get(t, s, "username", str,
                              "" if kind == "maildir" else ...),
            password=self.secret(t, s),
            folder=self.get(t, s, "folder", str, "INBOX"),
            timeout_seconds=timeout,
            reconnect_attempts=attempts,
            idle_renew_seconds=renew,
            ca_file=ca_file,
            auth=auth,
            oauth=self.oauth(t, s, auth, ca_file, timeout),
        )

    def sending(self, raw: dict[str, Any]) -> SendingConfig:
        s = "sending"
        t = self.table(raw, s, {
            "kind", "path", "host", "port", "security", "username",
            "password", "password_env", "password_file", "timeout_seconds",
            "ca_file", "auth", *OAUTH_KEYS})
        kind = self.get(t, s, "kind", str)
        if kind not in ("file", "smtp"):
            raise self.fail(f"{s}.kind", "must be file or smtp")
        security = self.security(t, s, "starttls")
        auth = self.auth(t, s, kind, "smtp")
        if auth == "password" and t.get("username") and not (
                "password_env" in t or "password_file" in t):
            raise self.fail(f"{s}.password_env", "a username needs "
                            "password_env or password_file")
        ca_file = self.ca_file(t, s)
        timeout = self.get(t, s, "timeout_seconds", float, 60.0)
        return SendingConfig(
            kind=kind,
            path=self.file_path(self.get(t, s, "path", str, "data/outbox")),
            host=self.get(t, s, "host", str, "" if kind == "file" else ...),
            port=self.get(t, s, "port", int, 465 if security == "tls" else 587),
            security=security,
            username=self.get(t, s, "username", str, ""),
            password=self.secret(t, s),
            timeout_seconds=timeout,
            ca_file=ca_file,
            auth=auth,
            oauth=self.oauth(t, s, auth, ca_file, timeout),
        )

    def schedule(self, raw: dict[str, Any]) -> ScheduleConfig:
        s = "schedule"
        t = self.table(raw, s, {"poll_seconds", "sweep_seconds", "digest_time",
                                "digest_weekdays_only", "poll_alert_minutes"})
        poll = self.get(t, s, "poll_seconds", int, 60)
        sweep = self.get(t, s, "sweep_seconds", int, 300)
        alert = self.get(t, s, "poll_alert_minutes", int, 30)
        for key, value in (("poll_seconds", poll), ("sweep_seconds", sweep),
                           ("poll_alert_minutes", alert)):
            if value < 1:
                raise self.fail(f"{s}.{key}", "must be at least 1")
        digest = self.get(t, s, "digest_time", str, "07:30")
        try:
            digest_time = time.fromisoformat(digest)
        except ValueError as exc:
            raise self.fail(f"{s}.digest_time", "must be HH:MM") from exc
        weekdays = self.get(t, s, "digest_weekdays_only", bool, True)
        return ScheduleConfig(poll, sweep, digest_time, weekdays, alert)

    def security_section(self, raw: dict[str, Any]) -> SecurityConfig:
        s = "security"
        t = self.table(raw, s, {"key_file", "authserv_ids", "plus_addressing"},
                       required=False)
        key_file = self.get(t, s, "key_file", str, "data/mailbot.key")
        if not key_file.strip():
            raise self.fail(f"{s}.key_file", "must name a file")
        ids = self.get(t, s, "authserv_ids", list, [])
        for value in ids:
            if not isinstance(value, str) or not value.strip() \
                    or any(c.isspace() or c == ";" for c in value.strip()):
                raise self.fail(f"{s}.authserv_ids",
                                "each must be a server name, such as "
                                "\"mx.example.org\"")
        return SecurityConfig(
            key_file=self.file_path(key_file),
            authserv_ids=tuple(v.strip().lower() for v in ids),
            plus_addressing=self.get(t, s, "plus_addressing", bool, False))

    def privacy(self, raw: dict[str, Any]) -> PrivacyConfig:
        t = self.table(raw, "privacy", {"keep_raw_days"}, required=False)
        days = self.get(t, "privacy", "keep_raw_days", int, 365)
        if days < 1:
            raise self.fail("privacy.keep_raw_days", "must be at least 1")
        return PrivacyConfig(days)

    def log_level(self, raw: dict[str, Any]) -> str:
        t = self.table(raw, "logging", {"level"}, required=False)
        level = self.get(t, "logging", "level", str, "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise self.fail("logging.level", "must be DEBUG, INFO, WARNING or ERROR")
        return level


_KIND_NAMES = {
    str: "text in quotes", int: "a whole number", float: "a number",
    bool: "true or false", list: "a list in [brackets]", dict: "a table",
}

_SECTIONS = {"programme", "education_scotland", "councils", "validators",
             "mailbox", "sending", "store", "schedule", "paths", "logging",
             "security", "privacy"}
