"""
The SPICE catalog: every file of a release, one row each, as a pandas DataFrame.

Reading a large ``catalog.csv`` (hundreds of thousands of rows, ~100
columns) takes seconds, so a parsed catalog is kept twice: in memory for the
life of the process, and on disk as an Arrow IPC file (memory-mapped when
read back) keyed by the catalog's URL
and its HTTP validator (ETag, else Last-Modified and size). A repeated search
asks the server only whether the catalog changed (one HEAD request).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..core.config import cache_dir
from ..core.errors import BadInputError, SearchError
from ..core.http import head, request
from .release import ARCHIVE, Release

__all__ = ["Catalog", "load_catalog", "read_catalog_csv", "DATE_COLUMNS", "REQUIRED_COLUMNS"]

log = logging.getLogger("sunpy_archives")

#: Columns parsed as datetimes (MISSING becomes NaT).
DATE_COLUMNS = ("DATE-BEG", "DATE", "TIMAQUTC", "DATE-END", "DATE-AVG")
#: Columns a catalog must have for search and download to work.
REQUIRED_COLUMNS = frozenset({"LEVEL", "FILENAME", "FILE_PATH", "DATE-BEG"})

_memory: dict[str, tuple[str, object]] = {}   # url -> (validator, pyarrow.Table)
_frames: dict[str, tuple[object, object]] = {}  # url -> (the table it came from, DataFrame)
_memory_lock = threading.Lock()


def _finish(frame):
    """Date columns as datetime64 and a check of the columns every search needs."""
    import pandas as pd

    for column in DATE_COLUMNS:
        if column in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = pd.to_datetime(frame[column], format="ISO8601", errors="coerce")
    missing = REQUIRED_COLUMNS - set(frame.columns)
    if missing and len(frame.columns):
        raise SearchError(f"the catalog lacks the column(s) {', '.join(sorted(missing))}",
                          archive=ARCHIVE)
    return frame


def read_catalog_csv(source) -> "pandas.DataFrame":  # noqa: F821
    """Parse a ``catalog.csv`` (path or file object) into a DataFrame.

    The literal ``MISSING`` becomes a missing value in every column and the
    date columns become ``datetime64`` (UTC, timezone-naive, as in the FITS
    headers).
    """
    import pandas as pd

    try:
        frame = pd.read_csv(source, engine="pyarrow", na_values=["MISSING"], keep_default_na=True)
    except Exception as exc:  # pyarrow raises its own error types for malformed CSV
        raise SearchError(f"the catalog could not be parsed as CSV ({exc})", archive=ARCHIVE) from None
    return _finish(frame)


def _validator(headers) -> str:
    """What tells one version of a catalog from another; "unknown" if the server says nothing."""
    etag = headers.get("ETag")
    if etag:
        return f"etag:{etag}"
    modified, length = headers.get("Last-Modified"), headers.get("Content-Length")
    if not modified and not length:
        return "unknown"
    return f"lm:{modified or ''}|len:{length or ''}"


def _cache_file(url: str, directory: Path) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:20]
    return directory / "spice" / f"catalog-{digest}.arrow"


# The parsed catalog is kept as an uncompressed Arrow IPC file: it is
# memory-mapped on the next load, so a new process gets the catalog back in
# milliseconds, and a search converts to pandas only the columns it needs.

def _csv_reader(source):
    """A streaming Arrow CSV reader of a catalog: MISSING as null, dates as timestamps.

    Blocks of 1 MiB are parsed as they arrive, so the CSV is never held whole
    in memory (types are inferred from the first block; see `_download`).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(
        null_values=["MISSING", ""], strings_can_be_null=True,
        column_types={name: pa.timestamp("ms") for name in DATE_COLUMNS},
        timestamp_parsers=[pacsv.ISO8601])
    return pacsv.open_csv(source, read_options=pacsv.ReadOptions(block_size=1 << 20),
                          convert_options=convert)


def _check_table(table) -> None:
    missing = REQUIRED_COLUMNS - set(table.column_names)
    if missing and table.num_columns:
        raise SearchError(f"the catalog lacks the column(s) {', '.join(sorted(missing))}",
                          archive=ARCHIVE)


