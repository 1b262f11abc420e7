"""`nvidia-smi --query-gpu=… --format=csv,noheader,nounits` on this host: the call, bounded by a
timeout, and a pure parser for its output.

The parser knows what real drivers print: one line per GPU, values separated by ", ", and a
bracketed word (`[N/A]`, `[Not Supported]` on older drivers, `[Unknown Error]`) where a value is
not available — that becomes None, never a crash or a zero.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "utilization.gpu",
    "utilization.memory",
    "memory.used",
    "memory.total",
    "temperature.gpu",
    "power.draw",
)
_TEXT_FIELDS = frozenset({"name", "uuid", "pci.bus_id", "driver_version", "serial", "pstate", "vbios_version", "gpu_name", "gpu_uuid"})


def parse_query_gpu(text: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """One dict per GPU line: numbers as int/float, text fields as str, unavailable values None.
    A line with another number of values than `fields` raises ValueError (a changed format)."""
    gpus: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(fields):
            raise ValueError(f"nvidia-smi printed {len(cells)} values for {len(fields)} fields ({', '.join(fields)}): {line.strip()!r}")
        gpus.append({field: _value(field, cell) for field, cell in zip(fields, cells)})
    return gpus


def _value(field: str, cell: str) -> Any:
    if cell in ("", "N/A") or (cell.startswith("[") and cell.endswith("]")):
        return None
    if field in _TEXT_FIELDS:
        return cell
    for number in (int, float):
        try:
            return number(cell)
        except ValueError:
            continue
    return cell


def query(binary: str = "nvidia-smi", *, timeout: float = 5.0, fields: Sequence[str] = QUERY_FIELDS) -> dict[str, Any]:
    """What the GPUs of this host show now; `available: false` with the reason when nvidia-smi is
    not installed, does not answer within `timeout`, fails, or prints something else."""
    found = shutil.which(binary)
    if found is None:
        return {"available": False, "reason": f"{binary} is not installed on this host"}
    argv = [found, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"{binary} did not answer within {timeout:g}s"}
    except OSError as exc:
        return {"available": False, "reason": f"{binary} could not be started: {exc}"}
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return {"available": False, "reason": f"{binary} exited {done.returncode}" + (f": {said[-1]}" if said else "")}
    try:
        gpus = parse_query_gpu(done.stdout, fields)
    except ValueError as exc:
        return {"available": False, "reason": str(exc)}
    return {"available": True, "host": socket.gethostname(), "gpus": gpus}
