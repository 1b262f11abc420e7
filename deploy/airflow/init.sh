#!/bin/bash
# The stack's one-shot Airflow job: writes SimpleAuthManager's passwords file (admin and the
# `monitor` viewer dagwatch polls with; Airflow would otherwise invent passwords) and migrates
# the metadata database. The other Airflow services start once it has succeeded.
set -euo pipefail
python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
with open(path, "w") as f:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"], "monitor": os.environ["AIRFLOW_MONITOR_PASSWORD"]}, f)
os.chmod(path, 0o600)
PY
airflow db migrate
