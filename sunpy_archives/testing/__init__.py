"""
Local archive servers for tests, examples and benchmarks.

Each server is an aiohttp application built from deterministic generated
data and served over real HTTP on 127.0.0.1 (`LocalServer`). All of them share
one fault-injection middleware configured by a `FaultConfig`.

The pytest fixtures live in `sunpy_archives.testing.fixtures` (registered as a
pytest plugin); ``python -m sunpy_archives.testing spice`` serves an archive
from the command line.
"""

from .faults import FaultConfig, fault_middleware, send_bytes
from .server import LocalServer
from .spice import (
    SpiceArchiveData,
    SpiceServer,
    make_spice_app,
    spice_classifier,
    start_spice_server,
)

__all__ = [
    "FaultConfig",
    "LocalServer",
    "SpiceArchiveData",
    "SpiceServer",
    "fault_middleware",
    "make_spice_app",
    "send_bytes",
    "spice_classifier",
    "start_spice_server",
]
