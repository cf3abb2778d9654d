"""Shared fixtures for mailbot's tests."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import ROOT
from servers import (
    DOVECOT,
    HOST,
    DovecotMailbox,
    DovecotServer,
    SmtpServer,
    ThrowawayCA,
    TokenService,
)

# ------------------------------------------------------- real mail servers
# The machinery lives in tests/servers.py; these fixtures only wrap it.


def need_dovecot() -> None:
    """Skip without Dovecot, except on CI, where that is a failure."""
    if not DOVECOT.exists():
        reason = f"{DOVECOT} is not installed (apt install dovecot-imapd)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """One real Dovecot on 127.0.0.1 for the whole session."""
    need_dovecot()
    server = DovecotServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> Iterator[DovecotMailbox]:
    """A fresh, empty IMAP user on the shared Dovecot.

    Exposes host, port, user, password, password_file, maildir, and
    deliver(raw, folder), folder_messages(folder), folders(), client(),
    mailbox_config(**overrides), restart() and stop().
    """
    yield dovecot_server.new_mailbox()
    # A test that stopped the server leaves it running for the next one.
    if not dovecot_server.running:
        dovecot_server.start()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    """A throwaway CA for the session: `ca_file` (PEM) is what mailbot's
    `ca_file` option names, `issue(*names)` makes server certificates."""
    return ThrowawayCA(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def start_tls_dovecot(
        test_ca: ThrowawayCA) -> Iterator[Callable[..., DovecotServer]]:
    """start_tls_dovecot(*names): a real Dovecot with TLS, its certificate
    from `test_ca` for those names (127.0.0.1 and localhost if none): TLS
    from the start on `imaps_port`, STARTTLS offered on `port`. Each is
    removed at the end of the session."""
    need_dovecot()
    started: list[DovecotServer] = []

    def start(*names: str) -> DovecotServer:
        server = DovecotServer(tls=test_ca.issue(*(names or (HOST,
                                                             "localhost"))))
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.remove()


@pytest.fixture(scope="session")
def dovecot_tls_server(
        start_tls_dovecot: Callable[..., DovecotServer]) -> DovecotServer:
    """A second real Dovecot, with TLS: a certificate for 127.0.0.1 and
    localhost from `test_ca`, TLS from the start on `imaps_port` and
    STARTTLS offered on `port`."""
    return start_tls_dovecot()


@pytest.fixture
def dovecot_tls(dovecot_tls_server: DovecotServer) -> Iterator[DovecotMailbox]:
    """A fresh IMAP user on the TLS Dovecot; as `dovecot`, plus
    imaps_port. Its helpers (deliver, folder_messages...) use plain text."""
    yield dovecot_tls_server.new_mailbox()
    if not dovecot_tls_server.running:
        dovecot_tls_server.start()


@pytest.fixture(scope="session")
def token_service(test_ca: ThrowawayCA) -> Iterator[TokenService]:
    """An OAuth 2.0 provider on 127.0.0.1 for the session (see
    servers.TokenService): Microsoft's and Google's token endpoints over
    HTTPS, with a certificate from `test_ca`, and an introspection
    endpoint for Dovecot. Tests register their own clients in it."""
    service = TokenService(test_ca.issue(HOST))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def dovecot_oauth_server(token_service: TokenService) -> Iterator[DovecotServer]:
    """A real Dovecot on 127.0.0.1 that also offers XOAUTH2 and
    OAUTHBEARER, checking each token with `token_service`."""
    need_dovecot()
    server = DovecotServer(oauth=token_service.introspection_url)
    server.start()
    yield server
    server.remove()


@pytest.fixture
def dovecot_oauth(
        dovecot_oauth_server: DovecotServer) -> Iterator[DovecotMailbox]:
    """A fresh IMAP user on the OAuth Dovecot; as `dovecot` (its helpers
    log in with the password)."""
    yield dovecot_oauth_server.new_mailbox()
    if not dovecot_oauth_server.running:
        dovecot_oauth_server.start()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on 127.0.0.1 that records what it receives.

    Exposes host, port, username, password, received (list of Received:
    mail_from, rcpt_tos, content), connections, logins, refuse(address,
    reply), require_auth(), handler.data_reply, sending_config(),
    login_config(), restart() and stop().
    """
    server = SmtpServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections but never says a word."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(5)
        yield listener.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder where staff run `mailbot`: config.toml copied from the
    example, rules/ and templates/ linked from the project."""
    shutil.copy(ROOT / "config.example.toml", tmp_path / "config.toml")
    for sub in ("rules", "templates"):
        os.symlink(ROOT / sub, tmp_path / sub)
    return tmp_path
