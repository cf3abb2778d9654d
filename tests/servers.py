"""Real mail servers on 127.0.0.1 for the tests: Dovecot IMAP and aiosmtpd.

Each server listens on loopback only, on a free port, from a throwaway
configuration in a temporary folder. `conftest.py` wraps them in fixtures;
nothing here talks to any other host.

Either server can also speak TLS, with a certificate from a throwaway CA
(`ThrowawayCA`, made by trustme in memory: no openssl command needed).

`TokenService` plays an OAuth 2.0 provider on 127.0.0.1: Microsoft's
client credentials endpoint (as msal finds it), Google's refresh token
endpoint, and a token introspection endpoint that a Dovecot started with
`DovecotServer(oauth=...)` asks about every XOAUTH2 login.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

from mailbot.config import MailboxConfig, OAuthConfig, Secret, SendingConfig

HOST = "127.0.0.1"
DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
PASSWORD = "test-password"


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, up: bool, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return True
        time.sleep(0.02)
    return False


# -------------------------------------------------------------------- TLS

@dataclass(frozen=True)
class ServerCert:
    """A server's certificate chain and private key, as PEM files."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class ThrowawayCA:
    """A certificate authority that exists only for a test session.

    `ca_file` is its certificate (PEM), what mailbot's `ca_file` option
    names; `issue(*names)` makes a server certificate for those host
    names and IP addresses.
    """

    def __init__(self, folder: Path, name: str = "ca") -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name=f"mailbot tests {name}")
        self.ca_file = folder / f"{name}.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        self._name = name
        self._issued = itertools.count(1)

    def issue(self, *names: str) -> ServerCert:
        n = next(self._issued)
        cert = self._ca.issue_cert(*names)
        cert_file = self.folder / f"{self._name}-server{n}.pem"
        key_file = self.folder / f"{self._name}-server{n}.key"
        cert_file.write_bytes(b"".join(pem.bytes()
                                       for pem in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_file))
        key_file.chmod(0o600)
        return ServerCert(cert_file, key_file)


# ---------------------------------------------------------------- Dovecot

_DOVECOT_CONF = """\
# Throwaway Dovecot for mailbot's tests; never meets a system Dovecot.
protocols = imap
listen = {host}
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailbot-test-{port}
log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
auth_failure_delay = 0
first_valid_uid = {uid}
last_valid_uid = 0
first_valid_gid = {gid}
default_internal_user = {internal_user}
default_login_user = {login_user}
mail_location = maildir:{root}/mail/%u
# Throwaway mail: no need to wait for the disk after every change.
mail_fsync = never

# Every user name logs in with one password, so each test can take a
# fresh user, and so a fresh, empty mailbox.
passdb {{
  driver = static
  args = password={password}
}}
{oauth_passdb}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
# Without this, one wrong password (a test does that on purpose) makes
# every login from 127.0.0.1 wait seconds for a while afterwards.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
  {capability}
}}
"""


