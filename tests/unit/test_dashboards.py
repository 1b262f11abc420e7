"""The shipped Grafana dashboards, checked against what dagwatch really exports and serves.

Metric names come from the registry a real `Service` builds (its store collector over a real
SQLite store), recording-rule names from dashboards/prometheus/rules/; every PromQL expression
goes through the real `promtool`; runbook links must name a shipped runbook and only the query
parameters the start page reads. A dashboard that charts a metric nobody exports shows "No
data" forever without any error, which is what this test is for.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from prometheus_client import REGISTRY

from monitor.api import pages
from monitor.config import Settings
from monitor.remediation.runbook import load_all
from monitor.service import Service

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
RULES = ROOT / "dashboards" / "prometheus" / "rules"
EXPECTED_UIDS = {"dagwatch-pipelines", "dagwatch-pipeline", "dagwatch-alerts"}

#: Grafana's own variables a panel may use.
GLOBALS = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
    "__url_time_range",
    "__timezone",
    "__dashboard",
    "__org",
    "__user",
}
#: Data link variables that need no field of the query.
LINK_BUILTINS = {"__value.raw", "__value.text", "__value.numeric", "__value.time", "__value.calc", "__series.name", "__field.name"}
#: Grafana's variable formats (`${var:format}`).
FORMATS = {
    "percentencode",
    "queryparam",
    "raw",
    "text",
    "json",
    "csv",
    "pipe",
    "regex",
    "glob",
    "distributed",
    "lucene",
    "sqlstring",
    "doublequote",
    "singlequote",
    "htmlescape",
}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}


def _build_module() -> Any:
    spec = importlib.util.spec_from_file_location("dagwatch_grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BUILD = _build_module()


def _dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted((GRAFANA / "dashboards").glob("*.json"))}


DASHBOARDS = _dashboards()


def _panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard.get("panels", []):
        if panel.get("type") != "row":
            yield panel
        yield from (inner for inner in panel.get("panels", []) if inner.get("type") != "row")


def _variables(dashboard: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def _links(panel: dict) -> list[dict]:
    config = panel.get("fieldConfig", {})
    links = list(config.get("defaults", {}).get("links", []))
    for override in config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "links":
                links.extend(prop.get("value") or [])
    return links + list(panel.get("links", []))


def _exprs(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every Prometheus query: panel targets and query variables."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for name, variable in _variables(dashboard).items():
        if variable["type"] == "query":
            query = variable["query"] if isinstance(variable["query"], str) else variable["query"]["query"]
            found = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert found, f"variable {name}: only label_values(selector, label) queries are checked; got {query!r}"
            yield f"variable {name}", found.group(1)


# --- what dagwatch exports -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Series names a real dagwatch process exposes: its registry as `Service` sets it up. A
    labelled counter or histogram has no samples before its first observation, so names follow
    from the family's type (prometheus_client's conventions, `_created` disabled)."""
    service = Service(Settings(data_dir=tmp_path_factory.mktemp("dagwatch"), sources=[]))
    try:
        names: set[str] = set()
        for family in REGISTRY.collect():
            names.update(sample.name for sample in family.samples)
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
                "summary": ("", "_sum", "_count"),
                "info": ("_info",),
            }.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    finally:
        service.stop()
    return names


def _recording_rules() -> dict[str, str]:
    rules = {}
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            rules.update({rule["record"]: rule["expr"] for rule in group.get("rules", []) if "record" in rule})
    return rules


RECORDED = _recording_rules()


# --- a small PromQL reader: enough to name metrics and a query's row labels ----------------------


def _strip(expr: str) -> str:
    """The expression without strings, label matchers, ranges and grouping clauses."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    return re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)


def metric_names(expr: str) -> list[str]:
    """Identifiers that name series: not functions (followed by `(`), keywords or numbers."""
    stripped = _strip(expr)
    names = []
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", stripped):
        if match.group(1).lower() not in PROMQL_WORDS:
            names.append(match.group(1))
    return names


def row_labels(expr: str) -> set[str] | None:
    """The labels of the leftmost operand: its `by (…)` clause, or a recorded series' own rule.
    None when a raw metric comes first (its labels depend on what was observed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    grouping = re.search(r"\bby\s*\(([^)]*)\)", text)
    first = next(iter(metric_names(expr)), None)
    first_at = text.find(first) if first else -1
    if grouping and (first_at < 0 or grouping.start() < first_at):
        return {label.strip() for label in grouping.group(1).split(",") if label.strip()}
    if first in RECORDED:
        return row_labels(RECORDED[first])
    return None


def test_the_promql_reader_finds_metrics_and_row_labels():
    expr = (
        'topk(10, sum by (source, pipeline) (rate(dagwatch_runs_total{state="failed", pipeline=~"a.b"}[5m] offset 1h))'
        " / on (source) group_left max by (source) (dagwatch_source_up)) > bool 0.5 and time() - inf < 3"
    )
    assert metric_names(expr) == ["dagwatch_runs_total", "dagwatch_source_up"]
    assert row_labels(expr) == {"source", "pipeline"}
    assert row_labels("max(dagwatch_source_up)") is None
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))") == ["x_bucket"]


