"""Airflow's REST API over HTTP: auth headers, error translation, retries, back-off, pagination.

    SourceUnavailable (monitor.sources.base)   outage: unreachable, 5xx, 429, garbage, backing off
    └── AirflowAuthError                       401/403 (credentials or permissions)
    AirflowError (DagwatchError)               the API answered, but not with what was asked
    ├── AirflowNotFound                        404 (a DAG, run or log that does not exist)
    └── AirflowRejected                        other 4xx (a request this Airflow does not accept)

Every foreign exception (httpx, JSON) is translated here, and nothing else in the source sees a
status code. The transport is passed in, so tests use `httpx.MockTransport`.

Two layers against failures: a read (GET, idempotent) that meets a blip — 5xx, 429, a dropped
connection, a read timeout — is retried a bounded number of times within the request (`Retries`),
so one blip does not fail a poll; only a request that still fails after its retries counts as a
failure of the source and starts the shared `BackOff`. Writes (clear, mark failed) are never
retried here: the caller decides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from monitor.bounded_answers import AnswerTooLarge, Bounds, peer_client
from monitor.errors import DagwatchError
from monitor.retry import Retries, backoff_delay, parse_retry_after
from monitor.sources.airflow_auth import AirflowAuthError, BasicCredentials, Credentials
from monitor.sources.base import SourceUnavailable

log = logging.getLogger(__name__)

PAGE_LIMIT = 100  # Airflow silently caps `limit` at 100 (api.maximum_page_limit)


class AirflowError(DagwatchError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AirflowNotFound(AirflowError):
    pass


class AirflowRejected(AirflowError):
    pass


@dataclass
class BackOff:
    """Exponential back-off shared by every request of one source, so a failing Airflow is
    asked less and less often (base, 2×base, … up to cap); a Retry-After from the server wins
    when it is longer. While backing off, requests fail at once without touching the network."""

    base: float = 1.0
    cap: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    not_before: float = 0.0
    last_error: str = ""

    def check(self) -> None:
        wait = self.not_before - self.clock()
        if wait > 0:
            raise SourceUnavailable(
                f"backing off for {wait:.1f}s after {self.failures} failed request(s): {self.last_error}", retry_after=wait
            )

    def failed(self, reason: str, retry_after: float | None = None) -> float:
        self.failures += 1
        self.last_error = reason
        delay = max(backoff_delay(self.failures, base=self.base, cap=self.cap), retry_after or 0.0)
        self.not_before = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.not_before, self.last_error = 0, 0.0, ""


@dataclass(frozen=True)
class Blip:
    """Why one attempt failed in a way worth retrying; `retry_after` is the server's, if it sent one."""

    reason: str
    retry_after: float | None = None


class AirflowClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        backoff: BackOff | None = None,
        retries: Retries | None = None,
        bounds: Bounds = Bounds(),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.backoff = backoff or BackOff()
        self.retries = retries or Retries()
        self.http = peer_client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "dagwatch"},
            bounds=bounds,
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict[str, Any] | None = None, *, authenticated: bool = True, permission_optional: bool = False) -> Any:
        """`permission_optional`: a 403 means this role may not read this one thing (AirflowRejected),
        not that dagwatch's credentials are wrong — for reads a poll can do without."""
        return self.request("GET", path, params=params, authenticated=authenticated, permission_optional=permission_optional)

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """A plain-text answer (Airflow 2's logs: its JSON form is a stringified list of tuples)."""
        return self.request("GET", path, params=params, accept="text/plain")

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
        return self.request("PATCH", path, json=body, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        authenticated: bool = True,
        accept: str | None = None,
        permission_optional: bool = False,
    ) -> Any:
        """One API call. GETs are retried after a blip (see `Retries`); the request's final
        failure is what the `BackOff` counts and what the caller sees as SourceUnavailable."""
        self.backoff.check()
        retry = 0
        while True:
            outcome = self._attempt(method, path, params, json, authenticated, accept)
            if not isinstance(outcome, Blip):
                return self._read(method, path, outcome, as_text=accept == "text/plain", permission_optional=permission_optional)
            retry += 1
            wait = self.retries.wait_before(retry, outcome.retry_after) if method == "GET" else None
            if wait is None:
                delay = self.backoff.failed(outcome.reason, outcome.retry_after)
                raise SourceUnavailable(outcome.reason, retry_after=outcome.retry_after if outcome.retry_after is not None else delay)
            log.info("retrying %s %s in %.2fs (retry %d): %s", method, path, wait, retry, outcome.reason)
            self.retries.sleep(wait)

    def _attempt(self, method: str, path: str, params: Any, json: Any, authenticated: bool, accept: str | None) -> httpx.Response | Blip:
        """Send once (and once more with a fresh token after a 401); a blip is returned, not raised."""
        try:
            response = self._send(method, path, params, json, authenticated, accept)
            if response.status_code == 401 and authenticated and not isinstance(self.credentials, BasicCredentials) and self.credentials:
                self.credentials.invalidate()  # an expired or rotated token: fetch a new one, once
                response = self._send(method, path, params, json, authenticated, accept)
        except AirflowAuthError as exc:
            self.backoff.failed(str(exc))
            raise
        except SourceUnavailable as exc:  # the token endpoint could not be asked
            return Blip(str(exc), exc.retry_after)
        except (AnswerTooLarge, httpx.DecodingError) as exc:  # garbage, not a blip: asking again brings the same
            what = "more than dagwatch reads" if isinstance(exc, AnswerTooLarge) else "a body dagwatch cannot decode"
            reason = f"Airflow answered {method} {path} with {what}: {exc}"
            self.backoff.failed(reason)
            raise SourceUnavailable(reason) from None
        except httpx.HTTPError as exc:  # refused, reset, timed out
            return Blip(f"cannot reach Airflow at {self.base_url}: {type(exc).__name__}: {exc}")
        if response.status_code == 429 or response.status_code >= 500:
            return Blip(
                f"Airflow answered HTTP {response.status_code} on {method} {path}", parse_retry_after(response.headers.get("Retry-After"))
            )
        return response

    def _send(self, method: str, path: str, params: Any, json: Any, authenticated: bool, accept: str | None) -> httpx.Response:
        headers = {"Accept": accept} if accept else {}
        if authenticated and self.credentials is not None:
            headers["Authorization"] = (
                self.credentials.header()
                if isinstance(self.credentials, BasicCredentials)
                else "Bearer " + self.credentials.token(self.http)
            )
        return self.http.request(method, path, params=params, json=json, headers=headers)

    def _read(self, method: str, path: str, response: httpx.Response, *, as_text: bool = False, permission_optional: bool = False) -> Any:
        status = response.status_code
        where = f"{method} {path}"
        if status == 403 and permission_optional:
            self.backoff.succeeded()
            raise AirflowRejected(f"Airflow denied {where} to dagwatch's role: HTTP 403", status)
        if status in (401, 403):
            what = (
                "refused dagwatch's credentials"
                if status == 401
                else "denied dagwatch access (wrong credentials on Airflow 2, or a role without this permission)"
            )
            reason = f"Airflow {what}: HTTP {status} on {where}"
            self.backoff.failed(reason)
            raise AirflowAuthError(reason)
        if status == 404:
            self.backoff.succeeded()
            raise AirflowNotFound(f"not found: {where}", status)
        if status >= 400:
            self.backoff.succeeded()
            raise AirflowRejected(f"Airflow rejected {where}: HTTP {status}: {_detail(response)}", status)
        if as_text:
            self.backoff.succeeded()
            return response.text
        try:
            data = response.json() if response.content else None
        except ValueError:
            reason = f"Airflow answered {where} with something that is not JSON"
            self.backoff.failed(reason)
            raise SourceUnavailable(reason) from None
        self.backoff.succeeded()
        return data

    def paginate(self, path: str, key: str, params: dict[str, Any] | None = None, *, max_pages: int = 200) -> Iterator[dict]:
        """Every item of a list endpoint (GET: reads leave no audit row), `limit`/`offset` pages of
        100, stopping at a short page, at `total_entries`, or (logged) at `max_pages` — so a poll is
        always bounded."""
        offset = 0
        for _ in range(max_pages):
            page = self.get(path, {**(params or {}), "limit": PAGE_LIMIT, "offset": offset})
            items = page.get(key) if isinstance(page, dict) else None
            if not isinstance(items, list):
                reason = f"Airflow's {path} answered without a `{key}` list"
                self.backoff.failed(reason)
                raise SourceUnavailable(reason)
            yield from items
            offset += len(items)
            total = page.get("total_entries")
            if len(items) < PAGE_LIMIT or (isinstance(total, int) and offset >= total):
                return
        log.warning("stopped paging %s after %d pages (%d items): later items are not seen by this poll", path, max_pages, offset)


def quoted(segment: str) -> str:
    """One path segment, `/` escaped too: DAG, run and task ids may hold any character."""
    return quote(segment, safe="")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:300]
