"""Fill `{pipeline}`, `{run_id}`, `{task}`, `{source}` and `{label.NAME}` in a configured string
from the alert a runbook runs for: input paths (`runbooks.inputs`) and the Prometheus label
selector (`runbooks.prometheus_selector`) use the same words.

Only these placeholders are touched, so any other brace (PromQL's, a regex's) stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from monitor.model import Alert

_PLACEHOLDER = re.compile(r"\{(pipeline|run_id|task|source|label\.[A-Za-z_][A-Za-z0-9_.-]*)\}")


class MissingPlaceholder(ValueError):
    """The template names something the alert does not carry (a run id on a missing-run alert)."""


def names(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def fill(template: str, alert: Alert, *, escape: Callable[[str], str] = str, missing: str | None = None) -> str:
    """`template` with each placeholder replaced by the alert's value (passed through `escape`).
    A value the alert lacks is `missing` when given, else MissingPlaceholder names it."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith("label."):
            found = alert.labels.get(key[len("label.") :])
        else:
            found = {"pipeline": alert.pipeline, "run_id": alert.run_id, "task": alert.task_id, "source": alert.source}[key]
        if found is None or found == "":
            if missing is None:
                raise MissingPlaceholder(f"{template!r} needs {{{key}}}, which alert {alert.id} ({alert.kind.value}) does not carry")
            return missing
        return escape(str(found))

    return _PLACEHOLDER.sub(value, template)
