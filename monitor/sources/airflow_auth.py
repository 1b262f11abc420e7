"""How dagwatch proves who it is to Airflow.

    TokenProvider (protocol)     a bearer token, fetched or refreshed when needed
    ├── StaticToken              `auth: {token}` — a token someone else issued
    ├── PasswordToken            `auth: {username, password}` on Airflow 3: POST /auth/token → JWT,
    │                            refreshed before it expires and after a 401
    ├── ComposerToken            Cloud Composer: Google credentials (stub: needs google-auth)
    └── MwaaToken                Amazon MWAA (stub: needs boto3)
    BasicCredentials             Airflow 2 (`auth: {basic}`, or username/password on API v1)

Managed services plug in as another TokenProvider: nothing else in the source changes. Secrets
stay in `SecretStr` until the header is built, and no error message ever contains them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from pydantic import SecretStr

from monitor.sources.base import SourceUnavailable


class AirflowAuthError(SourceUnavailable):
    """Airflow refused dagwatch's credentials (401/403): an outage for dagwatch, fixed in config."""


class TokenProvider(Protocol):
    def token(self, http: httpx.Client) -> str:
        """A bearer token valid now; `http` is the source's client (same base URL and transport)."""

    def invalidate(self) -> None:
        """Forget the current token (Airflow answered 401 with it)."""


@dataclass
class StaticToken:
    value: SecretStr

    def token(self, http: httpx.Client) -> str:
        return self.value.get_secret_value()

    def invalidate(self) -> None:
        """Nothing to refresh: a second 401 reports the token as refused."""


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (epoch seconds), read without verifying: only to refresh in time."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


@dataclass
class PasswordToken:
    """Airflow 3's `POST /auth/token` (SimpleAuthManager, FAB): a JWT, 24 h by default.

    Refreshed when less than `margin` (or a tenth of its life) is left, so a poll never starts
    with a token about to expire; a 401 anyway (server restarted with a new secret) refreshes once."""

    username: str
    password: SecretStr
    path: str = "/auth/token"
    margin: float = 300.0
    clock: Callable[[], float] = time.time
    _token: str | None = field(default=None, repr=False)
    _refresh_at: float = 0.0

    def token(self, http: httpx.Client) -> str:
        if self._token is None or self.clock() >= self._refresh_at:
            self._fetch(http)
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self, http: httpx.Client) -> None:
        body = {"username": self.username, "password": self.password.get_secret_value()}
        try:
            response = http.post(self.path, json=body)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"cannot reach Airflow to get a token: {type(exc).__name__}") from None
        if response.status_code in (400, 401, 403, 422):
            raise AirflowAuthError(f"Airflow refused the password of user {self.username!r} at {self.path} (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise SourceUnavailable(f"Airflow could not issue a token: HTTP {response.status_code} at {self.path}")
        try:
            token = str(response.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise SourceUnavailable(f"Airflow's {self.path} answered without an access_token") from None
        now = self.clock()
        expiry = jwt_expiry(token)
        if expiry is None:
            self._refresh_at = now + 3600.0  # unknown lifetime: refresh hourly, and on 401
        else:
            self._refresh_at = expiry - min(self.margin, max(0.0, (expiry - now) / 10))
        self._token = token


@dataclass
class ComposerToken:
    """Cloud Composer (Airflow 3 or 2): the web server accepts Google OAuth access tokens.

    Stub: google-auth is not a dependency of dagwatch. With it installed the body is
    `creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])`,
    `creds.refresh(google.auth.transport.requests.Request())`, then `creds.token` until
    `creds.expiry`. Not tested here."""

    def token(self, http: httpx.Client) -> str:
        raise AirflowAuthError("Cloud Composer tokens need google-auth, which dagwatch does not ship yet")

    def invalidate(self) -> None:
        pass


@dataclass
class MwaaToken:
    """Amazon MWAA: `boto3.client("mwaa").create_web_login_token(Name=env)` gives a token
    exchanged for a session at `https://{host}/aws_mwaa/login`; MWAA ≥ 2.10 also has
    `invoke_rest_api`. Stub: boto3 is not a dependency of dagwatch. Not tested here."""

    environment: str = ""

    def token(self, http: httpx.Client) -> str:
        raise AirflowAuthError("Amazon MWAA tokens need boto3, which dagwatch does not ship yet")

    def invalidate(self) -> None:
        pass


@dataclass
class BasicCredentials:
    """Airflow 2 with `[api] auth_backends = airflow.api.auth.backend.basic_auth`."""

    username: str
    password: SecretStr

    @classmethod
    def from_pair(cls, pair: SecretStr) -> BasicCredentials:
        user, sep, password = pair.get_secret_value().partition(":")
        if not sep:
            raise ValueError("auth.basic must be `user:password`")
        return cls(user, SecretStr(password))

    def header(self) -> str:
        raw = f"{self.username}:{self.password.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(raw).decode()


Credentials = TokenProvider | BasicCredentials | None
