"""Detection latency on a real Airflow 3: a task fails in Airflow → its task_failed alert is in
dagwatch's store. The collector polls every POLL seconds, as `dagwatch up` would.

    .venv/bin/python -m tests.integration.airflow.latency [FAILURES] [POLL]

Latency per failure = the poll that stored the alert (wall clock, after its commit) minus the
task instance's `end_date` in Airflow; same machine, same clock.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from monitor.model import AlertKind
from monitor.store import alerts as alert_store
from monitor.store import open_store
from tests.integration.airflow.conftest import Api, Servers, collector_for


def main(failures: int = 20, poll: float = 1.0) -> int:
    servers = Servers()
    try:
        server = servers.get(3)
        api = Api(server)
        store = open_store(f"sqlite:///{Path(tempfile.mkdtemp()) / 'dagwatch.db'}")
        collector = collector_for(server, store, include=["^dw_fail_always$"])
        collector.poll_once()
        pending: dict[str, None] = {}
        latencies: list[float] = []
        next_trigger = time.monotonic()
        deadline = time.monotonic() + 60 + failures * 6
        while len(latencies) < failures and time.monotonic() < deadline:
            if len(pending) + len(latencies) < failures and time.monotonic() >= next_trigger:
                pending[api.trigger("dw_fail_always")] = None
                next_trigger = time.monotonic() + 2.5  # staggered, a few in flight at once
            collector.poll_once()
            seen_at = datetime.now(UTC)
            with store.session() as s:
                fired = {a.run_id for a in alert_store.list_alerts(s) if a.kind is AlertKind.TASK_FAILED}
            for run_id in [r for r in pending if r in fired]:
                ended = datetime.fromisoformat(api.task("dw_fail_always", run_id, "load")["end_date"])
                latencies.append((seen_at - ended).total_seconds())
                del pending[run_id]
            time.sleep(poll)
        latencies.sort()
        print(f"failures detected: {len(latencies)}/{failures}, poll interval {poll}s")
        print(
            f"median {statistics.median(latencies):.2f}s  p90 {latencies[int(0.9 * (len(latencies) - 1))]:.2f}s  "
            f"worst {latencies[-1]:.2f}s  best {latencies[0]:.2f}s"
        )
        store.close()
        return 0 if len(latencies) == failures else 1
    finally:
        servers.close()


if __name__ == "__main__":
    sys.exit(main(*(int(sys.argv[1]),) if len(sys.argv) > 1 else (), *(float(sys.argv[2]),) if len(sys.argv) > 2 else ()))