def _write_arrow(schema, batches, path: Path, metadata: dict[bytes, bytes]) -> None:
    """Write record batches to an Arrow IPC file, atomically."""
    import pyarrow as pa

    schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_arrow(path: Path, url: str, validator: str):
    """The cached (memory-mapped) table if ``path`` holds this URL's catalog at this version."""
    import pyarrow as pa

    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
    except (OSError, pa.ArrowInvalid):
        return None
    meta = reader.schema.metadata or {}
    if meta.get(b"sunpy_archives.url", b"").decode() != url:
        return None
    if meta.get(b"sunpy_archives.validator", b"").decode() != validator:
        return None
    return reader.read_all()


def load_table(release: Release, *, cache: str | os.PathLike | None = None, refresh: bool = False,
               session=None):
    """The catalog of ``release`` as a `pyarrow.Table`, from memory, the disk cache, or the server.

    One HEAD request asks whether the catalog changed; only then is it
    downloaded and parsed again.

    Parameters
    ----------
    release : Release
    cache : path-like, optional
        Cache folder (default: ``SUNPY_ARCHIVES_CACHE_DIR`` or the user cache).
    refresh : bool
        Ignore both caches and download the catalog again.
    session : requests.Session, optional
    """
    session = session or release.session
    url = release.catalog_url
    status, headers = head(session, url, archive=ARCHIVE, setting_hint="SUNPY_ARCHIVES_SPICE_URL")
    if status == 404:
        release.check_exists()
        raise SearchError(f"release {release.tag} has no catalog.csv", archive=ARCHIVE, url=url)
    if status >= 400 and status != 405:
        raise SearchError(f"HTTP {status} for the release catalog", archive=ARCHIVE, url=url)
    validator = _validator(headers) if status < 300 else "unknown"
    cacheable = validator != "unknown"
    with _memory_lock:
        held = _memory.get(url)
    if not refresh and cacheable and held is not None and held[0] == validator:
        return held[1]
    path = _cache_file(url, cache_dir(cache))
    table = None
    if not refresh and cacheable and path.exists():
        table = _read_arrow(path, url, validator)
    if table is None:
        metadata = {b"sunpy_archives.url": url.encode(), b"sunpy_archives.validator": validator.encode()}
        if cacheable:
            try:
                _download(session, url, path, metadata)
            except OSError as exc:  # a read-only cache must not stop a search
                log.warning("could not cache the SPICE catalog in %s: %s", path.parent, exc)
            else:
                table = _read_arrow(path, url, validator)  # memory-mapped
        if table is None:
            table = _download(session, url)
        _check_table(table)
    with _memory_lock:
        _memory[url] = (validator, table)
        _frames.pop(url, None)
    return table


def load_catalog(release: Release, *, cache: str | os.PathLike | None = None, refresh: bool = False,
                 session=None):
    """The whole catalog of ``release`` as a `pandas.DataFrame` (see `load_table`).

    Returns
    -------
    pandas.DataFrame
        Shared with later calls: copy it before changing it in place.
    """
    table = load_table(release, cache=cache, refresh=refresh, session=session)
    url = release.catalog_url
    with _memory_lock:
        held = _frames.get(url)
    if held is not None and held[0] is table:
        return held[1]
    frame = _finish(table.to_pandas(split_blocks=True))
    with _memory_lock:
        _frames[url] = (table, frame)
    return frame


def table_columns(table, columns) -> "pandas.DataFrame":  # noqa: F821
    """Only ``columns`` (those that exist) of a catalog table, as a DataFrame."""
    present = [name for name in dict.fromkeys(columns) if name in table.column_names]
    return _finish(table.select(present).to_pandas(split_blocks=True))


def table_dtypes(table):
    """The pandas dtypes every column of ``table`` would get, without converting any data."""
    return table.schema.empty_table().to_pandas().dtypes


