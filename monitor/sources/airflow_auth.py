"""How dagwatch proves who it is to Airflow.

    TokenProvider (protocol)     a bearer token, fetched or refreshed when needed
    ├── StaticToken              `auth: {token}` — a token someone else issued
    ├── PasswordToken            `auth: {username, password}` on Airflow 3: POST /auth/token → JWT,
    │                            refreshed before it expires and after a 401
    └── ComposerToken            `auth: {google}` on Cloud Composer: Google OAuth access tokens
                                 (google-auth, the `composer` extra)
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
from typing import Any, Protocol

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


class ComposerToken:
    """Cloud Composer (Airflow 3 or 2): its web server takes Google OAuth access tokens.

    google-auth does the OAuth work (signing the service account's assertion, the token
    endpoint, expiry); it is an optional extra (`dagwatch[composer]`), imported only when a
    source uses it. `credentials`: "default" for Application Default Credentials (what
    `gcloud auth application-default login` or the metadata server give), or the path of a
    service-account key file. Refreshed when google-auth says the token is no longer valid (it refreshes a few
    minutes before expiry) and after a 401."""

    SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

    def __init__(self, credentials: str = "default") -> None:
        self.source = credentials
        self._credentials: Any = None
        self._stale = False

    def token(self, http: httpx.Client) -> str:
        try:
            from google.auth import exceptions
            from google.auth.transport.requests import Request
        except ImportError:
            raise AirflowAuthError("Cloud Composer auth needs google-auth: pip install 'dagwatch[composer]'") from None
        creds = self._credentials or self._load()
        if self._stale or not creds.valid:
            try:
                creds.refresh(Request())
            except exceptions.TransportError as exc:
                raise SourceUnavailable(f"cannot reach Google's token endpoint: {type(exc).__name__}") from None
            except exceptions.RefreshError as exc:
                raise AirflowAuthError(f"Google refused the credentials {self.source!r}: {_first_line(exc)}") from None
            self._stale = False
        return str(creds.token)

    def invalidate(self) -> None:
        self._stale = True

    def _load(self) -> Any:
        import google.auth
        from google.auth import exceptions
        from google.oauth2 import service_account

        try:
            if self.source == "default":
                creds, _ = google.auth.default(scopes=self.SCOPES)
            else:
                creds = service_account.Credentials.from_service_account_file(self.source, scopes=self.SCOPES)
        except (exceptions.DefaultCredentialsError, OSError, ValueError) as exc:
            raise AirflowAuthError(
                f"no usable Google credentials ({self.source}): {_first_line(exc)}; "
                "set GOOGLE_APPLICATION_CREDENTIALS or give a key file as auth.google"
            ) from None
        self._credentials = creds
        return creds


def _first_line(exc: Exception) -> str:
    """Google's errors may quote the token endpoint's answer; its first line says what failed."""
    return str(exc.args[0] if exc.args else exc).splitlines()[0][:300]


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
