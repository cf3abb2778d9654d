"""OAuth 2.0 (XOAUTH2) logins, against real servers on 127.0.0.1 only.

The token endpoints are a TokenService (tests/servers.py) over HTTPS with
a throwaway CA: msal really discovers the tenant and asks for a client
credentials token there, and the Google flow really exchanges a refresh
token. Dovecot checks each token with the same service (its oauth2
passdb, introspection by POST); aiosmtpd checks it in AUTH XOAUTH2.
"""

from __future__ import annotations

import base64
import itertools
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from servers import (
    HOST,
    DovecotMailbox,
    OAuthClient,
    OAuthSmtpRecorder,
    SmtpServer,
    ThrowawayCA,
    TokenService,
    free_port,
)

from mailbot import oauth
from mailbot.config import MailboxConfig, OAuthConfig, Secret, SendingConfig
from mailbot.errors import ConfigError, TransientError, TransientSendError
from mailbot.senders import Envelope
from mailbot.senders.smtp import SmtpSender
from mailbot.sources.imap import ImapSource
from mailbot.sources.imap_login import close_quietly, open_session

_names = itertools.count(1)


@pytest.fixture(autouse=True)
def fresh_tokens() -> Iterator[None]:
    """No token kept from one test to the next."""
    oauth.forget_all()
    yield
    oauth.forget_all()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection to a host other than 127.0.0.1 (msal must
    never reach Microsoft), and keep proxies out of the way."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) \
                and address[0] != HOST:
            raise AssertionError(f"connection to {address[0]} attempted")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def raw_message(n: int) -> bytes:
    return (f"From: head{n}@school.example\r\nTo: programme@example.org\r\n"
            f"Subject: Message {n}\r\nMessage-ID: <{n}@school.example>\r\n"
            "\r\nHello.\r\n").encode()


def secret_file(tmp_path: Path, name: str, value: str) -> Secret:
    path = tmp_path / name
    path.write_text(value + "\n")
    return Secret(file=path)


def microsoft_client(service: TokenService, user: str) -> OAuthClient:
    n = next(_names)
    return service.register(OAuthClient(
        f"ms-app-{n}", f"ms-secret-{n}-Zq8~", user, tenant=f"tenant-{n}"))


def google_client(service: TokenService, user: str) -> OAuthClient:
    n = next(_names)
    return service.register(OAuthClient(
        f"g-app-{n}.apps.example", f"g-secret-{n}-Kx3", user,
        refresh_token=f"1//refresh-{n}-Lm9"))


def microsoft_config(service: TokenService, client: OAuthClient,
                     tmp_path: Path, ca: ThrowawayCA, section: str = "mailbox",
                     secret: str | None = None) -> OAuthConfig:
    return service.microsoft(
        section, client,
        secret_file(tmp_path, f"{section}-secret",
                    client.secret if secret is None else secret),
        ca.ca_file)


def google_config(service: TokenService, client: OAuthClient,
                  monkeypatch: pytest.MonkeyPatch, ca: ThrowawayCA,
                  section: str = "mailbox", secret: str | None = None,
                  refresh_token: str | None = None) -> OAuthConfig:
    monkeypatch.setenv("TEST_GOOGLE_SECRET",
                       client.secret if secret is None else secret)
    monkeypatch.setenv("TEST_GOOGLE_REFRESH",
                       client.refresh_token if refresh_token is None
                       else refresh_token)
    return service.google(section, client, Secret(env="TEST_GOOGLE_SECRET"),
                          Secret(env="TEST_GOOGLE_REFRESH"), ca.ca_file)


def imap_config(mailbox: DovecotMailbox, oauth_config: OAuthConfig,
                **overrides: Any) -> MailboxConfig:
    return mailbox.mailbox_config(auth=oauth_config.provider,
                                  oauth=oauth_config, password=Secret(),
                                  reconnect_attempts=1, **overrides)


def login(config: MailboxConfig) -> None:
    """One IMAP session (open_session, as every poll does), then logout."""
    imap, _ = open_session(config, f"{config.host}:{config.port}")
    try:
        imap.logout()
    finally:
        close_quietly(imap)


def login_methods(mailbox: DovecotMailbox) -> list[str]:
    log = (mailbox.server.root / "dovecot.log").read_text(errors="replace")
    return [line.split("method=")[1].split(",")[0]
            for line in log.splitlines()
            if f"Login: user=<{mailbox.user}>" in line]


# -------------------------------------------------------------------- IMAP

