"""
The bundled local servers by archive name, for the command line and scripts.
"""

from __future__ import annotations

from collections.abc import Callable

from .server import LocalServer

__all__ = ["ARCHIVES", "start_server"]

#: Archive names in the order the command line lists them.
ARCHIVES = ("spice", "imap", "jsoc", "eso")


def _spice(large: bool, port: int) -> LocalServer:
    from .spice import SpiceArchiveData, start_spice_server

    return start_spice_server(SpiceArchiveData.large() if large else SpiceArchiveData.small(), port=port)


def _imap(large: bool, port: int) -> LocalServer:
    from .imap import ImapArchiveData, start_imap_server

    return start_imap_server(ImapArchiveData.large() if large else ImapArchiveData.small(), port=port)


def _jsoc(large: bool, port: int) -> LocalServer:
    from .jsoc import start_jsoc_server

    return start_jsoc_server(port=port)  # records are generated per query: no size to choose


def _eso(large: bool, port: int) -> LocalServer:
    from .eso import EsoArchiveData, start_eso_server

    return start_eso_server(EsoArchiveData.small(), port=port)


_STARTERS: dict[str, Callable[[bool, int], LocalServer]] = {
    "spice": _spice, "imap": _imap, "jsoc": _jsoc, "eso": _eso}


def start_server(archive: str, *, large: bool = False, port: int = 0) -> LocalServer:
    """Start the bundled local server of ``archive``; its ``environment()`` points a client at it.

    Parameters
    ----------
    archive : {"spice", "imap", "jsoc", "eso"}
    large : bool
        Serve the large generated archive (for benchmarks), where there is one.
    port : int
        Port to listen on (0: a free one).
    """
    try:
        starter = _STARTERS[archive]
    except KeyError:
        raise ValueError(f"no local server for {archive!r}; choose one of {', '.join(ARCHIVES)}") from None
    return starter(large, port)
