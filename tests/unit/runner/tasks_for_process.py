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
