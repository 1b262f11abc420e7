"""Writes dagwatch's Grafana dashboards to dashboards/grafana/dashboards/ (run it after editing).

Built with grafana-foundation-sdk so panels, variables and links are typed objects rather than
hand-kept JSON; the JSON is committed because Grafana's file provisioning reads files, and
tests/unit/test_dashboards.py fails when it differs from what this script writes.

Prometheus panels use the `datasource` variable (never `__inputs`: provisioning does not fill
them). Series carry no run or task ids (the label budget), so the rows that have them come from
dagwatch's own JSON API through the Infinity datasource (`GET /api/v1/alerts`), and only those
rows can open the runbook start page for one run and task; Prometheus rows open it with source
and pipeline. A link only opens the start page: it shows what would run, and nothing runs
until an operator confirms there.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).parent / "dashboards"

#: The uids of the provisioned datasources (provisioning/datasources/datasources.yml).
PROMETHEUS_UID = "dagwatch-prometheus"
INFINITY_UID = "dagwatch-api"
INFINITY_TYPE = "yesoreyeram-infinity-datasource"

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
INFINITY = DataSourceRef(type_val=INFINITY_TYPE, uid=INFINITY_UID)
DAGWATCH_URL = "http://localhost:8000"
TAG = "dagwatch"

#: Data link variables of a row, percent-encoded: pipeline names and run ids are free text.
ROW = {name: f"${{__data.fields.{name}:percentencode}}" for name in ("source", "pipeline", "run_id", "task_id", "id")}


# --- the Infinity query: the SDK has no builder for this plugin -------------------------------


@dataclass
class AlertsQuery(cogvariants.Dataquery):
    """`GET /api/v1/alerts` through Infinity's backend parser, one row per alert."""

    params: dict[str, str]
    columns: list[tuple[str, str, str]]  # (JSON selector, field name, type)
    ref_id: str = "A"
    datasource: DataSourceRef = field(default_factory=lambda: INFINITY)

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": self.datasource,
            "type": "json",
            "source": "url",
            "format": "table",
            "parser": "backend",
            "url": "/api/v1/alerts",
            "url_options": {"method": "GET", "params": [{"key": k, "value": v} for k, v in self.params.items()]},
            "root_selector": "",
            "columns": [{"selector": s, "text": text, "type": kind} for s, text, kind in self.columns],
        }


class Alerts(cogbuilder.Builder[AlertsQuery]):
    def __init__(self, **params: str) -> None:
        self._query = AlertsQuery(params={"status": "firing", **params}, columns=ALERT_COLUMNS)

    def build(self) -> AlertsQuery:
        return self._query


#: What an alert row shows; the hidden ones feed the links.
ALERT_COLUMNS = [
    ("tier", "tier", "string"),
    ("kind", "kind", "string"),
    ("source", "source", "string"),
    ("pipeline", "pipeline", "string"),
    ("run_id", "run_id", "string"),
    ("task_id", "task_id", "string"),
    ("summary", "summary", "string"),
    ("started_at", "started_at", "timestamp"),
    ("muted_by", "muted_by", "string"),
    ("id", "id", "number"),
    ("links.orchestrator", "orchestrator_url", "string"),
]
HIDDEN_ALERT_COLUMNS = ("id", "orchestrator_url")


# --- small helpers ------------------------------------------------------------------------------


def prom(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    return query.legend_format(legend) if legend else query


def prom_table(expr: str, ref: str = "A") -> prometheus.Dataquery:
    return prom(expr, ref=ref).instant().format(PromQueryFormat.TABLE)


def link(title: str, url: str) -> dashboard.DashboardLink:
    return dashboard.DashboardLink(title).type(DashboardLinkType.LINK).url(url).target_blank(True)


def start_page(runbook: str, *fields: str) -> str:
    """dagwatch's runbook start page for the row: it opens the newest firing alert with these
    fields and shows what would run (empty values are ignored there)."""
    query = "&".join(f"{name}={ROW[name]}" for name in fields)
    return f"${{dagwatch_url}}/runbooks/{runbook}/start?{query}"


def runbook_link(runbook: str, *fields: str) -> dashboard.DashboardLink:
    return link(f"Runbook {runbook}: review and start", start_page(runbook, *fields))


ORCHESTRATOR = link("Open the run in Airflow / Prefect", "${__data.fields.orchestrator_url}")
ALERT_PAGE = link("Alert in dagwatch", f"${{dagwatch_url}}/alerts/{ROW['id']}")
DETAIL = link(
    "Pipeline detail",
    f"/d/dagwatch-pipeline/pipeline-detail?var-source={ROW['source']}&var-pipeline={ROW['pipeline']}"
    "&${datasource:queryparam}&${dagwatch_url:queryparam}&${__url_time_range}",
)


def alerts_table(title: str, query: Alerts, links: list[dashboard.DashboardLink], description: str) -> table.Panel:
    panel = table.Panel().title(title).description(description).datasource(INFINITY).with_target(query).data_links(links).height(8).span(24)
    for name in HIDDEN_ALERT_COLUMNS:
        panel = panel.override_by_name(name, [DynamicConfigValue(id_val="custom.hidden", value=True)])
    return panel


def series(title: str, *queries: prometheus.Dataquery, unit: str = "short", span: int = 12, bars: bool = False) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).datasource(PROMETHEUS).targets(list(queries)).unit(unit).height(8).span(span)
    if bars:
        panel = (
            panel.draw_style(common.GraphDrawStyle.BARS)
            .fill_opacity(80)
            .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        )
    return panel


