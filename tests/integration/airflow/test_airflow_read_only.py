"""dagwatch reads without writing: polling a real Airflow (3.3 and 2.11) adds no row to Airflow's
event log, the audit table every logged API call writes into.

The rows are counted in the `log` table itself (read-only), not through `GET /eventLogs`: Airflow 3
hides rows whose `dag_id` is `~` from that listing, and `POST /dags/~/dagRuns/~/taskInstances/list`
— what dagwatch used to poll with — writes exactly such rows. They are counted per user, so the
scheduler's own rows (`running`, `failed`, …) written meanwhile do not blur the count."""

from __future__ import annotations

import httpx

from tests.integration.airflow.conftest import Api, audit_rows, source_for
from tests.servers.airflow.server import ADMIN, VIEWER, AirflowServer

POLLS = 10


def poll_like_the_collector(server: AirflowServer, user: tuple[str, str]) -> list:
    """What a collector cycle asks, POLLS times: health, definitions, then runs since the last poll."""
    source = source_for(server, username=user[0], password=user[1])
    snapshots, since = [], None
    for _ in range(POLLS):
        source.health()
        source.definitions()
        snapshots = list(source.poll(since))
        since = source.clock()
    return [*snapshots, *source.poll(None)]


def test_polling_adds_no_audit_rows(airflow, api):
    # Airflow 3 polls as a viewer, as a deployment should; Airflow 2 of the tests has only its admin.
    user = VIEWER if airflow.major == 3 else ADMIN
    run_id = api.trigger("dw_fail_always")  # a failure, so the polls read its log too
    assert api.wait_run("dw_fail_always", run_id)["state"] == "failed"

    before = audit_rows(airflow, user[0])
    snapshots = poll_like_the_collector(airflow, user)
    after = audit_rows(airflow, user[0])

    failed = next(s for s in snapshots if s.run_id == run_id)
    assert failed.tasks[0].error == "ValueError: dagwatch-example: source table raw.events is missing"
    assert after == before, f"{after - before} audit row(s) written by {POLLS} polls"
    # The count does see this user's logged calls: one call the old poll made per cycle (Airflow 3),
    # a trigger (Airflow 2, where the batch list is not logged).
    logged_call(airflow, api, user)
    assert audit_rows(airflow, user[0]) == after + 1


def logged_call(server: AirflowServer, api: Api, user: tuple[str, str]) -> None:
    if server.major == 2:
        api.trigger("dw_ok")
        return
    http = httpx.Client(base_url=server.url, timeout=30)
    token = http.post("/auth/token", json={"username": user[0], "password": user[1]}).json()["access_token"]
    batch = http.post(
        "/api/v2/dags/~/dagRuns/~/taskInstances/list", json={"dag_ids": ["dw_ok"]}, headers={"Authorization": f"Bearer {token}"}
    )
    assert batch.status_code == 200
