import hashlib
import json

import pytest

from checks.errors import ConfigError, DataReadError
from checks.integrity import (
    check_checksums,
    check_row_count,
    check_schema,
    load_manifest,
    record_manifest,
    schema_of,
    sha256_file,
)
from checks.result import Status


def test_sha256_matches_hashlib_and_reads_in_chunks(tmp_path):
    p = tmp_path / "blob.bin"
    data = bytes(range(256)) * 10000
    p.write_bytes(data)
    assert sha256_file(p, chunk=4096) == hashlib.sha256(data).hexdigest()
    with pytest.raises(DataReadError, match="file not found"):
        sha256_file(tmp_path / "nope")


def test_checksums_pass_fail_and_missing(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("y\n2\n")
    manifest = tmp_path / "manifest.json"
    record_manifest(tmp_path, ["a.csv", "sub/b.csv"], out=manifest)
    assert check_checksums(tmp_path, manifest).status is Status.passed
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    (tmp_path / "sub" / "b.csv").unlink()
    r = check_checksums(tmp_path, manifest)
    items = {i.name: i for i in r.items}
    assert r.status is Status.failed
    assert items["a.csv"].message == "checksum differs from the manifest"
    assert items["sub/b.csv"].message == "file missing"


@pytest.mark.parametrize("content, match", [(None, "manifest not found"), ("{", "not valid JSON"), ('{"files": ["a"]}', "needs 'files'")])
def test_bad_manifest_is_a_config_error(tmp_path, content, match):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_manifest(path)


@pytest.mark.parametrize(
    "current, last, max_drop, status",
    [
        (1000, 1000, 0.2, Status.passed),
        (801, 1000, 0.2, Status.passed),
        (800, 1000, 0.2, Status.passed),  # exactly the allowed drop
        (799, 1000, 0.2, Status.failed),
        (5000, 1000, 0.2, Status.passed),  # growth never fails
        (10, None, 0.2, Status.warning),  # first run: nothing to compare
        (0, 1000, 0.0, Status.failed),
    ],
)
def test_row_count_against_last_good(current, last, max_drop, status):
    assert check_row_count(current, last, max_drop=max_drop).status is status


def test_row_count_rejects_a_bad_threshold():
    with pytest.raises(ConfigError):
        check_row_count(1, 1, max_drop=1.5)


def test_schema_drift_names_added_removed_retyped(frame):
    good = schema_of(frame)
    assert check_schema(frame, good).status is Status.passed
    cur = frame.drop(columns=["feature_3"]).assign(label=frame["label"].astype(float), extra="x")
    r = check_schema(cur, good)
    assert r.status is Status.failed
    assert r.details == {"added": ["extra"], "removed": ["feature_3"], "retyped": ["label"]}
    assert {i.name: i.message for i in r.items}["label"] == "column retyped int64 -> float64"
    # the recorded baseline round-trips through JSON, as a good run stores it
    assert check_schema(frame, json.loads(json.dumps(good))).status is Status.passed
