"""
One catalog row as a file: where it can be fetched from, and fetching it.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from ..core.config import get_setting
from ..core.download import DownloadJob, fetch, relpath_values
from ..core.errors import BadInputError, DownloadError
from .release import ARCHIVE, Release

__all__ = ["FileMetadata", "file_url", "soar_file_url", "SPICE_FILENAME"]

#: The SPICE file-name convention (PROTOCOLS 1.3).
SPICE_FILENAME = re.compile(
    r"^solo_(?P<level>L\d|LL\d\d)_spice(?:-concat)?-(?P<slit>[nw])-(?P<type>ras|sit|exp)"
    r"(?:-db)?(?:-int)?_(?P<time>\d{8}T\d{6}(?:\d{3})?)_V(?P<version>\d{2})"
    r"_(?P<spiobsid>\d+)-(?P<rasterno>\d{3})\.fits$")


def _quoted_path(file_path: str, filename: str) -> str:
    parts = [p for p in str(file_path).split("/") if p] + [str(filename)]
    return "/".join(quote(p, safe="") for p in parts)


def file_url(base: str, file_path: str, filename: str) -> str:
    """URL of a file in a release folder (or any tree with the same layout)."""
    base = base if base.endswith("/") else base + "/"
    return base + _quoted_path(file_path, filename)


def soar_file_url(filename: str, soar_url: str | None = None) -> str:
    """URL that fetches exactly this file (this version) from SOAR.

    Raises
    ------
    BadInputError
        The name is not a SPICE file name (so it cannot go into an ADQL query).
    """
    if not SPICE_FILENAME.match(str(filename)):
        raise BadInputError(f"{filename!r} is not a SPICE file name, so it cannot be fetched from "
                            "SOAR", archive=ARCHIVE)
    endpoint = get_setting("soar_url", soar_url)
    adql = f"SELECT filepath,filename FROM soar.v_sc_repository_file WHERE filename='{filename}'"
    return f"{endpoint}?retrieval_type=ALL_PRODUCTS&QUERY={quote(adql, safe='')}"


class FileMetadata:
    """One SPICE file, described by its catalog row.

    Parameters
    ----------
    row : pandas.Series or mapping
        A catalog row; needs FILENAME and FILE_PATH.
    release : Release or str, optional
        The release the row comes from, used when no other source is named.

    Examples
    --------
    >>> meta = catalog.file_metadata(0)  # doctest: +SKIP
    >>> meta.download_file("~/spice", release=catalog.release)  # doctest: +SKIP
    """

    def __init__(self, row, release: Release | str | None = None):
        for column in ("FILENAME", "FILE_PATH"):
            if column not in row:
                raise BadInputError(f"a SPICE catalog row needs a {column} column", archive=ARCHIVE)
        self.metadata = row
        self.release = release

    def __repr__(self) -> str:
        return f"<SPICE FileMetadata {self.metadata['FILENAME']}>"

    def get_file_url(self, base_url: str | None = None, release: Release | str | None = None,
                     source: str | None = None) -> str:
        """Where to fetch the file.

        Parameters
        ----------
        base_url : str, optional
            Root of any tree laid out as ``<FILE_PATH>/<FILENAME>``.
        release : Release or str, optional
            A release (the default is the one the row came from).
        source : {"release", "soar"}, optional
            Force a source; by default a release if one is known, else SOAR.
        """
        filename, file_path = self.metadata["FILENAME"], self.metadata["FILE_PATH"]
        release = release if release is not None else (None if base_url else self.release)
        if source == "soar" or (source is None and base_url is None and release is None):
            return soar_file_url(filename)
        if base_url is not None and release is None:
            return file_url(base_url, file_path, filename)
        if release is None:
            raise BadInputError("source='release' needs a release", archive=ARCHIVE)
        if not isinstance(release, Release):
            release = Release(release, base_url=base_url)
        return file_url(release.url, file_path, filename)

    def download_file(self, base_dir, *, release: Release | str | None = None,
                      base_url: str | None = None, keep_tree: bool = True, overwrite: bool = False,
                      progress: bool = False, downloader=None):
        """Fetch the file into ``base_dir`` (kept as is if already complete there).

        Parameters
        ----------
        base_dir : path-like
            Destination folder.
        release, base_url : optional
            As in `get_file_url`.
        keep_tree : bool
            Store under ``<FILE_PATH>/`` as in the release tree (default) or directly in ``base_dir``.
        overwrite : bool
            Download even if a complete copy is there.
        downloader : parfive.Downloader, optional
            Queue on this downloader instead of downloading now (returns None).

        Returns
        -------
        pathlib.Path or None
            The file, or None when queued on ``downloader``.

        Raises
        ------
        DownloadError
            The download failed after retries.
        """
        url = self.get_file_url(base_url=base_url, release=release)
        template = Path(base_dir).expanduser() / ("{file_path}/{file}" if keep_tree else "{file}")
        job = DownloadJob(url, str(self.metadata["FILENAME"]),
                          relpath_values({"file_path": self.metadata["FILE_PATH"]}, ["file_path"]))
        if downloader is not None:
            fetch([job], path=template, downloader=downloader, wait=False)
            return None
        results = fetch([job], path=template, progress=progress, overwrite=overwrite, archive=ARCHIVE,
                        max_conn=1)
        if results.errors:
            error = results.errors[0]
            raise DownloadError(f"could not download {self.metadata['FILENAME']}: {error.exception}",
                                archive=ARCHIVE, url=url.split("?", 1)[0])
        return Path(results[0])
