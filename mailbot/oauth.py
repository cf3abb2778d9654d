"""OAuth 2.0 access tokens for XOAUTH2 logins to IMAP and SMTP.

Microsoft 365: the client credentials flow of an app registration (msal),
one token for every mailbox the app may open. Google: a refresh token,
exchanged for an access token at the token endpoint.

`provider(oauth, username)` gives the one `TokenProvider` of an account.
It keeps the access token and asks for a new one when less than
RENEW_BEFORE seconds of its life remain (half its life for a short-lived
token), or when the mail server refused it (`renew`). The client secret
and the refresh token are read from their `Secret` at each request, so a
corrected secret works at the next poll without a restart.

Errors, by what happens next:

    the secret, refresh token, client or tenant refused   ConfigError
                                                           naming the key
    no answer, a timeout, a 5xx or 429, a garbled reply   TransientError

Neither tokens nor secrets are ever logged, nor put in an error.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailbot.config import OAuthConfig, tls_context
from mailbot.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

# A token is renewed when it has less than this many seconds left...
RENEW_BEFORE = 300.0
# ...or less than this share of its life, whichever comes first.
RENEW_SHARE = 0.5
# When the endpoint does not say how long a token lives (it should).
DEFAULT_LIFETIME = 3600.0

# What a provider's error code means, as the key to look at.
_MICROSOFT_KEYS = {
    "invalid_client": "client_secret",       # AADSTS7000215, 7000222
    "unauthorized_client": "client_id",      # AADSTS700016
    "invalid_scope": "scope",                # AADSTS70011, 1002012
    "invalid_resource": "scope",             # AADSTS500011
}
_GOOGLE_KEYS = {
    "invalid_client": "client_secret",
    "unauthorized_client": "client_id",
    "invalid_grant": "refresh_token",
    "invalid_scope": "scope",
}
# Answers that say: try again later.
_TRANSIENT_ERRORS = {"temporarily_unavailable", "server_error",
                     "slow_down", "too_many_requests"}


def now() -> float:
    return time.monotonic()


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float


class TokenProvider:
    """The access tokens of one account (an OAuth client and a user).

    Safe to call from several threads: one request at a time.
    """

    def __init__(self, oauth: OAuthConfig, username: str) -> None:
        self.oauth = oauth
        self.username = username
        self._lock = threading.Lock()
        self._token: _Token | None = None

    @property
    def where(self) -> str:
        """The token endpoint, for messages (never a secret)."""
        if self.oauth.provider == "microsoft":
            return f"OAuth authority {self.authority}"
        return f"OAuth token endpoint {self.oauth.token_url}"

    @property
    def authority(self) -> str:
        return f"{self.oauth.authority}/{self.oauth.tenant_id}"

    def token(self) -> str:
        """An access token with some life left, new if need be."""
        with self._lock:
            if self._token is None or now() >= self._token.renew_at:
                self._token = self._fetch()
            return self._token.value

    def renew(self, refused: str) -> str:
        """A new access token in place of `refused`, which the server did
        not accept (expired, revoked). If another caller has renewed it
        meanwhile, that newer token."""
        with self._lock:
            if self._token is None or self._token.value == refused:
                self._token = None
                self._token = self._fetch()
            return self._token.value

    def forget(self) -> None:
        """Drop the token held, so that the next call asks for a new one."""
        with self._lock:
            self._token = None

    # ------------------------------------------------------------ requests

    def _fetch(self) -> _Token:
        started = now()
        if self.oauth.provider == "microsoft":
            value, lifetime = self._microsoft()
        else:
            value, lifetime = self._google()
        margin = min(RENEW_BEFORE, lifetime * RENEW_SHARE)
        log.info("%s: new access token for %s, valid for %d s", self.where,
                 self.username, lifetime)
        return _Token(value, started + lifetime - margin)

    def _google(self) -> tuple[str, float]:
        oauth = self.oauth
        form = {
            "grant_type": "refresh_token",
            "client_id": oauth.client_id,
            "client_secret": self._secret("client_secret"),
            "refresh_token": self._secret("refresh_token"),
            "scope": oauth.scope,
        }
        response = _Http(oauth).post(oauth.token_url, data=form)
        reply = self._reply(response)
        if response.status_code == 200:
            return self._issued(reply)
        raise self._refused(reply, response.status_code, _GOOGLE_KEYS)

    def _microsoft(self) -> tuple[str, float]:
        import msal  # only those who use Microsoft pay for loading it

        oauth = self.oauth
        try:
            # A new application each time: msal would otherwise answer
            # from its own cache with the token the server has refused,
            # and a corrected client secret is read afresh.
            app = msal.ConfidentialClientApplication(
                oauth.client_id,
                client_credential=self._secret("client_secret"),
                authority=self.authority,
                # Never ask login.microsoftonline.com about another host.
                instance_discovery=False,
                http_client=_Http(oauth),
                token_cache=msal.TokenCache())
        except ValueError as exc:
            # msal found no tenant there (a 4xx from its discovery URL),
            # or the address is not one it can use.
            raise ConfigError(
                self.where, oauth.key("tenant_id"),
                f"the tenant {oauth.tenant_id!r} was not found at "
                f"{oauth.authority} (check {oauth.key('tenant_id')} and "
                f"{oauth.key('authority')}): {_first_line(exc)}") from exc
        reply = app.acquire_token_for_client(scopes=[oauth.scope])
        if not isinstance(reply, dict):
            raise TransientError(f"{self.where}: no answer from msal")
        if "access_token" in reply:
            return self._issued(reply)
        raise self._refused(reply, 400, _MICROSOFT_KEYS)

    def _secret(self, name: str) -> str:
        secret = (self.oauth.client_secret if name == "client_secret"
                  else self.oauth.refresh_token)
        value = secret.value()
        if not value:
            raise ConfigError(secret.file or "environment",
                              self.oauth.key(name), "is empty")
        return value

    def _reply(self, response: _Response) -> dict[str, Any]:
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"{self.where} answered HTTP "
                                 f"{response.status_code}; trying again later")
        try:
            reply = json.loads(response.text)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise TransientError(f"{self.where} answered HTTP "
                                 f"{response.status_code} without JSON")
        return reply

    def _issued(self, reply: Mapping[str, Any]) -> tuple[str, float]:
        value = reply.get("access_token")
        if not isinstance(value, str) or not value:
            raise TransientError(f"{self.where} answered without an "
                                 "access token")
        try:
            lifetime = float(reply.get("expires_in", DEFAULT_LIFETIME))
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        return value, max(lifetime, 1.0)

    def _refused(self, reply: Mapping[str, Any], status: int,
                 keys: Mapping[str, str]) -> ConfigError | TransientError:
        error = str(reply.get("error") or f"HTTP {status}")
        # The description is the server's own words (Microsoft's begin with
        # an AADSTS code); it never holds the secret that was sent.
        description = _first_line(str(reply.get("error_description") or ""))
        said = f"{error}: {description}" if description else error
        if error in _TRANSIENT_ERRORS:
            return TransientError(f"{self.where} refused for now: {said}")
        name = keys.get(error, "")
        if self.oauth.provider == "microsoft" and "AADSTS90002" in said:
            name = "tenant_id"  # "Tenant ... not found"
        if not name:
            return ConfigError(self.where, self.oauth.key("client_id"),
                               f"no access token: {said}")
        key = self.oauth.key(name)
        hint = {
            "client_secret": f"check {key} (and {self.oauth.key('client_id')})"
                             "; a client secret can expire",
            "refresh_token": f"check {key}: the refresh token has expired or "
                             "was revoked; get a new one",
            "client_id": f"check {key}",
            "scope": f"check {key}",
            "tenant_id": f"check {key}",
        }[name]
        return ConfigError(self.where, key,
                           f"no access token ({hint}): {said}")


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


# --------------------------------------------------------------- registry

_providers: dict[tuple[OAuthConfig, str], TokenProvider] = {}
_providers_lock = threading.Lock()


def provider(oauth: OAuthConfig, username: str) -> TokenProvider:
    """The one TokenProvider of this account, for every connection."""
    with _providers_lock:
        found = _providers.get((oauth, username))
        if found is None:
            found = _providers[(oauth, username)] = TokenProvider(oauth,
                                                                  username)
        return found


def forget_all() -> None:
    """Drop every provider and its token (for tests)."""
    with _providers_lock:
        _providers.clear()


# ------------------------------------------------------------------- HTTP

@dataclass
class _Response:
    """An HTTP answer, as msal's http_client interface wants it."""

    status_code: int
    text: str
    headers: dict[str, str]
    where: str

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise TransientError(f"{self.where} answered HTTP "
                                 f"{self.status_code}")