def merged(panel: table.Panel) -> table.Panel:
    """Several instant queries, one row per label set."""
    return panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))


# --- variables ----------------------------------------------------------------------------------


def datasource_variable() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Prometheus", value=PROMETHEUS_UID))
    )


def dagwatch_url_variable() -> dashboard.TextBoxVariable:
    return (
        dashboard.TextBoxVariable("dagwatch_url")
        .label("dagwatch URL")
        .description("Where people's browsers reach dagwatch: runbook and alert links start here.")
        .default_value(DAGWATCH_URL)
        .current(VariableOption(selected=True, text=DAGWATCH_URL, value=DAGWATCH_URL))
    )


def label_variable(name: str, query: str, *, many: bool) -> dashboard.QueryVariable:
    variable = (
        dashboard.QueryVariable(name)
        .label(name.capitalize())
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    return variable.multi(True).include_all(True).all_value(".*") if many else variable


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("dagwatch")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
        .with_variable(datasource_variable())
        .with_variable(dagwatch_url_variable())
    )


# --- the dashboards -----------------------------------------------------------------------------


def pipelines_overview() -> dashboard.Dashboard:
    sel = 'source=~"$source"'
    up = ValueMap({"0": ValueMappingResult(text="DOWN", color="red", index=0), "1": ValueMappingResult(text="UP", color="green", index=1)})
    pipeline_links = [DETAIL, runbook_link("pipeline-failure", "source", "pipeline")]
    return (
        base(
            "dagwatch-pipelines",
            "Pipelines overview",
            "Every watched pipeline at a glance: source health, what is failing now, what runs slow or late.",
        )
        .with_variable(label_variable("source", "label_values(dagwatch_source_up, source)", many=True))
        .with_row(dashboard.Row("Sources"))
        .with_panel(
            stat.Panel()
            .title("Source up")
            .datasource(PROMETHEUS)
            .with_target(prom(f"max by (source) (dagwatch_source_up{{{sel}}})", "{{source}}"))
            .mappings([up])
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .graph_mode(common.BigValueGraphMode.NONE)
            .height(6)
            .span(8)
            .description("From dagwatch's health hysteresis: DOWN only after several failed polls in a row.")
        )
        .with_panel(
            series(
                "Poll duration p95 by source",
                prom(
                    f"histogram_quantile(0.95, sum by (source, le) (rate(dagwatch_source_poll_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                    "{{source}}",
                ),
                unit="s",
                span=8,
            ).height(6)
        )
        .with_panel(
            series(
                "Orchestrator API errors by kind",
                prom(
                    f"sum by (source, kind) (increase(dagwatch_source_api_errors_total{{{sel}}}[$__rate_interval]))", "{{source}} {{kind}}"
                ),
                span=8,
                bars=True,
            ).height(6)
        )
        .with_row(dashboard.Row("Failing now"))
        .with_panel(
            alerts_table(
                "Failing now (P1 alerts firing)",
                Alerts(tier="P1"),
                [
                    runbook_link("pipeline-failure", "source", "pipeline", "run_id", "task_id"),
                    runbook_link("retry-failed", "source", "pipeline", "run_id", "task_id"),
                    ORCHESTRATOR,
                    ALERT_PAGE,
                ],
                "From dagwatch's API (run and task ids are not on any series). Click a row: the runbook start page "
                "shows what would run for that run and task; only an operator's confirmation there runs it.",
            )
        )
        .with_row(dashboard.Row("Slow and late"))
        .with_panel(
            table.Panel()
            .title("Slowest vs p95 baseline")
            .datasource(PROMETHEUS)
            .with_target(prom_table(f"topk(10, source_pipeline:dagwatch_run_duration_vs_p95_baseline:ratio{{{sel}}})"))
            .description(
                "Mean duration of the last hour's successful runs over the p95 of the pipeline's last successful "
                "runs (recording rule; the alert DagwatchRunSlowerThanBaseline fires above 1.25)."
            )
            .data_links(pipeline_links)
            .unit("x")
            .decimals(2)
            .height(9)
            .span(12)
        )
        .with_panel(
            merged(
                table.Panel()
                .title("Late or missing")
                .datasource(PROMETHEUS)
                .with_target(prom_table(f"source_pipeline:dagwatch_pipeline_since_success_intervals:ratio{{{sel}}} > 1", "A"))
                .with_target(
                    prom_table(
                        f"source_pipeline:dagwatch_pipeline_last_success_age_seconds:max{{{sel}}}"
                        f" and on (source, pipeline) source_pipeline:dagwatch_pipeline_since_success_intervals:ratio{{{sel}}} > 1",
                        "B",
                    )
                )
            )
            .description(
                "Scheduled, unpaused pipelines whose newest success is older than one schedule interval: "
                "how many intervals (A) and how long (B)."
            )
            .override_by_name("Value #B", [DynamicConfigValue(id_val="unit", value="s")])
            .data_links(pipeline_links)
            .decimals(1)
            .height(9)
            .span(12)
        )
    )


