"""model.web_url: the one gate between event data and a link someone clicks (pages, e-mail, Slack)."""

from __future__ import annotations

import pytest

from monitor.model import Alert, web_url


@pytest.mark.parametrize(
    "url",
    ["http://airflow:8080/dags/etl/grid", "https://grafana.example.com/d/x?var-run=r1&from=now-1h#panel-2", "https://h/" + "a" * 1980],
)
def test_absolute_http_links_are_kept(url: str) -> None:
    assert web_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://files/x",
        "//airflow/x",
        "http:///x",
        "https://h/" + "a" * 2000,
        None,
        42,
        *(f"http://h/a{c}b" for c in " \t\n\r\x0b\x0c\u00a0\u2028\u3000<>\"'`|\x00\x1b\x7f"),
    ],
)
def test_anything_else_is_dropped(url: object) -> None:
    assert web_url(url) is None


def test_an_alert_keeps_only_its_safe_links() -> None:
    links = {"dashboard": "http://dw/alerts/1", "log": "http://airflow/log?x=<script>", "run": "javascript:x"}
    alert = Alert.model_validate(
        {
            "id": 1,
            "fingerprint": "f",
            "tier": "P1",
            "status": "firing",
            "kind": "task_failed",
            "source": "af",
            "summary": "s",
            "links": links,
            "started_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )
    assert alert.links == {"dashboard": "http://dw/alerts/1"}
