"""
Run an aiohttp application on 127.0.0.1 in a background thread.

`LocalServer` gives every local archive server the same life cycle: start on a
free port, serve from a daemon thread with its own event loop (so synchronous
test code and synchronous clients such as ``requests`` can talk to it), and
shut down cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from types import TracebackType

from aiohttp import web

__all__ = ["LocalServer"]

_THREAD_PREFIX = "LocalServer-"


def _install_unraisable_filter() -> None:
    """Drop one known, harmless error in server threads; pass everything else on.

    parfive never closes the event loop it makes for a download, and that loop
    holds SIGINT/SIGTERM handlers. If the garbage collector happens to run in a
    server thread, the loop's ``__del__`` tries to remove those handlers there
    and Python refuses ("signal only works in main thread"), printing a
    traceback that has nothing to do with the server.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_sunpy_archives_filter", False):
        return

    def hook(unraisable):
        exc = unraisable.exc_value
        if (isinstance(exc, ValueError) and "signal only works in main thread" in str(exc)
                and threading.current_thread().name.startswith(_THREAD_PREFIX)):
            return
        previous(unraisable)

    hook._sunpy_archives_filter = True
    sys.unraisablehook = hook


class LocalServer:
    """An aiohttp application served over real HTTP on a local port.

    Parameters
    ----------
    app : aiohttp.web.Application
        The application to serve. An application can be served only once.
    host : str
        Interface to listen on.
    port : int
        Port to listen on; ``0`` picks a free port.
    shutdown_timeout : float
        Seconds `stop` waits for requests still being answered.

    Examples
    --------
    >>> from aiohttp import web
    >>> app = web.Application()
    >>> with LocalServer(app) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:54321
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0,
                 *, shutdown_timeout: float = 2.0):
        self.app = app
        self.host = host
        self._requested_port = port
        self._shutdown_timeout = shutdown_timeout
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._state = "new"  # new -> running -> stopped
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- info

    @property
    def port(self) -> int:
        """The port the server listens on (only known once started)."""
        if self._port is None:
            raise RuntimeError("LocalServer is not started; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """Root URL of the server, ``http://HOST:PORT`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._state == "running"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop of the server thread (``None`` when not running)."""
        return self._loop

    def __repr__(self) -> str:
        where = self.url if self._port is not None else f"{self.host}:{self._requested_port}"
        return f"<{type(self).__name__} {where} ({self._state})>"

    # ----------------------------------------------------------- life cycle

    def start(self, timeout: float = 30.0) -> LocalServer:
        """Start serving in a daemon thread; return once the port is listening.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the server to listen.

        Returns
        -------
        LocalServer
            This server (so ``server = LocalServer(app).start()`` works).
        """
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise RuntimeError("a LocalServer cannot be restarted; create a new one")
            _install_unraisable_filter()
            self._thread = threading.Thread(
                target=self._thread_main, name=f"{_THREAD_PREFIX}{id(self):x}", daemon=True
            )
            self._thread.start()
            if not self._ready.wait(timeout):
                raise RuntimeError(f"LocalServer did not start within {timeout} s")
            if self._startup_error is not None:
                self._thread.join(timeout)
                self._state = "stopped"
                raise RuntimeError(
                    f"LocalServer could not listen on {self.host}:{self._requested_port}: "
                    f"{self._startup_error}"
                ) from self._startup_error
            self._state = "running"
        return self

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            loop.close()
            self._loop = None
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None

    async def _setup(self) -> None:
        runner = web.AppRunner(self.app, access_log=None,
                               shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = None
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                port = address[1]
                break
        if port is None:
            raise RuntimeError("could not find the listening port")
        self._port = int(port)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end. Safe to call twice.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the shutdown.
        """
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
            loop, runner, thread = self._loop, self._runner, self._thread
        if loop is not None and runner is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)
            try:
                future.result(timeout)
            except Exception:  # still stop the loop below
                pass
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        self._runner = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Serve in the foreground until Ctrl-C, SIGTERM, or `stop` from another thread."""
        previous = None
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread:
            def interrupt(signum, frame):
                raise KeyboardInterrupt

            previous = signal.signal(signal.SIGTERM, interrupt)
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the server thread has ended.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait; ``None`` waits forever.

        Returns
        -------
        bool
            ``True`` if the thread has ended.
        """
        if self._thread is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._thread.join(remaining if remaining is not None else 0.5)
            if deadline is not None and time.monotonic() >= deadline:
                break
        return not self._thread.is_alive()
