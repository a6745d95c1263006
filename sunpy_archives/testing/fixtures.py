"""
pytest fixtures starting the local archive servers.

Registered as a pytest plugin through the ``pytest11`` entry point (and listed
in ``tests/conftest.py``), so every test module can use:

``spice_server``
    Session-wide SPICE server on the small generated archive, faults off.
``spice_faults``
    The `~sunpy_archives.testing.FaultConfig` of that server, reset after
    the test (so a test can switch faults on without affecting others).
``spice_env``
    The server, with ``SUNPY_ARCHIVES_SPICE_URL`` and
    ``SUNPY_ARCHIVES_SOAR_URL`` pointing at it for the test's duration.

and likewise ``imap_server``/``imap_faults``/``imap_env``,
``jsoc_server``/``jsoc_faults``/``jsoc_env`` and
``eso_server``/``eso_faults``/``eso_env``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .faults import FaultConfig
from .spice import SpiceArchiveData, SpiceServer, start_spice_server

# The other archives' fixtures live beside their servers; this module is the one
# pytest plugin that offers them all.
from .eso_fixtures import eso_env, eso_faults, eso_server  # noqa: E402,F401
from .imap_fixtures import imap_env, imap_faults, imap_server  # noqa: E402,F401
from .jsoc_fixtures import jsoc_env, jsoc_faults, jsoc_server  # noqa: E402,F401

__all__ = [
    "spice_server", "spice_faults", "spice_env",
    "imap_server", "imap_faults", "imap_env",
    "jsoc_server", "jsoc_faults", "jsoc_env",
    "eso_server", "eso_faults", "eso_env",
]



@pytest.fixture(scope="session")
def spice_server() -> Iterator[SpiceServer]:
    """A SPICE archive server (small archive, no faults) for the whole session.

    Tests that change ``spice_server.faults`` must reset them: use the
    `spice_faults` fixture. Tests that add hostile rows must remove them
    (``spice_server.data.clear_added_rows()``).
    """
    server = start_spice_server(SpiceArchiveData.small())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def spice_faults(spice_server: SpiceServer) -> Iterator[FaultConfig]:
    """The fault configuration of `spice_server`, reset before and after the test."""
    spice_server.faults.reset()
    try:
        yield spice_server.faults
    finally:
        spice_server.faults.reset()


@pytest.fixture
def spice_env(spice_server: SpiceServer, monkeypatch: pytest.MonkeyPatch) -> SpiceServer:
    """`spice_server`, with the environment variables of the SPICE client set to it."""
    for key, value in spice_server.environment().items():
        monkeypatch.setenv(key, value)
    return spice_server
