"""Alertmanager's matcher strings (`severity=~"critical|high"`, `alertname!="Watchdog"`), parsed
as Alertmanager parses them (its pkg/labels/parse.go, whose test table we run), so a route or
an inhibit rule copied from an alertmanager.yml means the same here.

Two deliberate differences: a name may contain dots (`labels.team`, dagwatch's spelling of a
label next to the alert's own fields), and regexes run on RE2 through `linear_regex` — the same
engine as Alertmanager's Go regexp, anchored the same way (the whole value must match).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from monitor import linear_regex

_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:.]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)


class MatcherError(ValueError):
    """A matcher string that cannot be parsed; the message quotes it and says what is wrong."""


class Op(enum.StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str

    def matches(self, attrs: Mapping[str, str]) -> bool:
        """An absent name reads as "" (Alertmanager: a missing label is the empty label)."""
        actual = lookup(attrs, self.name)
        if self.op is Op.EQUAL:
            return actual == self.value
        if self.op is Op.NOT_EQUAL:
            return actual != self.value
        found = linear_regex.fullmatch(self.value, actual)
        return found if self.op is Op.REGEX else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


def lookup(attrs: Mapping[str, str], name: str) -> str:
    """An alert's field (tier, kind, source, pipeline, task) or label by name; `labels.NAME` too."""
    return attrs.get(name, attrs.get(f"labels.{name}", ""))


def all_match(matchers: Sequence[Matcher], attrs: Mapping[str, str]) -> bool:
    return all(m.matches(attrs) for m in matchers)


@functools.lru_cache(maxsize=4096)
def parse_matcher(text: str) -> Matcher:
    """One matcher: a name, one of `=`, `!=`, `=~`, `!~`, and a value, optionally in double
    quotes; inside, `\\"`, `\\n` and `\\\\` are escapes and any other backslash is literal."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(f"bad matcher format: {text} (write NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX)")
    name, op, raw = found.groups()
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    value: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i < len(body) - 1:
            following = body[i + 1]
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(following, "\\" + following))
            i += 2
            continue
        if char == '"':
            if not quoted or i < len(body) - 1:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
            quoted = False  # the closing quote
        else:
            value.append(char)
        i += 1
    if quoted:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
    matcher = Matcher(name, Op(op), "".join(value))
    if matcher.op in (Op.REGEX, Op.NOT_REGEX):
        try:
            linear_regex.compile_pattern(matcher.value)
        except linear_regex.PatternError as exc:
            raise MatcherError(f"{text.strip()}: {exc}") from None
    return matcher


def parse_matchers(text: str) -> list[Matcher]:
    """A comma-separated list, optionally in braces (`{a="1", b=~"x|y"}`); commas inside double
    quotes do not separate, and a trailing comma is allowed."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside = escaped = False
    for char in text:
        if char == "," and not inside:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            if not escaped:
                inside = not inside
            else:
                escaped = False
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(char)
    if "".join(token).strip():
        tokens.append("".join(token).strip())
    return [parse_matcher(t) for t in tokens]


@functools.lru_cache(maxsize=1024)
def parse_list(items: tuple[str, ...]) -> tuple[Matcher, ...]:
    """A config list (`matchers: [...]`): each item holds one matcher or a comma-separated few."""
    return tuple(m for item in items for m in parse_matchers(item))
