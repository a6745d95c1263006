"""LocalServer: life cycle of an aiohttp application on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from aiohttp import web

from sunpy_archives.testing import LocalServer


def _app(text: str = "hello") -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=text)

    async def slow(request: web.Request) -> web.Response:
        import asyncio

        await asyncio.sleep(0.2)
        return web.Response(text="slow")

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/slow", slow)
    return app


def test_start_serves_on_free_local_port():
    server = LocalServer(_app())
    assert server.start() is server
    try:
        assert server.running
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert not server.url.endswith("/")
        answer = requests.get(server.url + "/hello", timeout=5)
        assert answer.status_code == 200
        assert answer.text == "hello"
        assert requests.get(server.url + "/nothing", timeout=5).status_code == 404
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/hello", timeout=2)


def test_url_before_start_raises():
    server = LocalServer(_app())
    with pytest.raises(RuntimeError, match="not started"):
        server.url
    server.stop()  # stopping a server that never started is harmless


def test_stop_is_idempotent_and_restart_refused():
    server = LocalServer(_app()).start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="restarted"):
        server.start()


def test_context_manager_and_two_servers_side_by_side():
    with LocalServer(_app("one")) as first, LocalServer(_app("two")) as second:
        assert first.port != second.port
        assert requests.get(first.url + "/hello", timeout=5).text == "one"
        assert requests.get(second.url + "/hello", timeout=5).text == "two"
    assert not first.running and not second.running


def test_stop_does_not_hang_on_open_keepalive_connection():
    server = LocalServer(_app()).start()
    session = requests.Session()  # keeps the connection open
    assert session.get(server.url + "/hello", timeout=5).ok
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    session.close()


def test_stop_waits_for_request_in_flight():
    server = LocalServer(_app()).start()
    results = []

    def fetch():
        results.append(requests.get(server.url + "/slow", timeout=5).text)

    thread = threading.Thread(target=fetch)
    thread.start()
    time.sleep(0.05)
    server.stop()
    thread.join(5)
    assert results == ["slow"]


def test_port_in_use_is_reported():
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(RuntimeError, match="could not listen"):
            LocalServer(_app(), port=port).start()
    finally:
        blocker.close()


def test_run_forever_returns_when_stopped_from_another_thread():
    server = LocalServer(_app())
    runner = threading.Thread(target=server.run_forever, daemon=True)
    runner.start()
    deadline = time.monotonic() + 5
    while not server.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert requests.get(server.url + "/hello", timeout=5).text == "hello"
    server.stop()
    runner.join(5)
    assert not runner.is_alive()


def test_unraisable_filter_drops_only_the_foreign_loop_close_error():
    import sys
    import threading
    from types import SimpleNamespace

    from sunpy_archives.testing.server import _THREAD_PREFIX, _install_unraisable_filter

    seen = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(str(unraisable.exc_value))
    try:
        _install_unraisable_filter()

        def fire(message):
            sys.unraisablehook(SimpleNamespace(exc_value=ValueError(message)))

        for name, message in [(_THREAD_PREFIX + "a", "signal only works in main thread of the main"),
                              (_THREAD_PREFIX + "b", "something else")]:
            thread = threading.Thread(target=fire, args=(message,), name=name)
            thread.start()
            thread.join()
        fire("signal only works in main thread")  # not a server thread: reported
    finally:
        sys.unraisablehook = old
    assert seen == ["something else", "signal only works in main thread"]
