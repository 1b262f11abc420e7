"""One exception tree for the whole checks library.

Callers catch one root and tell bad input (exit 2 in the CLI) from a failed
check (exit 1) by class, never by parsing messages::

    CheckError                    root: anything this library raises on purpose
     ├── CheckInputError          the input is unusable: missing file, unreadable data,
     │    │                       bad rules or manifest; the message says which and why
     │    ├── DataReadError       a data or metrics file is missing or cannot be parsed
     │    ├── SuiteLoadError      a suite file does not load whole (unknown type, bad kwargs)
     │    └── ConfigError         a rules / thresholds file breaks its schema
     ├── CheckFailed             a gated check did not pass; carries the CheckResult
     ├── WorkerError             the quality worker pool could not run a validation
     └── MissingDependency       an optional package a check needs is not installed

Foreign exceptions (pandas, pyarrow, GX, httpx, pydantic) are translated at the
boundary with ``raise ... from exc``, so the cause stays in the traceback.

Every error pickles with its attributes: quality validations run in worker
processes and their errors must cross back intact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from checks.result import CheckResult


def _rebuild(cls: type, args: tuple, state: dict[str, Any]) -> CheckError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class CheckError(Exception):
    """Root of every error the checks library raises on purpose."""

    def __reduce__(self):  # keep keyword attributes across process boundaries
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class CheckInputError(CheckError):
    """The input of a check is unusable; the message names the file and the problem."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DataReadError(CheckInputError):
    """A data or metrics file is missing, of an unknown format, or cannot be parsed."""


class ConfigError(CheckInputError):
    """A rules, thresholds or manifest file does not match its schema."""


class SuiteLoadError(CheckInputError):
    """A suite file does not load whole.

    GX drops expectations of an unknown type with only a log line; running such a
    suite would pass on checks that never ran, so loading refuses it instead.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"suite {path}: {reason}", path=path)
        self.reason = reason


class CheckFailed(CheckError):
    """A gated check did not pass. ``result`` holds the full verdict."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"{result.kind.value} check {result.name!r} {result.status.value}: {result.summary}")
        self.result = result


class WorkerError(CheckError):
    """The quality worker pool could not run a validation (worker died, timed out, pool closed)."""


class MissingDependency(CheckError):
    """A check needs an optional package this environment lacks (``dagwatch-checks[quality]``).

    Its own class because it is neither bad input nor a verdict: the environment must change.
    """

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this check needs {package}, which is not installed: "
            f"pip install 'dagwatch-checks[{extra}]' (or the dagwatch service, which includes it)"
        )
        self.package = package
        self.extra = extra
