"""Peers whose answers never end, drip, or declare a size no answer needs (monitor/bounded_answers.py).

Real HTTP servers on loopback, each bounded itself (it stops after STREAM_CAP bytes or
DRIP_FOR seconds, and when the client hangs up), and the real clients: Airflow's, Prefect's, a
webhook receiver's. Each answer fails as its peer's failure, saying which bound it crossed.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from monitor.alerting.notifiers import DeliveryError, build_one
from monitor.bounded_answers import AnswerTooLarge, AnswerTooSlow, Bounds, peer_client
from monitor.config import PrefectSourceSettings, WebhookReceiverSettings
from monitor.model import utcnow
from monitor.remediation import prometheus_query
from monitor.retry import Retries
from monitor.sources.airflow_auth import BasicCredentials
from monitor.sources.airflow_http import AirflowClient
from monitor.sources.base import SourceUnavailable, api_error_kind
from monitor.sources.prefect_api import PrefectApi
from tests.fakes.alerts import notification
from tests.fakes.httpserver import FakeHTTPServer, Recorded, Reply

SMALL = Bounds(max_bytes=2**20, max_seconds=0.5)
STREAM_CAP = 16 * 2**20  # the endless server stops here, whatever the client does
DRIP_FOR = 15.0  # the dripping server stops after this long
CHUNK = 64 * 1024


def _deflate(data: bytes, *, header: bool) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS if header else -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


BOMB = 64 * 2**20  # what the bomb decodes to: 64 MiB of JSON whitespace, a few tens of KiB sent
ENCODED = {  # mode → (Content-Encoding, body): whole answers with their Content-Length
    "gzip": ("gzip", gzip.compress(b'{"dags": ["etl"]}')),
    "deflate": ("deflate", _deflate(b'{"dags": ["etl"]}', header=True)),
    "rawdeflate": ("deflate", _deflate(b'{"dags": ["etl"]}', header=False)),
    "twice": ("gzip, gzip", gzip.compress(gzip.compress(b'{"dags": ["etl"]}'))),
    "chain": ("deflate, gzip", gzip.compress(_deflate(b'{"dags": ["etl"]}', header=False))),
    "xgzip": ("x-gzip", gzip.compress(b'{"dags": ["etl"]}')),
    "nonsense": ("UTF-8", b'{"dags": ["etl"]}'),  # no compression at all: ignored, as httpx does
    "emptybr": ("br", b""),
    "bomb": ("gzip", gzip.compress(b'{"dags": [' + b" " * BOMB + b"]}")),
    "brotli": ("br", b"\x1b\x10\x00\x00"),
    "garbage": ("gzip", b"not gzip at all"),
}


class Misbehaving(FakeHTTPServer):
    """`endless`: chunked JSON-looking bytes without end; `drip`: a byte every 50 ms; `declared`:
    a Content-Length of 10 GiB and then a few bytes; the modes of ENCODED: a compressed answer
    (`bomb` expands past any bound)."""

    def respond(self, request: Recorded) -> Reply:
        mode = self.route(request).strip("/").split("/")[0]
        if mode in ENCODED:
            encoding, body = ENCODED[mode]
            return Reply(200, body, {"Content-Type": "application/json", "Content-Encoding": encoding})
        if mode == "declared":
            return Reply(200, b'{"dags": [', {"Content-Type": "application/json", "Content-Length": str(10 * 2**30)})
        return Reply(200, self._endless() if mode == "endless" else self._drip(), {"Content-Type": "application/json"})

    def _endless(self) -> Iterator[bytes]:
        yield b'{"dags": ['
        for _ in range(STREAM_CAP // CHUNK):
            yield b" " * CHUNK
        yield b"]}"

    def _drip(self) -> Iterator[bytes]:
        yield b'{"dags": ['
        until = time.monotonic() + DRIP_FOR
        while time.monotonic() < until and not self._stopping.wait(0.05):
            yield b" "
        yield b"]}"


def airflow_client(url: str) -> AirflowClient:
    """Airflow's real client under the small bounds, its retries without waiting."""
    return AirflowClient(
        url, BasicCredentials("dagwatch", SecretStr("secret")), timeout=5, bounds=SMALL, retries=Retries(sleep=lambda _: None)
    )


@pytest.fixture
def peer() -> Iterator[Misbehaving]:
    with Misbehaving() as server:
        yield server


@pytest.mark.parametrize(
    ("mode", "error", "says"),
    [
        ("endless", AnswerTooLarge, "over dagwatch's limit of 1 MiB"),
        ("declared", AnswerTooLarge, "declares 10,737,418,240 bytes"),
        ("drip", AnswerTooSlow, "still arriving after 0.5 s"),
    ],
)
def test_an_httpx_client_with_the_bounds_stops_reading(peer, mode, error, says):
    with httpx.Client(timeout=5, event_hooks=SMALL.hooks()) as client, pytest.raises(error) as caught:
        client.get(f"{peer.url}/{mode}")
    assert says in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_an_answer_within_the_bounds_is_read_whole(peer):
    roomy = Bounds(max_bytes=STREAM_CAP + 2**20, max_seconds=60)
    with httpx.Client(timeout=5, event_hooks=roomy.hooks()) as client:
        answer = client.get(f"{peer.url}/endless")
    assert answer.json() == {"dags": []}


