"""`checks.folder`: a team's Great Expectations suites beside its config (monitor/remediation/suites.py).

A bare suite name is the folder's NAME.json, else the shipped suite; every suite there is read by
`dagwatch config validate` and when the service starts, and a broken one is refused with its file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from checks.errors import SuiteLoadError
from checks.quality.suite import SUITES_DIR, find_suite
from monitor.cli import app
from monitor.config import Settings
from monitor.errors import ConfigError
from monitor.remediation import suites
from monitor.service import Service

GOOD = {"name": "rows", "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "suites"
    path.mkdir()
    (path / "rows.json").write_text(json.dumps(GOOD))
    (path / "demo_values.json").write_text(json.dumps(GOOD))  # replaces the shipped one
    return path


def test_a_bare_name_is_the_folders_suite_then_a_shipped_one(folder):
    assert find_suite("rows", folder) == folder / "rows.json"
    assert find_suite("demo_values", folder) == folder / "demo_values.json"
    assert find_suite("demo_schema", folder) == SUITES_DIR / "demo_schema.json"
    assert find_suite("demo_values") == SUITES_DIR / "demo_values.json"
    assert find_suite("/data/suites/x.json", folder) == Path("/data/suites/x.json")
    assert find_suite("mine.json", folder) == Path("mine.json")


def test_an_unknown_name_lists_the_suites_there_are(folder):
    with pytest.raises(SuiteLoadError) as caught:
        find_suite("rowz", folder)
    assert f"no suite named 'rowz' in {folder} or shipped; have demo_schema, demo_values, rows" in str(caught.value)


def settings(folder: Path | None, **inputs: list[dict]) -> Settings:
    return Settings.model_validate({"checks": {"folder": str(folder)} if folder else None, "runbooks": {"inputs": inputs}})


def test_the_folder_is_read_whole_and_a_broken_suite_names_its_file(folder):
    assert suites.validate(settings(folder)) == ["demo_values", "rows"]
    assert suites.validate(settings(None)) == []
    (folder / "broken.json").write_text('{"name": "broken", "expectations": [')
    with pytest.raises(ConfigError) as caught:
        suites.validate(settings(folder))
    assert str(caught.value).startswith(f"{folder / 'broken.json'}: checks.folder: not valid JSON")
    with pytest.raises(ConfigError, match="checks.folder: is not a folder"):
        suites.validate(settings(folder / "nope"))


def test_a_misspelt_suite_name_in_the_inputs_is_refused_before_any_runbook_needs_it(folder):
    good = [{"path": "/data/a.parquet", "suite": "rows"}, {"path": "/data/b.csv", "suite": "demo_schema"}]
    assert suites.validate(settings(folder, train=good, score=[{"path": "/x", "suite": "/mounted/later.json"}])) == ["demo_values", "rows"]
    with pytest.raises(ConfigError) as caught:
        suites.validate(settings(folder, train=[{"path": "/data/a.parquet", "suite": "rowz"}]))
    assert str(caught.value) == f"runbooks.inputs: no suite named 'rowz' in {folder} or shipped; have demo_schema, demo_values, rows"
    with pytest.raises(ConfigError, match="no suite named 'rowz' shipped; have demo_schema, demo_values"):
        suites.validate(settings(None, train=[{"path": "/data/a.parquet", "suite": "rowz"}]))


def test_config_validate_counts_the_suites_and_refuses_a_broken_one(tmp_path, folder):
    config = tmp_path / "dagwatch.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nchecks: {{folder: {folder}}}\n")
    result = CliRunner().invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 check suite(s)" in result.stdout
    (folder / "broken.json").write_text(json.dumps({"name": "broken", "expectations": [{"kwargs": {}}]}))
    result = CliRunner().invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 2
    assert f"{folder / 'broken.json'}: checks.folder: " in result.stderr


def test_config_validate_builds_each_suite_in_gx_so_an_unknown_type_is_caught(tmp_path, folder):
    """Start-up only reads the JSON (GX costs seconds to import); `config validate` builds it."""
    config = tmp_path / "dagwatch.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nchecks: {{folder: {folder}}}\n")
    typo = {"name": "typo", "expectations": [{"type": "expect_table_row_count_to_be_betwen", "kwargs": {"min_value": 1}}]}
    (folder / "typo.json").write_text(json.dumps(typo))
    assert suites.validate(settings(folder)) == ["demo_values", "rows", "typo"]
    result = CliRunner().invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 2
    assert f"{folder / 'typo.json'}: checks.folder: " in result.stderr and "expect_table_row_count_to_be_betwen" in result.stderr


def test_the_service_does_not_start_on_a_broken_suite(tmp_path, folder):
    (folder / "broken.json").write_bytes(b"\xff\xfe not a suite")
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data"), "checks": {"folder": str(folder)}})
    with pytest.raises(ConfigError, match="broken.json: checks.folder: "):
        Service(settings)
    assert not (tmp_path / "data").exists()  # refused before the store was opened
