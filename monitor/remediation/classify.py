"""Is a task failure worth retrying? A pure classifier of error texts: transient, persistent or
unknown, with the rule that decided and the line it matched.

How a text is read. Logs and tracebacks mention more than the error that ended the task: a retry
wrapper names the timeouts it swallowed, a chained traceback shows the cause before the
exception actually raised, frames quote source lines (`requests.get(url, timeout=5)`). So the
text is read from the end: the **last line with evidence** decides (the exception raised last,
or the orchestrator's final word after it), and traceback frames and the source lines under
them are never evidence. Within that line the patterns are tried in order and the first match
wins: configured patterns before the shipped ones (so config can override them), the two CUDA
overrides first among the shipped, then persistent exception types (a line that *is* a
`KeyError` stays persistent even if its message quotes a timeout), then transient evidence.

Decisions worth knowing:

- **Timeouts of the task itself** (Airflow's `AirflowTaskTimeout`, the embedded runner's
  `TaskTimeout`) are *transient*: most are a slow dependency or a busy node, one retry is cheap,
  and a task that times out on every run is caught by the history rule, which turns it persistent.
- **OOM-kill by the OS or the container runtime** (exit code 137, SIGKILL, `OOMKilled`) is
  *transient* (memory pressure from neighbours, a node's limit), again with the history rule as
  the stop. **CUDA out of memory** is *persistent*: the same model with the same batch size on
  the same GPU type fails the same way; it is worth retrying only after the batch size changes,
  which is a decision for a person or a runbook parameter, not for a blind retry.
- `CUDA error: an illegal memory access` / `device-side assert` are *persistent* (a bug or bad
  indices); an NCCL watchdog timeout is *transient* (a slow or lost peer).
- Permission errors (401/403, `AccessDenied`) and missing inputs (`FileNotFoundError`,
  `NoSuchKey`) are *persistent*: a retry reads the same policy and the same empty path.

Patterns are plain `re` expressions without nested quantifiers (checked for configured ones),
and each line is cut to `MAX_LINE` characters before matching, so a hostile log line cannot make
matching slow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

Category = Literal["transient", "persistent", "unknown"]

MAX_LINE = 2000
MAX_LINES = 2000
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def _compile(regex: str, flags: str) -> re.Pattern[str]:
    value = 0
    for letter in flags:
        value |= _FLAGS[letter]
    return re.compile(regex, value)


def _sre_parse(regex: str):  # type: ignore[no-untyped-def]
    import re._parser as parser  # the stdlib's own parser (3.11+), to inspect a pattern's structure

    return parser.parse(regex)


def _nested_repeat(items, *, inside: bool) -> bool:  # type: ignore[no-untyped-def]
    """True when an unbounded repeat sits inside another repeat: the shape of catastrophic backtracking."""
    import re._constants as c

    for op, arg in items:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, body = arg
            unbounded = high == c.MAXREPEAT
            if (inside and unbounded) or _nested_repeat(body, inside=inside or unbounded):
                return True
        elif op is c.SUBPATTERN and _nested_repeat(arg[-1], inside=inside):
            return True
        elif op is c.BRANCH and any(_nested_repeat(branch, inside=inside) for branch in arg[1]):
            return True
    return False


class Pattern(BaseModel):
    """One rule: when `regex` matches the deciding line, the failure is `category`.
    `flags` are letters of `i` (ignore case), `m`, `s`. Config adds these under `runbooks.patterns`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    category: Literal["transient", "persistent"]
    regex: str = Field(min_length=1, max_length=2000)
    flags: str = Field("", pattern=r"^[ims]{0,3}$")

    @field_validator("regex")
    @classmethod
    def _safe_regex(cls, value: str) -> str:
        try:
            parsed = _sre_parse(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        if _nested_repeat(parsed, inside=False):
            raise ValueError("nested quantifiers such as (a+)+ can take exponential time; write the pattern without them")
        return value

    def compiled(self) -> re.Pattern[str]:
        return _compile(self.regex, self.flags)


@dataclass(frozen=True)
class Classification:
    category: Category
    rule: str  # the name of the pattern that decided, "repeated" (history) or "none"
    matched: str  # the deciding line (clipped); for "unknown", the last meaningful line
    reason: str  # one sentence for the runbook page and Slack
    history_matches: int = 0  # earlier failed runs that ended with the same (normalized) error


def _p(name: str, category: Literal["transient", "persistent"], regex: str, flags: str = "i") -> Pattern:
    return Pattern(name=name, category=category, regex=regex, flags=flags)


#: The shipped rules, in the order they are tried on the deciding line (first match wins).
SHIPPED: tuple[Pattern, ...] = (
    # Overrides: CUDA wording that the generic rules below would get wrong.
    _p("cuda_fault", "persistent", r"CUDA error: (?:an illegal memory access|device-side assert|misaligned address)"),
    _p("cuda_oom", "persistent", r"CUDA out of memory|OutOfMemoryError: CUDA"),
    # Persistent: the code, the data or the permissions are wrong; a retry does the same thing.
    _p("assertion", "persistent", r"\bAssertionError\b"),
    _p(
        "code_error",
        "persistent",
        r"\b(?:ImportError|ModuleNotFoundError|SyntaxError|IndentationError|NameError|AttributeError|TypeError"
        r"|NotImplementedError|ZeroDivisionError|UnboundLocalError|RecursionError)\b",
        "",
    ),
    _p(
        "nan_loss",
        "persistent",
        r"\b(?:loss|metric)\b[^\n]{0,80}?\b(?:nan|inf|infinity)\b|\bnan or inf\b|\bis not finite\b|non-finite (?:loss|value)",
    ),
    _p("convergence", "persistent", r"\bconvergence check '[^'\n]{0,200}' failed|\bdid not converge\b|\bdiverged\b"),
    _p(
        "data_quality",
        "persistent",
        r"\bquality check '[^'\n]{0,200}' failed|\bexpectations? (?:failed|not met)|\bExpectation[^\n]{0,100}?\bfailed\b",
    ),
    _p(
        "missing_column",
        "persistent",
        r"\bKeyError\b|\bnot in index\b|\bhas no column\b|\bno such column\b|\bmissing (?:required )?columns?\b"
        r"|\bcolumns?\b[^\n]{0,80}?\b(?:not found|missing|does not exist)\b",
    ),
    _p(
        "schema_mismatch",
        "persistent",
        r"\bschemas? (?:does not match|mismatch|are not equal)|field names are not matching|\bSchemaError\b"
        r"|\bArrowInvalid\b|\bArrowTypeError\b|could not convert string to float|invalid literal for int\(\)",
    ),
    _p("input_missing", "persistent", r"\bFileNotFoundError\b|No such file or directory|\bNoSuchKey\b|\bNoSuchBucket\b"),
    _p(
        "permission",
        "persistent",
        r"\bPermissionError\b|Permission denied|\bAccessDenied(?:Exception)?\b|\bAccess Denied\b|\bForbidden\b"
        r"|\bUnauthorized\b|\b40[13] Client Error\b|\bInvalidAccessKeyId\b|\bSignatureDoesNotMatch\b",
    ),
    # Transient: the world was briefly unkind; the same code on a retry usually succeeds.
    _p("task_timeout", "transient", r"\bAirflowTaskTimeout\b|\bTaskTimeout\b|execution_timeout"),
    _p("nccl_timeout", "transient", r"Watchdog caught collective operation timeout|\bNCCL\b[^\n]{0,120}?\b(?:timeout|timed out)\b"),
    _p(
        "oom_killed",
        "transient",
        r"\bOOMKilled\b|Negsignal\.SIGKILL|\bSIGKILL\b|\b(?:return|exit|status) code:? (?:of )?(?:137|-9)\b"
        r"|exited with code -9\b|Out of memory: Killed process|out-of-memory \(OOM\)|Likely out of memory"
        r"|excessive memory usage|^\s*Killed\s*$",
    ),
    _p(
        "preempted",
        "transient",
        r"\bpreempt(?:ed|ion|ible)\b|spot instance interruption|\bSpot Interruption\b|\bEvicted\b|node (?:was )?(?:drained|shut ?down)",
    ),
    _p(
        "lost_worker",
        "transient",
        r"\bWorker ?Lost\b|\bWorker lost\b|killed externally|\bExecutor\b[^\n]{0,200}?reported that the task instance\b"
        r"|heartbeat timeout|did not emit heartbeat|without a heartbeat|\bzombie\b|received SIGTERM|Process terminated by signal"
        r"|\bnode lost\b|Execution was (?:aborted|cancelled) by",
    ),
    _p(
        "throttled",
        "transient",
        r"\b429 (?:Client Error|Too Many Requests)|Too Many Requests|\bSlowDown\b|Slow Down|Throttling(?:Exception)?\b"
        r"|RequestLimitExceeded|\bTooManyRequests(?:Exception)?\b|\bResourceExhausted\b|RESOURCE_EXHAUSTED|ProvisionedThroughputExceeded|\bRate exceeded\b|\brate limit",
    ),
    _p(
        "server_unavailable",
        "transient",
        r"\b(?:502|503|504) (?:Server Error|Bad Gateway|Service Unavailable|Gateway Time-?out)\b|Service Unavailable"
        r"|\bBad Gateway\b|Gateway Time-?out|\bServiceUnavailable\b",
    ),
    _p(
        "timeout",
        "transient",
        r"\b(?:TimeoutError|ReadTimeout|ConnectTimeout|ReadTimeoutError|ConnectTimeoutError|PoolTimeout|WriteTimeout"
        r"|TimeoutException|DeadlineExceeded|DEADLINE_EXCEEDED)\b|socket\.timeout|\btimed out\b|\btimeout (?:expired|exceeded)\b",
        "",
    ),
    _p(
        "connection",
        "transient",
        r"\bConnection(?:Reset|Refused|Aborted)Error\b|\bConnection (?:reset|refused|aborted)|\bConnection broken\b"
        r"|\bRemoteDisconnected\b|\bRemoteProtocolError\b|\bEndpointConnectionError\b|Could not connect to the endpoint"
        r"|\bConnectError\b|\bConnectionError\b|\bBrokenPipeError\b|\bBroken pipe\b|\blost connection\b"
        r"|server closed the connection unexpectedly|\bIncompleteRead\b",
    ),
    _p("dns", "transient", r"Temporary failure in name resolution|\bEAI_AGAIN\b|\bNameResolutionError\b|Could not resolve host"),
)


def classify(text: str, patterns: Sequence[Pattern] = SHIPPED) -> Classification:
    """The category of the failure `text` describes (a log, a traceback or one error line)."""
    compiled = [(p, p.compiled()) for p in patterns]
    lines = _evidence_lines(text)
    for line in reversed(lines):
        for pattern, regex in compiled:
            if regex.search(line):
                return Classification(
                    category=pattern.category,
                    rule=pattern.name,
                    matched=_clip(line),
                    reason=f"{_verdict(pattern.category)}: the last error line matches rule {pattern.name!r}",
                )
    last = lines[-1] if lines else ""
    return Classification(
        category="unknown",
        rule="none",
        matched=_clip(last),
        reason="no rule matched the error; a person should look before anything is retried",
    )


def classify_with_history(
    text: str,
    previous: Sequence[str],
    patterns: Sequence[Pattern] = SHIPPED,
    same_after: int = 3,
) -> Classification:
    """`classify`, then the history rule: when the same task ended with the same error (numbers,
    ids, hex and paths aside) on at least `same_after` of its `previous` failed runs, the failure
    is persistent whatever the patterns say — a transient cause does not repeat run after run."""
    found = classify(text, patterns)
    mine = signature(text, patterns)
    matches = sum(1 for other in previous if mine and signature(other, patterns) == mine)
    if matches < same_after:
        return Classification(found.category, found.rule, found.matched, found.reason, history_matches=matches)
    reason = (
        f"the same error ended {matches} of the last {len(previous)} failed runs of this task "
        f"(rule {found.rule!r} alone says {found.category}), so retrying will not help"
    )
    return Classification("persistent", "repeated", found.matched, reason, history_matches=matches)


def signature(text: str, patterns: Sequence[Pattern] = SHIPPED) -> str:
    """The normalized deciding line of `text`: what "the same error" means for the history rule."""
    return normalize(classify(text, patterns).matched)


_VOLATILE = (
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{12,}\b"), "<hex>"),
    (re.compile(r"(?<![\w:])/[\w.\-/]+"), "<path>"),
    (re.compile(r"\d+"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalize(line: str) -> str:
    """`line` without what differs between runs of the same failure: ids, hex, paths, numbers."""
    for regex, replacement in _VOLATILE:
        line = regex.sub(replacement, line)
    return line.strip()


_FRAME = re.compile(r'^\s+File "')
_CARETS = re.compile(r"^\s*[~^]+\s*$")


def _evidence_lines(text: str) -> list[str]:
    """The lines that may decide, in order: not blank, not a traceback frame, not the source
    line quoted under a frame, not a caret marker; each cut to MAX_LINE characters."""
    kept: list[str] = []
    after_frame = False
    for raw in text.splitlines()[-MAX_LINES:]:
        line = raw[:MAX_LINE]
        if _FRAME.match(line):
            after_frame = True
            continue
        quoted = after_frame and line[:1] in (" ", "\t")
        after_frame = False
        if quoted or not line.strip() or _CARETS.match(line):
            continue
        kept.append(line.strip())
    return kept


def _verdict(category: str) -> str:
    return "transient, worth a retry" if category == "transient" else "persistent, a retry would fail the same way"


def _clip(line: str, limit: int = 500) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"
