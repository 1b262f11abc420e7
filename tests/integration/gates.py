"""What the orchestrator gate tests share: a `dagwatch up` that fires at once, and its alerts.

The Airflow 2 and Prefect gate tests run the same checks from different workers and assert the same
alerts; one server setup means they cannot drift apart in what dagwatch is asked to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.integration.server import DagwatchProcess, create_token, free_port

CONFIG = """
data_dir: {data_dir}
sources: []
alerting: {{group_wait: 0s, group_interval: 1s}}
"""


@contextmanager
def gate_dagwatch(workdir: Path, token_name: str) -> Iterator[tuple[str, str]]:
    """A `dagwatch up` with no sources (the gates push their reports) and no grouping delay, so an
    alert is there as soon as its report is accepted; its URL and an operator token for the workers."""
    config = workdir / "dagwatch.yaml"
    config.write_text(CONFIG.format(data_dir=workdir / "data"))
    token = create_token(config, token_name)
    proc = DagwatchProcess(config, free_port(), workdir / "dagwatch.log")
    try:
        proc.wait_healthy()
        yield proc.url, token
    finally:
        proc.stop()


def pipeline_alerts(url: str, pipeline: str) -> list[dict]:
    return httpx.get(f"{url}/api/v1/alerts", params={"pipeline": pipeline, "limit": 100}, timeout=10).json()