@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_imap_fetches_with_an_access_token(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    dovecot_oauth.deliver(raw_message(1))
    if provider == "microsoft":
        client = microsoft_client(token_service, dovecot_oauth.user)
        settings = microsoft_config(token_service, client, tmp_path, test_ca)
    else:
        client = google_client(token_service, dovecot_oauth.user)
        settings = google_config(token_service, client, monkeypatch, test_ca)
    seen = len(token_service.requests)

    with closing(ImapSource(imap_config(dovecot_oauth, settings))) as source:
        (message,) = source.fetch()
        source.mark_handled(message.key)
        source.flush()

    assert message.data == raw_message(1)
    assert dovecot_oauth.folder_messages("Handled") == [raw_message(1)]
    # mailbot logged in with XOAUTH2 (the helpers' own logins are PLAIN),
    # with the one token issued, which Dovecot checked with the service.
    assert "XOAUTH2" in login_methods(dovecot_oauth)
    assert len(token_service.issued(client.client_id)) == 1
    asked = token_service.requests[seen:]
    assert "POST /introspect" in asked
    if provider == "microsoft":
        tenant = client.tenant
        assert asked[:2] == [
            f"GET /{tenant}/v2.0/.well-known/openid-configuration",
            f"POST /{tenant}/oauth2/v2.0/token"]
    else:
        assert asked[0] == "POST /google/token"


def test_a_token_is_kept_until_near_its_expiry_then_renewed(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = microsoft_client(token_service, dovecot_oauth.user)
    config = imap_config(dovecot_oauth, microsoft_config(
        token_service, client, tmp_path, test_ca))

    login(config)
    login(config)
    # An hour's token serves every login of the hour.
    assert len(token_service.issued(client.client_id)) == 1

    # Tokens that live 2 s are renewed after half their life.
    monkeypatch.setattr(token_service, "expires_in", 2)
    assert config.oauth is not None
    oauth.provider(config.oauth, config.username).forget()
    login(config)
    first = token_service.issued(client.client_id)[-1]
    login(config)
    assert token_service.issued(client.client_id)[-1] == first
    time.sleep(1.1)
    login(config)
    second = token_service.issued(client.client_id)[-1]
    assert second != first
    # The first has now expired, and the server refuses it.
    time.sleep(1.0)
    assert token_service.user_of(first) is None


def test_a_revoked_token_is_replaced_once_and_the_login_goes_on(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    dovecot_oauth.deliver(raw_message(2))
    client = google_client(token_service, dovecot_oauth.user)
    config = imap_config(dovecot_oauth, google_config(
        token_service, client, monkeypatch, test_ca))
    login(config)
    (first,) = token_service.issued(client.client_id)
    token_service.revoke(first)

    with caplog.at_level(logging.INFO), \
            closing(ImapSource(config)) as source:
        (message,) = source.fetch()

    assert message.data == raw_message(2)
    assert len(token_service.issued(client.client_id)) == 2
    assert "access token refused" in caplog.text
    assert "AUTHENTICATIONFAILED" in caplog.text


def test_a_token_refused_again_is_a_config_error_naming_the_username(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path) -> None:
    # The app's tokens open another mailbox, not this one.
    client = microsoft_client(token_service, "someone-else")
    config = imap_config(dovecot_oauth, microsoft_config(
        token_service, client, tmp_path, test_ca))

    with closing(ImapSource(config)) as source, \
            pytest.raises(ConfigError) as caught:
        list(source.fetch())

    assert caught.value.key == "mailbox.username"
    assert "XOAUTH2" in str(caught.value)
    assert "mailbox.client_id" in str(caught.value)
    # Tried once more with a new token, no more.
    assert len(token_service.issued(client.client_id)) == 2
    # The token held is dropped: the next poll starts with a new one.
    with pytest.raises(ConfigError):
        login(config)
    assert len(token_service.issued(client.client_id)) == 4


@pytest.mark.parametrize("mistake, key", [
    ("secret", "mailbox.client_secret_file"),
    ("client", "mailbox.client_id"),
    ("tenant", "mailbox.tenant_id"),
])
def test_microsoft_refusals_name_the_setting(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path, mistake: str, key: str) -> None:
    client = microsoft_client(token_service, dovecot_oauth.user)
    settings = microsoft_config(token_service, client, tmp_path, test_ca,
                                secret="wrong-secret-Yy7")
    if mistake != "secret":
        settings = microsoft_config(token_service, client, tmp_path, test_ca)
    if mistake == "client":
        settings = replace(settings, client_id="no-such-app")
    if mistake == "tenant":
        settings = replace(settings, tenant_id="no-such-tenant")
    config = imap_config(dovecot_oauth, settings)

    with closing(ImapSource(config)) as source, \
            pytest.raises(ConfigError) as caught:
        list(source.fetch())

    assert caught.value.key == key
    assert "wrong-secret-Yy7" not in str(caught.value)
    assert client.secret not in str(caught.value)
    assert not token_service.issued(client.client_id)


@pytest.mark.parametrize("mistake, key", [
    ("secret", "mailbox.client_secret_env"),
    ("refresh_token", "mailbox.refresh_token_env"),
])
def test_google_refusals_name_the_setting(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch,
        mistake: str, key: str) -> None:
    client = google_client(token_service, dovecot_oauth.user)
    settings = google_config(
        token_service, client, monkeypatch, test_ca,
        secret="wrong-secret-Yy7" if mistake == "secret" else None,
        refresh_token="1//revoked-Qq1" if mistake == "refresh_token"
        else None)

    with pytest.raises(ConfigError) as caught:
        login(imap_config(dovecot_oauth, settings))

    assert caught.value.key == key
    assert "wrong-secret-Yy7" not in str(caught.value)
    assert "1//revoked-Qq1" not in str(caught.value)
    # Once put right, the next login works without a restart.
    monkeypatch.setenv("TEST_GOOGLE_SECRET", client.secret)
    monkeypatch.setenv("TEST_GOOGLE_REFRESH", client.refresh_token)
    login(imap_config(dovecot_oauth, settings))


def test_a_token_endpoint_away_or_failing_is_transient(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch) -> None:
    client = google_client(token_service, dovecot_oauth.user)
    settings = google_config(token_service, client, monkeypatch, test_ca)
    nobody = replace(settings,
                     token_url=f"https://{HOST}:{free_port()}/token")
    with pytest.raises(TransientError, match="cannot reach"):
        login(imap_config(dovecot_oauth, nobody))

    monkeypatch.setattr(token_service, "fail_with", 503)
    with closing(ImapSource(imap_config(dovecot_oauth, settings))) as source, \
            pytest.raises(TransientError, match="503"):
        list(source.fetch())

    monkeypatch.setattr(token_service, "fail_with", None)
    login(imap_config(dovecot_oauth, settings))


def test_a_token_endpoint_with_an_untrusted_certificate_names_ca_file(
        dovecot_oauth: DovecotMailbox, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path) -> None:
    client = microsoft_client(token_service, dovecot_oauth.user)
    settings = replace(microsoft_config(token_service, client, tmp_path,
                                        test_ca), ca_file=None)
    with pytest.raises(ConfigError) as caught:
        login(imap_config(dovecot_oauth, settings))
    assert caught.value.key == "mailbox.ca_file"
    assert "not trusted" in str(caught.value)


# -------------------------------------------------------------------- SMTP

def envelope(n: int) -> Envelope:
    return Envelope(data=raw_message(n), recipients=("head@school.example",),
                    message_id=f"<{n}@school.example>")


@pytest.fixture
def oauth_smtp(token_service: TokenService) -> Iterator[SmtpServer]:
    """An aiosmtpd server on 127.0.0.1 offering AUTH XOAUTH2, accepting
    a token only while `token_service` says it is valid for that user."""
    server = SmtpServer(handler=OAuthSmtpRecorder(token_service))
    server.require_auth()
    server.start()
    yield server
    server.remove()


def smtp_config(server: SmtpServer, settings: OAuthConfig) -> SendingConfig:
    return server.sending_config(username="programme@example.org",
                                 auth=settings.provider, oauth=settings)


@pytest.mark.parametrize("provider", ["microsoft", "google"])
def test_smtp_sends_after_auth_xoauth2(
        oauth_smtp: SmtpServer, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, provider: str) -> None:
    user = "programme@example.org"
    if provider == "microsoft":
        client = microsoft_client(token_service, user)
        settings = microsoft_config(token_service, client, tmp_path, test_ca,
                                    section="sending")
    else:
        client = google_client(token_service, user)
        settings = google_config(token_service, client, monkeypatch, test_ca,
                                 section="sending")

    with closing(SmtpSender(smtp_config(oauth_smtp, settings),
                            "programme@example.org")) as sender:
        sender.send(envelope(1))

    assert [r.content.replace(b"\r\n", b"\n") for r in oauth_smtp.received] \
        == [raw_message(1).replace(b"\r\n", b"\n")]
    assert oauth_smtp.logins == [user]
    assert len(token_service.issued(client.client_id)) == 1


def test_smtp_renews_a_revoked_token_once(
        oauth_smtp: SmtpServer, token_service: TokenService,
        test_ca: ThrowawayCA, monkeypatch: pytest.MonkeyPatch) -> None:
    client = google_client(token_service, "programme@example.org")
    settings = google_config(token_service, client, monkeypatch, test_ca,
                             section="sending")
    with closing(SmtpSender(smtp_config(oauth_smtp, settings),
                            "programme@example.org")) as sender:
        sender.send(envelope(1))
        (first,) = token_service.issued(client.client_id)
        token_service.revoke(first)
        oauth_smtp.restart()  # a new connection, so a new login
        sender.send(envelope(2))

    assert len(oauth_smtp.received) == 2
    assert len(token_service.issued(client.client_id)) == 2


def test_smtp_token_refused_again_is_transient_naming_the_username(
        oauth_smtp: SmtpServer, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path) -> None:
    client = microsoft_client(token_service, "someone@example.org")
    settings = microsoft_config(token_service, client, tmp_path, test_ca,
                                section="sending")
    with closing(SmtpSender(smtp_config(oauth_smtp, settings),
                            "programme@example.org")) as sender, \
            pytest.raises(TransientSendError) as caught:
        sender.send(envelope(1))
    assert caught.value.server_down
    assert "sending.username" in str(caught.value)
    assert len(token_service.issued(client.client_id)) == 2
    assert not oauth_smtp.received


def test_smtp_wrong_client_secret_is_held_back_naming_the_setting(
        oauth_smtp: SmtpServer, token_service: TokenService,
        test_ca: ThrowawayCA, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    client = microsoft_client(token_service, "programme@example.org")
    settings = microsoft_config(token_service, client, tmp_path, test_ca,
                                section="sending", secret="wrong-secret-Yy7")
    with caplog.at_level(logging.ERROR), \
            closing(SmtpSender(smtp_config(oauth_smtp, settings),
                               "programme@example.org")) as sender, \
            pytest.raises(TransientSendError) as caught:
        sender.send(envelope(1))
    # Kept queued (server_down) until the secret is put right.
    assert caught.value.server_down
    assert "sending.client_secret_file" in str(caught.value)
    assert "sending.client_secret_file" in caplog.text
    assert oauth_smtp.connections == 0


# --------------------------------------------------------------- secrecy

def test_no_secret_or_token_is_ever_logged(
        dovecot_oauth: DovecotMailbox, oauth_smtp: SmtpServer,
        token_service: TokenService, test_ca: ThrowawayCA, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    dovecot_oauth.deliver(raw_message(3))
    imap_client = microsoft_client(token_service, dovecot_oauth.user)
    smtp_client = google_client(token_service, "programme@example.org")
    imap_settings = microsoft_config(token_service, imap_client, tmp_path,
                                     test_ca)
    smtp_settings = google_config(token_service, smtp_client, monkeypatch,
                                  test_ca, section="sending")
    config = imap_config(dovecot_oauth, imap_settings)

    with caplog.at_level(logging.DEBUG):
        login(config)
        token_service.revoke(token_service.issued(imap_client.client_id)[0])
        with closing(ImapSource(config)) as source:
            assert len(list(source.fetch())) == 1
        with closing(SmtpSender(smtp_config(oauth_smtp, smtp_settings),
                                "programme@example.org")) as sender:
            sender.send(envelope(1))
            token_service.revoke(
                token_service.issued(smtp_client.client_id)[0])
            oauth_smtp.restart()
            sender.send(envelope(2))
        with pytest.raises(ConfigError):
            login(imap_config(dovecot_oauth, replace(
                imap_settings, client_secret=secret_file(
                    tmp_path, "wrong", "wrong-secret-Yy7"))))

    tokens = (token_service.issued(imap_client.client_id)
              + token_service.issued(smtp_client.client_id))
    assert len(tokens) == 4
    secrets = [imap_client.secret, smtp_client.secret,
               smtp_client.refresh_token, "wrong-secret-Yy7"]
    for token, user in zip(tokens, [dovecot_oauth.user] * 2
                           + ["programme@example.org"] * 2, strict=True):
        sent = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        secrets += [token, base64.b64encode(sent).decode()]
    # Everything mailbot and its libraries (msal, imapclient, aiosmtplib,
    # urllib3) logged; not the test SMTP server's own log ("mail.log").
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name.startswith("imapclient") for r in records)
    assert any(r.name.startswith("mailbot.oauth") for r in records)
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in records)
    for secret in secrets:
        assert secret not in logged
