"""fetch_samples against a real Prometheus (hack/prometheus.py) scraping a tiny metrics server."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hack import prometheus as prom

from trtllm_operator.autoscale.prometheus import fetch_per_pod, fetch_samples

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None, reason="run hack/install-prometheus.sh"
)

TEXT = {"queue": 0.0, "compute": 0.0}


def _body() -> bytes:
    m = 'model="tensorrt_llm",version="1"'
    return (
        f"nv_inference_queue_duration_us{{{m}}} {TEXT['queue']:.0f}\n"
        f"nv_inference_compute_infer_duration_us{{{m}}} {TEXT['compute']:.0f}\n"
        f'nv_trt_llm_request_metrics{{{m},request_type="waiting"}} 3\n'
        f'nv_trt_llm_request_metrics{{{m},request_type="active"}} 6\n'
        f'nv_trt_llm_kv_cache_block_metrics{{{m},kv_cache_block_type="used"}} 25\n'
        f'nv_trt_llm_kv_cache_block_metrics{{{m},kv_cache_block_type="max"}} 100\n'
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = _body()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def scraped() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()

    def grow() -> None:  # queue grows twice as fast as compute: ratio 2
        while not stop.wait(0.1):
            TEXT["queue"] += 200_000
            TEXT["compute"] += 100_000

    threading.Thread(target=grow, daemon=True).start()
    target = prom.Target(
        f"127.0.0.1:{server.server_address[1]}", {"namespace": "it", "pod": "sim-0"}
    )
    p = prom.start([target], name="it-fetch", scrape_interval="1s")
    try:
        yield p.url
    finally:
        stop.set()
        prom.stop(p)
        server.shutdown()


def _wait_for(url: str, metric: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        samples = fetch_samples(url, "triton", metric, {"namespace": "it"}, window_s=30, step_s=1)
        if samples.error is None or time.monotonic() > deadline:
            return samples
        time.sleep(1)


def test_kv_and_waiting_from_a_real_scrape(scraped: str) -> None:
    kv = _wait_for(scraped, "kvCacheUtilization")
    assert kv.error is None and kv.points[-1][1] == pytest.approx(0.25)
    waiting = _wait_for(scraped, "waitingRequests")
    assert waiting.points[-1][1] == 3


def test_kv_cache_demand_counts_the_queue(scraped: str) -> None:
    # 25 of 100 blocks used by 6 running requests, 3 waiting: 0.25 x (1 + 3/6)
    demand = _wait_for(scraped, "kvCacheDemand")
    assert demand.error is None and demand.points[-1][1] == pytest.approx(0.375)
    assert fetch_per_pod(scraped, "triton", "kvCacheDemand", {"namespace": "it"}) == {
        "sim-0": 0.375
    }


def test_queue_compute_ratio(scraped: str) -> None:
    samples = _wait_for(scraped, "queueComputeRatio")
    assert samples.error is None
    assert samples.points[-1][1] == pytest.approx(2.0, rel=0.2)
    per_pod = fetch_per_pod(scraped, "triton", "queueComputeRatio", {"namespace": "it"})
    assert set(per_pod) == {"sim-0"}


def test_nothing_selected_is_unavailable(scraped: str) -> None:
    samples = fetch_samples(scraped, "triton", "waitingRequests", {"namespace": "nope"})
    assert samples.points == () and "returned no series" in samples.error


def test_unreachable_prometheus_is_unavailable() -> None:
    url = f"http://127.0.0.1:{prom.free_port()}"
    started = time.monotonic()
    samples = fetch_samples(url, "triton", "waitingRequests", {"namespace": "it"}, timeout_s=2)
    assert samples.points == () and "unreachable" in samples.error
    assert time.monotonic() - started < 10


def test_targets_can_change_while_running(scraped: str) -> None:
    p = prom.attached("it-fetch")
    assert p is not None and prom.is_ready(p.url)
    prom.set_targets(p, [prom.Target("127.0.0.1:1", {"namespace": "gone"})])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{p.url}/api/v1/targets", timeout=2) as response:
            active = json.load(response)["data"]["activeTargets"]
        if [t["labels"].get("namespace") for t in active] == ["gone"]:
            return
        time.sleep(0.5)
    pytest.fail(f"Prometheus did not pick up the new file_sd targets: {active}")
