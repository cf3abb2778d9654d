"""Outgoing mail over SMTP, on one connection kept open between messages.

aiosmtplib is asynchronous; mailbot is not. `SmtpSender` owns a private
event loop and runs each send on it, so the connection (which belongs to
that loop) survives from one message to the next.

How the server's answers become mailbot's errors:

    4xx reply, timeout, refused or dropped connection  TransientSendError
    5xx to the greeting, EHLO or our sender address     TransientSendError
                                                        (every message would
                                                        be refused: queued
                                                        for a fix)
    5xx to the message (DATA)                           PermanentSendError
    some recipients refused (5xx), others accepted     sent to the accepted
                                                        ones, then
                                                        PermanentSendError
                                                        naming the refused

In the last case the message counts as sent to the accepted recipients:
the caller must not send it again, only tell staff about `.recipients`.
When any recipient gets a 4xx, nobody is sent the message and the whole
message is retried later, so that nobody gets it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Iterable

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from mailbot import oauth
from mailbot.config import SendingConfig, is_loopback, tls_context
from mailbot.errors import (
    ConfigError,
    PermanentSendError,
    TransientError,
    TransientSendError,
)
from mailbot.senders import Envelope

log = logging.getLogger(__name__)


def envelope_recipients(addresses: Iterable[str]) -> list[str]:
    """The addresses to give RCPT TO: each once (whatever its case), in
    order, leaving out anything without an @."""
    found: dict[str, str] = {}
    for address in addresses:
        address = address.strip()
        if address and "@" in address:
            found.setdefault(address.lower(), address)
    return list(found.values())


class SmtpSender:
    """A `Sender` that delivers through an SMTP server (submission)."""

    def __init__(self, config: SendingConfig, envelope_from: str) -> None:
        if config.security not in ("tls", "starttls", "none"):
            raise ConfigError("sending", "sending.security",
                              "must be tls, starttls or none")
        self.config = config
        self.envelope_from = envelope_from
        self.where = f"{config.host}:{config.port}"
        if config.security == "none" and not is_loopback(config.host):
            log.warning("%s: sending.security is none: the password and all "
                        "mail cross the network unencrypted", self.where)
        self._loop = asyncio.new_event_loop()
        self._smtp: aiosmtplib.SMTP | None = None
        # One loop, one connection: sends from several threads take turns.
        self._lock = threading.Lock()

    def send(self, message: Envelope) -> None:
        recipients = envelope_recipients(message.recipients)
        if not recipients:
            raise PermanentSendError([], "the message has no recipients")
        with self._lock:
            self._loop.run_until_complete(self._send(recipients, message.data))

    def close(self) -> None:
        with self._lock:
            if self._loop.is_closed():
                return
            if self._smtp is not None and self._smtp.is_connected:
                with contextlib.suppress(SMTPException, OSError):
                    self._loop.run_until_complete(self._smtp.quit())
            self._forget()
            self._loop.close()

    # ------------------------------------------------------------ sending

    async def _send(self, recipients: list[str], data: bytes) -> None:
        try:
            await self._transaction(recipients, data)
        except SMTPAuthenticationError as exc:
            self._forget()
            log.error("%s: login as %r refused: %s %s", self.where,
                      self.config.username, exc.code, exc.message)
            raise TransientSendError(
                recipients, f"{self.where} refused the login as "
                f"{self.config.username!r} ({exc.code} {exc.message}); "
                "check sending.username and the password",
                server_down=True) from exc
        except SMTPResponseException as exc:
            await self._reset()
            detail = f"{self.where} answered {exc.code} {exc.message}"
            if 400 <= exc.code < 500:
                raise TransientSendError(recipients, detail) from exc
            if exc.code == 530:
                # The server wants a login that the config does not give:
                # every message would fail, so keep them queued for a fix.
                log.error("%s: a login is required; set sending.username",
                          self.where)
                raise TransientSendError(recipients, detail,
                                         server_down=True) from exc
            if isinstance(exc, (SMTPConnectResponseError, SMTPHeloError,
                                SMTPSenderRefused)):
                # Refused before any message was named (a greeting or EHLO
                # refused, our sender address refused): every message would
                # be, so they stay queued until the server or the config is
                # put right, and the digest shows them waiting.
                log.error("%s refuses to take mail from mailbot: %s",
                          self.where, detail)
                raise TransientSendError(recipients, detail,
                                         server_down=True) from exc
            # Refused at DATA: this message, not its recipients.
            raise PermanentSendError([], detail) from exc
        except (SMTPException, OSError) as exc:
            # Timeouts, refused and dropped connections, missing STARTTLS:
            # the connection is in an unknown state, so start afresh.
            self._forget()
            raise TransientSendError(
                recipients, f"{self.where}: {type(exc).__name__}: {exc}",
                server_down=True) from exc

    async def _transaction(self, recipients: list[str], data: bytes) -> None:
        reused = self._smtp is not None and self._smtp.is_connected
        smtp = await self._connection()
        try:
            await smtp.mail(self.envelope_from)
        except (ConnectionError, SMTPSenderRefused) as exc:
            # Servers close idle connections while we are not looking,
            # some with a 421 first. Nothing was sent on this one, so one
            # retry on a new connection is safe.
            closed = isinstance(exc, ConnectionError) or (
                isinstance(exc, SMTPSenderRefused) and exc.code == 421)
            if not (reused and closed):
                raise
            log.info("%s: connection was closed; connecting again", self.where)
            self._forget()
            smtp = await self._connection()
            await smtp.mail(self.envelope_from)

        refused: dict[str, SMTPResponseException] = {}
        for address in recipients:
            try:
                await smtp.rcpt(address)
            except SMTPRecipientRefused as exc:
                refused[address] = exc
            except UnicodeEncodeError:
                # Would need SMTPUTF8 (RFC 6531), which mailbot does not use.
                refused[address] = SMTPRecipientRefused(
                    553, "non-ASCII address not supported", address)
        later = [a for a, exc in refused.items() if exc.code < 500]
        if later:
            await self._reset()
            raise TransientSendError(later, _replies(refused))
        if len(refused) == len(recipients):
            await self._reset()
            raise PermanentSendError(list(refused), _replies(refused),
                                     _unknown(refused))

        try:
            await smtp.data(data)
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            # Lost once the message was on its way: the server may have it.
            self._forget()
            raise TransientSendError(
                recipients, f"{self.where}: {type(exc).__name__}: {exc} "
                "while handing the message over", server_down=True,
                maybe_sent=True) from exc
        if refused:
            accepted = [a for a in recipients if a not in refused]
            log.warning("%s: sent to %s but refused for %s", self.where,
                        ", ".join(accepted), ", ".join(refused))
            raise PermanentSendError(
                list(refused), f"{_replies(refused)}; the message was sent "
                               f"to {', '.join(accepted)}", _unknown(refused))

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        config = self.config
        # XOAUTH2: the token first, so that no connection waits on it.
        token = self._access_token() if config.oauth is not None else ""
        smtp = aiosmtplib.SMTP(
            hostname=config.host, port=config.port,
            timeout=config.timeout_seconds,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=(tls_context(config.ca_file)
                         if config.security != "none" else None))
        await smtp.connect()
        try:
            if config.oauth is not None:
                await self._xoauth2(smtp, token)
            elif config.username:
                await smtp.login(config.username, config.password.value())
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        log.debug("%s: connected%s", self.where,
                  f" as {config.username}" if config.username else "")
        return smtp

    def _access_token(self) -> str:
        """An access token for XOAUTH2, or TransientSendError (server_down:
        nothing can be sent without one), logged at ERROR when the token
        endpoint refused the client and only a config change can help."""
        assert self.config.oauth is not None
        tokens = oauth.provider(self.config.oauth, self.config.username)
        try:
            return tokens.token()
        except ConfigError as exc:
            log.error("%s: cannot log in: %s", self.where, exc)
            raise TransientSendError([], str(exc), server_down=True) from exc
        except TransientError as exc:
            raise TransientSendError([], str(exc), server_down=True) from exc

    async def _xoauth2(self, smtp: aiosmtplib.SMTP, token: str) -> None:
        """AUTH XOAUTH2 (aiosmtplib answers the server's error challenge
        with the empty line the mechanism asks for). A token refused for
        good (5xx: expired or revoked early) is renewed and tried once
        more; a new token refused too is SMTPAuthenticationError."""
        assert self.config.oauth is not None
        username = self.config.username
        try:
            await smtp.auth_xoauth2(username, token)
            return
        except SMTPAuthenticationError as exc:
            if exc.code < 500:
                raise
            log.info("%s: access token refused (%s %s); getting a new one",
                     self.where, exc.code, exc.message)
        tokens = oauth.provider(self.config.oauth, username)
        try:
            token = tokens.renew(token)
        except (ConfigError, TransientError) as exc:
            raise TransientSendError([], str(exc), server_down=True) from exc
        try:
            await smtp.auth_xoauth2(username, token)
        except SMTPAuthenticationError as exc:
            tokens.forget()
            log.error("%s: XOAUTH2 login as %r refused, with a new access "
                      "token too: %s %s (check sending.username, and that the "
                      "app registered as sending.client_id may send as it)",
                      self.where, username, exc.code, exc.message)
            raise TransientSendError(
                [], f"{self.where} refused the XOAUTH2 login as {username!r} "
                f"({exc.code} {exc.message}); check sending.username",
                server_down=True) from exc

    async def _reset(self) -> None:
        """End a failed transaction so the connection can carry the next."""
        if self._smtp is None or not self._smtp.is_connected:
            return
        try:
            await self._smtp.rset()
        except (SMTPException, OSError):
            self._forget()

    def _forget(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


# The class and subject of an enhanced status code (RFC 3463) starting a
# reply's text: 5.1.x is about the address, 5.2.x the mailbox.
_ENHANCED = re.compile(r"\s*5\.(\d{1,3})\.\d{1,3}\b")


def _unknown(refused: dict[str, SMTPResponseException]) -> list[str]:
    """The refused recipients whose reply blames the address or its
    mailbox (5.1.x, 5.2.x, or a reply without an enhanced code, as older
    servers give). A refusal by rule (5.7.1 relaying denied, say: a
    relay set up wrong for an hour) says nothing of the address."""
    return [address for address, exc in refused.items()
            if (found := _ENHANCED.match(str(exc.message))) is None
            or found.group(1) in ("1", "2")]


def _replies(refused: dict[str, SMTPResponseException]) -> str:
    return "; ".join(f"{address}: {exc.code} {exc.message}"
                     for address, exc in refused.items())