@pytest.mark.parametrize("mode", ["endless", "drip", "declared", "bomb"])
def test_airflow_that_answers_without_end_is_unavailable_not_a_hung_poll(peer, mode):
    client = airflow_client(f"{peer.url}/{mode}")
    try:
        with pytest.raises(SourceUnavailable) as caught:
            client.get("/api/v2/dags")
    finally:
        client.close()
    assert ("dagwatch's limit" in str(caught.value)) or ("still arriving" in str(caught.value))


@pytest.mark.parametrize("mode", ["endless", "drip", "declared"])
def test_prefect_that_answers_without_end_is_unavailable_not_a_hung_poll(peer, mode):
    settings = PrefectSourceSettings(kind="prefect", name="pf", url=f"{peer.url}/{mode}/api")
    api = PrefectApi(settings, bounds=SMALL, retries=Retries(sleep=lambda _: None))
    try:
        with pytest.raises(SourceUnavailable) as caught:
            api.request("POST", "flow_runs/filter", {"limit": 1})
    finally:
        api.close()
    assert ("over dagwatch's limit" in str(caught.value)) or ("still arriving" in str(caught.value))


def test_a_receiver_that_declares_a_huge_answer_is_a_retryable_delivery_failure(peer):
    notifier = build_one(WebhookReceiverSettings(kind="webhook", name="wh", url=f"{peer.url}/declared/hook", timeout=5))
    with pytest.raises(DeliveryError) as caught:
        notifier.notify(notification())
    assert caught.value.retryable
    assert "declares 10,737,418,240 bytes" in str(caught.value)


@pytest.mark.parametrize("mode", ["gzip", "deflate", "rawdeflate", "twice", "chain", "xgzip", "nonsense"])
def test_a_compressed_answer_is_decoded_under_the_bound(peer, mode):
    with peer_client(SMALL, timeout=5) as client:
        answer = client.get(f"{peer.url}/{mode}")
    assert answer.json() == {"dags": ["etl"]}
    assert [r.header("Accept-Encoding") for r in peer.requests] == ["gzip, deflate"]  # only what the bound can decode


def test_an_empty_answer_in_an_encoding_not_asked_for_is_fine(peer):
    with peer_client(SMALL, timeout=5) as client:
        answer = client.get(f"{peer.url}/emptybr")
    assert (answer.status_code, answer.content) == (200, b"")


def test_a_compression_bomb_is_refused_once_it_reaches_the_bound(peer):
    assert len(ENCODED["bomb"][1]) < SMALL.max_bytes  # what arrives is small: only decoding finds it out
    with peer_client(SMALL, timeout=5) as client, pytest.raises(AnswerTooLarge) as caught:
        client.get(f"{peer.url}/bomb")
    assert "decodes to more than dagwatch's limit of 1 MiB" in str(caught.value)


def test_a_bomb_within_the_bound_is_read_whole(peer):
    roomy = Bounds(max_bytes=BOMB + 2**20, max_seconds=60)
    with peer_client(roomy, timeout=5) as client:
        assert client.get(f"{peer.url}/bomb").json() == {"dags": []}


@pytest.mark.parametrize(
    ("mode", "says"), [("brotli", "encoded as br, which dagwatch did not ask for"), ("garbage", "is not the compressed data")]
)
def test_an_encoding_that_cannot_be_decoded_under_the_bound_is_a_clear_error(peer, mode, says):
    with peer_client(SMALL, timeout=5) as client, pytest.raises(httpx.DecodingError) as caught:
        client.get(f"{peer.url}/{mode}")
    assert says in str(caught.value)


@pytest.mark.parametrize("mode", ["garbage", "brotli", "bomb"])
def test_prometheus_that_answers_undecodable_or_too_much_is_unreachable_for_the_runbook(peer, mode):
    with prometheus_query.Client(f"{peer.url}/{mode}", timeout=5) as client, pytest.raises(prometheus_query.PrometheusUnreachable):
        client.instant("up", utcnow())


@pytest.mark.parametrize("mode", ["brotli", "garbage"])
def test_an_orchestrator_answer_that_cannot_be_decoded_is_an_invalid_response_not_an_outage(peer, mode):
    """Asking again brings the same garbage: the source fails at once (no retries within the
    poll) and counts as invalid_response in dagwatch_source_api_errors_total, not as connect."""
    airflow = airflow_client(f"{peer.url}/{mode}")
    prefect = PrefectApi(PrefectSourceSettings(kind="prefect", name="pf", url=f"{peer.url}/{mode}/api"), bounds=SMALL)
    try:
        with pytest.raises(SourceUnavailable) as from_airflow:
            airflow.get("/api/v2/dags")
        with pytest.raises(SourceUnavailable) as from_prefect:
            prefect.request("POST", "flow_runs/filter", {"limit": 1})
    finally:
        airflow.close()
        prefect.close()
    assert len(peer.requests) == 2  # one each: not retried
    for caught in (from_airflow, from_prefect):
        assert "with a body dagwatch cannot decode" in str(caught.value)
        assert api_error_kind(caught.value) == "invalid_response"