# --- the tests ---------------------------------------------------------------------------------


def test_committed_json_is_what_the_generator_writes():
    """Edit build.py and run it; never the JSON (Grafana's UI edits are refused by provisioning)."""
    assert set(DASHBOARDS) == {f"{uid}.json" for uid in EXPECTED_UIDS}
    rendered = BUILD.render()
    assert set(rendered) == set(DASHBOARDS)
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, f"{name} is stale: run `python dashboards/grafana/build.py`"


def test_uids_are_stable_and_unique_and_nothing_needs_an_import_step():
    uids = [d.get("uid") for d in DASHBOARDS.values()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    for name, dashboard in DASHBOARDS.items():
        assert f"{dashboard['uid']}.json" == name
        assert "__inputs" not in dashboard and "__requires" not in dashboard, name
        assert "${DS_" not in json.dumps(dashboard), f"{name} refers to an import-time datasource input"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"


def test_every_panel_reads_the_datasource_variable_or_the_dagwatch_api():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())["datasources"]
    by_uid = {ds["uid"]: ds for ds in datasources}
    assert by_uid[BUILD.INFINITY_UID]["type"] == "yesoreyeram-infinity-datasource"
    assert by_uid[BUILD.PROMETHEUS_UID]["type"] == "prometheus"
    prometheus = {"type": "prometheus", "uid": "${datasource}"}
    infinity = {"type": "yesoreyeram-infinity-datasource", "uid": BUILD.INFINITY_UID}
    for name, dashboard in DASHBOARDS.items():
        variable = _variables(dashboard).get("datasource")
        assert variable is not None and variable["type"] == "datasource" and variable["query"] == "prometheus", name
        assert variable["current"]["value"] == BUILD.PROMETHEUS_UID
        for other in _variables(dashboard).values():
            if other["type"] == "query":
                assert other["datasource"] == prometheus, f"{name}: variable {other['name']}"
        for panel in _panels(dashboard):
            assert panel.get("datasource") in (prometheus, infinity), f"{name}: panel {panel['title']!r}"
            for target in panel.get("targets", []):
                assert target.get("datasource") == panel["datasource"], f"{name}: panel {panel['title']!r} {target['refId']}"
                assert ("expr" in target) == (panel["datasource"] == prometheus)


def test_every_query_parses_and_names_only_series_dagwatch_exports(exported, tmp_path):
    """Names: the running registry and the shipped recording rules. Syntax: the real promtool,
    given each expression as a recording rule with Grafana's variables filled in."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (CI installs it)"
    known = exported | set(RECORDED)
    assert "dagwatch_runs_total" in exported and "dagwatch_run_duration_seconds_bucket" in exported
    rules, wheres, unknown = [], [], []
    for name, dashboard in DASHBOARDS.items():
        variables = set(_variables(dashboard)) | GLOBALS
        for where, expr in _exprs(dashboard):
            used = set(re.findall(r"\$\{?(\w+)", expr))
            assert used <= variables, f"{name} {where}: undefined variables {used - variables}"
            names = metric_names(expr)
            assert names, f"{name} {where}: no metric in {expr!r}"
            unknown += [f"{name} {where}: {metric}" for metric in names if metric not in known]
            filled = re.sub(r"\$\{?__(?:rate_interval|interval|range)\}?", "5m", expr)
            wheres.append(f"dashboard:check:{len(rules)} is {name} {where}")
            rules.append({"record": f"dashboard:check:{len(rules)}", "expr": re.sub(r"\$\{?\w+(?::\w+)?\}?", "x", filled)})
    assert not unknown, "series dagwatch does not export (nor any recording rule):\n" + "\n".join(unknown)
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr + "\n".join(wheres)
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def _fields(panel: dict) -> set[str]:
    """Field names the panel's queries return, as `${__data.fields.X}` sees them."""
    fields: set[str] = set()
    targets = panel.get("targets", [])
    for target in targets:
        if "columns" in target:
            fields |= {column["text"] or column["selector"] for column in target["columns"]}
        elif "expr" in target:
            labels = row_labels(target["expr"])
            assert labels is not None, f"panel {panel['title']!r}: begin table queries with `agg by (labels)` or a recorded series"
            fields |= labels | {"Time", "Value"} | ({f"Value #{target['refId']}"} if len(targets) > 1 else set())
    return fields


