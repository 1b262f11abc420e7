"""Module-level task functions for the process executor tests (a child process imports them)."""

import os
import time


def cpu_square(ctx, source):
    print(f"pid {os.getpid()} squaring {source}")
    return {"value": source * source, "pid": os.getpid()}


def hang(ctx):
    time.sleep(120)


def boom(ctx):
    raise ValueError("process task exploded")


def allocate_then_fail(ctx, mib: int = 50):
    """Touches `mib` MiB (bytes multiplication writes every page, so they are resident), then fails."""
    block = b"x" * (mib * 2**20)
    raise RuntimeError(f"over budget after {len(block) // 2**20} MiB")
