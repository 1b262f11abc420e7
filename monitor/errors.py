"""dagwatch's exceptions, one tree so callers can catch at the depth they need.

    DagwatchError
    ├── ConfigError            a config file or value is wrong (names file, key, reason)
    ├── PipelineDefinitionError a pipeline graph is invalid (cycle, unknown dependency)
    ├── PipelineNotFound       a pipeline reference does not resolve
    ├── TaskTimeout            a task attempt ran past its timeout
    ├── StoreError             the database cannot be opened or migrated
    ├── NotFound               an API object does not exist (404)
    ├── Conflict               the object is in a state that forbids the request (409)
    └── InvalidRequest         the request is well-formed but cannot be done as asked (422)

Foreign exceptions are translated where they enter (`raise ConfigError(...) from exc`).
"""

from __future__ import annotations


class DagwatchError(Exception):
    """Root of every error dagwatch raises on purpose."""


class ConfigError(DagwatchError):
    def __init__(self, file: str | None, key: str | None, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class PipelineDefinitionError(DagwatchError):
    pass


class PipelineNotFound(DagwatchError):
    pass


class TaskTimeout(DagwatchError):
    pass


class StoreError(DagwatchError):
    pass


class NotFound(DagwatchError):
    pass


class Conflict(DagwatchError):
    pass


class InvalidRequest(DagwatchError):
    pass
