"""Find a pipeline by `package.module:attribute` reference or by its name among configured ones."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Iterable

from monitor.errors import PipelineNotFound
from monitor.runner.dag import Pipeline


def load(ref: str) -> Pipeline:
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise PipelineNotFound(f"{ref!r} is not a pipeline reference; write `package.module:pipeline_variable`")
    _importable_from_cwd()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise PipelineNotFound(
            f"cannot import {module_name!r} for pipeline {ref!r}: {exc}; run from the folder that holds it, "
            "or put that folder on PYTHONPATH"
        ) from exc
    obj = module
    for part in attribute.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise PipelineNotFound(f"module {module_name!r} has no attribute {attribute!r}")
    if not isinstance(obj, Pipeline):
        raise PipelineNotFound(f"{ref!r} is a {type(obj).__name__}, not a dagwatch Pipeline")
    return obj


def _importable_from_cwd() -> None:
    """The working folder is importable, as with `python -m`: the installed `dagwatch` script
    starts its path at its own bin folder, so `dagwatch run mypipes:pipeline` next to
    mypipes.py failed. Added last, so a stray file there cannot shadow a library."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def find(name_or_ref: str, refs: Iterable[str]) -> Pipeline:
    """`name_or_ref` is a reference, or the name of a pipeline among the configured `refs`."""
    if ":" in name_or_ref:
        return load(name_or_ref)
    known = []
    for ref in refs:
        pipeline = load(ref)
        if pipeline.name == name_or_ref:
            return pipeline
        known.append(pipeline.name)
    raise PipelineNotFound(
        f"no configured pipeline is named {name_or_ref!r} (configured: {known or 'none'}); pass a reference like `package.module:pipeline`"
    )
