"""Metric history from an MLflow tracking server over its REST API.

``GET {base}/api/2.0/mlflow/metrics/get-history?run_id=…&metric_key=…`` answers
``{"metrics": [{"key", "value", "timestamp", "step"}], "next_page_token"}``; the
reader follows ``next_page_token`` until the history is complete. No MLflow client
package: one endpoint does not justify it. The ``httpx.Client`` (and so its
transport) is passed in, so tests use ``httpx.MockTransport`` and services reuse
their configured client.

On the command line a run is named by URL:
``mlflow+http://host:5000/?run_id=RUN&metrics=val_loss,train_loss``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from checks.convergence.series import Metrics, Series, canonical_name
from checks.errors import DataReadError

HISTORY_PATH = "/api/2.0/mlflow/metrics/get-history"
PAGE_SIZE = 25000
MAX_PAGES = 1000  # a server that never stops paging must not loop forever


def fetch_metric_history(client: httpx.Client, base_url: str, run_id: str, metric_key: str, *, page_size: int = PAGE_SIZE) -> Series:
    """All points of one metric of one run, following pages."""
    url = base_url.rstrip("/") + HISTORY_PATH
    points: list[tuple[int, float]] = []
    token: str | None = None
    for _ in range(MAX_PAGES):
        params = {"run_id": run_id, "metric_key": metric_key, "max_results": page_size}
        if token:
            params["page_token"] = token
        try:
            resp = client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise DataReadError(f"MLflow {base_url}: cannot fetch {metric_key!r} of run {run_id}: {exc}") from exc
        if resp.status_code != 200:
            raise DataReadError(f"MLflow {base_url}: {metric_key!r} of run {run_id}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise DataReadError(f"MLflow {base_url}: answer is not JSON") from exc
        for m in body.get("metrics", []) or []:
            try:
                points.append((int(m.get("step", 0)), float(m["value"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataReadError(f"MLflow {base_url}: malformed metric point {m!r}") from exc
        token = body.get("next_page_token")
        if not token:
            return Series.from_points(canonical_name(metric_key), points)
    raise DataReadError(f"MLflow {base_url}: {metric_key!r} still paging after {MAX_PAGES} pages")


def read_mlflow(client: httpx.Client, base_url: str, run_id: str, metric_keys: list[str]) -> Metrics:
    """Several metrics of one run as ``Metrics``; a metric with no points is left out."""
    series = {}
    for key in metric_keys:
        s = fetch_metric_history(client, base_url, run_id, key)
        if len(s):
            series[s.name] = s
    if not series:
        raise DataReadError(f"MLflow {base_url}: run {run_id} has no points for {', '.join(metric_keys)}")
    return Metrics(series, f"mlflow:{base_url}#{run_id}")


def parse_mlflow_url(url: str) -> tuple[str, str, list[str]]:
    """``mlflow+http://host:5000/?run_id=R&metrics=a,b`` -> (``http://host:5000``, ``R``, [a, b])."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("mlflow+"):
        raise DataReadError(f"{url}: not an mlflow+http(s):// URL")
    query = parse_qs(parts.query)
    run_id = (query.get("run_id") or [""])[0]
    metrics = [m for v in query.get("metrics", []) for m in v.split(",") if m]
    if not run_id or not metrics:
        raise DataReadError(f"{url}: needs ?run_id=…&metrics=name,name")
    base = urlunsplit((parts.scheme[len("mlflow+") :], parts.netloc, parts.path.rstrip("/"), "", ""))
    return base, run_id, metrics
