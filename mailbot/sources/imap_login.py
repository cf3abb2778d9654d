"""Opening an IMAP session: connect, TLS, LOGIN, SELECT, as mailbot errors.

TLS ("tls" from the first byte, or "starttls" on the plain port) always
checks the server's certificate and host name, against the system's CAs
plus `mailbox.ca_file`. A certificate that fails either check is a
ConfigError naming the key to look at, as a refused login is: the
password is never sent, and the daemon tries again at its next poll. With
"starttls", a server that does not offer STARTTLS is refused the same
way; mailbot never falls back to plain text.

With `mailbox.auth = "microsoft"` or `"google"` the login is XOAUTH2
with an access token from mailbot.oauth, fetched before connecting. A
token the server refuses (expired or revoked early) is replaced by a new
one, once, on the same connection; a new token refused too is a
ConfigError naming mailbox.username.

imapclient traces the protocol to the "imapclient" loggers at DEBUG and
redacts LOGIN lines itself; a filter here also scrubs the password (and
the access tokens, as sent and in base64) from any other line those
loggers write, so `--verbose` never shows them.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import ssl
from collections import deque
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import (
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from mailbot import oauth
from mailbot.config import MailboxConfig, tls_context
from mailbot.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

# What a dropped or unreachable server looks like from imapclient.
CONNECTION_ERRORS = (OSError, IMAPClientAbortError)

REDACTED = "**REDACTED**"


class _Scrubber(logging.Filter):
    """Replaces every known password in a record with REDACTED."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        # Access tokens change every hour or so: only the latest few.
        self.tokens: deque[str] = deque(maxlen=16)

    def add_token(self, username: str, token: str) -> None:
        """An access token, as itself and as the XOAUTH2 string sent."""
        sent = f"user={username}\x01auth=Bearer {token}\x01\x01"
        for form in (token, base64.b64encode(sent.encode()).decode()):
            if form not in self.tokens:
                self.tokens.append(form)

    def add(self, secret: str) -> None:
        if not secret:
            return
        # As given, quoted by imaplib, and as either appears in a repr().
        quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
        for form in (secret, quoted):
            self.secrets.add(form)
            self.secrets.add(repr(form.encode())[2:-1])

    def filter(self, record: logging.LogRecord) -> bool:
        if not (self.secrets or self.tokens):
            return True
        text = record.getMessage()
        scrubbed = text
        for secret in sorted({*self.secrets, *self.tokens}, key=len,
                             reverse=True):
            scrubbed = scrubbed.replace(secret, REDACTED)
        if scrubbed != text:
            record.msg, record.args = scrubbed, None
        return True


