"""A gated DAG on Airflow 2.11 runs its checks from the slim install (`pip install ./checks[quality]`)
and reports them to a real `dagwatch up` (issue 12: the service itself cannot be installed there,
Airflow 2 pins SQLAlchemy < 2).

The worker environment is the Airflow 2.11 venv the other tests use, overlaid by a venv of its own
(a .pth file puts Airflow's site-packages after the overlay's), so the cached venv is never
modified; `./checks[quality]` goes into the overlay with Airflow's installed versions as
constraints, and the repository is not on the path: the tasks import the installed copy.
examples/airflow_dags/dagwatch_gated.py runs with `airflow dags test` (every task, in order, in
one process, on SQLite): NaN in training fails the convergence gate, the task and the run, and
raises the P1 in dagwatch under the run's id; a healthy run passes every gate (quality with GX,
convergence, output) and its passing report resolves the alert.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.gates import gate_dagwatch, pipeline_alerts
from tests.integration.test_checks_install import (
    SERVICE_ONLY,
    frozen_constraints,
    orchestrator_venv,
)

ROOT = Path(__file__).resolve().parents[3]
DAG = ROOT / "examples" / "airflow_dags" / "dagwatch_gated.py"
DAG_ID = "dw_gated_train"


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Path:
    """The overlay's python: Airflow 2.11 underneath, dagwatch-checks[quality] installed on top."""
    base = orchestrator_venv("airflow2")
    where = tmp_path_factory.mktemp("airflow2-worker")
    overlay = where / "venv"
    subprocess.run([str(base / "bin" / "python"), "-m", "venv", str(overlay)], check=True, timeout=120)
    python = overlay / "bin" / "python"
    (site_packages(python) / "_airflow2_underneath.pth").write_text(f"{site_packages(base / 'bin' / 'python')}\n")
    frozen_constraints(base, where / "constraints.txt")
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(where / "constraints.txt"),
            f"{ROOT / 'checks'}[quality]",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return python


def worker_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DAGWATCH_", "PYTHONPATH"))}
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "DAGWATCH_GATED_WORKDIR": str(home / "work"),
        **extra,
    }


def test_the_worker_has_the_library_and_not_the_service(worker, tmp_path):
    code = "import airflow, checks, sqlalchemy; print(airflow.__version__, sqlalchemy.__version__, checks.__file__)"
    out = subprocess.run(
        [str(worker), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env=worker_env(tmp_path), timeout=120
    )
    airflow_version, sqlalchemy_version, checks_file = out.stdout.split()
    assert airflow_version.startswith("2.11.") and sqlalchemy_version.startswith("1.4.")
    assert Path(checks_file).is_relative_to(site_packages(worker)), "the tasks must import the installed copy"
    own = {p.name.split("-")[0].lower().replace("_", "-") for p in site_packages(worker).glob("*.dist-info")}
    assert "dagwatch-checks" in own and not SERVICE_ONLY & own


@pytest.fixture
def dagwatch(tmp_path):
    with gate_dagwatch(tmp_path, "airflow2-workers") as server:
        yield server


class Airflow2:
    """`airflow dags test` with the worker's python, in a temp AIRFLOW_HOME holding only the gated DAG."""

    def __init__(self, python: Path, home: Path, url: str, token: str) -> None:
        self.python = python
        self.home = home
        (home / "dags").mkdir(parents=True)
        shutil.copy(DAG, home / "dags" / DAG.name)
        self.env = worker_env(home, DAGWATCH_URL=url, DAGWATCH_TOKEN=token)
        self.airflow("db", "migrate")

    def airflow(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), "-m", "airflow", *args],
            capture_output=True,
            text=True,
            cwd=self.home,
            env=self.env,
            timeout=600,
            check=False,
        )

    def run(self, day: str, scenario: str) -> subprocess.CompletedProcess:
        return self.airflow("dags", "test", DAG_ID, day, "--conf", json.dumps({"scenario": scenario}))


def alerts(url: str) -> list[dict]:
    return pipeline_alerts(url, DAG_ID)


def test_gated_dag_on_airflow2_stops_a_diverged_model_and_reports_to_dagwatch(worker, dagwatch, tmp_path):
    url, token = dagwatch
    airflow = Airflow2(worker, tmp_path / "airflow", url, token)

    nan = airflow.run("2026-01-02", "nan_loss")
    log = nan.stdout + nan.stderr
    assert nan.returncode != 0, log[-4000:]  # the gate failed the task, so the run failed
    assert "Marking task as FAILED. dag_id=dw_gated_train, task_id=check_convergence" in log
    assert "Marking task as SUCCESS. dag_id=dw_gated_train, task_id=validate_input" in log  # GX, installed copy
    assert "task_id=evaluate" not in log and "task_id=deploy" not in log  # nothing after the gate ran
    assert "could not report" not in log  # every gate's report was accepted
    [alert] = alerts(url)
    assert (alert["kind"], alert["tier"], alert["status"]) == ("convergence_failed", "P1", "firing")
    assert (alert["run_id"], alert["task_id"]) == ("manual__2026-01-02T00:00:00+00:00", "check_convergence")
    assert {"early_stopping", "grad_norm"} <= {i["name"] for i in alert["details"]["not_passing"]}

    healthy = airflow.run("2026-01-03", "healthy")
    log = healthy.stdout + healthy.stderr
    assert healthy.returncode == 0, log[-4000:]
    assert "Marking task as SUCCESS. dag_id=dw_gated_train, task_id=deploy" in log
    assert "could not report" not in log
    [resolved] = alerts(url)  # the healthy run's passing convergence report resolved the P1
    assert (resolved["id"], resolved["status"]) == (alert["id"], "resolved")
