"""The failure classifier: scored on a table of real error texts (the number goes into the
closing note of issue 9), and the rules that make it trustworthy — the last error decides,
frames are not evidence, config patterns come first, a failure that repeats is persistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from monitor.remediation.classify import SHIPPED, Pattern, classify, classify_with_history, normalize

TABLE = yaml.safe_load((Path(__file__).parent / "error_texts.yaml").read_text(encoding="utf-8"))


def score(entries: list[dict]) -> tuple[float, list[str]]:
    """Accuracy on `entries` and one line per miss: expected, got, rule, source."""
    misses = []
    for entry in entries:
        got = classify(entry["text"])
        if got.category != entry["expected"]:
            misses.append(f"expected {entry['expected']}, got {got.category} ({got.rule}): {entry['source']}")
    return (len(entries) - len(misses)) / len(entries), misses


def test_accuracy_on_the_table_of_real_error_texts(record_property):
    """The issue asks for at least 40 real texts and the accuracy in the closing note: it is
    printed (run with -s) and recorded as a junit property, and must stay at 0.9 or more."""
    accuracy, misses = score(TABLE)
    record_property("classifier_accuracy", f"{accuracy:.3f}")
    record_property("classifier_misses", "; ".join(misses))
    print(f"\nclassifier: {len(TABLE)} texts, {len(TABLE) - len(misses)} correct, accuracy {accuracy:.3f}")
    print("\n".join(f"  miss: {m}" for m in misses))
    assert len(TABLE) >= 40
    assert accuracy >= 0.9, misses


def test_the_table_covers_every_category_and_names_a_source_for_each_text():
    """A table of only one category would score well on a classifier that always says it."""
    assert {e["expected"] for e in TABLE} == {"transient", "persistent", "unknown"}
    assert all(e["source"].strip() and e["text"].strip() for e in TABLE)


def test_the_exception_raised_last_decides_not_the_one_handled_before_it():
    """A retry wrapper or a handler that fails differently: the final error is the task's."""
    reset_then_key = "ConnectionResetError: [Errno 104] Connection reset by peer\n\nDuring handling of the above exception, another exception occurred:\n\nKeyError: 'user_id'"
    key_then_timeout = (
        "KeyError: 'user_id'\n\nDuring handling of the above exception, another exception occurred:\n\nhttpx.ReadTimeout: timed out"
    )
    assert (classify(reset_then_key).category, classify(reset_then_key).rule) == ("persistent", "missing_column")
    assert (classify(key_then_timeout).category, classify(key_then_timeout).rule) == ("transient", "timeout")


def test_log_lines_after_the_error_without_evidence_do_not_hide_it():
    text = "ModuleNotFoundError: No module named 'xgboost'\n[2026-03-01, 02:14:07 UTC] INFO - Marking task as FAILED.\nTask exited with return code 1"
    assert classify(text).rule == "code_error"
    assert classify(text).matched == "ModuleNotFoundError: No module named 'xgboost'"


def test_source_lines_quoted_in_frames_are_not_evidence():
    """`requests.get(url, timeout=5)` in a frame says nothing about why the task failed."""
    text = (
        'Traceback (most recent call last):\n  File "/opt/p/ingest.py", line 3, in fetch\n'
        '    raise TimeoutError("never raised")  # a timed out call\n'
        '  File "/opt/p/ingest.py", line 9, in parse\n    check(rows)\nValueError: rows look odd'
    )
    got = classify(text)
    assert (got.category, got.rule, got.matched) == ("unknown", "none", "ValueError: rows look odd")


def test_a_persistent_exception_type_wins_over_transient_words_in_its_message():
    got = classify("KeyError: 'connection refused after timed out retries'")
    assert (got.category, got.rule) == ("persistent", "missing_column")


def test_gpu_errors_split_by_what_a_retry_can_change():
    """CUDA OOM repeats with the same batch size; an NCCL watchdog timeout is a slow peer; an
    illegal memory access is a bug."""
    assert classify("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.").category == "persistent"
    assert classify("[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5)").category == "transient"
    assert classify("RuntimeError: CUDA error: an illegal memory access was encountered").rule == "cuda_fault"