# Dovecot 2.3's oauth2 passdb: each token is POSTed (token=...) to the
# introspection URL; the answer must hold "active": true and "email":
# the user logging in.
_DOVECOT_OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
username_attribute = email
active_attribute = active
active_value = true
"""


class DovecotServer:
    """One Dovecot process for a test session, restartable on its port."""

    def __init__(self, capability: str = "",
                 tls: ServerCert | None = None,
                 oauth: str = "") -> None:
        """`capability` replaces the CAPABILITY list after login, so a
        test can meet a server without MOVE or UIDPLUS.

        With `oauth` (an introspection URL, see TokenService), XOAUTH2 and
        OAUTHBEARER are offered too: Dovecot's oauth2 passdb POSTs each
        token to that URL and lets the user in when the answer says it
        is active and for that user. Passwords keep working as well.

        With `tls`, the server presents that certificate: TLS from the
        start on `imaps_port`, and STARTTLS offered on `port` (where a
        login in plain text stays allowed, for the test helpers). Without
        it, `ssl = no`: no TLS anywhere, STARTTLS not offered."""
        self.host = HOST
        self.port = free_port()
        self.tls = tls
        self.imaps_port = free_port() if tls is not None else 0
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        # Mail is accessed as an unprivileged user: the folders above the
        # mail root must let it through.
        self.root.chmod(0o755)
        self.mail_root = self.root / "mail"
        self.mail_root.mkdir()
        self.conf = self.root / "dovecot.conf"
        self.running = False
        self._users = itertools.count(1)

        if os.geteuid() == 0:
            # Dovecot refuses to read mail as root; `nobody` will do.
            uid = gid = 65534
            internal, login = "dovecot", "dovenull"
        else:
            # Untested convenience: a developer running as themselves.
            uid, gid = os.getuid(), os.getgid()
            internal = login = pwd.getpwuid(uid).pw_name
        os.chown(self.mail_root, uid, gid)
        if tls is None:
            ssl_settings, imaps = "ssl = no", "port = 0"
        else:
            ssl_settings = (f"ssl = yes\nssl_cert = <{tls.cert_file}\n"
                            f"ssl_key = <{tls.key_file}")
            imaps = f"address = {HOST}\n    port = {self.imaps_port}"
        mechanisms = oauth_passdb = ""
        if oauth:
            mechanisms = " xoauth2 oauthbearer"
            oauth_args = self.root / "dovecot-oauth2.conf.ext"
            oauth_args.write_text(_DOVECOT_OAUTH2.format(url=oauth))
            # After the static passdb: a token is no password, so that one
            # fails and Dovecot goes on to ask the token service.
            oauth_passdb = ("passdb {\n  driver = oauth2\n"
                            f"  args = {oauth_args}\n}}")
        self.conf.write_text(_DOVECOT_CONF.format(
            mechanisms=mechanisms, oauth_passdb=oauth_passdb,
            ssl=ssl_settings, imaps=imaps,
            host=HOST, port=self.port, root=self.root, uid=uid, gid=gid,
            internal_user=internal, login_user=login, password=PASSWORD,
            capability=(f"imap_capability = {capability}"
                        if capability else "")))

    def start(self) -> None:
        # Dovecot daemonises and keeps whatever stdout and stderr it was
        # given: a pipe here would never see end-of-file.
        with open(self.root / "startup.log", "ab") as out:
            started = subprocess.run([str(DOVECOT), "-c", str(self.conf)],
                                     stdout=out, stderr=out, timeout=30,
                                     check=False)
        ports = [self.port] + ([self.imaps_port] if self.imaps_port else [])
        for port in ports:
            if started.returncode or not wait_for_port(port, up=True):
                raise RuntimeError(f"Dovecot did not listen on port {port}:\n"
                                   + self.log_tail())
        self.running = True

    def stop(self, wait: bool = True) -> None:
        """Stop the master and (unless told not to) wait until it is gone.

        Dovecot 2.3 leaves logged-in imap processes serving their
        clients after the master has gone, so kick every user first: a
        restart then drops connections the way a real one does.
        """
        if not self.running:
            return
        subprocess.run([str(DOVEADM), "-c", str(self.conf), "kick", "*"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30, check=False)
        # SIGTERM rather than `doveadm stop`, which waits for the master
        # to be reaped: where nothing reaps orphans (some containers) that
        # costs three seconds.
        pid_file = self.root / "run" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        self.running = False
        if not wait:
            return
        # The master removes its pid file last, about a second later;
        # starting again before then makes the new master think one is
        # still running.
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        wait_for_port(self.port, up=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def doveadm(self, *args: str) -> None:
        subprocess.run([str(DOVEADM), "-c", str(self.conf), *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=30, check=True)

    def remove(self) -> None:
        """Stop for good and delete every file; nothing waits for it."""
        self.stop(wait=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("startup.log", "dovecot.log"):
            log = self.root / name
            if log.exists():
                text += log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no log)"

    def new_mailbox(self) -> DovecotMailbox:
        return DovecotMailbox(self, f"user{next(self._users)}")


class DovecotMailbox:
    """One test's own IMAP user on the shared Dovecot, with helpers."""

    def __init__(self, server: DovecotServer, user: str) -> None:
        self.server = server
        self.host = server.host
        self.port = server.port
        self.imaps_port = server.imaps_port
        self.user = user
        self.password = PASSWORD
        self.maildir = server.mail_root / user
        self.password_file = server.root / "password"
        if not self.password_file.exists():
            self.password_file.write_text(PASSWORD + "\n")

    def client(self) -> IMAPClient:
        """A logged-in IMAPClient as this user; the caller logs out."""
        imap = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        imap.login(self.user, self.password)
        return imap

    def mailbox_config(self, **overrides: Any) -> MailboxConfig:
        config = MailboxConfig(
            kind="imap", path=self.maildir, handled_folder="Handled",
            set_aside_folder="Set aside", host=self.host, port=self.port,
            security="none", username=self.user,
            password=Secret(file=self.password_file), timeout_seconds=5.0)
        return replace(config, **overrides)

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in a folder (created if missing) by IMAP APPEND."""
        imap = self.client()
        try:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            imap.append(folder, raw)
        finally:
            imap.logout()

    def folder_messages(self, folder: str = "INBOX") -> list[bytes]:
        """Every message in a folder, \\Deleted ones too, oldest first."""
        imap = self.client()
        try:
            if not imap.folder_exists(folder):
                return []
            imap.select_folder(folder, readonly=True)
            uids = sorted(imap.search("ALL"))
            if not uids:
                return []
            found = imap.fetch(uids, ["BODY.PEEK[]"])
            return [found[uid][b"BODY[]"] for uid in uids]
        finally:
            imap.logout()

    def folders(self) -> list[str]:
        imap = self.client()
        try:
            return sorted(name for _, _, name in imap.list_folders())
        finally:
            imap.logout()

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.server.stop()

    def kick(self) -> None:
        """Drop every connection of this user, as a server fault would."""
        self.server.doveadm("kick", self.user)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        imap = self.client()
        try:
            return int(imap.folder_status(folder, [b"UIDVALIDITY"])
                       [b"UIDVALIDITY"])
        finally:
            imap.logout()

    def renumber(self) -> int:
        """Make the server number INBOX afresh under a new UIDVALIDITY, as
        after a restore from backup: the messages stay, their UIDs start
        again from 1. Restarts the server; returns the new UIDVALIDITY."""
        old = self.uidvalidity()
        self.server.stop()
        for path in self.maildir.glob("dovecot*"):
            path.unlink()
        self.server.start()
        # The rebuilt value comes from the clock: make sure it differs.
        new = old + 1000
        self.server.doveadm("mailbox", "update", "-u", self.user,
                            "--uid-validity", str(new), "INBOX")
        return new


# ------------------------------------------------------------------- SMTP

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    # Whether it came over TLS (implicit or after STARTTLS).
    tls: bool = False


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: records each envelope, refuses as told."""

    received: list[Received] = field(default_factory=list)
    # Reply line for chosen recipients, e.g. {"x@example.org": "550 ..."}.
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    # Said once to the next MAIL FROM, e.g. "421 4.4.2 Idle too long".
    next_mail_reply: str | None = None
    # Said to every MAIL FROM while set, e.g. "553 5.7.1 Sender refused".
    mail_reply: str | None = None
    # Keep the next message, then drop the connection without a reply: the
    # sender cannot know the message arrived.
    drop_after_data: bool = False
    auth_required: bool = False
    logins: list[str] = field(default_factory=list)

    async def handle_MAIL(self, server: SMTP, session: Session,
                          envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.next_mail_reply is not None:
            reply, self.next_mail_reply = self.next_mail_reply, None
            return reply
        if self.mail_reply is not None:
            return self.mail_reply
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session,
                          envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        content = envelope.original_content or b""
        over_tls = (server.transport is not None and server.transport
                    .get_extra_info("ssl_object") is not None)
        self.received.append(Received(str(envelope.mail_from),
                                      list(envelope.rcpt_tos), content,
                                      over_tls))
        if self.drop_after_data and server.transport is not None:
            self.drop_after_data = False
            server.transport.abort()
        return "250 OK"


class SmtpServer:
    """An aiosmtpd server on loopback; restartable on the same port."""

    def __init__(self, username: str = "mailbot",
                 password: str = PASSWORD, tls: ServerCert | None = None,
                 implicit_tls: bool = False,
                 handler: SmtpRecorder | None = None) -> None:
        """With `tls`, the server presents that certificate: after a
        STARTTLS that it requires before MAIL, or, with `implicit_tls`,
        from the first byte. `handler` replaces the SmtpRecorder (e.g.
        an OAuthSmtpRecorder, to offer AUTH XOAUTH2)."""
        self.host = HOST
        self.port = free_port()
        self.username = username
        self.password = password
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.handler = handler if handler is not None else SmtpRecorder()
        self.connections = 0
        self.password_file = Path(tempfile.mkdtemp()) / "smtp-password"
        self.password_file.write_text(password + "\n")
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def logins(self) -> list[str]:
        return self.handler.logins

    def refuse(self, address: str, reply: str) -> None:
        """Answer RCPT TO:<address> with `reply`, e.g. "451 4.3.0 Later"."""
        self.handler.rcpt_replies[address.lower()] = reply

    def require_auth(self) -> None:
        self.handler.auth_required = True

    def sending_config(self, **overrides: Any) -> SendingConfig:
        config = SendingConfig(
            kind="smtp", path=self.password_file.parent, host=self.host,
            port=self.port, security="none", timeout_seconds=5.0)
        return replace(config, **overrides)

    def login_config(self, **overrides: Any) -> SendingConfig:
        """A SendingConfig that logs in with the right user and password."""
        values: dict[str, Any] = {
            "username": self.username,
            "password": Secret(file=self.password_file)}
        return self.sending_config(**{**values, **overrides})

    def _authenticate(self, server: SMTP, session: Session,
                      envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        if ok:
            self.handler.logins.append(self.username)
        # handled=False: aiosmtpd then answers 535 itself on failure.
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        server = self

        class CountingController(Controller):
            def factory(self) -> SMTP:
                server.connections += 1
                return super().factory()  # type: ignore[no-any-return]

        tls: dict[str, Any] = {}
        if self.tls is not None and self.implicit_tls:
            tls = {"ssl_context": self.tls.server_context()}
        elif self.tls is not None:
            tls = {"tls_context": self.tls.server_context(),
                   "require_starttls": True}
        self._controller = CountingController(
            self.handler, hostname=HOST, port=self.port,
            authenticator=self._authenticate, auth_require_tls=False, **tls)
        self._controller.start()
        # start() opens one connection of its own to check the server.
        self.connections = 0

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def restart(self) -> None:
        """Drop every open connection by stopping and starting again."""
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.password_file.parent, ignore_errors=True)


# ------------------------------------------------------------------ OAuth

@dataclass
class OAuthClient:
    """An app registered with the TokenService, and the one mailbox
    (user) that its tokens open."""

    client_id: str
    secret: str
    user: str
    tenant: str = ""                # Microsoft: the tenant it is in
    refresh_token: str = ""         # Google: the user's grant


@dataclass
class IssuedToken:
    user: str
    client_id: str
    expires_at: float
    revoked: bool = False


class TokenService:
    """An OAuth 2.0 provider on 127.0.0.1, for the tests.

    Over HTTPS (`https_port`, a certificate from a test CA, since msal
    insists on https):
      GET  /TENANT/v2.0/.well-known/openid-configuration  as Microsoft's,
           pointing msal at the token endpoint below;
      POST /TENANT/oauth2/v2.0/token  grant_type=client_credentials, with
           Microsoft's errors (invalid_client, unauthorized_client,
           AADSTS90002 for an unknown tenant);
      POST /google/token  grant_type=refresh_token, with Google's errors
           (invalid_client, invalid_grant).
    Over plain HTTP (`http_port`), for Dovecot:
      POST /introspect  token=...: {"active": true, "email": USER} for a
           token issued, unrevoked and unexpired, else {"active": false}.

    Tokens live `expires_in` seconds. `requests` lists every request as
    "METHOD path"; bodies are never logged.
    """

    def __init__(self, cert: ServerCert) -> None:
        self.clients: dict[str, OAuthClient] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.requests: list[str] = []
        self.expires_in = 3600
        # Answer every token request with this HTTP status (e.g. 503).
        self.fail_with: int | None = None
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        handler = self._handler()
        self._https = ThreadingHTTPServer((HOST, 0), handler)
        self._https.socket = cert.server_context().wrap_socket(
            self._https.socket, server_side=True)
        self._http = ThreadingHTTPServer((HOST, 0), handler)
        self.https_port = self._https.server_address[1]
        self.http_port = self._http.server_address[1]
        self._threads = [threading.Thread(target=server.serve_forever,
                                          daemon=True)
                         for server in (self._https, self._http)]

    # ------------------------------------------------------ for the tests

    @property
    def authority(self) -> str:
        """What `authority` is set to (the tenant is added to it)."""
        return f"https://{HOST}:{self.https_port}"

    @property
    def google_token_url(self) -> str:
        return f"https://{HOST}:{self.https_port}/google/token"

    @property
    def introspection_url(self) -> str:
        return f"http://{HOST}:{self.http_port}/introspect"

    def register(self, client: OAuthClient) -> OAuthClient:
        with self._lock:
            self.clients[client.client_id] = client
        return client

    def issued(self, client_id: str = "") -> list[str]:
        """Tokens issued (to that client), oldest first."""
        with self._lock:
            return [token for token, issued in self.tokens.items()
                    if not client_id or issued.client_id == client_id]

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens[token].revoked = True

    def user_of(self, token: str) -> str | None:
        """The user a token opens, if it is valid now."""
        with self._lock:
            issued = self.tokens.get(token)
            if issued is None or issued.revoked \
                    or time.monotonic() >= issued.expires_at:
                return None
            return issued.user

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    # ------------------------------------------------------------ serving

    def _issue(self, client: OAuthClient) -> dict[str, Any]:
        token = f"tok-{next(self._counter)}-{os.urandom(12).hex()}"
        with self._lock:
            self.tokens[token] = IssuedToken(
                client.user, client.client_id,
                time.monotonic() + self.expires_in)
        return {"token_type": "Bearer", "access_token": token,
                "expires_in": self.expires_in}

    def _microsoft(self, tenant: str,
                   form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = self.clients.get(form.get("client_id", ""))
        if not any(c.tenant == tenant for c in self.clients.values()):
            return 400, {"error": "invalid_request", "error_description":
                         f"AADSTS90002: Tenant '{tenant}' not found."}
        if client is None or client.tenant != tenant:
            return 400, {"error": "unauthorized_client", "error_description":
                         "AADSTS700016: Application with identifier "
                         f"'{form.get('client_id')}' was not found in the "
                         f"directory '{tenant}'."}
        if form.get("grant_type") != "client_credentials" \
                or form.get("scope") != "https://outlook.office365.com/.default":
            return 400, {"error": "invalid_scope",
                         "error_description": "AADSTS70011: bad scope"}
        if form.get("client_secret") != client.secret:
            return 401, {"error": "invalid_client", "error_description":
                         "AADSTS7000215: Invalid client secret provided."}
        return 200, self._issue(client)

    def _google(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = self.clients.get(form.get("client_id", ""))
        if client is None or form.get("client_secret") != client.secret:
            return 401, {"error": "invalid_client",
                         "error_description": "Unauthorized"}
        if form.get("grant_type") != "refresh_token" \
                or form.get("refresh_token") != client.refresh_token:
            return 400, {"error": "invalid_grant", "error_description":
                         "Token has been expired or revoked."}
        if form.get("scope") not in (None, "https://mail.google.com/"):
            return 400, {"error": "invalid_scope"}
        return 200, self._issue(client)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: never print a request

            def reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                service.requests.append(f"GET {path}")
                parts = path.strip("/").split("/")
                if parts[1:] == ["v2.0", ".well-known",
                                 "openid-configuration"]:
                    base = f"{service.authority}/{parts[0]}"
                    if not any(c.tenant == parts[0]
                               for c in service.clients.values()):
                        self.reply(400, {"error": "invalid_tenant"})
                        return
                    self.reply(200, {
                        "issuer": f"{base}/v2.0",
                        "authorization_endpoint":
                            f"{base}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/oauth2/v2.0/token"})
                    return
                self.reply(404, {"error": "not_found"})

            def do_POST(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                service.requests.append(f"POST {path}")
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(
                    self.rfile.read(length).decode()))
                parts = path.strip("/").split("/")
                if path == "/introspect":
                    user = service.user_of(form.get("token", ""))
                    self.reply(200, {"active": True, "email": user}
                               if user else {"active": False})
                    return
                if service.fail_with is not None:
                    self.reply(service.fail_with, {"error": "server_error"})
                    return
                if path == "/google/token":
                    self.reply(*service._google(form))
                elif parts[1:] == ["oauth2", "v2.0", "token"]:
                    self.reply(*service._microsoft(parts[0], form))
                else:
                    self.reply(404, {"error": "not_found"})

        return Handler

    # ------------------------------------------------------------- config

    def microsoft(self, section: str, client: OAuthClient,
                  secret: Secret, ca_file: Path) -> OAuthConfig:
        """The OAuthConfig for a Microsoft client registered here."""
        return OAuthConfig(
            provider="microsoft", section=section,
            client_id=client.client_id, client_secret=secret,
            tenant_id=client.tenant, authority=self.authority,
            scope="https://outlook.office365.com/.default",
            ca_file=ca_file, timeout_seconds=5.0)

    def google(self, section: str, client: OAuthClient, secret: Secret,
               refresh_token: Secret, ca_file: Path) -> OAuthConfig:
        """The OAuthConfig for a Google client registered here."""
        return OAuthConfig(
            provider="google", section=section, client_id=client.client_id,
            client_secret=secret, refresh_token=refresh_token,
            token_url=self.google_token_url, scope="https://mail.google.com/",
            ca_file=ca_file, timeout_seconds=5.0)


class OAuthSmtpRecorder(SmtpRecorder):
    """An SmtpRecorder that also offers AUTH XOAUTH2, accepting a token
    only while the TokenService says it is valid, and for that user."""

    def __init__(self, tokens: TokenService) -> None:
        super().__init__()
        self.tokens = tokens

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 2:
            blob = args[1].encode()
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = base64.b64encode(answer)
        try:
            fields = base64.b64decode(blob, validate=True).split(b"\x01")
            user = fields[0].removeprefix(b"user=").decode()
            token = fields[1].removeprefix(b"auth=Bearer ").decode()
        except (ValueError, IndexError):
            await server.push("501 5.5.2 Cannot decode the XOAUTH2 string")
            return AuthResult(success=False, handled=True)
        if self.tokens.user_of(token) == user:
            self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        # As Gmail and Outlook do: the error as a challenge, then the
        # client's empty line, then the final reply.
        await server.challenge_auth(json.dumps(
            {"status": "401", "schemes": "bearer",
             "scope": "https://mail.google.com/"}))
        return AuthResult(success=False, handled=False)
