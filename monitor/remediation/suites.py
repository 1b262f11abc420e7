"""The check suites of `checks.folder`: a team's Great Expectations suites kept beside its config.

A bare suite name in config (`runbooks.inputs: {PIPELINE: [{suite: NAME}]}`) is `NAME.json` in
that folder, else the shipped suite of that name (`checks.quality.suite.find_suite`). Every suite
there is read when the service starts and by `dagwatch config validate`, so a broken one is
refused then, with its file and reason, and not first found when a runbook needs it at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path

from monitor.errors import ConfigError

KEY = "checks.folder"


def validate(folder: Path | None) -> list[str]:
    """The names of the folder's suites, each read and checked (without importing GX)."""
    if folder is None:
        return []
    if not folder.is_dir():
        raise ConfigError(str(folder), KEY, "is not a folder")
    try:
        from checks.errors import SuiteLoadError
        from checks.quality.suite import folder_suites, load_suite_document
    except ImportError:
        raise ConfigError(
            None, KEY, "needs the checks package: pip install ./checks (or './checks[quality]' for Great Expectations)"
        ) from None
    names = folder_suites(folder)
    for name in names:
        try:
            load_suite_document(folder / f"{name}.json")
        except SuiteLoadError as exc:
            raise ConfigError(str(folder / f"{name}.json"), KEY, exc.reason) from exc
    return names


def path_of(suite: str, folder: Path | None) -> str:
    """The file of a suite as config names it (a path, or a name in the folder or shipped)."""
    from checks.quality.suite import find_suite

    return str(find_suite(suite, folder))