class _Http:
    """A small HTTP client on urllib (msal's `http_client` interface), so
    that the token endpoint is trusted as the mail server is: the
    system's CAs plus `ca_file`. Honours the usual *_proxy variables. A
    connection that fails is a TransientError."""

    def __init__(self, oauth: OAuthConfig) -> None:
        self.oauth = oauth
        self.timeout = oauth.timeout_seconds
        try:
            context = tls_context(oauth.ca_file)
        except OSError as exc:
            raise ConfigError(oauth.ca_file or oauth.section,
                              f"{oauth.section}.ca_file",
                              f"cannot load CA certificates: {exc}") from exc
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context))

    def get(self, url: str, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None,
            **_: Any) -> _Response:
        return self._request("GET", url, params, None, headers)

    def post(self, url: str, params: Mapping[str, str] | None = None,
             data: Mapping[str, str] | str | bytes | None = None,
             headers: Mapping[str, str] | None = None,
             **_: Any) -> _Response:
        return self._request("POST", url, params, data or "", headers)

    def close(self) -> None:
        """Nothing stays open between requests."""

    def _request(self, method: str, url: str,
                 params: Mapping[str, str] | None,
                 data: Mapping[str, str] | str | bytes | None,
                 headers: Mapping[str, str] | None) -> _Response:
        where = url.split("?", 1)[0]
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(
                params)
        body: bytes | None = None
        sent = dict(headers or {})
        if data is not None:
            if isinstance(data, Mapping):
                data = urllib.parse.urlencode(data)
                sent.setdefault("Content-Type",
                                "application/x-www-form-urlencoded")
            body = data.encode() if isinstance(data, str) else data
        request = urllib.request.Request(url, data=body, headers=sent,
                                         method=method)
        request.add_header("Accept", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return _Response(answer.status, _text(answer.read()),
                                 dict(answer.headers.items()), where)
        except urllib.error.HTTPError as exc:
            with exc:
                return _Response(exc.code, _text(exc.read()),
                                 dict(exc.headers.items()), where)
        except (OSError, ValueError) as exc:
            # URLError (refused, no route, TLS), a timeout, a dropped link.
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, ssl.SSLCertVerificationError):
                key = f"{self.oauth.section}.ca_file"
                raise ConfigError(
                    where, key, "the token endpoint's TLS certificate is not "
                    f"trusted ({reason.verify_message}): if it comes from a "
                    f"private CA, name that CA's certificate in {key}"
                ) from exc
            raise TransientError(f"cannot reach {where}: {reason}") from exc


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
