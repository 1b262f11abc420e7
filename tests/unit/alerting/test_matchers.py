"""Alertmanager's matcher parser, checked against Alertmanager's own test table
(pkg/labels/parse_test.go, TestMatchers, at prometheus/alertmanager 68fb2d5): same inputs, same
matchers, same errors. Regex errors differ in wording (RE2 through linear_regex, not Go's
regexp), so those cases check the matcher text is named instead."""

from __future__ import annotations

import pytest

from monitor.alerting.routing import alert_attributes, route_matches
from monitor.config import RouteSettings
from monitor.matchers import Matcher, MatcherError, Op, all_match, parse_list, parse_matchers

EQ, NE, RE, NRE = Op.EQUAL, Op.NOT_EQUAL, Op.REGEX, Op.NOT_REGEX

CASES = [
    ("{}", []),
    ("{foo='}", [("foo", EQ, "'")]),
    ("{foo=`}", [("foo", EQ, "`")]),
    ('{foo=\\"}', [("foo", EQ, '"')]),
    ("{foo=bar}", [("foo", EQ, "bar")]),
    ('{foo="bar"}', [("foo", EQ, "bar")]),
    ("{foo=~bar.*}", [("foo", RE, "bar.*")]),
    ('{foo=~"bar.*"}', [("foo", RE, "bar.*")]),
    ("{foo!=bar}", [("foo", NE, "bar")]),
    ('{foo!="bar"}', [("foo", NE, "bar")]),
    ("{foo!~bar.*}", [("foo", NRE, "bar.*")]),
    ('{foo!~"bar.*"}', [("foo", NRE, "bar.*")]),
    ('{foo="bar", baz!="quux"}', [("foo", EQ, "bar"), ("baz", NE, "quux")]),
    ('{foo="bar", baz!~"quux.*"}', [("foo", EQ, "bar"), ("baz", NRE, "quux.*")]),
    ('{foo="bar",baz!~".*quux", derp="wat"}', [("foo", EQ, "bar"), ("baz", NRE, ".*quux"), ("derp", EQ, "wat")]),
    ('{foo="bar", baz!="quux", derp="wat"}', [("foo", EQ, "bar"), ("baz", NE, "quux"), ("derp", EQ, "wat")]),
    ('{foo="bar", baz!~".*quux.*", derp="wat"}', [("foo", EQ, "bar"), ("baz", NRE, ".*quux.*"), ("derp", EQ, "wat")]),
    ('{foo="bar", instance=~"some-api.*"}', [("foo", EQ, "bar"), ("instance", RE, "some-api.*")]),
    ('{foo=""}', [("foo", EQ, "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", EQ, "bar,quux"), ("job", EQ, "job1")]),
    ('{foo = "bar", dings != "bums", }', [("foo", EQ, "bar"), ("dings", NE, "bums")]),
    ("foo=bar,dings!=bums", [("foo", EQ, "bar"), ("dings", NE, "bums")]),
    ('{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}', [("quote", EQ, 'She said: "Hi, ladies! That\'s gender-neutral…"')]),
    ('statuscode=~"5.."', [("statuscode", RE, "5..")]),
    ("tricky=~~~", [("tricky", RE, "~~")]),
    ('trickier==\\\\=\\=\\"', [("trickier", EQ, '=\\=\\="')]),
    ('contains_quote != "\\"" , contains_comma !~ "foo,bar" , ', [("contains_quote", NE, '"'), ("contains_comma", NRE, "foo,bar")]),
    ("{foo=bar}}", [("foo", EQ, "bar}")]),
    ("{foo=bar}},}", [("foo", EQ, "bar}}")]),
    ("{foo=,bar=}}", [("foo", EQ, ""), ("bar", EQ, "}")]),
    ("{foo=bar\\t}", [("foo", EQ, "bar\\t")]),
    ("{foo=bar\\n}", [("foo", EQ, "bar\n")]),
    ("{foo=bar\\}", [("foo", EQ, "bar\\")]),
    ("{foo=bar\\\\}", [("foo", EQ, "bar\\")]),
    ('{foo=bar\\"}', [("foo", EQ, 'bar"')]),
    ("job=", [("job", EQ, "")]),
    ("{foo=", [("foo", EQ, "")]),
    ("{foo=}b", [("foo", EQ, "}b")]),
]