_SCRUBBER = _Scrubber()
# A filter on a logger sees only that logger's own records, so each of
# imapclient's loggers gets it.
for _name in ("imapclient", "imapclient.imapclient", "imapclient.imaplib",
              "imapclient.util"):
    logging.getLogger(_name).addFilter(_SCRUBBER)


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def open_session(config: MailboxConfig, where: str) -> tuple[Any, Any]:
    """A logged-in IMAPClient with the folder selected, and the SELECT
    response (UIDVALIDITY, UIDNEXT, ...)."""
    tokens = token = None
    if config.oauth is not None:
        # Before connecting: a token endpoint that fails (TransientError)
        # or refuses the client (ConfigError) leaves no connection open.
        tokens = oauth.provider(config.oauth, config.username)
        token = tokens.token()
        _SCRUBBER.add_token(config.username, token)
        password = ""
    else:
        password = config.password.value()
        _SCRUBBER.add(password)
    try:
        context = tls_context(config.ca_file)
    except OSError as exc:
        raise ConfigError(config.ca_file or "mailbox", "mailbox.ca_file",
                          f"cannot load CA certificates: {exc}") from exc
    try:
        imap = IMAPClient(config.host, config.port,
                          ssl=config.security == "tls",
                          ssl_context=context,
                          timeout=config.timeout_seconds)
    except ssl.SSLCertVerificationError as exc:
        raise certificate_refused(config, where, exc) from exc
    except (OSError, IMAPClientError) as exc:
        raise TransientError(
            f"cannot reach IMAP server {where}: {exc}") from exc

    step = "STARTTLS"
    try:
        if config.security == "starttls":
            if not imap.has_capability("STARTTLS"):
                close_quietly(imap)
                raise ConfigError(
                    f"IMAP server {where}", "mailbox.security",
                    "starttls: the server does not offer STARTTLS, so "
                    "mailbot will not log in over plain text (use "
                    "security = \"tls\" on the server's TLS port, "
                    "often 993)")
            imap.starttls(context)
        step = "LOGIN"
        if tokens is not None and token is not None:
            step = "AUTHENTICATE XOAUTH2"
            oauth_login(imap, config, tokens, token, where)
        else:
            imap.login(config.username, password)
        step = f"opening {config.folder!r}"
        status = imap.select_folder(config.folder)
    except LoginError as exc:
        close_quietly(imap)
        detail = text(exc.args[0]) if exc.args else "refused"
        if "UNAVAILABLE" in detail:
            raise TransientError(
                f"IMAP server {where} cannot check "
                f"{'passwords' if tokens is None else 'tokens'} "
                f"now: {detail}") from exc
        if tokens is not None:
            # The next poll starts with yet another token.
            tokens.forget()
            raise ConfigError(
                f"IMAP server {where}", "mailbox.username",
                f"XOAUTH2 login as {config.username!r} refused, with a new "
                f"access token too: {detail} (check mailbox.username, and "
                "that the app registered as mailbox.client_id may open "
                "this mailbox over IMAP)") from exc
        raise ConfigError(
            f"IMAP server {where}", "mailbox.username",
            f"login as {config.username!r} refused: {detail} "
            "(check the username and password)") from exc
    except ssl.SSLCertVerificationError as exc:
        close_quietly(imap)
        raise certificate_refused(config, where, exc) from exc
    except (ConfigError, TransientError):
        # From the token endpoint, when a refused token was renewed.
        close_quietly(imap)
        raise
    except CONNECTION_ERRORS as exc:
        close_quietly(imap)
        raise TransientError(
            f"IMAP server {where} dropped the connection: {exc}") from exc
    except IMAPClientError as exc:
        close_quietly(imap)
        raise ConfigError(f"IMAP server {where}", "mailbox",
                          f"{step} failed: {exc}") from exc

    if not (imap.has_capability("MOVE") or imap.has_capability("UIDPLUS")):
        log.warning("%s: the server has neither MOVE nor UIDPLUS; moved "
                    "messages stay in %s flagged \\Deleted",
                    where, config.folder)
    return imap, status


def oauth_login(imap: Any, config: MailboxConfig,
                tokens: oauth.TokenProvider, token: str, where: str) -> None:
    """AUTHENTICATE XOAUTH2; a refused token (it may have expired or been
    revoked before its time) is replaced by a new one and tried once more.
    LoginError if that is refused too."""
    try:
        imap.oauth2_login(config.username, token)
        return
    except LoginError as exc:
        detail = text(exc.args[0]) if exc.args else "refused"
        if "UNAVAILABLE" in detail:
            raise
        log.info("%s: access token refused (%s); getting a new one",
                 where, detail)
    token = tokens.renew(token)
    _SCRUBBER.add_token(config.username, token)
    imap.oauth2_login(config.username, token)


# OpenSSL's verify codes for a certificate that is not for the host name
# or IP address connected to.
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH


def certificate_refused(config: MailboxConfig, where: str,
                        exc: ssl.SSLCertVerificationError) -> ConfigError:
    """The error for a server certificate that failed verification."""
    detail = (exc.verify_message or str(exc)).rstrip(".")
    if exc.verify_code in _NAME_MISMATCH:
        return ConfigError(
            f"IMAP server {where}", "mailbox.host",
            f"the server's TLS certificate is not for {config.host!r} "
            f"({detail}); mailbot did not log in. Set mailbox.host to a "
            "name that the certificate holds")
    trusted = ("the system's CAs and mailbox.ca_file "
               f"({config.ca_file})" if config.ca_file else "the system's CAs")
    return ConfigError(
        f"IMAP server {where}", "mailbox.ca_file",
        f"the server's TLS certificate is not trusted ({detail}); "
        f"mailbot did not log in. It checks against {trusted}: if the "
        "server's certificate comes from a private CA, name that CA's "
        "certificate in mailbox.ca_file")


def close_quietly(imap: Any) -> None:
    with contextlib.suppress(OSError, IMAPClientError):
        imap.shutdown()
