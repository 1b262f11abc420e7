"""Matcher regexes run on RE2 (issue 11): a catastrophic pattern for a backtracking engine costs
the same as any other, and a pattern RE2 cannot run is refused when written, naming why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor import linear_regex
from monitor.alerting.routing import matches
from monitor.config import RouteSettings


def test_nested_quantifiers_match_in_linear_time():
    """Python's re needs ~2**n steps here (n=40 does not end in minutes); RE2 answers at once.
    Nothing is timed: the test ends only because the engine is linear."""
    hostile = "a" * 40 + "!"
    assert not matches({"pipeline": "~(a+)+"}, {"pipeline": hostile})
    assert matches({"pipeline": "!~(a+)+"}, {"pipeline": hostile})
    assert matches({"pipeline": "~(a|aa)*!"}, {"pipeline": hostile})


def test_matchers_keep_their_meaning():
    attrs = {"pipeline": "train-daily", "tier": "P1", "labels.team": "ml"}
    assert matches({"pipeline": "~train-.*", "tier": "P1"}, attrs)
    assert not matches({"pipeline": "~train"}, attrs)  # full match, as before
    assert matches({"team": "~m."}, attrs)


@pytest.mark.parametrize("pattern", ["(?=x)y", "(a)\\1", "[z-a]"])
def test_patterns_re2_cannot_run_are_refused_when_written(pattern):
    with pytest.raises(ValidationError) as caught:
        RouteSettings(match={"pipeline": "~" + pattern})
    assert "matcher pipeline: invalid regex" in str(caught.value)
    with pytest.raises(linear_regex.PatternError, match="RE2 syntax"):
        linear_regex.compile_pattern(pattern)
