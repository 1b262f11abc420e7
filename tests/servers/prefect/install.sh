#!/usr/bin/env bash
# Creates the Prefect venv the integration tests start a server (and run flows) from, outside
# dagwatch's venv: dagwatch must never depend on the prefect package, and this proves it.
#   tests/servers/prefect/install.sh
# Idempotent: a venv that already has the pinned versions is left alone.
# numpy is there for examples/prefect_flows/gated.py, which imports dagwatch's `checks` (put on
# PYTHONPATH by the test; checks also needs pydantic, httpx and PyYAML, which prefect brings).
# DAGWATCH_PREFECT_CACHE overrides the cache folder (default: tests/servers/.cache).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${DAGWATCH_PREFECT_CACHE:-$HERE/../.cache}"
PYTHON="${PYTHON:-python3}"
VERSION="3.9.1"
VENV="$CACHE/prefect-venv"
NUMPY="numpy==2.4.6"
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check)

has() {  # has PACKAGE VERSION: the venv holds exactly that version
    "$VENV/bin/python" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
PY
}

if [ -x "$VENV/bin/prefect" ] && has prefect "$VERSION"; then
    if has numpy "${NUMPY#numpy==}"; then
        echo "prefect==$VERSION and $NUMPY already in $VENV"
    else
        "${PIP[@]}" "$NUMPY"
        echo "added $NUMPY to $VENV"
    fi
    exit 0
fi
mkdir -p "$CACHE"
started=$SECONDS
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"${PIP[@]}" "prefect==$VERSION" "$NUMPY"
echo "installed prefect==$VERSION and $NUMPY in $VENV in $((SECONDS - started)) s"