def _download(session, url: str, path: Path | None = None, metadata: dict[bytes, bytes] | None = None):
    """Download and parse the CSV as it arrives; write it to ``path`` (Arrow IPC) or return the table."""
    import pyarrow as pa

    response = request(session, "GET", url, archive=ARCHIVE, stream=True,
                       setting_hint="SUNPY_ARCHIVES_SPICE_URL")
    response.raw.decode_content = True
    try:
        with response:
            reader = _csv_reader(response.raw)
            if path is None:
                return reader.read_all()
            _write_arrow(reader.schema, reader, path, metadata or {})
            return None
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass  # types inferred from the first block did not hold, or a date did not parse
    # pandas reads the whole file and is more forgiving; it needs the bytes again.
    fd, tmp = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as out:
            again = request(session, "GET", url, archive=ARCHIVE, stream=True)
            for chunk in again.iter_content(1 << 20):
                out.write(chunk)
        table = pa.Table.from_pandas(read_catalog_csv(tmp), preserve_index=False)
    finally:
        os.unlink(tmp)
    if path is None:
        return table
    _write_arrow(table.schema, table.to_batches(), path, metadata or {})
    return None


def clear_memory_cache() -> None:
    """Forget every catalog held in memory (the disk cache stays)."""
    with _memory_lock:
        _memory.clear()
        _frames.clear()


def _load_pandas():
    import pandas as pd

    return pd


class Catalog:
    """A SPICE catalog with sospice's search helpers.

    Build it from a release (downloaded once, then cached) or from a local
    ``catalog.csv``. The rows are in `frame`, a `pandas.DataFrame`; the
    object also behaves like one for reading (``len``, ``catalog["LEVEL"]``,
    ``catalog.columns``...).

    Parameters
    ----------
    release : str or Release, optional
        A release tag or object; None means the latest release.
    filename : path-like, optional
        A local ``catalog.csv`` instead of a release.
    base_url : str, optional
        Release-tree root (default: ``SUNPY_ARCHIVES_SPICE_URL`` or the public tree).
    cache : path-like, optional
        Folder for the parsed-catalog cache.
    refresh : bool
        Download the catalog again even if cached.

    Examples
    --------
    >>> from sunpy_archives.spice import Catalog
    >>> catalog = Catalog("2.0")  # doctest: +SKIP
    >>> catalog.find_files(soopname="L_BOTH_HRES_HCAD_Major-Flare",
    ...                    date_min="2022-03-01", date_max="2022-03-31")  # doctest: +SKIP
    """

    def __init__(self, release: str | Release | None = None, *, filename=None, base_url=None,
                 cache=None, refresh: bool = False, data_frame=None):
        self.release: Release | None = None
        if data_frame is not None:
            self.frame = data_frame
        elif filename is not None:
            path = Path(filename).expanduser()
            if not path.is_file():
                raise BadInputError(f"catalog file {str(path)!r} does not exist", archive=ARCHIVE)
            self.frame = read_catalog_csv(path)
        else:
            if not isinstance(release, Release):
                release = Release(release, base_url=base_url)
            self.release = release
            self.frame = load_catalog(release, cache=cache, refresh=refresh)

    def __repr__(self) -> str:
        source = f"release {self.release.tag}" if self.release else "local file"
        return f"<SPICE Catalog ({source}): {len(self.frame)} files, {len(self.frame.columns)} columns>"

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, key):
        return self.frame[key]

    def __getattr__(self, name):
        if name == "frame":
            raise AttributeError(name)
        return getattr(self.frame, name)

    def find_files(self, query: str | None = None, date_min=None, date_max=None, closest_to_date=None,
                   **keywords):
        """Files matching every criterion given, as a DataFrame.

        Parameters
        ----------
        query : str, optional
            A filter expression such as ``"LEVEL=='L2' & NAXIS1 < 100 & 600 < CRVAL1 < 700"``;
            hyphenated columns go in backticks (```DATE-BEG` > '2022-04-01'``). It is
            parsed and checked, never evaluated as Python: see `sunpy_archives.spice.query`.
        date_min, date_max : str or datetime-like, optional
            Bounds on DATE-BEG, both included.
        closest_to_date : str or datetime-like, optional
            Keep only the file whose DATE-BEG is nearest this date (after the other filters).
        **keywords
            Exact matches on columns (names are upper-cased: ``soopname=...``).
            ``level`` defaults to ``"L2"`` as in sospice; ``level=None`` keeps every level.

        Returns
        -------
        pandas.DataFrame
        """
        keywords = {k.upper(): v for k, v in keywords.items()}
        keywords.setdefault("LEVEL", "L2")
        frame = filter_keywords(self.frame, keywords)
        if query is not None:
            from .query import filter_frame

            frame = filter_frame(frame, query)
        frame = filter_dates(frame, date_min, date_max)
        if closest_to_date is not None:
            frame = closest_rows(frame, closest_to_date)
        return frame

    def find_files_by_keywords(self, **keywords):
        """Exact matches on columns (upper-cased names), no default level."""
        return filter_keywords(self.frame, {k.upper(): v for k, v in keywords.items()})

    def find_files_by_date_range(self, date_min=None, date_max=None):
        """Files with DATE-BEG in [date_min, date_max]."""
        return filter_dates(self.frame, date_min, date_max)

    def find_file_closest_to_date(self, date, level: str | None = "L2"):
        """The file of ``level`` whose DATE-BEG is nearest ``date``, as a one-row DataFrame."""
        frame = filter_keywords(self.frame, {"LEVEL": level})
        return closest_rows(frame, date)

    def file_metadata(self, index: int = 0):
        """`FileMetadata` for row ``index`` (by position)."""
        from .files import FileMetadata

        return FileMetadata(self.frame.iloc[index], release=self.release)