def _link_variables(url: str) -> Iterator[tuple[str, str | None]]:
    for braced, fmt, bare in re.findall(r"\$\{([^}:]+)(?::([^}]+))?\}|\$(\w+)", url):
        yield (braced or bare), (fmt or None)
    assert "[[" not in url, f"deprecated [[var]] syntax in {url}"


def test_every_link_variable_names_a_field_of_its_query_or_a_dashboard_variable():
    checked = 0
    for name, dashboard in DASHBOARDS.items():
        variables = set(_variables(dashboard)) | GLOBALS
        for panel in _panels(dashboard):
            links = _links(panel)
            fields = _fields(panel) if links else set()
            for link in links:
                assert link.get("url") and link.get("title"), f"{name}: panel {panel['title']!r} has a link without url or title"
                for variable, fmt in _link_variables(link["url"]):
                    where = f"{name}: panel {panel['title']!r}, link {link['title']!r}: ${{{variable}}}"
                    assert fmt is None or fmt in FORMATS, f"{where}: unknown format {fmt!r}"
                    field = re.fullmatch(r"__data\.fields(?:\.(\w+)|\[\"([^\"]+)\"\])", variable)
                    if field:
                        assert (field.group(1) or field.group(2)) in fields, f"{where}: the query returns {sorted(fields)}"
                        whole_url = link["url"] == f"${{{variable}}}"  # a URL field (the orchestrator's run page) as is
                        assert fmt == "percentencode" or whole_url, f"{where}: row values are free text; encode them (:percentencode)"
                    else:
                        assert variable in variables | LINK_BUILTINS, f"{where}: no such variable"
                    checked += 1
    assert checked > 20


def test_each_dashboard_links_to_a_shipped_runbook_with_the_parameters_the_start_page_reads():
    shipped = set(load_all())
    accepted = set(inspect.signature(pages.start_page).parameters) - {"request", "name", "db"}
    assert accepted == {"alert_id", "source", "pipeline", "run_id", "task_id"}
    for name, dashboard in DASHBOARDS.items():
        found = []
        for panel in _panels(dashboard):
            for link in _links(panel):
                start = re.fullmatch(r"\$\{dagwatch_url\}/runbooks/([\w-]+)/start\?(.*)", link["url"])
                if start:
                    runbook, query = start.groups()
                    assert runbook in shipped, f"{name}: {runbook} is not a shipped runbook ({sorted(shipped)})"
                    keys = [pair.split("=", 1)[0] for pair in query.split("&")]
                    assert set(keys) <= accepted and "source" in keys, f"{name}: {link['url']}"
                    found.append((panel["title"], runbook, keys))
        assert found, f"{name} has no panel linking to a runbook page"
        assert any(keys == ["source", "pipeline", "run_id", "task_id"] for _, _, keys in found), f"{name}: no link for one run and task"


def test_alert_rows_come_from_the_alerts_api_with_run_and_task():
    """The Infinity rows select fields that GET /api/v1/alerts returns (monitor.model.Alert)."""
    from monitor.model import Alert

    top_level = set(Alert.model_fields)
    for name, dashboard in DASHBOARDS.items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                if "columns" not in target:
                    continue
                assert target["url"] == "/api/v1/alerts" and target["url_options"]["method"] == "GET"
                params = {p["key"]: p["value"] for p in target["url_options"]["params"]}
                assert params["status"] == "firing"
                for column in target["columns"]:
                    assert column["selector"].split(".")[0] in top_level, f"{name}: {column['selector']}"
                assert {"source", "pipeline", "run_id", "task_id"} <= {c["text"] for c in target["columns"]}


def test_provisioning_points_at_the_mounted_folder_and_keeps_the_token_out_of_the_files():
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dagwatch.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    assert all(p["type"] == "file" and p["allowUiUpdates"] is False for p in providers)
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())["datasources"]
    by_uid = {ds["uid"]: ds for ds in datasources}
    assert by_uid[BUILD.PROMETHEUS_UID]["url"] == "http://prometheus:9090" and by_uid[BUILD.PROMETHEUS_UID]["isDefault"]
    api = by_uid[BUILD.INFINITY_UID]
    assert api["url"] == "http://dagwatch:8000" and api["jsonData"]["allowedHosts"] == ["http://dagwatch:8000"]
    assert api["jsonData"]["httpHeaderName1"] == "Authorization"
    assert api["secureJsonData"]["httpHeaderValue1"] == "Bearer ${DAGWATCH_GRAFANA_TOKEN}"
