#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1 (a free port, or --port P), prints
# DAGWATCH_STORE_URL=postgresql+psycopg://..., and stops it (pg_ctl stop, then by pid) on
# Ctrl-C / SIGTERM. Installs nothing: needs Debian's postgresql package
# (`apt-get install -y postgresql`). The pytest fixtures use the same helper (server.py).
#   tests/servers/postgres/start.sh [--port P]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"
exec "$PYTHON" -m tests.servers.postgres.server "$@"
