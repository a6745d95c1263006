"""
Reading ESO DataLink answers: the files of a product that ``product_files`` does not list.

``GET <archive>/datalink/links?ID=ivo://eso.org/ID?<dp_id>`` answers a
VOTable with one row per link (``PROTOCOLS.md`` section 4.5). The product's
own file has semantics ``#this``; ancillary files have ``#auxiliary``. Rows
are read by column name (ESO leaves some columns out for raw frames), and
semantics are compared as strings: pyvo's ``bysemantics()`` with its default
``include_narrower=True`` would fetch a vocabulary from the internet.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from ..core.errors import SearchError
from ._attrs import ARCHIVE

__all__ = ["FILE_SEMANTICS", "DataLinkFile", "datalink_url", "product_files"]

#: Semantics of the links that are files of the product.
FILE_SEMANTICS = ("#this", "#auxiliary")

_EXTENSIONS = {
    "application/fits": "FITS",
    "image/fits": "FITS",
    "image/png": "PNG",
    "image/jpeg": "JPG",
    "application/x-tar": "TAR",
    "text/plain": "TXT",
    "application/pdf": "PDF",
    "application/x-fits-hcompress": "FZ",
}


@dataclass(frozen=True)
class DataLinkFile:
    """One file of a product as DataLink lists it.

    Attributes
    ----------
    archive_id : str
        The file's id (last path component of the portal URL).
    access_url : str
        Where to download it.
    category : str
        ``eso_category`` (``SCIENCE.*`` / ``ANCILLARY.*``), or ``""`` if not given.
    original_filename : str
        ``eso_origfile``, or ``""``.
    extension : str
        Upper-case file type derived from the original name (or the MIME type).
    size : int or None
        ``content_length`` in bytes: rough, as the archive says.
    semantics : str
        ``#this`` or ``#auxiliary``.
    """

    archive_id: str
    access_url: str
    category: str
    original_filename: str
    extension: str
    size: int | None
    semantics: str


def datalink_url(base_url: str, product_id: str) -> str:
    """The DataLink URL of a product on an archive rooted at ``base_url``.

    Examples
    --------
    >>> datalink_url("https://archive.eso.org", "ADP.2024-03-19T05:58:04.407")
    'https://archive.eso.org/datalink/links?ID=ivo://eso.org/ID?ADP.2024-03-19T05:58:04.407'
    """
    return f"{base_url.rstrip('/')}/datalink/links?ID=ivo://eso.org/ID?{product_id}"


def _extension(original: str, content_type: str) -> str:
    name = original.rsplit("/", 1)[-1]
    if "." in name:
        suffix = name.rsplit(".", 1)[1].upper()
        if suffix.isalnum() and len(suffix) <= 10:
            return suffix
    return _EXTENSIONS.get(content_type.split(";", 1)[0].strip().lower(), "")


def _text(record, name: str) -> str:
    try:
        value = record[name]
    except (KeyError, IndexError):
        return ""
    if value is None or (hasattr(value, "mask") and value.mask is True):
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    return "" if text in ("--", "None") else text


def product_files(url: str, *, session) -> list[DataLinkFile]:
    """The ``#this`` and ``#auxiliary`` files listed by one DataLink URL.

    Parameters
    ----------
    url : str
        A DataLink URL (ObsCore ``access_url``).
    session : requests.Session
        From `sunpy_archives.core.http.make_session`.

    Raises
    ------
    SearchError
        DataLink could not be read, or it reported an error for the ``#this`` row.
    """
    from pyvo.dal import DALServiceError
    from pyvo.dal.adhoc import DatalinkResults
    from pyvo.dal.exceptions import DALFormatError, DALQueryError

    where = url.split("?", 1)[0]
    try:
        links = DatalinkResults.from_result_url(url, session=session)
    except (DALServiceError, DALQueryError, DALFormatError) as exc:
        raise SearchError(f"DataLink failed: {exc}", archive=ARCHIVE, url=where) from None
    files = []
    for record in links:
        semantics = _text(record, "semantics")
        error = _text(record, "error_message")
        if error:
            if semantics == "#this":
                raise SearchError(f"DataLink reported: {error}", archive=ARCHIVE, url=where)
            continue
        access_url = _text(record, "access_url")
        if semantics not in FILE_SEMANTICS or not access_url:
            continue
        original = _text(record, "eso_origfile")
        content_type = _text(record, "content_type")
        size_text = _text(record, "content_length")
        try:
            size = int(float(size_text)) if size_text else None
        except ValueError:
            size = None
        archive_id = unquote(access_url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        files.append(
            DataLinkFile(
                archive_id=archive_id,
                access_url=access_url,
                category=_text(record, "eso_category"),
                original_filename=original,
                extension=_extension(original, content_type),
                size=size,
                semantics=semantics,
            )
        )
    return files
