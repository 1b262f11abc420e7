"""Runbooks as files: the YAML shape, strict loading, and which alerts a runbook applies to.

A runbook is data, not code, so on-call engineers can read, copy and edit it: ordered steps, each
an action from the registry with arguments, an optional `when:` on what earlier steps found, a
timeout, and whether it changes anything. Everything is checked when the file is loaded — the
action exists, its arguments fit, `when:` names only earlier steps — and an error names the
file, the step and the reason, as config errors do.
"""

from __future__ import annotations

import importlib.resources
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.alerting.routing import alert_attributes as route_attributes
from monitor.alerting.routing import matches
from monitor.config import Duration, RouteSettings
from monitor.errors import ConfigError
from monitor.model import Alert
from monitor.remediation.actions import ACTIONS
from monitor.remediation.actions.base import Finding
from monitor.remediation.classify import Pattern

NAME = r"^[a-z][a-z0-9_-]*$"


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME, description="How later steps' `when:` and the pages refer to this step.")
    action: str = Field(description="An action of the registry (`dagwatch runbook list` shows them).")
    args: dict[str, Any] = Field(default_factory=dict)
    when: dict[str, str] = Field(
        default_factory=dict,
        description="Run only if earlier findings match: `STEP.FIELD` (or `STEP.ok`) → 'x', '!x', '~regex', '!~regex'.",
    )
    timeout: Duration = Field(timedelta(minutes=5), description="A step still running after this long fails.")

    @field_validator("when")
    @classmethod
    def _matchers(cls, when: dict[str, str]) -> dict[str, str]:
        return _route_matchers({k: str(v) for k, v in when.items()})

    @property
    def mutating(self) -> bool:
        return ACTIONS[self.action].mutating


class Runbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    description: str = ""
    match: dict[str, str] = Field(default_factory=dict, description="Which alerts it applies to, as route matchers.")
    params: dict[str, Any] = Field(default_factory=dict, description="Defaults; a start may override them.")
    steps: list[Step] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _matchers(cls, match: dict[str, str]) -> dict[str, str]:
        return _route_matchers(match)

    def applies_to(self, alert: Alert) -> bool:
        return matches(self.match, alert_attributes(alert))

    @property
    def mutating(self) -> bool:
        return any(step.mutating for step in self.steps)


def _route_matchers(match: dict[str, str]) -> dict[str, str]:
    """Matchers checked as a route's are; a problem is this field's own error, so the message
    names `steps[1] (b).when`, not a `match.match` the file never wrote."""
    try:
        return RouteSettings(match=match).match
    except ValidationError as exc:
        raise ValueError(_message(exc.errors()[0])) from None


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def alert_attributes(alert: Alert) -> dict[str, str]:
    return route_attributes(
        tier=alert.tier.value, kind=alert.kind.value, source=alert.source, pipeline=alert.pipeline, task=alert.task_id, labels=alert.labels
    )


def findings_attributes(results: Mapping[str, Finding]) -> dict[str, str]:
    """Earlier findings as the flat strings `when:` matchers see: `STEP.ok`, `STEP.FIELD`."""
    flat: dict[str, str] = {}
    for step, finding in results.items():
        flat[f"{step}.ok"] = "true" if finding.ok else "false"
        for key, value in finding.data.items():
            if isinstance(value, bool):
                flat[f"{step}.{key}"] = "true" if value else "false"
            elif isinstance(value, (str, int, float)) or value is None:
                flat[f"{step}.{key}"] = "" if value is None else str(value)
    return flat


def should_run(step: Step, results: Mapping[str, Finding]) -> bool:
    return matches(step.when, findings_attributes(results)) if step.when else True


def parse(document: Any, origin: str) -> Runbook:
    """One runbook from its YAML document; ConfigError names `origin`, the step and the reason."""
    try:
        runbook = Runbook.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(origin, _where(document, first["loc"]), _message(first)) from None
    seen: set[str] = set()
    for index, step in enumerate(runbook.steps):
        where = f"steps[{index}] ({step.name})"
        if step.name in seen:
            raise ConfigError(origin, where, f"a step named {step.name!r} comes earlier; step names must be unique")
        action = ACTIONS.get(step.action)
        if action is None:
            raise ConfigError(origin, where, f"unknown action {step.action!r}; known: {', '.join(sorted(ACTIONS)) or 'none'}")
        try:
            action.Args.model_validate(step.args)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(origin, f"{where}.args.{'.'.join(map(str, first['loc']))}", _message(first)) from None
        for key in step.when:
            if key.split(".", 1)[0] not in seen:
                raise ConfigError(origin, f"{where}.when", f"{key!r} names no earlier step (earlier: {', '.join(sorted(seen)) or 'none'})")
        seen.add(step.name)
    return runbook


def _where(document: Any, loc: Iterable[Any]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int) and parts and parts[-1] == "steps":
            name = ((document or {}).get("steps") or [{}] * (part + 1))[part]
            parts[-1] = f"steps[{part}]" + (f" ({name.get('name')})" if isinstance(name, dict) and name.get("name") else "")
        else:
            parts.append(str(part))
    return ".".join(parts)


def load_file(path: Path | importlib.resources.abc.Traversable) -> Runbook:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), None, f"not valid YAML: {exc}") from None
    return parse(document, str(path))


def shipped() -> list[importlib.resources.abc.Traversable]:
    """The runbooks that come with dagwatch (the top-level `runbooks/` folder, a package)."""
    return sorted((f for f in importlib.resources.files("runbooks").iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name)


def failure_patterns(documents: Iterable[Mapping[str, Any]]) -> list[Pattern]:
    """`runbooks.patterns` of config as classifier patterns; ConfigError names the entry."""
    patterns = []
    for index, document in enumerate(documents):
        try:
            patterns.append(Pattern.model_validate(document))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(None, f"runbooks.patterns[{index}].{'.'.join(map(str, first['loc']))}", first["msg"]) from None
    return patterns


def load_all(folder: Path | None = None) -> dict[str, Runbook]:
    """Shipped runbooks, then the configured folder's (a file there replaces a shipped one of
    the same name: copy and edit is the way to customise)."""
    files: list[Any] = list(shipped())
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(str(folder), "runbooks.folder", "is not a folder")
        files += sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
    return {runbook.name: runbook for runbook in map(load_file, files)}
