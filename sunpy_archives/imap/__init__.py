"""
The IMAP Science Data Center (SDC).

`IMAPClient` is the Fido client (attrs under ``a.imap``). `query`,
`spice_query`, `download` and `upload` are the same operations without Fido,
with the arguments of the official ``imap-data-access`` functions; the
``sunpy-archives imap`` command line (`sunpy_archives.imap.cli`) is built on
them.

Settings, read when a client (or call) is made: ``IMAP_DATA_ACCESS_URL``,
``IMAP_API_KEY`` (or ``IMAP_ACCESS_TOKEN``), ``IMAP_DATA_DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .api import (
    AuthenticationError,
    SDCApi,
    UploadConflictError,
    UploadError,
    storage_splits,
)
from .client import IMAPClient
from .filenames import parse_filename, relative_path
from .upload import upload

__all__ = ["IMAPClient", "SDCApi", "query", "spice_query", "download", "upload", "data_dir",
           "parse_filename", "relative_path", "AuthenticationError", "UploadError",
           "UploadConflictError"]


def data_dir(value: str | os.PathLike | None = None) -> Path:
    """The local SDC mirror: ``value``, else ``IMAP_DATA_DIR``, else ``./data`` (as the official client)."""
    if value is not None:
        return Path(value).expanduser()
    env = os.environ.get("IMAP_DATA_DIR")
    return Path(env).expanduser() if env else Path.cwd() / "data"


_default_data_dir = data_dir  # ``download`` has a parameter of the same name


def query(*, url: str | None = None, api_key: str | None = None, **kwargs) -> list[dict]:
    """Query the SDC ``/query`` endpoint; the same keywords as ``imap_data_access.query``.

    Parameters
    ----------
    url, api_key : str, optional
        Default: ``IMAP_DATA_ACCESS_URL``, ``IMAP_API_KEY``.
    **kwargs
        ``table``, ``instrument``, ``data_level``, ``descriptor``, ``start_date``,
        ``end_date``, ``ingestion_start_date``, ``ingestion_end_date``,
        ``repointing``, ``version`` (or ``"latest"``), ``major_version``,
        ``minor_version``, ``extension``.

    Returns
    -------
    list of dict
        The SDC's records.

    Examples
    --------
    >>> from sunpy_archives import imap
    >>> imap.query(instrument="mag", data_level="l2", start_date="20250101",
    ...            end_date="20250107", version="latest")  # doctest: +SKIP
    """
    return SDCApi(url, api_key=api_key).query(**kwargs)


def spice_query(*, url: str | None = None, api_key: str | None = None, **kwargs) -> list[dict]:
    """Query the SDC ``/spice-query`` endpoint; the keywords of ``imap_data_access.spice_query``."""
    return SDCApi(url, api_key=api_key).spice_query(**kwargs)


def _locate(item: Any) -> tuple[str, str]:
    """(file name, SDC folder) of a file name, path, record or table row."""
    if isinstance(item, (str, os.PathLike)):
        parsed = parse_filename(item)
        return parsed.name, parsed.sdc_dir
    if isinstance(item, dict):
        path = item.get("file_path") or item.get("file_name")
        if not path:
            raise ValueError("a record to download needs 'file_path' (or 'file_name')")
        name = str(path).rsplit("/", 1)[-1]
        folder = str(path).rsplit("/", 1)[0] if "/" in str(path) else parse_filename(name).sdc_dir
        return name, folder
    try:
        return str(item["Filename"]), str(item["SDC Dir"])
    except (KeyError, TypeError, IndexError):
        raise TypeError(f"cannot download {item!r}: give file names, SDC records or result rows")


def download(files, *, data_dir: str | os.PathLike | None = None, url: str | None = None,
             api_key: str | None = None, overwrite: bool = False, progress: bool = True,
             max_conn: int | None = None):
    """Download files into the SDC layout below ``IMAP_DATA_DIR``, in parallel.

    Files already complete there are not fetched again (no request is made
    for them, as with the official client).

    Parameters
    ----------
    files : str, path-like, dict, table row, or an iterable of them
        File names (a path is accepted; its name is what counts), records from
        `query`, or rows/tables from `IMAPClient.search`.
    data_dir : path-like, optional
        Default ``IMAP_DATA_DIR``, else ``./data``.
    url, api_key : str, optional
        Default ``IMAP_DATA_ACCESS_URL``, ``IMAP_API_KEY``.
    overwrite : bool
        Fetch again even complete files.
    progress : bool
        Show parfive's progress bar.
    max_conn : int, optional
        Parallel downloads (default: setting ``max_conn``, ``SUNPY_ARCHIVES_MAX_CONN``).

    Returns
    -------
    pathlib.Path or list of pathlib.Path
        One path for one file name given, else a list in the order given.

    Raises
    ------
    BadInputError
        A name that is not an IMAP file name (before any request).
    DownloadError
        A file could not be downloaded (``.results`` holds parfive's Results).

    Examples
    --------
    >>> from sunpy_archives import imap
    >>> imap.download("imap_mag_l2_norm-rtn_20250105_v001.0001.cdf")  # doctest: +SKIP
    PosixPath('data/imap/mag/l2/2025/01/imap_mag_l2_norm-rtn_20250105_v001.0001.cdf')
    """
    from ..core.download import DownloadJob, enqueue, is_complete, make_downloader
    from ..core.errors import DownloadError
    from ..core.paths import RelPath
    from .filenames import ARCHIVE

    single = isinstance(files, (str, os.PathLike, dict)) or hasattr(files, "response_block_map")
    items: Iterable = [files] if single else files
    located = [_locate(item) for item in items]  # every name checked before any request
    root = _default_data_dir(data_dir)
    api = SDCApi(url, api_key=api_key)
    destinations = [root / folder / name for name, folder in located]
    jobs = []
    for (name, folder), dest in zip(located, destinations):
        if not overwrite and is_complete(dest):
            continue
        jobs.append(DownloadJob(api.download_url(f"{folder}/{name}"), name,
                                {"sdc_dir": RelPath(folder)}))
    if jobs:
        middleware = api.middleware()
        downloader = make_downloader(max_conn=max_conn, progress=progress, overwrite=overwrite)
        enqueue(downloader, jobs, str(root / "{sdc_dir}" / "{file}"),
                middlewares=(middleware,), max_splits=storage_splits())
        results = downloader.download()
        if results.errors:
            first = results.errors[0]
            error = DownloadError(api.scrub(f"{len(results.errors)} of {len(jobs)} file(s) failed "
                                            f"(first: {first.url.split('?', 1)[0]}: "
                                            f"{first.exception})"), archive=ARCHIVE)
            error.results = results
            raise error
    return destinations[0] if single else destinations
