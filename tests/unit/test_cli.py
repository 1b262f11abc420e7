"""The `dagwatch` command itself: --version, -h everywhere, JSON log lines, `config validate
--no-env`, `run` from the working folder, and the alerts commands when no server answers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.alerting import ingest
from monitor.cli import JsonLines, app
from monitor.config import load_settings
from monitor.model import Event, EventKind
from monitor.store import open_store
from tests.integration.server import free_port


def cli(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env={**{k: None for k in os.environ if k.startswith("DAGWATCH_")}, **env})


def test_version():
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"dagwatch {version('dagwatch')}"


@pytest.mark.parametrize(
    "command",
    [(), ("alerts",), ("alerts", "list"), ("config", "validate"), ("up",), ("run",), ("check", "convergence"), ("token", "create")],
)
def test_short_help_everywhere(command):
    result = cli(*command, "-h")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout and "--help" in result.stdout and "-h" in result.stdout


def test_json_log_lines_carry_the_traceback_as_one_string():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("monitor.service").makeRecord(
            "monitor.service", logging.ERROR, __file__, 1, "run of %s could not complete", ("train",), sys.exc_info()
        )
    line = JsonLines().format(record)
    assert "\n" not in line  # one record, one line
    parsed = json.loads(line)
    assert set(parsed) == {"time", "level", "logger", "message", "exc_info"}
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("error", "monitor.service", "run of train could not complete")
    assert parsed["exc_info"].startswith("Traceback") and parsed["exc_info"].endswith("ValueError: boom")
    assert parsed["time"].endswith("Z")


def test_json_log_lines_write_the_message_only_not_extras():
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "sent", (), None, extra={"token": "dw_s3cret"})
    assert "dw_s3cret" not in JsonLines().format(record)


# -- config validate --no-env -------------------------------------------------------------------

SECRETS_FILE = """
server: {port: '${PORT}'}
alerting: {group_wait: '${GROUP_WAIT}'}
receivers:
  - {name: pd, kind: pagerduty, routing_key: '${PD_ROUTING_KEY}', events_url: '${PD_URL}'}
sources:
  - {name: af, kind: airflow, url: '${AIRFLOW_URL}', auth: {username: admin, password: '${AIRFLOW_PASSWORD}'}}
"""
NAMES = ["PORT", "GROUP_WAIT", "PD_ROUTING_KEY", "PD_URL", "AIRFLOW_URL", "AIRFLOW_PASSWORD"]


@pytest.fixture
def secrets_file(tmp_path, monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "dagwatch.yaml"
    path.write_text(SECRETS_FILE)
    return path


def test_validate_without_the_environment_checks_the_file_and_lists_what_it_needs(secrets_file, monkeypatch):
    monkeypatch.setenv("PORT", "8080")
    result = cli("config", "validate", str(secrets_file), "--no-env")
    assert result.exit_code == 0, result.output
    needs, ok = result.stdout.strip().splitlines()
    assert needs.startswith(f"{secrets_file}: needs 5 variable(s) unset here: GROUP_WAIT (alerting.group_wait), ")
    assert all(name in needs for name in NAMES if name != "PORT") and "PORT (" not in needs
    assert ok.startswith(f"{secrets_file}: ok (1 source(s), 1 receiver(s)")


def test_validate_without_the_environment_still_finds_the_real_mistakes(secrets_file):
    secrets_file.write_text(SECRETS_FILE.replace("admin", "admin, passwrd: x").replace("'${PORT}'", "'${PORT}', prot: 1"))
    result = cli("config", "validate", str(secrets_file), "--no-env")
    assert result.exit_code == 2
    assert f"{secrets_file}: server.prot: unknown key" in result.stderr
    assert "sources[0].auth.passwrd: unknown key" in result.stderr
    assert "PORT" not in result.stderr.replace("server.prot", "")  # a stand-in is not a mistake


def test_validate_ignores_dagwatch_variables_without_the_environment(secrets_file):
    result = cli("config", "validate", str(secrets_file), "--no-env", DAGWATCH_SERVER__PORT="not-a-port")
    assert result.exit_code == 0, result.output


def test_validate_with_the_environment_lists_every_unset_variable_at_once(secrets_file, monkeypatch):
    monkeypatch.setenv("PD_URL", "https://events.example.com")
    result = cli("config", "validate", str(secrets_file))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 5 and all(f"environment variable {n} is not set" in result.stderr for n in NAMES if n != "PD_URL")
    assert lines[0] == f"error: {secrets_file}: server.port: environment variable PORT is not set (referenced as ${{PORT}})"
    assert "--no-env" in lines[-1]


def test_a_stand_in_refused_everywhere_is_reported_with_its_variable(tmp_path):
    path = tmp_path / "dagwatch.yaml"
    path.write_text("server: {port: '${PORT}x'}\n")
    result = cli("config", "validate", str(path), "--no-env")
    assert result.exit_code == 2 and "server.port" in result.stderr and "${PORT}" in result.stderr


# -- run from the working folder ----------------------------------------------------------------

PIPELINE = """
from monitor.runner import Pipeline