def test_unknown_says_so_with_the_last_meaningful_line():
    got = classify("starting\nValueError: dagwatch-truth: this run was asked to fail\n\n")
    assert (got.category, got.rule, got.matched) == ("unknown", "none", "ValueError: dagwatch-truth: this run was asked to fail")
    assert classify("").category == "unknown"


def test_configured_patterns_come_before_the_shipped_ones():
    """Config can both add what the shipped rules miss and overrule them."""
    nan_input = Pattern(name="nan_input", category="persistent", regex=r"Input X contains NaN")
    store_flaky = Pattern(name="flaky_store", category="transient", regex=r"^FeatureStoreError:")
    assert classify("ValueError: Input X contains NaN.").category == "unknown"
    assert classify("ValueError: Input X contains NaN.", [nan_input, *SHIPPED]).rule == "nan_input"
    got = classify("FeatureStoreError: feature store has no column 'v2'", [store_flaky, *SHIPPED])
    assert (got.category, got.rule) == ("transient", "flaky_store")


def test_pattern_flags_apply():
    lower = Pattern(name="gone", category="transient", regex="node gone", flags="i")
    assert classify("NODE GONE during step 4", [lower]).rule == "gone"
    assert classify("NODE GONE during step 4", [lower.model_copy(update={"flags": ""})]).category == "unknown"


@pytest.mark.parametrize(
    "regex, flags, complaint",
    [
        ("(a+)+$", "", "nested quantifiers"),
        (r"(?:\w+\s?)*done", "", "nested quantifiers"),
        ("unclosed (group", "", "not a valid regular expression"),
        ("fine", "q", "String should match pattern"),
    ],
)
def test_config_patterns_that_are_broken_or_slow_are_refused(regex, flags, complaint):
    with pytest.raises(ValidationError, match=complaint):
        Pattern(name="x", category="transient", regex=regex, flags=flags)


def test_bounded_repeats_inside_a_group_are_allowed():
    assert Pattern(name="ok", category="transient", regex=r"(?:ab{1,3})+|x[^\n]{0,80}?y").regex


def test_normalize_drops_what_differs_between_runs_of_one_failure():
    one = normalize(
        "KeyError at 0x7f9c2b1e4d10 in /data/in/2026-03-01/part-0001.parquet after 1500 rows (run 7a1c2e3f-0b4d-4a5e-9c6f-1d2e3f4a5b6c)"
    )
    two = normalize(
        "KeyError at 0x7f00aa11bb22 in /data/in/2026-03-02/part-0007.parquet after 12 rows (run 0a1b2c3d-4e5f-4a5b-8c6d-7e8f9a0b1c2d)"
    )
    assert one == two == "KeyError at <hex> in <path> after <n> rows (run <id>)"


def test_the_same_error_on_enough_earlier_runs_is_persistent_even_when_the_rule_says_transient():
    """A 'timeout' that ends every night's run is not a blip."""
    now = "httpx.ReadTimeout: timed out after 30.0s"
    previous = [
        "httpx.ReadTimeout: timed out after 31.5s",
        "httpx.ReadTimeout: timed out after 29.9s",
        "KeyError: 'x'",
        "httpx.ReadTimeout: timed out after 30.2s",
    ]
    got = classify_with_history(now, previous, same_after=3)
    assert (got.category, got.rule, got.history_matches) == ("persistent", "repeated", 3)
    assert "3 of the last 4" in got.reason and "'timeout'" in got.reason


def test_fewer_repeats_than_same_after_leave_the_rule_in_charge_and_count_them():
    got = classify_with_history("httpx.ReadTimeout: timed out", ["httpx.ReadTimeout: timed out"] * 2, same_after=3)
    assert (got.category, got.rule, got.history_matches) == ("transient", "timeout", 2)


def test_history_compares_the_deciding_line_of_whole_tracebacks():
    """Stored tracebacks differ in frames and line numbers; the error they end with is the same."""

    def tb(line: int) -> str:
        return (
            f'Traceback (most recent call last):\n  File "/opt/p/f.py", line {line}, in build\n    x = df["user_id"]\nKeyError: \'user_id\''
        )

    got = classify_with_history(tb(10), [tb(11), tb(12), tb(13)], same_after=3)
    assert (got.category, got.rule, got.history_matches) == ("persistent", "repeated", 3)


def test_an_empty_text_never_matches_history():
    assert classify_with_history("", ["", "", ""], same_after=1).category == "unknown"
