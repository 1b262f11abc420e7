"""Prometheus around a failure: each configured PromQL query as a range query over the window
(max, min, mean per series) and an instant query at the failure itself.

Queries are written with `$selector` where the label matchers of the alert's machines go
(`runbooks.prometheus_selector`, filled from the alert); an empty selector leaves the trailing
comma PromQL accepts (`{mode="idle",}`). The shipped queries read what people already run:
node_exporter for CPU and memory, NVIDIA's DCGM exporter for GPUs. All are fractions 0..1. CPU
uses `irate` (the last two samples within 5 min): `rate` over a range the series does not fill
(a node that just came up, a slow scrape) reads far too low, and a spike is what we look for.

Prometheus that cannot be reached (refused, timed out, a proxy's HTML error page) raises
PrometheusUnreachable once, so the caller stops asking; a query Prometheus rejects is that
query's error and the others still run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from string import Template
from typing import Any, Self

import httpx

from monitor.bounded_answers import peer_client

DEFAULT_QUERIES: dict[str, str] = {
    "cpu_busy": '1 - avg by (instance) (irate(node_cpu_seconds_total{mode="idle",$selector}[5m]))',
    "memory_used": "1 - node_memory_MemAvailable_bytes{$selector} / node_memory_MemTotal_bytes{$selector}",
    "gpu_util": "DCGM_FI_DEV_GPU_UTIL{$selector} / 100",
    "gpu_memory_used": "DCGM_FI_DEV_FB_USED{$selector} / (DCGM_FI_DEV_FB_USED{$selector} + DCGM_FI_DEV_FB_FREE{$selector})",
}


class PrometheusUnreachable(Exception):
    """No Prometheus API answered at the URL."""


class QueryRejected(Exception):
    """Prometheus answered with an error for this query (bad PromQL, too many points, …)."""


def queries(configured: Mapping[str, str]) -> dict[str, str]:
    """The shipped queries with the configured ones added or replacing them; '' removes one."""
    merged = {**DEFAULT_QUERIES, **configured}
    return {name: promql for name, promql in merged.items() if promql.strip()}


def render(promql: str, selector: str) -> str:
    return Template(promql).safe_substitute(selector=selector)


def promql_string(value: str) -> str:
    """A value made safe inside a double-quoted PromQL label value."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


class Client:
    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url.rstrip("/")
        self._http = peer_client(timeout=timeout, headers={"Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        try:
            response = self._http.get(f"{self.url}{path}", params=params)
        except httpx.HTTPError as exc:  # unreachable, or an answer past the bounds or not decodable
            raise PrometheusUnreachable(f"cannot reach Prometheus at {self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            raise PrometheusUnreachable(
                f"{self.url}{path} answered HTTP {response.status_code} that is not a Prometheus API answer"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise QueryRejected(f"{error or 'no error given'} (HTTP {response.status_code})")
        return body["data"]["result"]

    def range(self, promql: str, start: datetime, end: datetime, step: timedelta) -> list[dict[str, Any]]:
        return self._get(
            "/api/v1/query_range",
            {"query": promql, "start": start.timestamp(), "end": end.timestamp(), "step": round(max(step.total_seconds(), 0.001), 3)},
        )  # seconds as a float: "3.5s" is refused

    def instant(self, promql: str, at: datetime) -> list[dict[str, Any]]:
        return self._get("/api/v1/query", {"query": promql, "time": at.timestamp()})


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def summarize(matrix: list[dict[str, Any]], at_failure: list[dict[str, Any]], *, max_series: int) -> list[dict[str, Any]]:
    """One entry per series, the busiest first: labels, max, min, mean over the window (finite
    points only), and the value at the failure (from the instant query)."""
    instant = {_key(s.get("metric", {})): _number(s.get("value", [None, None])[1]) for s in at_failure}
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in matrix:
        labels = dict(s.get("metric", {}))
        values = [v for v in (_number(point[1]) for point in s.get("values", [])) if v is not None]
        entry = {"labels": labels, "points": len(values), "max": None, "min": None, "mean": None, "at_failure": instant.get(_key(labels))}
        if values:
            entry.update(max=round(max(values), 6), min=round(min(values), 6), mean=round(sum(values) / len(values), 6))
        series[_key(labels)] = entry
    for key, value in instant.items():  # a series with a value at the failure but no range point
        series.setdefault(key, {"labels": dict(key), "points": 0, "max": None, "min": None, "mean": None, "at_failure": value})
    for entry in series.values():
        if entry["at_failure"] is not None:
            entry["at_failure"] = round(entry["at_failure"], 6)
    ranked = sorted(series.values(), key=lambda e: -(e["max"] if e["max"] is not None else e["at_failure"] or 0.0))
    return ranked[:max_series]


def snapshot(
    client: Client,
    named: Mapping[str, str],
    *,
    selector: str,
    failure_at: datetime,
    start: datetime,
    end: datetime,
    step: timedelta,
    max_series: int = 10,
) -> dict[str, Any]:
    """Every query over [start, end] and at `failure_at`. Raises PrometheusUnreachable."""
    results: dict[str, Any] = {}
    for name, template in named.items():
        promql = render(template, selector)
        try:
            matrix = client.range(promql, start, end, step)
            at_failure = client.instant(promql, failure_at)
        except QueryRejected as exc:
            results[name] = {"query": promql, "error": str(exc), "series": []}
            continue
        results[name] = {"query": promql, "series": summarize(matrix, at_failure, max_series=max_series)}
    return results
