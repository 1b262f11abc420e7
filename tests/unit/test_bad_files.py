"""Malformed files an operator writes — the config, runbooks, check suites — are refused with one
error naming the file, the key or step, and the reason (issue 11, "must show"); never a Python
traceback, which is what a non-UTF-8 file or a suite's odd `meta` once produced. Config cases
already covered by test_config.py are not repeated here; these are the shapes a fuzzer or a
careless copy-paste produces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checks.errors import SuiteLoadError
from checks.quality.suite import load_suite, load_suite_document
from monitor.config import load_settings
from monitor.errors import ConfigError
from monitor.remediation.runbook import load_file

NOT_UTF8 = b"server:\n  host: caf\xe9\n"  # Latin-1, as an editor on Windows might save it


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _names(error: ConfigError, path: Path, key: str | None, reason: str) -> None:
    """What the operator reads: `FILE: KEY: REASON` (no key for a file that is wrong as a whole)."""
    assert error.file == str(path)
    head = f"{path}: {key}: " if key else f"{path}: "
    assert str(error).startswith(head) and reason in str(error).removeprefix(head), str(error)


# --- the config ------------------------------------------------------------------------------

CONFIGS = [
    (NOT_UTF8, None, "not UTF-8 text: byte 0xe9 at offset 19"),
    ("sources: 5", "sources", "valid list"),
    ("sources: [5]", "sources[0]", "dictionary"),
    ("server: 5", "server", "dictionary"),
    ("receivers: {a: 1}", "receivers", "valid list"),
    ("receivers: [{name: x}]", "receivers[0]", "discriminator 'kind'"),
    ("receivers: [{name: p, kind: pagerduty}]", "receivers[0].routing_key", "required key is missing"),
    ("server: {port: .inf}", "server.port", "finite number"),
    ("server: {port: 1.5}", "server.port", "fractional part"),
    ("alerting: {group_wait: 99999999999999999999d}", "alerting.group_wait", "too long"),
    ("alerting: {group_wait: 1e400s}", "alerting.group_wait", "invalid duration"),
    ("routes: [{match: {pipeline: '~('}}]", "routes[0].match", "invalid regex '('"),
    ("routes: [{receivers: [nope]}]", "routes[0].receivers", "unknown receiver 'nope'"),
    ("sources: [{name: a, kind: airflow, url: 'ftp://x'}]", "sources[0].url", "not an http(s) URL"),
    ("!!python/object/apply:os.system [echo pwned]", None, "not valid YAML: line 1, column 1"),
]


@pytest.mark.parametrize(("content", "key", "reason"), CONFIGS, ids=[c[2][:30] for c in CONFIGS])
def test_a_bad_config_names_file_key_and_reason(tmp_path, content, key, reason):
    path = _write(tmp_path, "dagwatch.yaml", content)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    _names(info.value, path, key, reason)


def test_config_validate_reports_a_non_utf8_file_in_one_line_not_a_traceback(tmp_path):
    path = _write(tmp_path, "dagwatch.yaml", NOT_UTF8)
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "config", "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert f"{path}: not UTF-8 text" in done.stderr + done.stdout


# --- runbooks --------------------------------------------------------------------------------

STEP = "{name: health, action: orchestrator_health}"
RUNBOOKS = [
    (b"name: x\ndescription: caf\xe9\nsteps: [" + STEP.encode() + b"]", None, "not UTF-8 text: byte 0xe9"),
    ("- a list", None, "valid dictionary"),
    ("", None, "valid dictionary"),
    ("name: x", "steps", "Field required"),
    ("name: x\nsteps: []", "steps", "at least 1 item"),
    ("name: x\nsteps: 5", "steps", "valid list"),
    ("name: x\nsteps: [[]]", "steps[0]", "valid dictionary"),
    ("name: x\nsteps: [{}]", "steps[0].name", "Field required"),
    ("name: x\nsteps: [{name: a}]", "steps[0] (a).action", "Field required"),
    ("name: x\nsteps: [{name: a, action: nope}]", "steps[0] (a)", "unknown action 'nope'"),
    ("name: x\nsteps: [{name: a, action: orchestrator_health, args: {bogus: 1}}]", "steps[0] (a).args.bogus", "Extra inputs"),
    ("name: x\nsteps: [{name: a, action: orchestrator_health, args: 5}]", "steps[0] (a).args", "valid dictionary"),
    ("name: x\nsteps: [{name: a, action: orchestrator_health, timeout: forever}]", "steps[0] (a).timeout", "invalid duration 'forever'"),
    (f"name: x\nsteps: [{STEP}, {STEP}]", "steps[1] (health)", "comes earlier"),
    ("name: x\nsteps: [{name: a, action: orchestrator_health, when: {b.ok: 'true'}}]", "steps[0] (a).when", "'b.ok' names no earlier step"),
    # Matchers are checked as a route's; the error is the field's own, not a `match.match`.
    (f"name: x\nmatch: {{kind: '~('}}\nsteps: [{STEP}]", "match", "matcher kind: invalid regex '('"),
    (
        f"name: x\nsteps: [{STEP}, {{name: b, action: orchestrator_health, when: {{health.ok: '~('}}}}]",
        "steps[1] (b).when",
        "matcher health.ok: invalid regex '('",
    ),
]


@pytest.mark.parametrize(("content", "key", "reason"), RUNBOOKS, ids=[r[2][:30] for r in RUNBOOKS])
def test_a_bad_runbook_names_file_step_and_reason(tmp_path, content, key, reason):
    path = _write(tmp_path, "bad.yaml", content)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    _names(info.value, path, key, reason)
    assert "Value error" not in str(info.value)


# --- check suites (Great Expectations JSON) --------------------------------------------------

EXISTS = {"type": "expect_column_to_exist", "kwargs": {"column": "a"}}
SUITES = [
    (b'{"expectations": [\xff]}', "not valid JSON"),
    ([], "top level must be a JSON object"),
    ({}, "'expectations' must be a non-empty list"),
    ({"expectations": 5}, "'expectations' must be a non-empty list"),
    ({"expectations": [5]}, "expectation #0 is not an object"),
    ({"expectations": [{"type": 5}]}, "expectation #0 has no 'type'"),
    (
        {"expectations": [{"type": "expect_column_to_exist", "kwargs": [1]}]},
        "expectation #0 (expect_column_to_exist): 'kwargs' must be an object",
    ),
    # These three were TypeErrors from deep inside the loader.
    ({"expectations": [{**EXISTS, "meta": 5}]}, "expectation #0 (expect_column_to_exist): 'meta' must be an object"),
    ({"expectations": [{**EXISTS, "meta": [["check_id", "x"]]}]}, "expectation #0 (expect_column_to_exist): 'meta' must be an object"),
    (
        {"expectations": [{**EXISTS, "meta": {"check_id": [1]}}]},
        "expectation #0 (expect_column_to_exist): 'meta.check_id' must be a non-empty string",
    ),
    (
        {"expectations": [{**EXISTS, "meta": {"check_id": "a"}}, {**EXISTS, "meta": {"check_id": "a"}}]},
        "expectation #1: duplicate check_id 'a'",
    ),
]


@pytest.mark.parametrize(("content", "reason"), SUITES, ids=[s[1][:30] for s in SUITES])
def test_a_bad_suite_structure_names_file_expectation_and_reason(tmp_path, content, reason):
    path = _write(tmp_path, "suite.json", content if isinstance(content, bytes) else json.dumps(content))
    with pytest.raises(SuiteLoadError) as info:
        load_suite_document(path)
    assert str(info.value).startswith(f"suite {path}: ")
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("expectation", "reason"),
    [
        ({"type": "expect_no_such_thing"}, "1 of 1 expectations did not load (unknown type: expect_no_such_thing)"),
        (
            {"type": "expect_column_to_exist", "kwargs": {}},
            "invalid expectation arguments: 1 validation error for ExpectColumnToExist column field required",
        ),
        ({"type": "expect_column_to_exist", "kwargs": {"column": 5}}, "invalid expectation arguments"),
    ],
)
def test_a_suite_gx_cannot_build_names_the_expectation(tmp_path, expectation, reason):
    path = _write(tmp_path, "suite.json", json.dumps({"expectations": [expectation]}))
    with pytest.raises(SuiteLoadError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"suite {path}: ") and reason in str(info.value)
