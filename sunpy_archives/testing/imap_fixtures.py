"""
pytest fixtures for the local IMAP SDC server.

``imap_server``
    Session-wide server on `ImapArchiveData.small`, faults off.
``imap_faults``
    Its `~sunpy_archives.testing.FaultConfig`, reset before and after the test.
``imap_env``
    The server, with ``IMAP_DATA_ACCESS_URL`` pointing at it, ``IMAP_DATA_DIR``
    set to a temporary folder, and ``IMAP_API_KEY``/``IMAP_ACCESS_TOKEN``
    unset (a test that needs a key sets it with ``monkeypatch``). Uploaded
    files are forgotten after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .faults import FaultConfig
from .imap import ImapArchiveData, ImapServer, start_imap_server

__all__ = ["imap_server", "imap_faults", "imap_env"]


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    """An IMAP SDC server (small archive, no faults) for the whole session."""
    server = start_imap_server(ImapArchiveData.small())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_faults(imap_server: ImapServer) -> Iterator[FaultConfig]:
    """The fault configuration of `imap_server`, reset before and after the test."""
    imap_server.faults.reset()
    try:
        yield imap_server.faults
    finally:
        imap_server.faults.reset()


@pytest.fixture
def imap_env(imap_server: ImapServer, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[ImapServer]:
    """`imap_server` with the IMAP environment variables pointing at it."""
    monkeypatch.setenv("IMAP_DATA_ACCESS_URL", imap_server.url)
    monkeypatch.setenv("IMAP_DATA_DIR", str(tmp_path / "imap-data"))
    monkeypatch.delenv("IMAP_API_KEY", raising=False)
    monkeypatch.delenv("IMAP_ACCESS_TOKEN", raising=False)
    imap_server.seen.clear()
    try:
        yield imap_server
    finally:
        imap_server.data.clear_uploads()
