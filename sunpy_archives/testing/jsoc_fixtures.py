"""
pytest fixtures starting the local JSOC server.

``jsoc_server``
    Session-wide JSOC server, faults off, default export settings.
``jsoc_faults``
    Its `~sunpy_archives.testing.FaultConfig`, reset before and after the test;
    the export settings (`~sunpy_archives.testing.jsoc.JsocState`) are reset too.
``jsoc_env``
    The server, with ``SUNPY_ARCHIVES_JSOC_URL`` pointing at it and
    ``SUNPY_ARCHIVES_JSOC_EMAIL`` set to a registered address, for the test's
    duration; export settings reset before and after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .faults import FaultConfig
from .jsoc import REGISTERED_EMAIL, JsocServer, start_jsoc_server

__all__ = ["jsoc_server", "jsoc_faults", "jsoc_env", "JSOC_EMAIL"]

JSOC_EMAIL_VARIABLE = "SUNPY_ARCHIVES_JSOC_EMAIL"
#: An address the local server treats as registered.
JSOC_EMAIL = REGISTERED_EMAIL


@pytest.fixture(scope="session")
def jsoc_server() -> Iterator[JsocServer]:
    """A JSOC server for the whole session (use `jsoc_faults`/`jsoc_env` to change settings)."""
    server = start_jsoc_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def jsoc_faults(jsoc_server: JsocServer) -> Iterator[FaultConfig]:
    """The fault configuration of `jsoc_server`, reset (with the export state) before and after."""
    jsoc_server.faults.reset()
    jsoc_server.state.reset()
    try:
        yield jsoc_server.faults
    finally:
        jsoc_server.faults.reset()
        jsoc_server.state.reset()


@pytest.fixture
def jsoc_env(jsoc_server: JsocServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[JsocServer]:
    """`jsoc_server` with the client's environment variables pointing at it."""
    for key, value in jsoc_server.environment().items():
        monkeypatch.setenv(key, value)
    jsoc_server.state.reset()
    jsoc_server.faults.reset()
    try:
        yield jsoc_server
    finally:
        jsoc_server.state.reset()
        jsoc_server.faults.reset()