def pipeline_detail() -> dashboard.Dashboard:
    sel = 'source="$source", pipeline="$pipeline"'
    return (
        base("dagwatch-pipeline", "Pipeline detail", "One pipeline: its runs, task durations, checks and drift.")
        .with_variable(label_variable("source", "label_values(dagwatch_source_up, source)", many=False))
        .with_variable(label_variable("pipeline", 'label_values(dagwatch_runs_total{source="$source"}, pipeline)', many=False))
        .with_row(dashboard.Row("Runs"))
        .with_panel(
            stat.Panel()
            .title("Since last success")
            .datasource(PROMETHEUS)
            .unit("s")
            .height(6)
            .span(6)
            .with_target(prom(f"time() - max(dagwatch_pipeline_last_success_timestamp_seconds{{{sel}}})"))
        )
        .with_panel(
            stat.Panel()
            .title("Expected interval")
            .datasource(PROMETHEUS)
            .unit("s")
            .height(6)
            .span(6)
            .with_target(prom(f"max(dagwatch_pipeline_expected_interval_seconds{{{sel}}})"))
            .no_value("not scheduled")
        )
        .with_panel(
            series(
                "Runs by state", prom(f"sum by (state) (increase(dagwatch_runs_total{{{sel}}}[$__rate_interval]))", "{{state}}"), bars=True
            ).height(6)
        )
        .with_panel(
            series(
                "Run duration vs baseline",
                prom(
                    f"histogram_quantile(0.5, sum by (le) (rate(dagwatch_run_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                    "p50",
                    "A",
                ),
                prom(
                    f"histogram_quantile(0.95, sum by (le) (rate(dagwatch_run_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                    "p95",
                    "B",
                ),
                prom(f"max by (quantile) (dagwatch_pipeline_duration_baseline_seconds{{{sel}}})", "baseline q{{quantile}}", "C"),
                unit="s",
            )
        )
        .with_panel(
            heatmap.Panel()
            .title("Task durations")
            .datasource(PROMETHEUS)
            .height(8)
            .span(12)
            .with_target(
                prom(f"sum by (le) (increase(dagwatch_task_duration_seconds_bucket{{{sel}}}[$__rate_interval]))", "{{le}}").format(
                    PromQueryFormat.HEATMAP
                )
            )
            .description("Finished task tries, all tasks of the pipeline (task ids are not on series).")
        )
        .with_panel(
            series(
                "Tasks by state",
                prom(f"sum by (state) (increase(dagwatch_tasks_total{{{sel}}}[$__rate_interval]))", "{{state}}"),
                bars=True,
            )
        )
        .with_panel(
            series(
                "Task duration p95 by state",
                prom(
                    f"histogram_quantile(0.95, sum by (state, le) (rate(dagwatch_task_duration_seconds_bucket{{{sel}}}[$__rate_interval])))",
                    "{{state}}",
                ),
                unit="s",
            )
        )
        .with_row(dashboard.Row("Alerts, checks and drift"))
        .with_panel(
            alerts_table(
                "Firing alerts of this pipeline",
                Alerts(pipeline="${pipeline}"),
                [
                    runbook_link("pipeline-failure", "source", "pipeline", "run_id", "task_id"),
                    runbook_link("retry-failed", "source", "pipeline", "run_id", "task_id"),
                    ORCHESTRATOR,
                    ALERT_PAGE,
                ],
                "From dagwatch's API. A runbook link opens its start page for that run and task; nothing runs until an operator confirms.",
            )
        )
        .with_panel(
            series(
                "Checks by kind and result (all pipelines)",
                prom("sum by (kind, result) (increase(dagwatch_checks_total[$__rate_interval]))", "{{kind}} {{result}}"),
                bars=True,
            ).description("Check verdicts carry no pipeline label; the drift alerts beside it are this pipeline's.")
        )
        .with_panel(
            alerts_table(
                "Drift alerts of this pipeline",
                Alerts(pipeline="${pipeline}", kind="drift_detected"),
                [runbook_link("drift-retrain", "source", "pipeline", "run_id", "task_id"), ORCHESTRATOR, ALERT_PAGE],
                "Firing drift alerts; drift-retrain verifies the new data, then triggers the configured training pipeline.",
            ).span(12)
        )
    )


