"""The `dagwatch` command."""

from __future__ import annotations

import enum
import gc
import json
import logging
import os
import signal
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Iterator, Optional

import typer
import yaml

from monitor.config import CONFIG_ENV, Settings, load_settings
from monitor.errors import DagwatchError
from monitor.model import Alert, AlertKind, AlertStatus, Tier

if TYPE_CHECKING:
    from monitor.remote import Remote

app = typer.Typer(
    help="Watch ML pipelines, alert by tier, and run the runbooks.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Work with dagwatch.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")
token_app = typer.Typer(help="Operators' API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
alerts_app = typer.Typer(
    help="Alerts (list, ack, silence: through a running server, audited under its token) and receivers (send-test).", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")
runbook_app = typer.Typer(help="Runbooks: list them, run one for an alert.", no_args_is_help=True)
app.add_typer(runbook_app, name="runbook")
check_app = typer.Typer(help="Run a validation check: exit 0 pass, 1 fail, 2 bad input.", no_args_is_help=True)
app.add_typer(check_app, name="check")
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", envvar=CONFIG_ENV, help="dagwatch.yaml (default: built-in demo setup).")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"dagwatch {version('dagwatch')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Watch ML pipelines, alert by tier, and run the runbooks."""


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(config: Path | None, *, env: bool = True) -> Settings:
    try:
        return load_settings(config, env=env)
    except DagwatchError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers honest


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class JsonLines(logging.Formatter):
    """One JSON object a line, for log collectors: time (UTC, ISO 8601), level, logger, message,
    and exc_info as one string. Only the rendered message is written, never a record's args or
    extras, so what a module keeps out of its message (a token, a URL's query) stays out."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _configure_logging(fmt: LogFormat = LogFormat.TEXT, level: LogLevel = LogLevel.INFO) -> None:
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(JsonLines() if fmt is LogFormat.JSON else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = max(logging.WARNING, root.level)  # their INFO is one line per job run or request
    for noisy in ("apscheduler.executors.default", "apscheduler.scheduler", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level is LogLevel.DEBUG else quiet)


@app.command()
def up(
    config: ConfigOption = None,
    host: Annotated[Optional[str], typer.Option(help="Override server.host.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Override server.port.")] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            case_sensitive=False,
            envvar="DAGWATCH_LOG_FORMAT",
            help="text, or json: one object a line (time, level, logger, message, exc_info).",
        ),
    ] = LogFormat.TEXT,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, envvar="DAGWATCH_LOG_LEVEL", help="Least level written.")
    ] = LogLevel.INFO,
) -> None:
    """Start the web server, the collectors and the embedded runner's schedules."""
    import uvicorn

    from monitor.api.app import create_app
    from monitor.api.auth import Access
    from monitor.service import Service

    settings = _settings(config)
    if host or port:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v})}
        )
    _configure_logging(log_format, log_level)
    say = logging.getLogger("monitor.cli").info if log_format is LogFormat.JSON else typer.echo
    try:
        service = Service(settings)
        service.hold_store()
    except DagwatchError as exc:
        _fail(str(exc))
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; ending with exit code 0 then
    # is what service managers expect from a clean stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # The ~100k objects of the imports (SQLAlchemy, pydantic, alembic) never die: keep them out
    # of every garbage collection, which otherwise costs the runner 5-15 µs per task.
    gc.freeze()
    say(
        f"dagwatch: serving on http://{settings.server.host}:{settings.server.port} "
        f"({len(service.pipelines)} scheduled pipeline(s), store {settings.store_url.split('://')[0]})"
    )
    if not settings.sources:
        say(
            "dagwatch: no sources configured: watching only what is pushed to POST /api/v1/events "
            "(`demo: true` adds the built-in demo pipeline)"
        )
    if settings.server.read_auth:
        say("dagwatch: reads need a viewer token or page session (server.read_auth); every change needs a token")
    else:
        say(
            "dagwatch: reads (GET, the pages) are open to anyone who can reach this address (server.read_auth: true "
            "closes them); every change needs a token (`dagwatch token create`)"
        )
    if settings.server.trusted_proxy is not None:
        proxy = settings.server.trusted_proxy
        say(f"dagwatch: believing the {proxy.header} header from {', '.join(map(str, proxy.from_))} only (server.trusted_proxy)")
    app = create_app(
        service.store,
        service.policy,
        lifecycle=service,
        slack_signing_secrets=service.slack_signing_secrets,
        sources=service.sources,
        runbook_engine=service.runbooks,
        notifiers=service.notifiers,
        max_body_bytes=settings.server.max_body_bytes,
        access=Access.from_settings(settings),
    )
    # proxy_headers off: the peer address must be the real one, as the trusted proxy check needs
    # log_config None: uvicorn's own loggers go through the handler above, in the chosen format
    uvicorn.run(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_level="debug" if log_level is LogLevel.DEBUG else "warning",
        log_config=None,
        proxy_headers=False,
    )


