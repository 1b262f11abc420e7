"""The check suites of `checks.folder`: a team's Great Expectations suites kept beside its config.

A bare suite name in config (`runbooks.inputs: {PIPELINE: [{suite: NAME}]}`) is `NAME.json` in
that folder, else the shipped suite of that name (`checks.quality.suite.find_suite`). When the
service starts, and in `dagwatch config validate`, every suite in the folder is read and every
suite the config names is found, so a broken suite or a misspelt name is refused then, with its
file and reason, and not first met when a runbook needs it at 3 a.m. `config validate` also
builds each suite in Great Expectations (when installed), which catches an expectation type GX
does not know; start-up does not, as importing GX costs seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from monitor.config import Settings
from monitor.errors import ConfigError

KEY = "checks.folder"


def validate(settings: Settings, *, build: bool = False) -> list[str]:
    """The names of the folder's suites, each read (and with `build`, built in GX); every suite
    named in `runbooks.inputs` found."""
    folder = settings.checks.folder if settings.checks is not None else None
    named = sorted({spec.suite for specs in settings.runbooks.inputs.values() for spec in specs if spec.suite})
    if folder is None and not named:
        return []
    if folder is not None and not folder.is_dir():
        raise ConfigError(str(folder), KEY, "is not a folder")
    try:
        from checks.errors import SuiteLoadError
        from checks.quality.suite import find_suite, folder_suites, load_suite, load_suite_document
    except ImportError:
        raise ConfigError(None, KEY, "suites need the checks package: pip install './checks[quality]'") from None
    names = folder_suites(folder) if folder is not None else []
    build = build and _gx_installed()
    for name in names:
        path = folder / f"{name}.json"
        try:
            load_suite_document(path)
            if build:
                load_suite(path)
        except SuiteLoadError as exc:
            raise ConfigError(str(path), KEY, exc.reason) from exc
        except OSError as exc:
            raise ConfigError(str(path), KEY, f"cannot be read: {exc.strerror or exc}") from exc
    for suite in _bare(named):
        try:
            find_suite(suite, folder)
        except SuiteLoadError as exc:
            raise ConfigError(None, "runbooks.inputs", exc.reason) from exc
    return names


def _bare(suites: Iterable[str]) -> list[str]:
    """Names, not paths: a path may be on a volume mounted later; it is checked when used."""
    return [s for s in suites if "/" not in s and not s.endswith(".json")]


def _gx_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("great_expectations") is not None


def path_of(suite: str, folder: Path | None) -> str:
    """The file of a suite as config names it (a path, or a name in the folder or shipped)."""
    from checks.quality.suite import find_suite

    return str(find_suite(suite, folder))
