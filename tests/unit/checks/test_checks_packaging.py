"""`checks` is two installs of one folder: the `dagwatch-checks` distribution (checks/pyproject.toml,
for pipeline workers) and a package of the `dagwatch` service (the root pyproject.toml). Their
dependency lists must not drift apart, and the library's must stay ranges an orchestrator can share."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
CHECKS = tomllib.loads((ROOT / "checks" / "pyproject.toml").read_text())["project"]
SERVICE = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVICE_ONLY = {"fastapi", "uvicorn", "sqlalchemy", "alembic", "apscheduler", "slack-sdk", "google-re2", "typer"}


def requirements(specs: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, specs)}


def library_requirements() -> dict[str, Requirement]:
    """What every check needs, plus the quality extra (the service always validates with GX)."""
    return requirements(CHECKS["dependencies"] + CHECKS["optional-dependencies"]["quality"])


def test_the_library_pins_nothing_and_needs_none_of_the_service():
    extras = [spec for specs in CHECKS["optional-dependencies"].values() for spec in specs]
    for name, req in {**library_requirements(), **requirements(extras)}.items():
        assert req.specifier, f"{name}: give a range, not an open dependency"
        assert all(s.operator not in ("==", "===") for s in req.specifier), f"{name} is pinned: {req}"
    assert not SERVICE_ONLY & set(library_requirements()), "the library must not pull the service's dependencies"
    assert "great-expectations" not in requirements(CHECKS["dependencies"])  # optional: the `quality` extra


def test_the_service_declares_every_library_dependency_within_the_library_range():
    service = requirements(SERVICE["dependencies"])
    for name, req in library_requirements().items():
        assert name in service, f"the service ships checks but does not declare {req}"
        assert all(s.operator not in ("==", "===") for s in service[name].specifier), f"the service pins {name}"


def test_the_service_environment_satisfies_the_library_ranges():
    """The versions the tests run with are inside the ranges the library promises."""
    for name, req in library_requirements().items():
        assert req.specifier.contains(version(name), prereleases=True), f"{name} {version(name)} outside {req}"