def alerts_and_runbooks() -> dashboard.Dashboard:
    return (
        base("dagwatch-alerts", "Alerts and runbooks", "What is firing, whether people are told, and what the runbooks did.")
        .with_row(dashboard.Row("Alerts"))
        .with_panel(
            series("Firing by tier and kind", prom("max by (tier, kind) (dagwatch_alerts_firing) > 0", "{{tier}} {{kind}}"), span=24)
            .height(7)
            .description("Read from the store at scrape time: max() across dagwatch replicas, never sum().")
        )
        .with_panel(
            alerts_table(
                "Firing alerts",
                Alerts(),
                [
                    runbook_link("pipeline-failure", "source", "pipeline", "run_id", "task_id"),
                    runbook_link("retry-failed", "source", "pipeline", "run_id", "task_id"),
                    runbook_link("drift-retrain", "source", "pipeline", "run_id", "task_id"),
                    ORCHESTRATOR,
                    ALERT_PAGE,
                ],
                "Every firing alert from dagwatch's API. The start page says whether a runbook applies to the alert before anyone confirms.",
            )
        )
        .with_row(dashboard.Row("Notifications"))
        .with_panel(
            series(
                "Notifications by receiver and status",
                prom("sum by (receiver, status) (increase(dagwatch_notifications_total[$__rate_interval]))", "{{receiver}} {{status}}"),
                bars=True,
                span=8,
            )
        )
        .with_panel(
            series(
                "Notification latency p95 (alert change to receiver accepted)",
                prom(
                    "histogram_quantile(0.95, sum by (receiver, le) (rate(dagwatch_notification_latency_seconds_bucket[$__rate_interval])))",
                    "{{receiver}}",
                ),
                unit="s",
                span=8,
            )
        )
        .with_panel(
            series(
                "Outbox by receiver",
                prom("max by (receiver) (dagwatch_outbox_pending)", "{{receiver}} pending", "A"),
                prom("max by (receiver) (dagwatch_outbox_oldest_pending_age_seconds)", "{{receiver}} oldest age (s)", "B"),
                span=8,
            )
        )
        .with_row(dashboard.Row("Runbooks"))
        .with_panel(
            series(
                "Runbook executions by runbook and result",
                prom("sum by (runbook, result) (increase(dagwatch_runbook_executions_total[$__rate_interval]))", "{{runbook}} {{result}}"),
                bars=True,
                span=12,
            )
        )
        .with_panel(
            merged(
                table.Panel()
                .title("Runbook executions in the time range")
                .datasource(PROMETHEUS)
                .height(8)
                .span(12)
                .with_target(prom_table("sum by (runbook, result) (increase(dagwatch_runbook_executions_total[$__range]))"))
            )
        )
    )


DASHBOARDS = {"dagwatch-pipelines": pipelines_overview, "dagwatch-pipeline": pipeline_detail, "dagwatch-alerts": alerts_and_runbooks}


def render() -> dict[str, str]:
    """File name → JSON text, exactly as committed."""
    files = {}
    for uid, make in DASHBOARDS.items():
        built = make().build()
        for number, panel in enumerate(_panels(built), start=1):
            panel.id_val = number  # stable ids: viewPanel links and Grafana's own references use them
        files[f"{uid}.json"] = json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    return files


def _panels(built: object) -> list:
    found = []
    for panel in built.panels or []:  # type: ignore[attr-defined]
        found.append(panel)
        found.extend(getattr(panel, "panels", None) or [])
    return found


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
