#!/usr/bin/env bash
# Creates bench/.prefect-venv with Prefect pinned, for bench/runner_overhead.py.
# Idempotent: does nothing if the venv already has the right version.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${PREFECT_BENCH_VENV:-$HERE/.prefect-venv}"
VERSION="${PREFECT_BENCH_VERSION:-3.9.1}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("prefect") == sys.argv[1] else 1)
PY
then
    echo "prefect $VERSION already in $VENV"
    exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "prefect==$VERSION"
echo "installed prefect $VERSION in $VENV"
