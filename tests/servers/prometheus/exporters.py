"""Small HTTP exporters for the Prometheus tests: prometheus-client serving the metric names a
node_exporter and NVIDIA's DCGM exporter publish, with values the tests know.

CPU counters grow linearly with time (`busy` of each second is non-idle), so `rate()` over them
gives back `busy`; memory and GPU gauges are constants.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tests.servers.postgres.server import free_port
from tests.servers.prometheus.server import (
    PrometheusServer,
    PrometheusUnavailable,
    find_binary,
    scrape_config,
)

GIB = 1024**3


@dataclass(frozen=True)
class Machine:
    host: str
    cpu_busy: float  # fraction of each second not idle
    mem_total: float
    mem_available: float
    gpu_util: float  # percent, as DCGM_FI_DEV_GPU_UTIL
    fb_used: float  # MiB
    fb_free: float


class _Collector:
    def __init__(self, machine: Machine) -> None:
        self.machine, self.began = machine, time.time() - 100.0

    def collect(self) -> Iterator[Metric]:
        m, elapsed = self.machine, time.time() - self.began
        cpu = CounterMetricFamily("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"])
        cpu.add_metric(["0", "idle"], elapsed * (1 - m.cpu_busy))
        cpu.add_metric(["0", "user"], elapsed * m.cpu_busy)
        yield cpu
        yield GaugeMetricFamily("node_memory_MemTotal_bytes", "Memory information field MemTotal_bytes.", value=m.mem_total)
        yield GaugeMetricFamily("node_memory_MemAvailable_bytes", "Memory information field MemAvailable_bytes.", value=m.mem_available)
        for name, value in (("DCGM_FI_DEV_GPU_UTIL", m.gpu_util), ("DCGM_FI_DEV_FB_USED", m.fb_used), ("DCGM_FI_DEV_FB_FREE", m.fb_free)):
            gauge = GaugeMetricFamily(name, f"{name} of the DCGM exporter.", labels=["gpu", "modelName"])
            gauge.add_metric(["0", "NVIDIA A100-SXM4-40GB"], value)
            yield gauge


TRAINER = Machine("trainer-1", cpu_busy=0.8, mem_total=8 * GIB, mem_available=0.5 * GIB, gpu_util=97, fb_used=30000, fb_free=10000)
IDLE = Machine("idle-1", cpu_busy=0.1, mem_total=8 * GIB, mem_available=6 * GIB, gpu_util=5, fb_used=1000, fb_free=39000)


@dataclass
class Scraped:
    server: PrometheusServer
    machines: tuple[Machine, ...]

    @property
    def url(self) -> str:
        return self.server.url


def prometheus_available() -> bool:
    try:
        find_binary()
        return True
    except PrometheusUnavailable:
        return False


def wait_for_samples(url: str, samples: int = 5, limit: float = 60.0) -> None:
    """Until every target was scraped `samples` times (rate() needs two; a margin for the window)."""
    import httpx

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/api/v1/query", params={"query": "min(count_over_time(up[1m]))"}, timeout=5).json()
        result = body["data"]["result"]
        if result and float(result[0]["value"][1]) >= samples:
            return
        time.sleep(0.25)
    raise AssertionError(f"Prometheus at {url} did not scrape its targets {samples} times in {limit}s")


@pytest.fixture(scope="module")
def scraped() -> Iterator[Scraped]:
    """A real Prometheus on 127.0.0.1 scraping two exporters (a busy trainer and an idle box),
    each target labelled with its `host`; stopped by pid after the module."""
    servers, targets = [], {}
    for machine in (TRAINER, IDLE):
        registry = CollectorRegistry()
        registry.register(_Collector(machine))
        port = free_port()
        httpd, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
        servers.append(httpd)
        targets[f"127.0.0.1:{port}"] = {"host": machine.host}
    prometheus = PrometheusServer(scrape_config(targets))
    try:
        prometheus.start()
        wait_for_samples(prometheus.url)
        yield Scraped(prometheus, (TRAINER, IDLE))
    finally:
        prometheus.stop()
        for httpd in servers:
            httpd.shutdown()
            httpd.server_close()
