"""Regexes people write into matchers (routes, silences: `~pattern`, `!~pattern`) run on RE2,
whose time is linear in the text whatever the pattern. Python's backtracking `re` took 7-13 s on
one alert for a silence of `~(a+)+`, once when it was posted and again at every dispatch; a
silence is posted by any operator, so its pattern is input, not configuration.

RE2 has no lookaround and no backreferences: such a pattern is refused when it is written, with
the reason, never at matching time."""

from __future__ import annotations

import functools

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the reason goes into our error, not onto stderr


class PatternError(ValueError):
    """A matcher's regex that RE2 cannot compile."""


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> "re2._Regexp":
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"invalid regex {pattern!r}: {reason} (RE2 syntax: no lookaround or backreferences)") from None


def fullmatch(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).fullmatch(text) is not None