pipeline = Pipeline("mine")


@pipeline.task()
def hello():
    print("hello from mypipes")
"""


def test_run_imports_the_pipeline_from_the_working_folder(tmp_path):
    """The README's `dagwatch run mypipes:pipeline`, run by the installed script as a user does."""
    (tmp_path / "mypipes.py").write_text(PIPELINE)
    (tmp_path / "dagwatch.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGWATCH_") and k != "PYTHONPATH"}
    script = Path(sys.executable).parent / "dagwatch"
    result = subprocess.run(
        [str(script), "run", "mypipes:pipeline", "-c", "dagwatch.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "hello from mypipes" in result.stdout and "of mine: success" in result.stdout


def test_run_by_name_takes_the_configured_source_and_params(tmp_path, monkeypatch):
    """A pipeline named unlike its variable (`mypipes:flow` is "mine") still finds its entry: its
    params and its source (whose executors and Dask settings the runner is built with)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "paramspipes.py").write_text(
        "from monitor.runner import Pipeline\n\nflow = Pipeline('mine_with_params')\n\n\n"
        "@flow.task()\ndef hello(ctx):\n    print('greeting', ctx.params['greeting'])\n"
    )
    (tmp_path / "c.yaml").write_text(
        f"data_dir: {tmp_path / 'data'}\nsources:\n  - name: batch\n    kind: embedded\n    executor: process\n"
        "    pipelines: [{ref: 'paramspipes:flow', params: {greeting: configured-hello}}]\n"
    )
    result = cli("run", "mine_with_params", "-c", str(tmp_path / "c.yaml"))
    assert result.exit_code == 0, result.stderr
    assert "of mine_with_params: success" in result.stdout
    from monitor.store import open_store
    from monitor.store import runs as run_store

    store = open_store(f"sqlite:///{tmp_path / 'data' / 'dagwatch.db'}")
    try:
        with store.session() as session:
            [run] = run_store.recent(session, pipeline="mine_with_params")
    finally:
        store.close()
    assert run.source == "batch" and run.params == {"greeting": "configured-hello"}


def test_a_missing_module_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    result = cli("run", "nosuchmodule_xyz:pipeline", "-c", str(tmp_path / "c.yaml"))
    assert result.exit_code == 2
    assert "cannot import 'nosuchmodule_xyz'" in result.stderr and "run from the folder that holds it" in result.stderr


# -- alerts when no server answers: the store, as this OS user ----------------------------------


@pytest.fixture
def local(tmp_path):
    """A config whose server is not running, and a firing alert in its store."""
    config = tmp_path / "dagwatch.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nserver: {{port: {free_port()}}}\nsources: []\n")
    settings = load_settings(config)
    settings.data_dir.mkdir(parents=True)
    store = open_store(settings.store_url)
    try:
        event = Event(kind=EventKind.RUN_FAILED, source="embedded", pipeline="nightly_etl", run_id="r1", summary="etl failed")
        alert_id = ingest.submit(store, [event], ingest.AlertPolicy.from_settings(settings))[0].fired[0]
    finally:
        store.close()
    return config, alert_id


def test_list_ack_and_silence_on_the_store_when_no_server_answers(local):
    config, alert_id = local
    listed = cli("alerts", "list", "-c", str(config), "--json")
    assert listed.exit_code == 0, listed.output
    assert "no server answers" in listed.stderr and "acting on the store directly as cli:" in listed.stderr
    assert [a["id"] for a in json.loads(listed.stdout)] == [alert_id]
    assert cli("alerts", "list", "-c", str(config), "--tier", "P3").stdout.strip() == "no alerts match"
    acked = cli("alerts", "ack", str(alert_id), "-c", str(config))
    assert acked.exit_code == 0 and acked.stdout.strip().startswith(f"alert {alert_id} acknowledged by cli:")
    silenced = cli("alerts", "silence", "-m", "pipeline=~nightly_.*", "--for", "2h", "-c", str(config), "--json")
    assert silenced.exit_code == 0, silenced.output
    made = json.loads(silenced.stdout)
    assert made["matchers"] == {"pipeline": "~nightly_.*"} and made["created_by"].startswith("cli:")
    muted = json.loads(cli("alerts", "list", "-c", str(config), "--json").stdout)[0]
    assert muted["muted_by"] == f"silence:{made['id']}"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((), "give an alert id or --match"),
        (("1", "-m", "tier=P1"), "give an alert id or --match"),
        (("-m", "tier"), "--match: write key=matcher"),
        (("-m", "pipeline=~("), "--match: "),
        (("1", "--for", "soon"), "--for: invalid duration 'soon'"),
    ],
)
def test_silence_arguments_are_checked_before_anything_is_done(local, args, words):
    config, _ = local
    result = cli("alerts", "silence", *args, "-c", str(config))
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
