#!/usr/bin/env bash
# Creates the Airflow venvs the integration tests start servers from, outside dagwatch's venv
# (Airflow pins SQLAlchemy and friends that dagwatch must not inherit).
#   tests/servers/airflow/install.sh [3|2|all]      (default: all)
# Idempotent: a venv that already has the pinned version is left alone.
# DAGWATCH_AIRFLOW_CACHE overrides the cache folder (default: tests/servers/.cache).
set -euo pipefail
export AIRFLOW_HOME="${TMPDIR:-/tmp}/dagwatch-airflow-install-check"
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${DAGWATCH_AIRFLOW_CACHE:-$HERE/../.cache}"
PYTHON="${PYTHON:-python3}"
WHICH="${1:-all}"

install_one() {  # venv-name  pip-spec  version-prefix
    local venv="$CACHE/$1" spec="$2" prefix="$3"
    if [ -x "$venv/bin/airflow" ] && "$venv/bin/python" - "$prefix" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("apache-airflow").startswith(sys.argv[1]) else 1)
PY
    then
        echo "$spec already in $venv"
        return 0
    fi
    local started=$SECONDS
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    # (grep drops pip's noise about find-links folders that do not exist on this machine)
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$venv/bin/airflow" version >/dev/null
    echo "installed $spec in $venv in $((SECONDS - started)) s"
}

mkdir -p "$CACHE"
case "$WHICH" in
    3) install_one airflow3-venv "apache-airflow==3.3.2" "3.3.2" ;;
    2) install_one airflow2-venv "apache-airflow==2.11.*" "2.11." ;;
    all)
        install_one airflow3-venv "apache-airflow==3.3.2" "3.3.2"
        install_one airflow2-venv "apache-airflow==2.11.*" "2.11."
        ;;
    *) echo "usage: $0 [3|2|all]" >&2; exit 2 ;;
esac