def _parse_params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--param {pair!r}: write key=value")
        params[key] = yaml.safe_load(value) if value else ""
    return params


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="A configured pipeline's name, or `package.module:pipeline`.")],
    task: Annotated[Optional[str], typer.Option("--task", "-t", help="Run only this task, upstream results from the last run.")] = None,
    param: Annotated[list[str], typer.Option("--param", "-p", help="Override a parameter: key=value (repeatable).")] = [],  # noqa: B006
    config: ConfigOption = None,
) -> None:
    """Run a pipeline once on the embedded runner, streaming task logs. Exit 1 if it fails."""
    from monitor.alerting.ingest import AlertPolicy
    from monitor.config import EmbeddedSourceSettings
    from monitor.runner import RunError
    from monitor.runner.loader import find, load
    from monitor.service import build_runner
    from monitor.store import open_store
    from monitor.store.recorder import StoreRecorder
    from monitor.tracking.check_results import store_reporter

    settings = _settings(config)
    params = _parse_params(param)
    embedded = [s for s in settings.sources if isinstance(s, EmbeddedSourceSettings)]
    refs = [p.ref for s in embedded for p in s.pipelines]
    try:
        target = find(pipeline, refs)
        # The source that configures it (its executors, its Dask cluster), else the first embedded one.
        entry = next(((s, p) for s in embedded for p in s.pipelines if p.ref == pipeline or load(p.ref) is target), None)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(settings.store_url)
    except DagwatchError as exc:
        _fail(str(exc))
    source = entry[0] if entry else embedded[0] if embedded else EmbeddedSourceSettings(kind="embedded", name="embedded")
    configured = entry[1].params if entry else {}
    recorder = StoreRecorder(store)
    runner = build_runner(
        source,
        [(target, entry[1])] if entry else [],
        data_dir=settings.data_dir,
        recorder=recorder,
        check_reporter=store_reporter(store, AlertPolicy.from_settings(settings), source.name),
    )
    try:
        result = runner.run(target, {**configured, **params}, only_task=task, tee=sys.__stdout__)
    except RunError as exc:
        _fail(str(exc))
    finally:
        runner.close()
        recorder.close()
        store.close()
    typer.echo(f"run {result.run_id} of {target.name}: {result.state.value}")
    for (name, index), snap in result.tasks.items():
        label = name if index < 0 else f"{name}[{index}]"
        line = f"  {label:<24} {snap.state.value:<16} try {snap.try_number}"
        if snap.error:
            line += f"  {snap.error[:160]}"
        typer.echo(line)
    raise typer.Exit(0 if result.state.value == "success" else 1)


@config_app.command("validate")
def config_validate(
    file: Annotated[Path, typer.Argument(help="The config file to check.")],
    no_env: Annotated[
        bool,
        typer.Option(
            "--no-env",
            help=(
                "Check the file alone, where its secrets are not: each ${VAR} stands in for a value its key accepts, DAGWATCH_* "
                "variables are ignored, and the variables it needs that are unset here are listed."
            ),
        ),
    ] = False,
) -> None:
    """Check a config file strictly; exit 2 with the file, key and reason of every problem (every unset ${VAR} at once)."""
    settings = _settings(file, env=not no_env)
    from monitor.config import env_references
    from monitor.runner.loader import load

    for source in settings.sources:
        for entry in getattr(source, "pipelines", []):
            try:
                load(entry.ref)
            except DagwatchError as exc:
                _fail(f"{file}: sources[{source.name}].pipelines ref {entry.ref!r}: {exc}")
    runbooks = _runbooks(settings)
    missing = [p.runbook for p in settings.runbooks.policies if p.runbook not in runbooks]
    if missing:
        _fail(f"{file}: runbooks.policies: no runbook named {missing[0]!r}; known: {', '.join(sorted(runbooks))}")
    templates = _templates(settings)
    suites = _suites(settings)
    if no_env and (unset := [(name, key) for name, key in env_references(file) if name not in os.environ]):
        typer.echo(f"{file}: needs {len({n for n, _ in unset})} variable(s) unset here: " + ", ".join(f"{n} ({k})" for n, k in unset))
    typer.echo(
        f"{file}: ok ({len(settings.sources)} source(s), {len(settings.receivers)} receiver(s), {len(runbooks)} runbook(s), "
        f"{len(templates.replaced)} template(s) replaced" + (f", {len(suites)} check suite(s)" if settings.checks is not None else "") + ")"
    )


