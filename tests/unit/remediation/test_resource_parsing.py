"""The pure parts of `resource_snapshot` and `verify_inputs`: nvidia-smi's CSV on output real
drivers printed, placeholders filled from the alert, the Prometheus query set and its summary."""

from __future__ import annotations

import pytest

from monitor.remediation import gpu, placeholders
from monitor.remediation import prometheus_query as prom
from tests.fakes.alerts import alert

# Recorded `--format=csv,noheader,nounits` output, with the --query-gpu fields it was asked for.
# enkore/i3pystatus#776: a 2 GB card after a driver upgrade ([N/A]) and before it ([Not Supported]).
I3_FIELDS = ("memory.total", "memory.free", "memory.used", "temperature.gpu", "fan.speed", "utilization.gpu", "utilization.memory")
I3_NEW = "2004, 2004, 0, 44, [N/A], 0, 0\n"
I3_OLD = "2004, 2004, 0, 44, [Not Supported], 0, 0\n"
# mostlygeek/llama-swap#782: NVIDIA GB10 (DGX Spark, unified memory) has no framebuffer figures.
GB10_FIELDS = ("memory.used", "memory.total", "utilization.memory")
GB10 = "[N/A], [N/A], 0\n"
# enkore/i3pystatus#850: a fan the driver cannot read.
FAN = "[Unknown Error]\n"


@pytest.mark.parametrize("text", [I3_NEW, I3_OLD])
def test_unavailable_values_become_none_and_numbers_numbers(text):
    (card,) = gpu.parse_query_gpu(text, I3_FIELDS)
    assert card == {
        "memory.total": 2004,
        "memory.free": 2004,
        "memory.used": 0,
        "temperature.gpu": 44,
        "fan.speed": None,
        "utilization.gpu": 0,
        "utilization.memory": 0,
    }


def test_unified_memory_gpu_and_unknown_errors():
    assert gpu.parse_query_gpu(GB10, GB10_FIELDS) == [{"memory.used": None, "memory.total": None, "utilization.memory": 0}]
    assert gpu.parse_query_gpu(FAN, ("fan.speed",)) == [{"fan.speed": None}]


def test_several_gpus_text_fields_and_fractions():
    # Not a recorded line: the shipped field list written out with figures of real A100 reports
    # (CHTC/templates-GPUs#24's table, UUIDs from mayooot/detect-gpu#3).
    text = (
        "0, NVIDIA A100-SXM4-80GB, GPU-749a4951-86af-0c5a-2a58-67aa5ebf9d4e, 100, 61, 7488, 81920, 48, 353.12\n"
        "1, NVIDIA A100-SXM4-80GB, GPU-b1ff00c5-3253-827e-131a-a988b71d5e7b, 0, 0, 4, 81920, 26, [N/A]\n\n"
    )
    first, second = gpu.parse_query_gpu(text, gpu.QUERY_FIELDS)
    assert first["name"] == "NVIDIA A100-SXM4-80GB" and first["uuid"].startswith("GPU-749a") and first["power.draw"] == 353.12
    assert (first["utilization.gpu"], first["memory.used"], second["index"], second["power.draw"]) == (100, 7488, 1, None)


def test_a_changed_format_is_refused_with_the_line():
    with pytest.raises(ValueError, match=r"printed 7 values for 3 fields .*2004, 2004"):
        gpu.parse_query_gpu(I3_NEW, GB10_FIELDS)


def test_nvidia_smi_absent_or_failing_is_a_reason_not_a_crash():
    assert gpu.query("nvidia-smi-not-installed-here") == {
        "available": False,
        "reason": "nvidia-smi-not-installed-here is not installed on this host",
    }
    failed = gpu.query("false")  # a real binary that exits 1 without a word
    assert failed == {"available": False, "reason": "false exited 1"}


def test_placeholders_come_from_the_alert():
    sample = alert(labels={"team": "ml", "host": 'gpu"7'})
    assert (
        placeholders.fill("data/{pipeline}/{run_id}/{task}.parquet", sample)
        == "data/train_ranker/scheduled__2024-05-01T12:00/fit_model.parquet"
    )
    assert (
        placeholders.fill('instance=~"{label.host}(:.*)?",job!~"x{2}"', sample, escape=prom.promql_string)
        == 'instance=~"gpu\\"7(:.*)?",job!~"x{2}"'
    )  # quotes escaped for PromQL, a regex's braces untouched
    assert placeholders.fill("host={label.rack}", sample, missing="") == "host="
    with pytest.raises(placeholders.MissingPlaceholder, match=r"needs \{run_id\}, which alert 1 \(task_failed\)"):
        placeholders.fill("in/{run_id}.csv", alert(run_id=None))


def test_configured_queries_add_replace_and_remove_shipped_ones():
    merged = prom.queries({"gpu_util": "", "cpu_busy": "my_cpu{$selector}", "disk": "node_filesystem_avail_bytes{$selector}"})
    assert set(merged) == {"cpu_busy", "memory_used", "gpu_memory_used", "disk"} and merged["cpu_busy"] == "my_cpu{$selector}"
    assert (
        prom.render(prom.DEFAULT_QUERIES["cpu_busy"], 'host="a"')
        == '1 - avg by (instance) (irate(node_cpu_seconds_total{mode="idle",host="a"}[5m]))'
    )


def test_summary_ranks_series_and_keeps_the_value_at_the_failure():
    matrix = [
        {"metric": {"instance": "a"}, "values": [[1, "0.2"], [2, "0.4"], [3, "NaN"]]},
        {"metric": {"instance": "b"}, "values": [[1, "0.9"], [2, "0.7"]]},
    ]
    instant = [{"metric": {"instance": "b"}, "value": [2, "0.7"]}, {"metric": {"instance": "c"}, "value": [2, "0.1"]}]
    b, a, c = prom.summarize(matrix, instant, max_series=5)
    assert b == {"labels": {"instance": "b"}, "points": 2, "max": 0.9, "min": 0.7, "mean": 0.8, "at_failure": 0.7}
    assert (a["points"], a["max"], a["mean"], a["at_failure"]) == (2, 0.4, 0.3, None)  # NaN left out
    assert (c["points"], c["max"], c["at_failure"]) == (0, None, 0.1)
    assert len(prom.summarize(matrix, instant, max_series=1)) == 1