ERRORS = [
    (",", "bad matcher format: "),
    ("{,}", "bad matcher format: "),
    ('job="value', 'matcher value contains unescaped double quote: "value'),
    ('job=value"', 'matcher value contains unescaped double quote: value"'),
    ('trickier==\\\\=\\=\\""', 'matcher value contains unescaped double quote: =\\\\=\\=\\""'),
    ('contains_unescaped_quote = foo"bar', 'matcher value contains unescaped double quote: foo"bar'),
    ('{invalid-name = "valid label"}', 'bad matcher format: invalid-name = "valid label"'),
    ('"{foo=\\"bar"}', 'bad matcher format: "{foo=\\"bar"'),
    ('"foo=\\"bar"', 'bad matcher format: "foo=\\"bar"'),
    ('"foo=\\"bar\\""', 'bad matcher format: "foo=\\"bar\\""'),
    ('"foo=\\"bar\\"', 'bad matcher format: "foo=\\"bar\\"'),
    ('"{foo=\\"bar\\"}"', 'bad matcher format: "{foo=\\"bar\\"}"'),
    ('"foo="bar""', 'bad matcher format: "foo="bar""'),
    ("{{foo=", "bad matcher format: {foo="),
]


@pytest.mark.parametrize(("text", "want"), CASES, ids=[c[0] for c in CASES])
def test_alertmanagers_valid_examples_parse_the_same(text, want):
    assert parse_matchers(text) == [Matcher(*m) for m in want]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_alertmanagers_invalid_examples_fail_with_its_message(text, message):
    with pytest.raises(MatcherError) as caught:
        parse_matchers(text)
    assert str(caught.value).startswith(message)


def test_an_invalid_regex_is_refused_naming_the_matcher():
    with pytest.raises(MatcherError, match=r'foo=~"invalid\[regexp".*invalid regex'):
        parse_matchers('{foo=~"invalid[regexp"}')


def test_regexes_are_anchored_and_an_absent_label_is_empty():
    [critical] = parse_list(('severity=~"critical|high"',))
    assert critical.matches({"severity": "high"})
    assert not critical.matches({"severity": "highest"})  # the whole value, as in Alertmanager
    assert not critical.matches({})
    assert parse_list(('team=""',))[0].matches({})
    assert parse_list(('alertname!="Watchdog"',))[0].matches({})


def test_a_matcher_prints_back_to_what_parses_to_it():
    for text, _ in CASES:
        for matcher in parse_matchers(text):
            assert parse_matchers(str(matcher)) == [matcher]


def test_route_matchers_combine_with_match_and_see_fields_and_labels():
    node = RouteSettings.model_validate(
        {
            "match": {"kind": "infra_alert"},
            "matchers": ['severity=~"critical|high"', 'alertname!="Watchdog", labels.team=ml'],
        }
    )

    def attrs(**labels):
        return alert_attributes(tier="P1", kind="infra_alert", source="prometheus/node", pipeline=None, task=None, labels=labels)  # noqa: E731

    assert route_matches(node, attrs(severity="critical", alertname="GpuNodeDown", team="ml"))
    assert not route_matches(node, attrs(severity="warning", alertname="GpuNodeDown", team="ml"))
    assert not route_matches(node, attrs(severity="critical", alertname="Watchdog", team="ml"))
    assert not route_matches(node, attrs(severity="critical", alertname="GpuNodeDown", team="web"))
    assert all_match(parse_list(('tier="P1"', 'kind=~"infra_.*"')), attrs())


def test_a_bad_route_matcher_stops_loading_with_the_reason():
    with pytest.raises(ValueError, match="unescaped double quote"):
        RouteSettings.model_validate({"matchers": ['severity="critical']})
    with pytest.raises(ValueError, match="invalid regex"):
        RouteSettings.model_validate({"matchers": ["severity=~(a"]})
