"""
pytest fixtures starting the local ESO archive server.

``eso_server``
    Session-wide ESO server on `~sunpy_archives.testing.eso.EsoArchiveData.small`, faults off.
``eso_faults``
    The `~sunpy_archives.testing.FaultConfig` of that server, reset before and
    after the test; the server's row limits are restored too.
``eso_env``
    The server, with ``SUNPY_ARCHIVES_ESO_URL`` pointing at it for the test's duration.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .eso import EsoArchiveData, EsoServer, start_eso_server
from .faults import FaultConfig

__all__ = ["eso_env", "eso_faults", "eso_server"]



@pytest.fixture(scope="session")
def eso_server() -> Iterator[EsoServer]:
    """An ESO archive server (small archive, no faults) for the whole session.

    Tests that change ``eso_server.faults`` or ``eso_server.data.default_maxrec``
    must use `eso_faults`, which restores them.
    """
    server = start_eso_server(EsoArchiveData.small())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def eso_faults(eso_server: EsoServer) -> Iterator[FaultConfig]:
    """The fault configuration of `eso_server`, reset before and after the test."""
    data = eso_server.data
    limits = (data.default_maxrec, data.hard_maxrec, dict(data.content_disposition))
    eso_server.faults.reset()
    try:
        yield eso_server.faults
    finally:
        eso_server.faults.reset()
        data.default_maxrec, data.hard_maxrec = limits[0], limits[1]
        data.content_disposition = limits[2]


@pytest.fixture
def eso_env(eso_server: EsoServer, monkeypatch: pytest.MonkeyPatch) -> EsoServer:
    """`eso_server`, with ``SUNPY_ARCHIVES_ESO_URL`` set to it."""
    for key, value in eso_server.environment().items():
        monkeypatch.setenv(key, value)
    return eso_server
