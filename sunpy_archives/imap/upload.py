"""
Uploading a file to the IMAP SDC: ``GET /upload/<name>`` for a presigned URL,
then ``PUT`` the bytes there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.errors import BadInputError
from .api import AuthenticationError, SDCApi
from .filenames import ARCHIVE, parse_filename

__all__ = ["upload"]

log = logging.getLogger("sunpy_archives")


def upload(path: str | os.PathLike, *, url: str | None = None, api_key: str | None = None,
           access_token: str | None = None, api: SDCApi | None = None) -> str:
    """Upload one file to the SDC.

    The name is checked against the IMAP convention (science files need a
    ``vMMM.mmmm`` version) and a credential must be configured, both before
    any request.

    Parameters
    ----------
    path : path-like
        The local file; its name is the name on the SDC.
    url, api_key, access_token : str, optional
        As for `~sunpy_archives.imap.api.SDCApi` (default: the environment).
    api : SDCApi, optional
        Use this API object instead.

    Returns
    -------
    str
        The file's path on the SDC (``imap/<instrument>/<level>/<YYYY>/<MM>/<name>``...).

    Raises
    ------
    BadInputError
        The file is missing or its name is not a valid IMAP name.
    AuthenticationError
        No credential configured, or the SDC refused it.
    UploadConflictError
        The SDC already has a file of this name.

    Examples
    --------
    >>> upload("imap_mag_l1a_norm-mago_20250105_v001.0001.cdf")  # doctest: +SKIP
    'imap/mag/l1a/2025/01/imap_mag_l1a_norm-mago_20250105_v001.0001.cdf'
    """
    local = Path(path).expanduser()
    if not local.is_file():
        raise BadInputError(f"no file to upload at {str(local)!r}", archive=ARCHIVE)
    parsed = parse_filename(local.name)
    if parsed.kind == "science" and parsed.major_version is None:
        raise BadInputError(f"{local.name!r} has the legacy version {parsed.version!r}; uploads of "
                            "science files need 'vMMM.mmmm' (e.g. v001.0001)", archive=ARCHIVE)
    api = api if api is not None else SDCApi(url, api_key=api_key, access_token=access_token)
    if api.base_url == api.url.rstrip("/").removesuffix("/api-key").removesuffix("/authorized"):
        raise AuthenticationError("uploads need an API key: set IMAP_API_KEY or pass api_key= "
                                  "(--api-key on the command line)", archive=ARCHIVE)
    target = api.upload_url(local.name)
    log.debug("uploading %s to the SDC as %s", local, parsed.relative_path)
    api.put(target, local.read_bytes())
    return parsed.relative_path
