"""`pip install ./checks` resolves inside each orchestrator's environment without moving any of its
packages (issue 12): Airflow 2.11 (SQLAlchemy < 2, where the service itself cannot install),
Airflow 3 and Prefect 3, each in the venv the other integration tests start servers from.

Every resolution is pip's own (`--dry-run --report`), run by that venv's interpreter, with the venv's
installed set as constraints: the exact versions the orchestrator runs with, which is what its own
constraints file promises a deployment (Airflow's constraint files live on GitHub, out of reach here;
the venvs were installed from PyPI by tests/servers/*/install.sh). Package metadata comes from the
package index.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.servers.airflow.server import ensure_installed
from tests.servers.prefect import server as prefect_server

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "checks"
SERVICE_ONLY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "apscheduler", "slack-sdk", "google-re2", "typer"}


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def orchestrator_venv(name: str) -> Path:
    if name == "prefect3":
        prefect_server.install()
        return prefect_server.VENV
    return ensure_installed(2 if name == "airflow2" else 3)


def frozen_constraints(venv: Path, dest: Path) -> dict[str, str]:
    """Write the venv's installed set as a constraints file; returns {name: version}."""
    out = subprocess.run(
        [str(python_of(venv)), "-m", "pip", "list", "--format=freeze", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    pins = [line for line in out.stdout.splitlines() if "==" in line and " @ " not in line]
    dest.write_text("\n".join(pins) + "\n")
    return {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in pins}


def dry_run(python: Path, spec: str, report: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--quiet",
        "--disable-pip-version-check",
        "--report",
        str(report),
        *extra,
        spec,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def resolve(python: Path, spec: str, report: Path, *extra: str) -> dict[str, str]:
    """pip's dry-run resolution of `spec` for this interpreter's environment: {name: version} it would install."""
    done = dry_run(python, spec, report, *extra)
    assert done.returncode == 0, f"{' '.join(done.args)} did not resolve:\n{done.stderr[-4000:]}"
    items = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}


@pytest.mark.parametrize("orchestrator", ["airflow2", "airflow3", "prefect3"])
def test_checks_with_quality_resolve_next_to_the_orchestrators_own_versions(orchestrator, tmp_path):
    venv = orchestrator_venv(orchestrator)
    installed = frozen_constraints(venv, tmp_path / "constraints.txt")
    adds = resolve(python_of(venv), f"{CHECKS}[quality]", tmp_path / "report.json", "-c", str(tmp_path / "constraints.txt"))
    assert adds["dagwatch-checks"] == "0.1.0" and "great-expectations" in adds
    assert not set(adds) & set(installed), f"would replace {orchestrator}'s own packages: {set(adds) & set(installed)}"
    assert not SERVICE_ONLY & set(adds), f"pulls service dependencies: {SERVICE_ONLY & set(adds)}"
    if orchestrator == "airflow2":
        assert installed["sqlalchemy"].startswith("1.4.")  # why the service cannot go there, and checks can
        assert installed["apache-airflow"].startswith("2.11.")


def test_a_clean_worker_gets_only_what_the_checks_need(tmp_path):
    """Into an empty environment: the slim install has no GX and none of the service; the extra adds GX only."""
    python = python_of(orchestrator_venv("airflow3"))
    slim = resolve(python, str(CHECKS), tmp_path / "slim.json", "--ignore-installed")
    assert {"numpy", "pandas", "pyarrow", "pydantic", "httpx", "pyyaml", "dagwatch-checks"} <= set(slim)
    assert not ({"great-expectations", "scipy", "altair"} | SERVICE_ONLY) & set(slim), sorted(slim)
    full = resolve(python, f"{CHECKS}[quality]", tmp_path / "quality.json", "--ignore-installed")
    assert "great-expectations" in full and set(slim) <= set(full)
    assert not SERVICE_ONLY & set(full), sorted(full)


def test_the_service_itself_cannot_go_into_airflow2(tmp_path):
    """The control: the same resolution with the whole service fails on SQLAlchemy, so the
    constraints above do bite, and a worker needs the library alone."""
    venv = orchestrator_venv("airflow2")
    frozen_constraints(venv, tmp_path / "constraints.txt")
    done = dry_run(python_of(venv), str(ROOT), tmp_path / "report.json", "-c", str(tmp_path / "constraints.txt"))
    assert done.returncode != 0 and "sqlalchemy" in done.stderr.lower(), done.stderr[-4000:]