def _suites(settings: Settings) -> list[str]:
    """The suites of `checks.folder`, each read as the service reads them at start-up."""
    from monitor.remediation import suites

    try:
        return suites.validate(settings, build=True)
    except DagwatchError as exc:
        _fail(str(exc))
        raise


def _templates(settings: Settings):
    """The notification templates, each compiled and rendered against sample notifications."""
    from monitor.alerting.notifiers.templating import load

    try:
        return load(settings.templates)
    except DagwatchError as exc:
        _fail(str(exc))
        raise


def _runbooks(settings: Settings) -> dict:
    from monitor.remediation.runbook import failure_patterns, load_all

    try:
        failure_patterns(settings.runbooks.patterns)
        return load_all(settings.runbooks.folder)
    except DagwatchError as exc:
        _fail(str(exc))
        raise


@runbook_app.command("run")
def runbook_run(
    name: Annotated[str, typer.Argument(help="The runbook (see `dagwatch runbook list`).")],
    alert: Annotated[int, typer.Option("--alert", help="The alert id it runs for.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what it would do; change nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run again although it already ran for this alert.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a runbook for an alert here and now, printing each step. Exit 1 if it failed."""
    from monitor.service import Service
    from monitor.store import audit

    settings = _settings(config)
    try:
        service = Service(settings)
    except DagwatchError as exc:
        _fail(str(exc))
    try:
        from monitor.remediation.engine import StartRequest

        started = service.runbooks.run_now(StartRequest(name, alert, started_by=_cli_user(), dry_run=dry_run, force=force))
        with service.store.session() as db:
            _audit(
                db,
                settings,
                "run_runbook",
                f"{name} for alert #{alert}",
                detail=audit.execution_detail(started.execution.id, joined=started.joined, dry_run=dry_run),
            )
    except DagwatchError as exc:
        _fail(str(exc))
    finally:
        service.stop()
    execution = started.execution
    if as_json:
        typer.echo(execution.model_dump_json(indent=2))
    else:
        joined = " (already ran: showing that execution; --force to run again)" if started.joined else ""
        typer.echo(f"runbook {execution.runbook} for alert {alert}: {execution.status.value}{joined}")
        for step in execution.steps:
            typer.echo(f"  {step.name:<12} {step.status.value:<11} {step.summary}")
        if execution.result:
            typer.echo(f"result: {execution.result}")
    raise typer.Exit(0 if execution.status.value == "succeeded" else 1)


@runbook_app.command("list")
def runbook_list(config: ConfigOption = None) -> None:
    """The runbooks dagwatch knows (shipped and from runbooks.folder), with their steps."""
    for runbook in sorted(_runbooks(_settings(config)).values(), key=lambda r: r.name):
        changes = " (changes things)" if runbook.mutating else ""
        typer.echo(f"{runbook.name}{changes}: {runbook.description.strip()}")
        typer.echo(f"  applies to: {runbook.match or 'any alert'}")
        for step in runbook.steps:
            when = f"  when {step.when}" if step.when else ""
            typer.echo(f"  - {step.name}: {step.action}{' (mutating)' if step.mutating else ''}{when}")


def _check(run: Callable[[], object], as_json: bool) -> None:
    """Run a check and exit with its verdict; bad input (missing file, bad suite) is exit 2."""
    from checks.cli import exit_code, render_text
    from checks.errors import CheckInputError

    try:
        result = run()
    except CheckInputError as exc:
        _fail(str(exc))
    typer.echo(result.model_dump_json(indent=2) if as_json else render_text(result))
    raise typer.Exit(exit_code(result))


@check_app.command("quality")
def check_quality(
    suite: Annotated[Path, typer.Argument(help="Great Expectations suite (JSON).")],
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
    as_json: JsonOption = False,
) -> None:
    """Validate a data file against a suite."""
    from checks.cli import run_quality

    _check(lambda: run_quality(suite, data), as_json)


@check_app.command("convergence")
def check_convergence(
    metrics: Annotated[str, typer.Argument(help="JSONL, Lightning metrics.csv, trainer_state.json, TensorBoard dir or mlflow+http://…")],
    rules: Annotated[Optional[Path], typer.Option("--rules", help="Rules file (YAML/JSON).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Judge a training run's metrics (NaN/inf, divergence, plateau, gradient norm)."""
    from checks.cli import run_convergence

    _check(lambda: run_convergence(metrics, rules), as_json)


@check_app.command("drift")
def check_drift(
    reference: Annotated[Path, typer.Argument(help="Reference data (CSV or Parquet).")],
    current: Annotated[Path, typer.Argument(help="Current data (CSV or Parquet).")],
    psi: Annotated[float, typer.Option(help="PSI threshold per feature.")] = 0.2,
    ks: Annotated[float, typer.Option(help="KS statistic threshold per feature.")] = 0.1,
    as_json: JsonOption = False,
) -> None:
    """Per-feature drift (PSI over reference deciles, KS statistic)."""
    from checks.cli import run_drift

    _check(lambda: run_drift(reference, current, psi_threshold=psi, ks_threshold=ks), as_json)


def _open_store(settings: Settings):
    from monitor.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return open_store(settings.store_url)
    except DagwatchError as exc:
        _fail(str(exc))


@contextmanager
def _local(settings: Settings) -> Iterator:
    """One transaction on the configured store, for a command that acts here rather than through a
    server: a DagwatchError is the command's one-line failure, and the store is closed either way."""
    store = _open_store(settings)
    try:
        with store.session() as session:
            yield session
    except DagwatchError as exc:
        _fail(str(exc))
    finally:
        store.close()


def _cli_user() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


def _audit(session, settings: Settings, action: str, target: str, *, detail: str = "") -> None:  # noqa: ANN001 - a Session
    """Audit a command's change in its transaction: the OS user, on this host."""
    import socket

    from monitor.model import utcnow
    from monitor.store import audit

    entry = audit.Entry(actor=_cli_user(), via=audit.Via.CLI, action=action, target=target, address=socket.gethostname(), detail=detail)
    audit.record(session, entry, now=utcnow(), keep=settings.audit.keep)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", "-n", help="Who or what uses it (unique).")],
    role: Annotated[str, typer.Option("--role", "-r", help="ingest (post events only) | viewer | operator | admin")] = "operator",
    config: ConfigOption = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from monitor.model import utcnow
    from monitor.store import tokens

    settings = _settings(config)
    with _local(settings) as session:
        token = tokens.create(session, name=name, role=role, now=utcnow())
        _audit(session, settings, "token_create", name, detail=f"role {role}")
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Option("--name", "-n")], config: ConfigOption = None) -> None:
    """Revoke a token by name."""
    from monitor.model import utcnow
    from monitor.store import tokens

    settings = _settings(config)
    with _local(settings) as session:
        found = tokens.revoke(session, name=name, now=utcnow())
        if found:
            _audit(session, settings, "token_revoke", name)
    if not found:
        _fail(f"no active token named {name!r}")
    typer.echo(f"revoked {name}")


UrlOption = Annotated[
    Optional[str],
    typer.Option(
        "--url",
        envvar="DAGWATCH_URL",
        show_default=False,
        help="A running dagwatch to act through, e.g. https://dagwatch.example.com (default: the config's server, if it answers).",
    ),
]
TokenOption = Annotated[
    Optional[str],
    typer.Option(
        "--token",
        envvar="DAGWATCH_TOKEN",
        show_default=False,
        help="API token for the server (operator to ack or silence; viewer to list when server.read_auth is on). Prefer DAGWATCH_TOKEN: "
        "an option is visible to other users in the process list.",
    ),
]
HOW = (
    "Through the server's HTTP API when --url/DAGWATCH_URL is given or the configured server answers (audited under the token's "
    "name); otherwise directly in the store named by the config, as this OS user (cli:USER)."
)


def _remote(url: str | None, token: str | None, config: Path | None) -> Remote | None:
    """The server to act through: --url (never silently replaced), else the configured one if it
    answers; None when no server answers, and the command acts on the store itself."""
    from monitor.remote import Remote

    if url:
        return Remote(url, token)
    remote = Remote(_settings(config).server.base_url, token)
    if remote.answers():
        return remote
    remote.__exit__()
    typer.echo(f"dagwatch: no server answers at {remote.url}: acting on the store directly as {_cli_user()}", err=True)
    return None


def _through(remote: Remote, call: Callable[[], object]) -> object:
    """Run a call on the server; its failure is one line and exit 2."""
    from monitor.remote import RemoteError

    with remote:
        try:
            return call()
        except RemoteError as exc:
            _fail(str(exc))
            raise


@alerts_app.command("list", epilog=HOW)
def alerts_list(
    status: Annotated[Optional[AlertStatus], typer.Option(case_sensitive=False, help="firing or resolved.")] = None,
    tier: Annotated[Optional[Tier], typer.Option(case_sensitive=False)] = None,
    pipeline: Annotated[Optional[str], typer.Option(help="Exact pipeline name.")] = None,
    source: Annotated[Optional[str], typer.Option(help="Exact source name.")] = None,
    kind: Annotated[Optional[AlertKind], typer.Option(case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Alerts, newest first: a table, or --json (the API's alert objects)."""
    filters = {"status": status, "tier": tier, "pipeline": pipeline, "source": source, "kind": kind, "limit": limit}
    remote = _remote(url, token, config)
    if remote is not None:
        found = _through(remote, lambda: remote.list_alerts(**filters))
    else:
        from monitor.store import alerts as alert_store

        settings = _settings(config)
        with _local(settings) as session:
            found = alert_store.list_alerts(session, **filters, base_url=settings.server.base_url)
    if as_json:
        typer.echo(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
    else:
        typer.echo(alert_table(found) if found else "no alerts match")


def alert_table(alerts: list[Alert]) -> str:
    """The columns an on-call reads first; every cell made printable (summaries are the pipelines' words)."""
    from monitor.remote import printable

    def state(a: Alert) -> str:
        if a.status is not AlertStatus.FIRING:
            return a.status.value
        return "muted" if a.muted_by else "acked" if a.acked_at else "firing"

    rows = [("ID", "TIER", "STATE", "KIND", "SOURCE", "PIPELINE", "STARTED (UTC)", "ACKED BY", "SUMMARY")]
    rows += [
        (
            str(a.id),
            a.tier.value,
            state(a),
            a.kind.value,
            printable(a.source, 24),
            printable(a.pipeline or "-", 32),
            a.started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            printable(a.acked_by or "-", 24),
            printable(a.summary, 80),
        )
        for a in alerts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


@alerts_app.command("ack", epilog=HOW)
def alerts_ack(
    alert: Annotated[int, typer.Argument(help="The alert's id.")],
    comment: Annotated[str, typer.Option("--comment", help="Why, or who is on it.")] = "",
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Acknowledge a firing alert; the receivers that know acknowledgement are told."""
    remote = _remote(url, token, config)
    if remote is not None:
        acked = _through(remote, lambda: remote.ack(alert, comment))
        typer.echo(acked.model_dump_json(indent=2) if as_json else f"alert {alert} acknowledged by {acked.acked_by}")
        return
    from monitor.alerting import verbs
    from monitor.model import utcnow
    from monitor.store import alerts as alert_store

    settings = _settings(config)
    with _local(settings) as session:
        row = verbs.ack(session, alert_id=alert, who=_cli_user(), now=utcnow(), comment=comment)
        _audit(session, settings, "ack", f"alert #{alert}")
        acked = alert_store.to_models(session, [row], base_url=settings.server.base_url)[0]
    typer.echo(acked.model_dump_json(indent=2) if as_json else f"alert {alert} acknowledged by {acked.acked_by}")


@alerts_app.command("silence", epilog=HOW)
def alerts_silence(
    alert: Annotated[Optional[int], typer.Argument(help="An alert's id: its kind in its source and pipeline is silenced.")] = None,
    match: Annotated[
        list[str],
        typer.Option(
            "--match",
            "-m",
            help=("Instead of an alert: key=matcher, repeatable, as in routes (tier=P3, pipeline=~nightly_.*, source=!prod)."),
        ),
    ] = [],  # noqa: B006
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 30m, 4h, 1d (at most 90d).")] = "1h",
    comment: Annotated[str, typer.Option("--comment", help="Why.")] = "",
    url: UrlOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Silence what an alert is about, or what the matchers match, for a while."""
    from monitor.alerting import verbs
    from monitor.config import parse_duration

    if (alert is None) == (not match):
        _fail("give an alert id or --match key=value matchers, not both")
    matchers = _matchers(match)
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        _fail(f"--for: {exc}")
    remote = _remote(url, token, config)
    if remote is not None:

        def create() -> dict:
            found = remote.get_alert(alert) if alert is not None else None
            chosen = verbs.alert_matchers(found.source, found.kind, found.pipeline) if found else matchers
            return remote.silence(chosen, duration, comment or (f"on alert #{alert}" if alert is not None else ""))

        made = _through(remote, create)
        typer.echo(
            json.dumps(made, indent=2)
            if as_json
            else f"silence {made['id']} for {length} by {made.get('created_by')}: {made.get('matchers')}"
        )
        return
    from monitor.model import utcnow

    settings = _settings(config)
    with _local(settings) as session:
        now = utcnow()
        if alert is not None:
            row = verbs.silence_alert(session, alert_id=alert, who=_cli_user(), now=now, duration=length, comment=comment)
        else:
            row = verbs.silence(session, matchers=matchers, starts_at=now, ends_at=now + length, who=_cli_user(), now=now, comment=comment)
        session.flush()
        _audit(
            session,
            settings,
            "silence",
            f"alert #{alert}" if alert is not None else f"silence #{row.id}",
            detail=f"silence #{row.id} for {length}" if alert is not None else f"{matchers} for {length}",
        )
        made = {
            "id": row.id,
            "matchers": row.matchers,
            "starts_at": row.starts_at.isoformat(),
            "ends_at": row.ends_at.isoformat(),
            "created_by": row.created_by,
            "comment": row.comment,
        }
    typer.echo(
        json.dumps(made, indent=2)
        if as_json
        else f"silence {made['id']} for {length} on " + (f"alert {alert}" if alert is not None else str(matchers))
    )


def _matchers(pairs: list[str]) -> dict[str, str]:
    """--match key=value pairs, checked as the API checks a silence's matchers."""
    from pydantic import ValidationError

    from monitor.config import RouteSettings

    matchers = dict(pair.partition("=")[::2] for pair in pairs)
    if any(not key for key in matchers) or any("=" not in pair for pair in pairs):
        _fail("--match: write key=matcher, e.g. pipeline=nightly or tier=~P[12]")
    try:
        return RouteSettings(match=matchers).match
    except ValidationError as exc:
        _fail(f"--match: {exc.errors()[0]['msg'].removeprefix('Value error, ')}")
        raise


@alerts_app.command("send-test")
def alerts_send_test(
    receiver: Annotated[Optional[str], typer.Option("--receiver", help="Receiver name (default: every receiver).")] = None,
    config: ConfigOption = None,
) -> None:
    """Send a test notification through a receiver now; exit 1 if delivery fails."""
    from monitor.alerting.notifiers import build
    from monitor.alerting.notifiers.base import DeliveryError
    from monitor.alerting.test_alert import test_notification

    settings = _settings(config)
    try:
        notifiers = build(settings.receivers, templates=settings.templates)
    except DagwatchError as exc:  # a template in `templates.folder` is wrong
        _fail(str(exc))
    chosen = [receiver] if receiver else list(notifiers)
    unknown = [r for r in chosen if r not in notifiers]
    if unknown:
        _fail(f"unknown receiver {unknown[0]!r}; configured: {sorted(notifiers)}")
    failed = False
    for name in chosen:
        try:
            notifiers[name].notify(test_notification(name, settings.server.base_url))
            typer.echo(f"{name}: sent")
        except DeliveryError as exc:
            failed = True
            typer.echo(f"{name}: failed: {exc}", err=True)
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    app()
