#!/usr/bin/env bash
# Creates the Prefect venv the integration tests start a server (and run flows) from, outside
# dagwatch's venv: dagwatch must never depend on the prefect package, and this proves it.
#   tests/servers/prefect/install.sh
# Idempotent: a venv that already has the pinned version is left alone.
# DAGWATCH_PREFECT_CACHE overrides the cache folder (default: tests/servers/.cache).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${DAGWATCH_PREFECT_CACHE:-$HERE/../.cache}"
PYTHON="${PYTHON:-python3}"
VERSION="3.9.1"
VENV="$CACHE/prefect-venv"

if [ -x "$VENV/bin/prefect" ] && "$VENV/bin/python" - "$VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("prefect") == sys.argv[1] else 1)
PY
then
    echo "prefect==$VERSION already in $VENV"
    exit 0
fi
mkdir -p "$CACHE"
started=$SECONDS
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install --quiet --disable-pip-version-check "prefect==$VERSION"
echo "installed prefect==$VERSION in $VENV in $((SECONDS - started)) s"
