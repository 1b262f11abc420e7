"""`dw-stack-train`: the compose stack's Prefect 3 flow, failing in the ways the demo shows.

    python dw_stack_flow.py serve              # a deployment every 2 minutes, runs served here
    python dw_stack_flow.py run [SCENARIO]     # one run now (healthy, transient, persistent, nan_loss, bad_data)

Same steps and scenarios as the Airflow DAG (`dw_stack_steps`): scheduled runs rotate through
the demo's cycle; `train` retries a transient error and resumes from its checkpoint; the gates
POST their verdict to dagwatch (DAGWATCH_URL, the token from DAGWATCH_TOKEN_FILE) under the ids
dagwatch's Prefect poller uses (flow name, flow run id, task name) and fail the flow when the check
fails. `serve` makes the runs deployment runs, so dagwatch's runbooks can retry them. Needs
PREFECT_API_URL, numpy, `checks` and `dw_stack_steps` importable.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import dw_stack_steps as steps
from prefect import flow, task
from prefect.runtime import flow_run, task_run

FLOW_NAME = "dw-stack-train"
PERIOD = timedelta(minutes=2)
WORKDIR = os.environ.get("DW_STACK_WORKDIR", "/tmp/dw-stack")


def _gate(check, kind, name: str):
    from checks import gate

    return gate(
        check,
        kind=kind,
        name=name,
        pipeline=flow_run.flow_name,
        run_id=flow_run.id,
        task_id=task_run.task_name,
        token=steps.dagwatch_token(),
    )


@task
def ingest(folder: str, scenario: str) -> str:
    return steps.make_data(Path(folder), scenario)


@task
def validate(data: str) -> None:
    from checks import Kind

    _gate(lambda: steps.input_quality(data), Kind.quality, "stack_input")


@task(retries=1, retry_delay_seconds=10)
def features(data: str, scenario: str) -> str:
    return steps.features(data, scenario)


@task(retries=2, retry_delay_seconds=10)
def train(data: str, folder: str, scenario: str) -> str:
    return steps.train(data, Path(folder), scenario, task_run.run_count)


@task
def check_convergence(metrics: str) -> None:
    from checks import Kind

    _gate(lambda: steps.convergence(metrics), Kind.convergence, "stack_train_metrics")


@task
def deploy(folder: str) -> str:
    return f"deployed the model of {folder}"


@flow(name=FLOW_NAME)
def stack_train(scenario: str = "cycle") -> str:
    chosen = steps.choose(scenario, flow_run.scheduled_start_time, PERIOD)
    folder = str(steps.run_dir(WORKDIR, str(flow_run.id)))
    print(f"scenario {chosen}")
    data = ingest(folder, chosen)
    validate(data)
    data = features(data, chosen)
    check_convergence(train(data, folder, chosen))
    return deploy(folder)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "serve"
    if command == "serve":
        stack_train.serve(name="stack", interval=PERIOD, parameters={"scenario": "cycle"})
        return 0
    if command == "run":
        state = stack_train(argv[2] if len(argv) > 2 else "healthy", return_state=True)
        print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.type.value}), flush=True)
        return 0 if state.is_completed() else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
