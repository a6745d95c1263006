"""The shared fault-injection middleware and send_bytes, over real sockets."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import requests
from aiohttp import web

from sunpy_archives.testing import FaultConfig, LocalServer, fault_middleware, send_bytes

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
JSON_TEXT = '{"items": "' + "x" * 50_000 + '"}'


def _classify(request: web.BaseRequest) -> str | None:
    if request.path.startswith("/search"):
        return "search"
    if request.path.startswith("/free"):
        return None
    return "data"


@pytest.fixture(scope="module")
def faults() -> FaultConfig:
    return FaultConfig()


@pytest.fixture(scope="module")
def server(faults):
    async def data(request: web.Request) -> web.StreamResponse:
        return await send_bytes(request, PAYLOAD, content_type="application/octet-stream",
                                headers={"X-Extra": "1"})

    async def search(request: web.Request) -> web.Response:
        return web.Response(text=JSON_TEXT, content_type="application/json")

    app = web.Application(middlewares=[fault_middleware(faults, _classify)])
    app.router.add_get("/data/{name}", data)
    app.router.add_get("/search", search)
    app.router.add_get("/free", search)
    with LocalServer(app) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(faults):
    faults.reset()
    yield
    faults.reset()


def get(server, path, **kwargs):
    return requests.get(server.url + path, timeout=10, **kwargs)


def test_no_faults_by_default(server, faults):
    answer = get(server, "/data/a")
    assert answer.status_code == 200
    assert answer.content == PAYLOAD
    assert answer.headers["Content-Length"] == str(len(PAYLOAD))
    assert answer.headers["Accept-Ranges"] == "bytes"
    assert answer.headers["X-Extra"] == "1"
    assert faults.requests_seen == 1
    assert faults.faults_injected == 0
    assert faults.hits["/data/a"] == 1
    assert faults.bytes_sent["/data/a"] == len(PAYLOAD)


def test_fail_first_fails_each_path_once(server, faults):
    faults.fail_first = 1
    first = get(server, "/data/a")
    assert first.status_code in (500, 502, 503)
    assert first.headers["X-Fault-Injected"] == "1"
    second = get(server, "/data/a")
    assert second.status_code == 200
    assert second.content == PAYLOAD
    # Another path has its own count.
    assert get(server, "/data/b").status_code >= 500
    assert get(server, "/data/b").status_code == 200
    assert faults.failures_injected == 2
    assert faults.hits == {"/data/a": 2, "/data/b": 2}


def test_fail_first_counts_query_strings_separately(server, faults):
    faults.fail_first = 2
    assert get(server, "/data/a?x=1").status_code >= 500
    assert get(server, "/data/a?x=2").status_code >= 500
    assert get(server, "/data/a?x=1").status_code >= 500
    assert get(server, "/data/a?x=1").status_code == 200


def test_retry_after_on_503_and_429_only(server, faults):
    faults.configure(fail_rate=1.0, statuses=(503,), retry_after=2)
    answer = get(server, "/data/a")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "2"
    faults.statuses = (429,)
    faults.retry_after = 0.5
    answer = get(server, "/data/a")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "0.5"
    faults.statuses = (500,)
    answer = get(server, "/data/a")
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers
    faults.statuses = (503,)
    faults.retry_after = None
    assert "Retry-After" not in get(server, "/data/a").headers


def test_fail_rate_is_deterministic_for_a_seed(server, faults):
    def statuses(seed):
        faults.reset()
        faults.configure(seed=seed, fail_rate=0.5, statuses=(500, 502, 503))
        return [get(server, f"/data/{i}").status_code for i in range(30)]

    first = statuses(7)
    assert statuses(7) == first
    assert 0 < sum(code != 200 for code in first) < 30
    assert set(first) <= {200, 500, 502, 503}
    assert statuses(8) != first


def test_classes_limit_the_faults(server, faults):
    faults.configure(fail_rate=1.0, classes={"search"})
    assert get(server, "/data/a").status_code == 200
    assert get(server, "/search").status_code >= 500
    faults.classes = {"data"}
    assert get(server, "/search").status_code == 200
    assert get(server, "/data/a").status_code >= 500
    # Requests the classifier maps to None are never faulted, only counted.
    faults.classes = {"search", "data", "staging"}
    assert get(server, "/free").status_code == 200
    assert faults.hits["/free"] == 1


def test_cut_response_requests_sees_truncated_body(server, faults):
    faults.cut_rate = 1.0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server, "/data/a")
    assert faults.cuts_injected == 1
    assert faults.bytes_sent["/data/a"] == len(PAYLOAD) // 2
    # A body built by the handler (web.Response) is cut too.
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server, "/search")
    faults.cut_rate = 0.0
    assert get(server, "/data/a").content == PAYLOAD


def test_cut_response_aiohttp_sees_payload_error(server, faults):
    faults.cut_rate = 1.0

    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/data/a") as answer:
                assert answer.status == 200
                assert answer.content_length == len(PAYLOAD)
                return await answer.read()

    with pytest.raises(aiohttp.ClientPayloadError):
        asyncio.run(fetch())


def test_bandwidth_limits_transfer_rate(server, faults):
    started = time.monotonic()
    assert get(server, "/data/a").content == PAYLOAD
    unlimited = time.monotonic() - started
    faults.bandwidth = 200_000  # 102,400 bytes -> about 0.5 s
    started = time.monotonic()
    assert get(server, "/data/a").content == PAYLOAD
    limited = time.monotonic() - started
    assert 0.4 < limited < 3.0
    assert limited > unlimited
    # The limit applies to bodies built by the handler too (50 kB at 100 kB/s).
    faults.bandwidth = 100_000
    started = time.monotonic()
    assert get(server, "/search").text == JSON_TEXT
    assert 0.35 < time.monotonic() - started < 3.0


def test_latency_delays_answers(server, faults):
    faults.latency = 0.3
    started = time.monotonic()
    assert get(server, "/data/a").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_config_can_change_while_running_and_reset(server, faults):
    faults.fail_rate = 1.0
    assert get(server, "/data/a").status_code >= 500
    faults.fail_rate = 0.0
    assert get(server, "/data/a").status_code == 200
    faults.configure(latency=1.0, cut_rate=0.5, bandwidth=10, fail_first=3, retry_after=1)
    faults.reset()
    assert faults.settings() == FaultConfig().settings()
    assert faults.requests_seen == 0 and not faults.hits and not faults.active
    assert get(server, "/data/a").status_code == 200


def test_range_requests(server, faults):
    answer = get(server, "/data/a", headers={"Range": "bytes=100-199"})
    assert answer.status_code == 206
    assert answer.content == PAYLOAD[100:200]
    assert answer.headers["Content-Range"] == f"bytes 100-199/{len(PAYLOAD)}"
    assert answer.headers["Content-Length"] == "100"
    answer = get(server, "/data/a", headers={"Range": "bytes=102000-"})
    assert answer.status_code == 206 and answer.content == PAYLOAD[102000:]
    answer = get(server, "/data/a", headers={"Range": "bytes=-10"})
    assert answer.status_code == 206 and answer.content == PAYLOAD[-10:]
    answer = get(server, "/data/a", headers={"Range": "bytes=0-999999"})
    assert answer.status_code == 206 and answer.content == PAYLOAD
    answer = get(server, "/data/a", headers={"Range": f"bytes={len(PAYLOAD)}-"})
    assert answer.status_code == 416
    assert answer.headers["Content-Range"] == f"bytes */{len(PAYLOAD)}"
    # A range with a cut: half of the range, then the connection closes.
    faults.cut_rate = 1.0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server, "/data/a", headers={"Range": "bytes=0-999"})
    assert faults.bytes_sent["/data/a"] == 100 + 400 + 10 + len(PAYLOAD) + 500


def test_head_sends_headers_only(server, faults):
    answer = requests.head(server.url + "/data/a", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Length"] == str(len(PAYLOAD))
    assert answer.content == b""
    assert faults.bytes_sent["/data/a"] == 0
    assert faults.hits["/data/a"] == 1 and faults.get_hits["/data/a"] == 0


def test_send_bytes_without_middleware_uses_faults_argument():
    config = FaultConfig(cut_rate=1.0)

    async def data(request: web.Request) -> web.StreamResponse:
        return await send_bytes(request, PAYLOAD, faults=config)

    app = web.Application()
    app.router.add_get("/x", data)
    with LocalServer(app) as server:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(server.url + "/x", timeout=10)
    assert config.cuts_injected == 1


@pytest.mark.parametrize("setting, value", [
    ("fail_rate", 1.5), ("cut_rate", -0.1), ("statuses", ()), ("statuses", (200,)),
    ("bandwidth", 0), ("latency", -1), ("fail_first", -1), ("classes", {"bogus"}),
])
def test_invalid_settings_are_refused(setting, value):
    with pytest.raises(ValueError):
        FaultConfig().configure(**{setting: value})


def test_unknown_setting_is_refused():
    with pytest.raises(TypeError):
        FaultConfig().configure(fail_ratio=0.5)


# --- the modes added for the reliability suite ---------------------------------------------------

@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retry_after_on_any_status_when_asked(server, faults, status):
    faults.configure(fail_rate=1.0, statuses=(status,), retry_after=1,
                     retry_after_statuses=(500, 502, 503, 429))
    answer = get(server, "/data/a")
    assert answer.status_code == status
    assert answer.headers["Retry-After"] == "1"
    faults.retry_after_statuses = ()
    assert "Retry-After" not in get(server, "/data/a").headers
    assert faults.statuses_injected[status] == 2


def test_class_fail_rates_override_fail_rate(server, faults):
    faults.configure(fail_rate=1.0, class_fail_rates={"data": 0.0})
    assert get(server, "/data/a").status_code == 200
    assert get(server, "/search").status_code >= 500
    faults.configure(fail_rate=0.0, class_fail_rates={"search": 1.0})
    assert get(server, "/data/a").status_code == 200
    assert get(server, "/search").status_code >= 500
    assert faults.active


def test_class_fail_rate_is_deterministic_and_near_the_rate(server, faults):
    def statuses():
        faults.reset()
        faults.configure(seed=11, class_fail_rates={"data": 0.2})
        return [get(server, f"/data/{i}").status_code for i in range(60)]

    first = statuses()
    assert statuses() == first
    failed = sum(code != 200 for code in first)
    assert failed == faults.failures_injected
    assert 3 <= failed <= 24  # 20% of 60 = 12, far from both bounds


def test_overlong_content_length_sends_whole_body_then_closes(server, faults):
    faults.configure(overlong_rate=1.0, overlong_extra=500)

    async def fetch(path):
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + path) as answer:
                assert answer.content_length == len(PAYLOAD) + 500
                got = b""
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for piece in answer.content.iter_any():
                        got += piece
                return got

    assert asyncio.run(fetch("/data/a")) == PAYLOAD  # every real byte, yet not "complete"
    assert faults.overlongs_injected == 1 and faults.faults_injected == 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server, "/search")  # a handler-built body too
    assert faults.overlongs_injected == 2
    # HEAD announces the true length.
    assert requests.head(server.url + "/data/a", timeout=10).headers["Content-Length"] == str(
        len(PAYLOAD))


def test_slow_response_stalls_mid_body_then_completes(server, faults):
    faults.configure(slow_rate=1.0, slow_delay=0.4)
    started = time.monotonic()
    assert get(server, "/data/a").content == PAYLOAD
    assert time.monotonic() - started >= 0.4
    assert faults.slows_injected == 1
    # A client with a shorter read timeout sees the stall as a timeout.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url + "/data/a", timeout=(5, 0.1)).content
    time.sleep(0.4)  # let the server finish the stalled answer


def test_modes_combine_deterministically(server, faults):
    def run():
        faults.reset()
        faults.configure(seed=5, fail_rate=0.2, cut_rate=0.2, overlong_rate=0.2,
                         statuses=(500, 502, 503, 429))
        outcomes = []
        for i in range(30):
            try:
                answer = get(server, f"/data/{i}")
                outcomes.append(answer.status_code if answer.content == PAYLOAD else "short")
            except requests.exceptions.RequestException:
                outcomes.append("broken")
        return outcomes, faults.faults_injected

    first = run()
    assert run() == first
    assert {"broken"} & set(first[0]) and {200} & set(first[0])
    assert first[1] == sum(o != 200 for o in first[0])


@pytest.mark.parametrize("setting, value", [
    ("slow_rate", 2), ("overlong_rate", -1), ("slow_delay", -0.1), ("overlong_extra", 0),
    ("class_fail_rates", {"bogus": 0.1}), ("class_fail_rates", {"data": 1.5}),
    ("retry_after_statuses", (200,)),
])
def test_invalid_new_settings_are_refused(setting, value):
    with pytest.raises(ValueError):
        FaultConfig().configure(**{setting: value})
