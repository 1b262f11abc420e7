"""A running dagwatch seen from the command line: its HTTP API, with a token.

`dagwatch alerts …` go through the API rather than the database when a server answers, so the
server checks the token's role and audits the change under the token's name, as for any other
client, and the command works from a laptop that cannot reach the database. Every failure is
one `RemoteError` whose message says what to do; the token never appears in one.
"""

from __future__ import annotations

import re
from typing import Any, Self

import httpx
from pydantic import TypeAdapter, ValidationError

from monitor.errors import DagwatchError
from monitor.model import Alert

_ALERTS = TypeAdapter(list[Alert])
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_HINTS = {
    401: "pass --token or set DAGWATCH_TOKEN (a token from `dagwatch token create`)",
    403: "this token's role may not do it: acting needs an operator token",
}


class RemoteError(DagwatchError):
    """The server could not be reached, refused, or answered something that is not dagwatch."""


def printable(text: str, limit: int = 300) -> str:
    """A server's or a pipeline's words made safe for a terminal: one line, no control
    sequences (an ANSI escape in an alert summary must not rewrite the screen), bounded."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Remote:
    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        # no redirects: a redirect to another host would carry the token there
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport, follow_redirects=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def answers(self) -> bool:
        """A dagwatch serves at the URL (its /healthz says so), within two seconds."""
        try:
            response = self._client.get("/healthz", timeout=2.0)
            return response.status_code == 200 and response.json() == {"status": "ok"}
        except (httpx.HTTPError, ValueError):
            return False

    def list_alerts(self, **filters: str | int | None) -> list[Alert]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._parse(_ALERTS, self._call("GET", "/api/v1/alerts", "listing alerts", params=params))

    def get_alert(self, alert_id: int) -> Alert:
        return self._parse(Alert, self._call("GET", f"/api/v1/alerts/{alert_id}", f"alert {alert_id}"))

    def ack(self, alert_id: int, comment: str) -> Alert:
        return self._parse(
            Alert, self._call("POST", f"/api/v1/alerts/{alert_id}/ack", f"acknowledging alert {alert_id}", json={"comment": comment})
        )

    def silence(self, matchers: dict[str, str], duration: str, comment: str) -> dict[str, Any]:
        answer = self._call(
            "POST", "/api/v1/silences", "creating a silence", json={"matchers": matchers, "duration": duration, "comment": comment}
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise RemoteError(f"{self.url} answered the silence with something that is not a dagwatch silence; is --url a dagwatch server?")
        return answer

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise RemoteError(
                f"cannot reach dagwatch at {self.url} (connection refused or no route): is `dagwatch up` running "
                "there? Set --url or DAGWATCH_URL"
            ) from None
        except httpx.TimeoutException:
            raise RemoteError(f"dagwatch at {self.url} did not answer {what} in time") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach dagwatch at {self.url}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise RemoteError(self._refusal(response, what))
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"{self.url} answered {what} with something that is not JSON; is --url a dagwatch server?") from None

    def _refusal(self, response: httpx.Response, what: str) -> str:
        try:
            detail = response.json().get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        if isinstance(detail, list):  # a 422's fields: where and why
            detail = "; ".join(
                f"{'.'.join(map(str, d.get('loc', [])))}: {str(d.get('msg', '')).removeprefix('Value error, ')}"
                for d in detail
                if isinstance(d, dict)
            )
        words = printable(str(detail)) or response.reason_phrase
        hint = _HINTS.get(response.status_code)
        return f"{what}: {self.url} answered HTTP {response.status_code}: {words}" + (f" ({hint})" if hint else "")

    def _parse(self, model: Any, data: Any) -> Any:
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        try:
            return adapter.validate_python(data)
        except ValidationError:
            raise RemoteError(f"{self.url} answered with something that is not a dagwatch alert; is --url a dagwatch server?") from None