def filter_keywords(frame, keywords: dict):
    """Rows whose columns equal the given values (None values are ignored)."""
    mask = np.ones(len(frame), dtype=bool)
    for column, value in keywords.items():
        if value is None:
            continue
        if column not in frame.columns:
            from .query import unknown_column_message

            raise BadInputError(unknown_column_message(column, frame.columns), archive=ARCHIVE)
        mask &= (frame[column] == value).to_numpy(dtype=bool, na_value=False)
    return frame[mask] if not mask.all() else frame


def _timestamp(value, what: str):
    pd = _load_pandas()
    try:
        stamp = pd.Timestamp(value.datetime if hasattr(value, "datetime") else value)
    except (ValueError, TypeError):
        raise BadInputError(f"{what} {value!r} is not a date; use e.g. '2022-04-02T11:15'",
                            archive=ARCHIVE) from None
    if stamp is pd.NaT:
        raise BadInputError(f"{what} {value!r} is not a date", archive=ARCHIVE)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def date_mask(frame, date_min=None, date_max=None, column: str = "DATE-BEG") -> np.ndarray:
    """True for rows with ``column`` in [date_min, date_max], both ends included."""
    values = frame[column]
    mask = np.ones(len(frame), dtype=bool)
    if date_min is not None:
        mask &= (values >= _timestamp(date_min, "date_min")).to_numpy(dtype=bool, na_value=False)
    if date_max is not None:
        mask &= (values <= _timestamp(date_max, "date_max")).to_numpy(dtype=bool, na_value=False)
    return mask


def filter_dates(frame, date_min=None, date_max=None, column: str = "DATE-BEG"):
    """Rows with ``column`` in [date_min, date_max], both ends included."""
    if date_min is None and date_max is None:
        return frame
    return frame[date_mask(frame, date_min, date_max, column)]


def closest_rows(frame, date, *, per: Iterable[str] = (), column: str = "DATE-BEG"):
    """The row nearest ``date`` in ``column`` (one per group of ``per`` columns)."""
    target = _timestamp(date, "date")
    if frame.empty:
        return frame
    distance = (frame[column] - target).abs()
    if not per:
        valid = distance.dropna()
        return frame.loc[[valid.idxmin()]] if len(valid) else frame.iloc[:0]
    best = distance.groupby([frame[c] for c in per]).idxmin().dropna()
    return frame.loc[best.to_numpy()]
