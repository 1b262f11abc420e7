"""The dashboards' runbook links lead where they say, against a real dagwatch served on loopback.

Each alert table's rows are taken from the real `GET /api/v1/alerts` with the panel's own query
(its parameters and Infinity column selectors), each link is filled in as Grafana fills it
(`:percentencode` is encodeURIComponent plus `!'()*`), and the start page it opens must show
that row's alert — with an Airflow run id (`+`, `:`) and a pipeline name with `&`, `/` and a
space, which an unencoded link would cut or turn into other parameters.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from monitor.alerting import ingest
from monitor.api.app import create_app
from monitor.model import Event, EventKind
from monitor.remediation.engine import Engine
from monitor.remediation.runbook import load_all
from monitor.sources.embedded import EmbeddedSource
from monitor.store.db import Store
from tests.integration.server import serve_app

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "dashboards"
POLICY = ingest.AlertPolicy(receivers=[("console", "console")], base_url=None)
RUN_PAGE = "http://airflow:8080/dags/etl%20%26%20train%2Fv2/runs/manual__2024-05-01T10%3A00%3A00%2B00%3A00"


def percentencode(value: object) -> str:
    """Grafana's `:percentencode` (encodeURIComponent, and `!'()*` too); a null field is empty."""
    return "" if value is None else quote(str(value), safe="-_.~")


def fill(url: str, row: dict, variables: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name, fmt = match.group(1), match.group(2)
        field = re.fullmatch(r"__data\.fields\.(\w+)", name)
        value = row[field.group(1)] if field else variables[name]
        return percentencode(value) if fmt == "percentencode" else ("" if value is None else str(value))

    return re.sub(r"\$\{([^}:]+)(?::([^}]+))?\}", one, url)


def rows(client: httpx.Client, target: dict, variables: dict[str, str]) -> list[dict]:
    """What Infinity's backend parser makes of the response: one row per alert, one field per column."""
    params = {p["key"]: fill(p["value"], {}, variables) for p in target["url_options"]["params"]}
    answer = client.get(target["url"], params=params)
    assert answer.status_code == 200, answer.text
    found = []
    for alert in answer.json():
        row = {}
        for column in target["columns"]:
            value: object = alert
            for part in column["selector"].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            row[column["text"]] = value
        found.append(row)
    return found


@pytest.fixture
def served(store: Store, tmp_path: Path):
    engine = Engine(store, load_all(), lambda name: EmbeddedSource(name, store, tmp_path / "logs"), services={"policy": POLICY})
    with serve_app(create_app(store, POLICY, runbook_engine=engine)) as url:
        yield url


def test_alert_table_links_open_the_start_page_of_the_rows_alert(store: Store, served: str):
    tricky = Event(
        kind=EventKind.TASK_FAILED,
        source="airflow",
        pipeline="etl & train/v2",
        run_id="manual__2024-05-01T10:00:00+00:00",
        task_id="fit",
        summary="fit failed: tricky",
        details={"url": RUN_PAGE},
    )
    plain = Event(kind=EventKind.RUN_FAILED, source="airflow", pipeline="etl", run_id="scheduled__2024-05-01", summary="etl failed: plain")
    fired = {event.summary: ingest.submit(store, [event], POLICY)[0].fired[0] for event in (tricky, plain)}
    opened = 0
    with httpx.Client(base_url=served, timeout=30) as client:
        for path in sorted(DASHBOARDS.glob("*.json")):
            dashboard = json.loads(path.read_text())
            for panel in dashboard["panels"]:
                infinity = [t for t in panel.get("targets", []) if "columns" in t]
                if not infinity or "kind" in {p["key"] for p in infinity[0]["url_options"]["params"]}:
                    continue  # the drift table: no drift alert here
                for pipeline in ("etl & train/v2", "etl"):
                    variables = {"dagwatch_url": served, "pipeline": pipeline}
                    for row in rows(client, infinity[0], variables):
                        assert row["id"] in fired.values()
                        if row["pipeline"] != pipeline and "pipeline" in {p["key"] for p in infinity[0]["url_options"]["params"]}:
                            continue
                        for link in panel["fieldConfig"]["defaults"]["links"]:
                            url = fill(link["url"], row, variables)
                            if "/runbooks/" in url:
                                page = client.get(url)
                                assert page.status_code == 200, f"{path.name} {panel['title']!r} {link['title']!r}: {url}\n{page.text}"
                                assert f'href="/alerts/{row["id"]}">#{row["id"]}</a>' in page.text, url
                                assert f'class="summary">{html.escape(row["summary"])}<' in page.text, url
                                opened += 1
                            elif row["summary"] == "fit failed: tricky" and "orchestrator_url" in link["url"]:
                                assert url == RUN_PAGE
    assert opened >= 10
