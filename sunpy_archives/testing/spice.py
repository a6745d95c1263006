"""
A local, faithful Solar Orbiter/SPICE data-release server.

`SpiceArchiveData` generates a deterministic archive: several data releases,
each with a ``catalog.csv`` shaped like the real ones (the columns sospice
needs, plus ``FILE_PATH``, ``WAVECOV``, ``proc_steps``...) and a small, valid
FITS file for every catalog row, made on request.

`make_spice_app` serves it over the wire protocol of the real release tree
(``/spice-data/...``) and of the SOAR data endpoint (``/soar-sl-tap/data``),
so the official ``sospice`` client works against it unchanged. Every route
goes through the shared fault-injection middleware of
`sunpy_archives.testing.faults`.

See ``PROTOCOLS.md`` section 1 for the protocol itself.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pandas as pd
from aiohttp import web

from .faults import FaultConfig, fault_middleware, send_bytes
from .server import LocalServer

__all__ = [
    "SpiceArchiveData",
    "SpiceServer",
    "make_spice_app",
    "spice_classifier",
    "start_spice_server",
    "data_item_id",
]

DEFAULT_RELEASES: tuple[str, ...] = ("1.0", "2.0", "3.0", "4.0", "5.0")

#: Columns of every generated catalog, in file order (``WAVECOV`` is left out
#: of releases before 3.0, like the real releases).
CATALOG_COLUMNS: tuple[str, ...] = (
    "LEVEL", "FILENAME", "FILE_PATH", "DATE-BEG", "DATE", "TIMAQUTC", "DATE-END",
    "SPIOBSID", "RASTERNO", "STUDY", "STUDYTYP", "STUDYDES", "MISOSTUD", "XPOSURE",
    "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4", "NBIN3", "OBT_BEG",
    "CRVAL1", "CDELT1", "CTYPE1", "CUNIT1", "CRVAL2", "CDELT2", "CTYPE2", "CUNIT2",
    "STP", "DSUN_AU", "CROTA", "OBS_ID", "SOOPNAME", "SOOPTYPE", "NWIN", "DARKMAP",
    "COMPLETE", "SLIT_WID", "PARENT", "HGLT_OBS", "HGLN_OBS",
    "PRSTEP1", "PRPROC1", "PRPVER1", "PRPARA1", "TELAPSE", "WAVECOV", "proc_steps",
)

# Spectral window sets, as WAVECOV strings (nm, at the slit centre). SPICE has
# a short-wavelength band (70.4-79.0 nm) and a long-wavelength band (97.3-104.9 nm).
_WINDOW_SETS: tuple[str, ...] = (
    "70.41-70.95, 76.32-76.86, 76.77-77.31, 78.50-79.04, 97.43-97.97, 102.30-102.84, "
    "102.92-103.46, 103.55-104.09",
    "70.40-79.00, 97.30-104.90",
    "70.01-70.79, 76.23-77.02, 97.28-98.06, 102.35-103.15",
    "76.65-77.43, 97.38-98.16, 102.78-103.56",
    "76.62-77.46, 97.35-98.19, 102.36-102.78, 103.05-103.33",
    "70.37-71.15, 75.45-76.24, 76.64-77.42, 77.53-78.32, 78.76-79.54, 97.28-98.06",
)

# One row per study: name, STUDYTYP, file descriptor, slit width (arcsec),
# XPOSURE (s), NAXIS1 range, NAXIS2, NAXIS3, NBIN3, MISOSTUD, STUDYDES,
# window set, relative frequency.
_STUDIES: tuple[tuple, ...] = (
    ("SCI_COMPO_SL04_60.0S_FF", "Raster", "spice-n-ras", 4.0, 60.0, (96, 160), 832, 50, 1,
     2093, "Composition map, 4 arcsec slit", 0, 3.0),
    ("SCI_SYNOPTIC_SL04_60.0S_FF", "Raster", "spice-n-ras", 4.0, 60.0, (160, 192), 1024, 32, 1,
     1987, "Synoptic full-spectrum raster", 1, 2.0),
    ("SCI_DYN-MED_SL04_10.0S_FF", "Raster", "spice-n-ras", 4.0, 10.0, (32, 64), 832, 48, 1,
     2112, "Medium cadence dynamics", 2, 3.0),
    ("SCI_DYN-HIGH-CAD_SL02_5.0S_FF", "Raster", "spice-n-ras", 2.0, 5.0, (16, 32), 600, 32, 2,
     2145, "High cadence dynamics, narrow slit", 3, 2.0),
    ("SCI_SIT-AND-STARE_SL04_20.0S_FF", "Sit-and-stare", "spice-n-sit", 4.0, 20.0, (1, 1), 832,
     50, 1, 2201, "Sit-and-stare, waves and jets", 2, 2.0),
    ("SCI_FLARE-WATCH_SL04_5.0S_FF", "Sit-and-stare", "spice-n-sit", 4.0, 5.0, (1, 1), 768, 32,
     2, 2233, "Flare watch, high cadence sit-and-stare", 3, 1.0),
    ("SCI_CONTEXT_SL30_30.0S_FF", "Raster", "spice-w-ras", 30.0, 30.0, (8, 16), 1024, 40, 1,
     2051, "Wide-slit context raster", 4, 1.0),
    ("SCI_FULL-SPECTRUM_SL04_180.0S_FF", "Single Exposure", "spice-n-exp", 4.0, 180.0, (1, 1),
     1024, 496, 1, 1940, "Full detector spectrum, single exposure", 1, 1.0),
    ("SCI_LOWRES-MOSAIC_SL06_20.0S_FF", "Raster", "spice-n-ras", 6.0, 20.0, (240, 320), 1024,
     24, 2, 2077, "Low resolution mosaic tile", 5, 1.0),
    ("SCI_DUMBBELL_SL04_30.0S_DB", "Raster", "spice-n-ras-db", 4.0, 30.0, (64, 128), 1024, 40,
     1, 2168, "Composition raster with dumbbell windows", 0, 1.0),
    ("SCI_EXP-SYNOPTIC_SL04_60.0S_FF", "Single Exposure", "spice-n-exp", 4.0, 60.0, (1, 1), 1024,
     50, 1, 1960, "Synoptic single exposures", 2, 2.0),
)

# SOOP names with their SOOPTYPE code and relative frequency.
_SOOPS: tuple[tuple[str, int, float], ...] = (
    ("L_BOTH_HRES_HCAD_Major-Flare", 111, 1.0),
    ("R_SMALL_MRES_MCAD_Composition-Mosaic", 221, 2.0),
    ("L_FULL_HRES_HCAD_Coronal-Dynamics", 131, 1.5),
    ("R_BOTH_HRES_HCAD_Filaments", 241, 1.0),
    ("L_SMALL_HRES_HCAD_Fast-Wind", 151, 1.0),
    ("R_FULL_LRES_HCAD_Full-Disk-Helioseismology", 261, 0.5),
    ("L_SMALL_MRES_MCAD_Connection-Mosaic", 171, 2.0),
    ("R_SMALL_HRES_HCAD_Atmospheric-Dynamics-Structure", 281, 1.0),
    ("L_FULL_LRES_MCAD_Coronal-Synoptic", 191, 2.5),
    ("R_SMALL_MRES_MCAD_AR-Long-Term", 212, 1.5),
    ("R_BOTH_HRES_MCAD_Bright-Points", 232, 1.0),
    ("L_FULL_HRES_MCAD_Coronal-He-Abundance", 252, 0.5),
    ("L_BOTH_MRES_MCAD_Flare-SEPs", 272, 1.0),
)

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DAY_MS = 86_400_000
_VERSION_RE = re.compile(r"^(?P<id>.+?)_V(?P<version>\d{2,})_[^/]*$")


def data_item_id(filename: str) -> str:
    """Return the SOAR ``data_item_id`` of a SPICE file name.

    The identifier is the file name without its version and what follows
    (``solo_L2_spice-n-ras_20220402T111537_V06_100664002-000.fits`` ->
    ``solo_L2_spice-n-ras_20220402T111537``).

    Parameters
    ----------
    filename : str
        A SPICE file name.

    Returns
    -------
    str
        The data item identifier.
    """
    match = _VERSION_RE.match(filename)
    if match:
        return match.group("id")
    return filename.rsplit(".", 1)[0]


def data_item_id_version(filename: str) -> int:
    """The ``V<nn>`` version of a SPICE file name (1 if there is none).

    Parameters
    ----------
    filename : str
        A SPICE file name.

    Returns
    -------
    int
        The version number.
    """
    match = _VERSION_RE.match(filename)
    return int(match.group("version")) if match else 1


def _tag_number(tag: str) -> float | None:
    try:
        return float(tag)
    except ValueError:
        return None


def _ms(date: str) -> int:
    return int(np.datetime64(date, "ms").astype(np.int64))


def _iso_ms(ms: int) -> str:
    return str(np.datetime_as_string(np.datetime64(int(ms), "ms"), unit="ms"))


def _study_table() -> dict[str, np.ndarray]:
    cols = list(zip(*_STUDIES))
    nax1 = np.array(cols[5], dtype=np.int64)
    return {
        "name": np.array(cols[0]),
        "typ": np.array(cols[1]),
        "descriptor": np.array(cols[2]),
        "slit": np.array(cols[3], dtype=float),
        "xposure": np.array(cols[4], dtype=float),
        "nax1_lo": nax1[:, 0],
        "nax1_hi": nax1[:, 1],
        "naxis2": np.array(cols[6], dtype=np.int64),
        "naxis3": np.array(cols[7], dtype=np.int64),
        "nbin3": np.array(cols[8], dtype=np.int64),
        "misostud": np.array(cols[9], dtype=np.int64),
        "description": np.array(cols[10]),
        "windows": np.array(cols[11], dtype=np.int64),
        "weight": np.array(cols[12], dtype=float),
    }


class _Strings:
    """Vectorised string building on top of pyarrow.compute (imported lazily)."""

    def __init__(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.pa = pa
        self.pc = pc
        self.digits2 = pa.array([f"{i:02d}" for i in range(100)])
        self.digits3 = pa.array([f"{i:03d}" for i in range(1000)])
        self.hex4 = pa.array([f"{i:04X}" for i in range(16**4)])
        self.alnum2 = pa.array([a + b for a in _ALNUM for b in _ALNUM])

    def join(self, *parts):
        """Element-wise concatenation of arrays and scalars."""
        return self.pc.binary_join_element_wise(*parts, "")

    def take(self, values, indices):
        """``values[indices]`` as an arrow array (``values`` a list or array)."""
        pa = self.pa
        if not isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pa.array(list(values))
        return values.take(pa.array(np.asarray(indices, dtype=np.int64)))

    def time(self, ms, fmt: str, unit: str = "ms"):
        """Format epoch milliseconds; ``unit="s"`` drops the fraction."""
        pa = self.pa
        stamps = pa.array(np.asarray(ms, dtype=np.int64), type=pa.timestamp("ms"))
        if unit == "s":
            stamps = stamps.cast(pa.timestamp("s"), safe=False)
        return self.pc.strftime(stamps, format=fmt)

    def text(self, values):
        """Integers (or anything) as strings."""
        return self.pc.cast(self.pa.array(values), self.pa.string())


def _table_to_csv(table) -> bytes:
    """Write an arrow table as CSV the way ``pandas.DataFrame.to_csv`` would.

    Only fields that need it are quoted; floats keep a decimal point; nulls
    are empty. Done with pyarrow kernels, so 200,000 rows take a fraction of
    a second.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    large = pa.large_string()
    empty = pa.scalar("", large)

    def as_text(column):
        kind = column.type
        if pa.types.is_floating(kind):
            if pc.any(pc.is_nan(column)).as_py():
                column = pc.if_else(pc.is_nan(column), None, column)
            text = pc.cast(column, pa.string())
            integral = pc.match_substring_regex(text, r"^-?\d+$")
            if pc.any(integral).as_py():
                text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
        elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            text = pc.cast(column, pa.string())
        else:
            text = pc.cast(column, pa.string())
            special = pc.match_substring_regex(text, "[\",\r\n]")
            if pc.any(special).as_py():
                quoted = pc.binary_join_element_wise(
                    '"', pc.replace_substring(text, '"', '""'), '"', "")
                text = pc.if_else(special, quoted, text)
        return pc.fill_null(pc.cast(text, large), empty)

    # pyarrow kernels release the GIL: format the columns in parallel.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        columns = list(pool.map(as_text, [table[name] for name in table.column_names]))

    def header_field(name: str) -> str:
        if any(ch in name for ch in '",\r\n'):
            return '"' + name.replace('"', '""') + '"'
        return name

    header = (",".join(header_field(n) for n in table.column_names) + "\n").encode("utf-8")
    if table.num_rows == 0:
        return header
    rows = pc.binary_join_element_wise(*columns, pa.scalar(",", large))
    rows = pc.binary_join_element_wise(rows, empty, pa.scalar("\n", large))
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    _, offsets_buffer, data_buffer = rows.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[rows.offset:rows.offset + len(rows) + 1]
    return header + memoryview(data_buffer)[int(offsets[0]):int(offsets[-1])].tobytes()


class SpiceArchiveData:
    """Deterministic content of a SPICE data-release tree.

    Observations (one ``SPIOBSID`` each, with several raster repetitions)
    are laid out in time between ``start`` and ``end``; every repetition gives
    one L1 and one L2 file. Release ``k`` of ``n`` holds the observations that
    started before a cut-off that moves forward with each release (the latest
    covers everything); releases before 2.0 hold L2 files only. File versions
    (``V<nn>``) grow with the release. Catalogs are built lazily, once, and
    kept as bytes; FITS files are made on request and kept in a small LRU cache.

    Parameters
    ----------
    releases : sequence of str
        Release tags, oldest first; the last one is the latest.
    n_files : int
        Number of rows of the latest catalog (rounded up to an even number).
    seed : int
        Seed of every random choice: the same seed gives byte-identical catalogs
        and files.
    start, end : str
        ISO dates bounding the observations of the latest release.
    fits_cache_size : int
        Number of generated FITS files kept in memory.
    """

    def __init__(self, releases: Sequence[str] = DEFAULT_RELEASES, n_files: int = 800,
                 seed: int = 0, *, start: str = "2021-01-01", end: str = "2025-01-01",
                 fits_cache_size: int = 256):
        releases = tuple(str(tag) for tag in releases)
        if not releases:
            raise ValueError("SpiceArchiveData needs at least one release tag")
        if len(set(releases)) != len(releases):
            raise ValueError(f"duplicate release tags in {releases}")
        for tag in releases:
            if not tag or "/" in tag or tag == "latest":
                raise ValueError(f"invalid release tag {tag!r}")
        if n_files < 2:
            raise ValueError("n_files must be at least 2")
        self._releases = releases
        self.n_files = int(n_files)
        self.seed = int(seed)
        self.start = start
        self.end = end
        self._start_ms = _ms(start)
        self._end_ms = _ms(end)
        if self._end_ms - self._start_ms < 30 * _DAY_MS:
            raise ValueError("the time span of the archive must be at least 30 days")
        self._fits_cache_size = int(fits_cache_size)
        self._lock = threading.RLock()
        self._master = None
        self._tables: dict[str, object] = {}      # tag -> pyarrow.Table (generated rows)
        self._base_csv: dict[str, bytes] = {}     # tag -> CSV of the generated rows
        self._added: dict[str, pd.DataFrame] = {}
        self._full: dict[str, pd.DataFrame] = {}
        self._csv: dict[str, bytes] = {}
        self._index: dict[str, dict] = {}
        self._trees: dict[str, dict] = {}
        self._fits: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    # -------------------------------------------------------------- presets

    @classmethod
    def small(cls, seed: int = 0, **kwargs) -> SpiceArchiveData:
        """A few hundred catalog rows per release: fast, for tests.

        Parameters
        ----------
        seed : int
            Random seed.
        **kwargs
            Passed to `SpiceArchiveData` (e.g. ``n_files``).

        Returns
        -------
        SpiceArchiveData
            800 rows in the latest release.
        """
        kwargs.setdefault("n_files", 800)
        return cls(seed=seed, **kwargs)

    @classmethod
    def large(cls, seed: int = 0, **kwargs) -> SpiceArchiveData:
        """About 200,000 rows in the latest catalog, for benchmarks.

        Parameters
        ----------
        seed : int
            Random seed.
        **kwargs
            Passed to `SpiceArchiveData`.

        Returns
        -------
        SpiceArchiveData
            200,000 rows in the latest release.
        """
        kwargs.setdefault("n_files", 200_000)
        return cls(seed=seed, **kwargs)

    def __repr__(self) -> str:
        return (f"SpiceArchiveData(releases={self._releases!r}, n_files={self.n_files}, "
                f"seed={self.seed})")

    # ------------------------------------------------------------ accessors

    @property
    def releases(self) -> tuple[str, ...]:
        """Release tags, oldest first."""
        return self._releases

    @property
    def latest(self) -> str:
        """Tag of the latest release."""
        return self._releases[-1]

    def has_release(self, tag: str) -> bool:
        """Whether ``tag`` is one of the releases.

        Parameters
        ----------
        tag : str
            Release tag.

        Returns
        -------
        bool
            ``True`` for a known tag.
        """
        return tag in self._releases

    def _check_tag(self, tag: str | None) -> str:
        if tag == "latest" or tag is None:
            return self.latest
        if tag not in self._releases:
            raise KeyError(f"unknown SPICE release {tag!r}; known: {', '.join(self._releases)}")
        return tag

    def cutoff(self, tag: str) -> pd.Timestamp:
        """Observations starting before this date are in release ``tag``.

        Parameters
        ----------
        tag : str
            Release tag.

        Returns
        -------
        pandas.Timestamp
            The cut-off date of the release.
        """
        tag = self._check_tag(tag)
        return pd.Timestamp(self._cutoff_ms(self._releases.index(tag)), unit="ms")

    def _cutoff_ms(self, i: int) -> int:
        n = len(self._releases)
        fraction = (i + 2) / (n + 1) if n > 1 else 1.0
        return self._start_ms + int(round((self._end_ms - self._start_ms) * fraction))

    def catalog(self, tag: str) -> pd.DataFrame:
        """The catalog of a release as a data frame (values as written to the CSV).

        Parameters
        ----------
        tag : str
            Release tag.

        Returns
        -------
        pandas.DataFrame
            A copy; dates are strings, like in ``catalog.csv``.
        """
        return self._frame(self._check_tag(tag)).copy()

    def catalog_csv(self, tag: str) -> bytes:
        """The ``catalog.csv`` file of a release.

        Parameters
        ----------
        tag : str
            Release tag.

        Returns
        -------
        bytes
            The CSV file, built once and kept.
        """
        tag = self._check_tag(tag)
        with self._lock:
            data = self._csv.get(tag)
            if data is not None:
                return data
            base = self._base_csv.get(tag)
            if base is None:
                base = _table_to_csv(self._table(tag))
                self._base_csv[tag] = base
            added = self._added.get(tag)
            if added is None or added.empty:
                data = base
            else:
                columns = list(self._table(tag).column_names)
                if set(added.columns) <= set(columns):
                    extra = added.reindex(columns=columns).to_csv(
                        index=False, header=False, lineterminator="\n")
                    data = base + extra.encode("utf-8", errors="surrogateescape")
                else:  # new columns: the header changes, write everything
                    text = self._frame(tag).to_csv(index=False, lineterminator="\n")
                    data = text.encode("utf-8", errors="surrogateescape")
            self._csv[tag] = data
            return data

    def files(self, tag: str) -> Iterator[tuple[str, str]]:
        """Iterate over ``(FILE_PATH, FILENAME)`` of every row of a release.

        Parameters
        ----------
        tag : str
            Release tag.

        Yields
        ------
        tuple of str
            ``(FILE_PATH, FILENAME)``.
        """
        frame = self._frame(self._check_tag(tag))
        yield from zip(frame["FILE_PATH"].tolist(), frame["FILENAME"].tolist())

    def row(self, filename: str, tag: str | None = None) -> dict:
        """The catalog row of a file.

        Parameters
        ----------
        filename : str
            The file name (``FILENAME`` column).
        tag : str, optional
            Release; by default the latest release holding the file.

        Returns
        -------
        dict
            Column name to value, values as in the CSV.
        """
        return self._row(*self._locate(filename, tag))

    def _locate(self, filename: str, tag: str | None) -> tuple[str, int]:
        found = self.find(filename, tag)
        if found is None:
            raise KeyError(f"no file {filename!r} in SPICE release(s) "
                           f"{tag if tag else ', '.join(self._releases)}")
        return found

    def find(self, filename: str, tag: str | None = None,
             file_path: str | None = None) -> tuple[str, int] | None:
        """Locate a file.

        Parameters
        ----------
        filename : str
            The file name.
        tag : str, optional
            Release to look in; by default every release, latest first.
        file_path : str, optional
            If given, ``FILE_PATH`` must match too.

        Returns
        -------
        tuple or None
            ``(tag, row position)``, or ``None`` if not found.
        """
        tags = [self._check_tag(tag)] if tag is not None else list(reversed(self._releases))
        for candidate in tags:
            index = self._release_index(candidate)
            if file_path is None:
                position = index["by_name"].get(filename)
            else:
                position = index["by_path"].get((file_path, filename))
            if position is not None:
                return candidate, position
        return None

    def find_item(self, item_id: str, tag: str | None = None) -> tuple[str, int] | None:
        """Locate a file by SOAR ``data_item_id`` (latest release first).

        Parameters
        ----------
        item_id : str
            File name without version and what follows.
        tag : str, optional
            Release to look in.

        Returns
        -------
        tuple or None
            ``(tag, row position)``, or ``None`` if not found.
        """
        tags = [self._check_tag(tag)] if tag is not None else list(reversed(self._releases))
        for candidate in tags:
            position = self._release_index(candidate)["by_item"].get(item_id)
            if position is not None:
                return candidate, position
        return None

    def find_added(self, name: str, tag: str | None = None) -> tuple[str, int] | None:
        """Locate an added (hostile) row from a URL's last path segment.

        A row matches if its ``FILENAME`` equals ``name``, or if the last
        segment of its ``FILENAME`` (split on ``/`` or ``\\``) does: a client
        that builds a URL from a hostile name gets bytes back even after its
        HTTP library normalised the path.

        Parameters
        ----------
        name : str
            Last path segment of the request.
        tag : str, optional
            Release to look in; by default every release with added rows,
            latest first.

        Returns
        -------
        tuple or None
            ``(tag, row position)``, or ``None`` if not found.
        """
        if tag is not None:
            tags = [self._check_tag(tag)]
        else:
            tags = [t for t in reversed(self._releases) if t in self._added]
        for candidate in tags:
            position = self._release_index(candidate)["added_names"].get(name)
            if position is not None:
                return candidate, position
        return None

    def directory(self, tag: str, path: str) -> tuple[list[str], list[str]] | None:
        """List a directory of the release tree.

        Parameters
        ----------
        tag : str
            Release tag.
        path : str
            Directory relative to ``release-<tag>/``, without leading or
            trailing slash (``""`` for the release directory itself).

        Returns
        -------
        tuple of list or None
            ``(subdirectories, files)``, or ``None`` if there is no such directory.
        """
        tree = self._tree(self._check_tag(tag))
        entry = tree.get(path.strip("/"))
        if entry is None:
            return None
        subdirs, files = entry
        return sorted(subdirs), sorted(files)

    def is_directory(self, tag: str, path: str) -> bool:
        """Whether ``path`` is a directory of release ``tag``.

        Parameters
        ----------
        tag : str
            Release tag.
        path : str
            Directory relative to ``release-<tag>/``.

        Returns
        -------
        bool
            ``True`` for a directory of the tree.
        """
        return path.strip("/") in self._tree(self._check_tag(tag))

    def fits_bytes(self, filename: str, tag: str | None = None) -> bytes:
        """A small, valid FITS file for a catalog row, generated deterministically.

        Parameters
        ----------
        filename : str
            The file name (``FILENAME`` column).
        tag : str, optional
            Release; by default the latest release holding the file.

        Returns
        -------
        bytes
            The FITS file (about 10 to 60 kB).
        """
        return self._fits_at(*self._locate(filename, tag))

    def _fits_at(self, tag: str, position: int) -> bytes:
        row = self._row(tag, position)
        key = (tag, str(row.get("FILENAME")))
        with self._lock:
            data = self._fits.get(key)
            if data is not None:
                self._fits.move_to_end(key)
                return data
        data = _make_fits(row, self.seed)
        with self._lock:
            self._fits[key] = data
            while len(self._fits) > self._fits_cache_size:
                self._fits.popitem(last=False)
        return data

    def filename_at(self, tag: str, position: int) -> str:
        """``FILENAME`` of the row at ``position`` in release ``tag``."""
        return str(self._row(tag, position).get("FILENAME"))

    def file_path_at(self, tag: str, position: int) -> str:
        """``FILE_PATH`` of the row at ``position`` in release ``tag``."""
        return str(self._row(tag, position).get("FILE_PATH"))

    # ----------------------------------------------------------- hostile rows

    def add_rows(self, tag: str, rows: list[dict]) -> pd.DataFrame:
        """Append rows to a release's catalog (e.g. hostile values for safety tests).

        Each dictionary may be partial: missing columns are filled from a
        normal L2 row, with a later ``DATE-BEG`` and a new ``SPIOBSID`` so the
        catalog stays sorted by date, and with ``FILENAME``, ``PARENT``,
        ``FILE_PATH`` and ``DATE-END`` derived from those values unless given.
        Columns the catalog does not have are added. The server lists the rows
        in ``catalog.csv`` and answers a data request for any path whose last
        segment is the ``FILENAME`` (or the last segment of it) of an added
        row. Use `clear_added_rows` to undo.

        Parameters
        ----------
        tag : str
            Release tag.
        rows : list of dict
            Column values.

        Returns
        -------
        pandas.DataFrame
            The added rows, as filled in.
        """
        tag = self._check_tag(tag)
        with self._lock:
            frame = self._frame(tag)
            l2 = frame[frame["LEVEL"] == "L2"]
            template = (l2 if len(l2) else frame).iloc[-1].to_dict()
            try:
                last_ms = _ms(str(frame["DATE-BEG"].iloc[-1]))
            except ValueError:
                last_ms = _ms(str(template["DATE-BEG"]))
            version = data_item_id_version(str(template["FILENAME"]))
            spiobsid_max = int(pd.to_numeric(frame["SPIOBSID"], errors="coerce").max())
            descriptor = _descriptor_from_name(str(template["FILENAME"]))
            filled = []
            for i, given in enumerate(rows):
                row = dict(template)
                begin_ms = last_ms + (i + 1) * 600_000
                row["DATE-BEG"] = _iso_ms(begin_ms)
                row["TIMAQUTC"] = row["DATE-BEG"]
                row["SPIOBSID"] = spiobsid_max + 1 + i
                row["RASTERNO"] = 0
                for key in ("DATE-BEG", "SPIOBSID", "RASTERNO", "LEVEL", "TELAPSE"):
                    if key in given:
                        row[key] = given[key]
                try:
                    begin_ms = _ms(str(row["DATE-BEG"]))
                except ValueError:
                    pass
                level = str(row["LEVEL"])
                digit = level[1:] if level[:1] == "L" and level[1:].isdigit() else "2"
                iso = _iso_ms(begin_ms)
                stamp = iso[:19].replace("-", "").replace(":", "")
                try:
                    rasterno = int(row["RASTERNO"])
                except (TypeError, ValueError):
                    rasterno = 0
                tail = f"_V{version:02d}_{row['SPIOBSID']}-{rasterno:03d}.fits"
                row["FILENAME"] = f"solo_{level}_{descriptor}_{stamp}{tail}"
                row["PARENT"] = f"solo_L{max(int(digit) - 1, 0)}_{descriptor}_{stamp}{tail}"
                row["FILE_PATH"] = f"level{digit}/" + iso[:10].replace("-", "/")
                try:
                    row["DATE-END"] = _iso_ms(begin_ms + int(float(row["TELAPSE"]) * 1000))
                except (TypeError, ValueError):
                    pass
                row.update(given)
                filled.append(row)
            added = pd.DataFrame(filled)
            previous = self._added.get(tag)
            if previous is not None:
                added = pd.concat([previous, added], ignore_index=True)
            self._added[tag] = added
            self._invalidate(tag)
            return added.iloc[len(added) - len(filled):].reset_index(drop=True).copy()

    def clear_added_rows(self, tag: str | None = None) -> None:
        """Remove rows added with `add_rows` (from one release, or from all).

        Parameters
        ----------
        tag : str, optional
            Release tag; by default every release.
        """
        with self._lock:
            tags = [self._check_tag(tag)] if tag is not None else list(self._added)
            for candidate in tags:
                if self._added.pop(candidate, None) is not None:
                    self._invalidate(candidate)

    def added_rows(self, tag: str) -> pd.DataFrame:
        """The rows added to a release with `add_rows` (empty if none).

        Parameters
        ----------
        tag : str
            Release tag.

        Returns
        -------
        pandas.DataFrame
            A copy of the added rows.
        """
        with self._lock:
            added = self._added.get(self._check_tag(tag))
            return pd.DataFrame() if added is None else added.copy()

    def _invalidate(self, tag: str) -> None:
        self._full.pop(tag, None)
        self._csv.pop(tag, None)
        self._index.pop(tag, None)
        self._trees.pop(tag, None)
        for key in [k for k in self._fits if k[0] == tag]:
            del self._fits[key]

    # ------------------------------------------------------------ internals

    def _table(self, tag: str):
        """The generated rows of a release, as a pyarrow Table."""
        with self._lock:
            table = self._tables.get(tag)
            if table is None:
                table = self._build_release(self._releases.index(tag))
                self._tables[tag] = table
            return table

    def _frame(self, tag: str) -> pd.DataFrame:
        with self._lock:
            full = self._full.get(tag)
            if full is not None:
                return full
            base = self._table(tag).to_pandas()
            added = self._added.get(tag)
            if added is None or added.empty:
                full = base
            else:
                full = pd.concat([base, added], ignore_index=True)
            self._full[tag] = full
            return full

    def _row(self, tag: str, position: int) -> dict:
        table = self._table(tag)
        if position < table.num_rows:
            return table.slice(position, 1).to_pylist()[0]
        with self._lock:
            added = self._added[tag]
            row = added.iloc[position - table.num_rows].to_dict()
        return {key: (value.item() if isinstance(value, np.generic) else value)
                for key, value in row.items()}

    def _release_index(self, tag: str) -> dict:
        with self._lock:
            index = self._index.get(tag)
            if index is not None:
                return index
            import pyarrow.compute as pc

            table = self._table(tag)
            names = table["FILENAME"].to_pylist()
            paths = table["FILE_PATH"].to_pylist()
            items = pc.replace_substring_regex(
                table["FILENAME"], r"_V\d{2,}_[^/]*$", "").to_pylist()
            added = self._added.get(tag)
            if added is not None and not added.empty:
                extra_names = [str(n) for n in added["FILENAME"].tolist()]
                names = names + extra_names
                paths = paths + [str(p) for p in added["FILE_PATH"].tolist()]
                items = items + [data_item_id(n) for n in extra_names]
            by_name = dict(zip(reversed(names), range(len(names) - 1, -1, -1)))
            by_path = dict(zip(zip(reversed(paths), reversed(names)),
                               range(len(names) - 1, -1, -1)))
            by_item = dict(zip(reversed(items), range(len(items) - 1, -1, -1)))
            added_names: dict[str, int] = {}
            for position in range(table.num_rows, len(names)):
                name = names[position]
                for key in (name, re.split(r"[/\\]", name)[-1]):
                    if key:
                        added_names.setdefault(key, position)
            index = {"by_name": by_name, "by_path": by_path, "by_item": by_item,
                     "added_names": added_names}
            self._index[tag] = index
            return index

    def _tree(self, tag: str) -> dict[str, tuple[set, set]]:
        """Directory tree of a release: path -> (subdirectories, files)."""
        with self._lock:
            tree = self._trees.get(tag)
            if tree is not None:
                return tree
            tree = {"": (set(), {"catalog.csv", "release-notes.html"})}
            for path, name in self.files(tag):
                path, name = str(path), str(name)
                entry = tree.get(path)
                if entry is None:
                    parts = path.split("/")
                    if any(p in ("", ".", "..") for p in parts):
                        continue  # hostile paths are served, but not listed
                    for depth in range(len(parts)):
                        parent = "/".join(parts[:depth])
                        tree.setdefault(parent, (set(), set()))[0].add(parts[depth])
                    entry = tree.setdefault(path, (set(), set()))
                if "/" not in name and "\\" not in name:
                    entry[1].add(name)
            self._trees[tag] = tree
            return tree

    def _master_table(self):
        with self._lock:
            if self._master is None:
                self._master = self._generate_master()
            return self._master

    def _generate_master(self):
        """All files of the latest release, without the release-specific columns."""
        strings = _Strings()
        pa = strings.pa
        rng = np.random.default_rng(self.seed)
        st = _study_table()
        n_rasters = -(-self.n_files // 2)

        # Observations: study, and number of repetitions (exact total).
        weights = st["weight"] / st["weight"].sum()
        study = rng.choice(len(st["name"]), size=n_rasters, p=weights)
        typ = st["typ"][study]
        reps = np.where(
            typ == "Single Exposure", rng.geometric(0.15, n_rasters),
            np.where(typ == "Sit-and-stare", rng.geometric(0.5, n_rasters),
                     rng.geometric(0.35, n_rasters)))
        reps = np.minimum(reps, 30)
        cumulative = np.cumsum(reps)
        n_obs = int(np.searchsorted(cumulative, n_rasters)) + 1
        study, typ, reps = study[:n_obs], typ[:n_obs], reps[:n_obs].copy()
        reps[-1] -= int(cumulative[n_obs - 1] - n_rasters)

        # Per-observation values.
        nax1 = st["nax1_lo"][study] + np.floor(
            rng.random(n_obs) * (st["nax1_hi"][study] - st["nax1_lo"][study] + 1)
        ).astype(np.int64)
        nax4 = np.where(typ == "Sit-and-stare", rng.integers(30, 181, n_obs), 1)
        xposure = st["xposure"][study]
        soop_weights = np.array([s[2] for s in _SOOPS])
        soop = rng.choice(len(_SOOPS), size=n_obs, p=soop_weights / soop_weights.sum())
        on_disk = rng.random(n_obs) < 0.6
        crval1 = np.where(on_disk, rng.normal(0, 350, n_obs), rng.uniform(-1000, 1000, n_obs))
        crval2 = np.where(on_disk, rng.normal(0, 350, n_obs), rng.uniform(-1000, 1000, n_obs))
        crval1 = np.round(np.clip(crval1, -1000, 1000), 2)
        crval2 = np.round(np.clip(crval2, -1000, 1000), 2)
        crota = np.round(np.clip(rng.normal(0, 0.8, n_obs), -3, 3), 3)
        version_offset = rng.integers(0, 3, n_obs)
        darkmap = (rng.random(n_obs) < 0.1).astype(np.int64)
        complete = np.where(rng.random(n_obs) < 0.96, 0, 1)
        dark_delta = rng.integers(1, 60, n_obs)
        id_increment = rng.integers(1, 5, n_obs)
        obs_hex = rng.integers(0, 16**4, n_obs)
        obs_alnum = rng.integers(0, len(_ALNUM) ** 2, (2, n_obs))
        obs_seq = rng.integers(1, 200, n_obs)
        pause = rng.uniform(2.0, 30.0, n_obs)

        # Durations, then a layout in time with random gaps filling the span.
        telapse = np.where(typ == "Raster", nax1 * (xposure + 0.45) + 3.0,
                           np.where(typ == "Sit-and-stare", nax4 * (xposure + 0.45),
                                    xposure + 0.45))
        step = telapse + pause
        span = (self._end_ms - self._start_ms) / 1000.0 - 86400.0
        busy = float((reps * step).sum())
        if busy > 0.7 * span:
            factor = 0.7 * span / busy
            step = np.maximum(step * factor, 2.5)
            telapse = np.minimum(telapse * factor, step - 1.0)
        telapse = np.round(telapse, 3)
        step_ms = np.round(step * 1000).astype(np.int64)
        duration_ms = reps * step_ms
        free_ms = (self._end_ms - self._start_ms) - _DAY_MS - int(duration_ms.sum())
        if free_ms <= 0:
            raise ValueError("too many files for the time span; lower n_files or widen it")
        gaps = rng.exponential(1.0, n_obs)
        gaps_ms = np.floor(gaps * (free_ms / gaps.sum())).astype(np.int64)
        obs_start = (self._start_ms + np.cumsum(gaps_ms)
                     + np.concatenate([[0], np.cumsum(duration_ms)[:-1]]))

        # SPIOBSID: a prefix that changes every half year, then a counter.
        prefix = 5 + np.maximum((obs_start - _ms("2021-01-01")) // (182 * _DAY_MS), -5)
        counter = np.cumsum(id_increment)
        first = np.searchsorted(prefix, prefix, side="left")
        counter = counter - (counter[first] - id_increment[first]) + 100
        spiobsid = prefix * 2**24 + counter

        # Expand observations into raster repetitions.
        obs = np.repeat(np.arange(n_obs), reps)
        group_start = np.concatenate([[0], np.cumsum(reps)[:-1]])
        rasterno = np.arange(len(obs)) - np.repeat(group_start, reps)
        begin = obs_start[obs] + rasterno * step_ms[obs]
        n = len(begin)
        crval1_r = np.round(crval1[obs] + rng.normal(0, 0.3, n), 2)
        crval2_r = np.round(crval2[obs] + rng.normal(0, 0.3, n), 2)
        missing_timaq = rng.random(n) < 0.1

        # Positions along the orbit (smooth functions of time).
        days = (begin - _ms("2022-03-26T00:00")) / _DAY_MS
        dsun = np.clip(np.round(0.645 - 0.34 * np.cos(2 * np.pi * days / 177.0), 4), 0.2845, 1.02)
        hglt = np.round((3.0 + days / 400.0) * np.sin(2 * np.pi * days / 177.0 + 0.7), 3)
        hgln = np.round(170.0 * np.sin(2 * np.pi * days / 420.0 + 1.3), 3)
        stp = 131 + (begin - _ms("2021-01-04")) // (7 * _DAY_MS)
        end = begin + np.round(telapse[obs] * 1000).astype(np.int64)

        # Strings of each repetition (shared by both levels).
        take = strings.take
        join = strings.join
        stamp = strings.time(begin, "%Y%m%dT%H%M%S", unit="s")
        date_beg = strings.time(begin, "%Y-%m-%dT%H:%M:%S")
        day_dir = strings.time(begin, "%Y/%m/%d", unit="s")
        descriptor = take(st["descriptor"], study[obs])
        tail = join("_", strings.text(spiobsid[obs]), "-",
                    take(strings.digits3, rasterno), ".fits")
        obs_id = join("SSPI_", take(strings.hex4, obs_hex), "_000_000_",
                      take(strings.alnum2, obs_alnum[0]), take(strings.alnum2, obs_alnum[1]),
                      "_", take(strings.digits3, obs_seq))
        cdelt2 = np.where(st["naxis2"][study] <= 600, 2.196, 1.098)

        # Both levels: the L1 row then the L2 row of each repetition.
        twice = np.repeat(np.arange(n), 2)
        level = np.tile(np.array([1, 2]), n)
        per_obs = obs[twice]

        def rows(values):
            return values.take(pa.array(twice))

        level_digit = take(["1", "2"], level - 1)
        parent_digit = take(["0", "1"], level - 1)
        columns = {
            "LEVEL": take(["L1", "L2"], level - 1),
            "_head": join("solo_L", level_digit, "_", rows(descriptor), "_", rows(stamp), "_V"),
            "_parent_head": join("solo_L", parent_digit, "_", rows(descriptor), "_",
                                 rows(stamp), "_V"),
            "_tail": rows(tail),
            "FILE_PATH": join("level", level_digit, "/", rows(day_dir)),
            "DATE-BEG": rows(date_beg),
            "_begin_ms": begin[twice],
            "TIMAQUTC": rows(strings.pc.if_else(pa.array(missing_timaq), "MISSING", date_beg)),
            "DATE-END": rows(strings.time(end, "%Y-%m-%dT%H:%M:%S")),
            "SPIOBSID": spiobsid[per_obs],
            "RASTERNO": rasterno[twice],
            "STUDY": take(st["name"], study[per_obs]),
            "STUDYTYP": take(st["typ"], study[per_obs]),
            "STUDYDES": take(st["description"], study[per_obs]),
            "MISOSTUD": st["misostud"][study][per_obs],
            "XPOSURE": xposure[per_obs],
            "NAXIS1": nax1[per_obs],
            "NAXIS2": st["naxis2"][study][per_obs],
            "NAXIS3": st["naxis3"][study][per_obs],
            "NAXIS4": nax4[per_obs],
            "NBIN3": st["nbin3"][study][per_obs],
            "OBT_BEG": np.round((begin - _ms("2000-01-01")) / 1000.0 - 56.25, 1)[twice],
            "CRVAL1": crval1_r[twice],
            "CDELT1": st["slit"][study][per_obs],
            "CTYPE1": take(["HPLN-TAN"], np.zeros(2 * n, dtype=np.int64)),
            "CUNIT1": take(["arcsec"], np.zeros(2 * n, dtype=np.int64)),
            "CRVAL2": crval2_r[twice],
            "CDELT2": cdelt2[per_obs],
            "CTYPE2": take(["HPLT-TAN"], np.zeros(2 * n, dtype=np.int64)),
            "CUNIT2": take(["arcsec"], np.zeros(2 * n, dtype=np.int64)),
            "STP": stp[twice],
            "DSUN_AU": dsun[twice],
            "CROTA": crota[per_obs],
            "OBS_ID": obs_id.take(pa.array(per_obs)),
            "SOOPNAME": take([s[0] for s in _SOOPS], soop[per_obs]),
            "SOOPTYPE": np.array([s[1] for s in _SOOPS])[soop][per_obs],
            "NWIN": np.array([w.count(",") + 1 for w in _WINDOW_SETS])[
                st["windows"][study]][per_obs],
            "DARKMAP": darkmap[per_obs],
            "COMPLETE": take(["C", "I"], complete[per_obs]),
            "SLIT_WID": st["slit"][study][per_obs],
            "HGLT_OBS": hglt[twice],
            "HGLN_OBS": hgln[twice],
            "_dark": strings.text((spiobsid - dark_delta)[per_obs]),
            "TELAPSE": telapse[per_obs],
            "_windows": st["windows"][study][per_obs],
            "_obs_start": obs_start[per_obs],
            "_version_offset": version_offset[per_obs],
        }
        return pa.table(columns)

    def _build_release(self, i: int):
        """The generated rows of release number ``i`` (0 = oldest), as an arrow Table."""
        strings = _Strings()
        pa, pc = strings.pa, strings.pc
        tag = self._releases[i]
        master = self._master_table()
        mask = master["_obs_start"].to_numpy() < self._cutoff_ms(i)
        number = _tag_number(tag)
        if number is not None and number < 2.0:
            mask &= master["LEVEL"].to_numpy(zero_copy_only=False) == "L2"
        sub = master.filter(pa.array(mask))
        n = sub.num_rows
        rng = np.random.default_rng([self.seed, 7919, i])

        version = i + 1 + sub["_version_offset"].to_numpy()
        vstr = strings.take(strings.digits2, np.minimum(version, 99))
        filename = strings.join(sub["_head"], vstr, sub["_tail"])
        parent = strings.join(sub["_parent_head"], vstr, sub["_tail"])

        # Processing date: some time before the release date, after acquisition.
        release_ms = self._cutoff_ms(i) + 60 * _DAY_MS
        begin = sub["_begin_ms"].to_numpy()
        room = np.maximum(np.minimum(40 * _DAY_MS, release_ms - begin - 2 * _DAY_MS), 0)
        created = release_ms - (rng.random(n) * room).astype(np.int64)
        pipeline = f"1.{i}"

        is_l2 = pc.equal(sub["LEVEL"], "L2")
        steps_l1 = '[{"PRPROC": "JPEG Compression (On-board)"}]'
        steps_l2_head = (
            '[{"PRPROC": "JPEG Compression (On-board)"}, '
            '{"PRPROC": "spice_prep_dark_offset_correction.pro", '
            f'"PRPVER": "{pipeline}", "PRPARA": "dark_spiobsid=')
        steps_l2_tail = (
            '"}, {"PRPROC": "spice_prep_flat_field_correction.pro", '
            f'"PRPVER": "{pipeline}"}}, '
            '{"PRPROC": "spice_prep_radiometric_calibration.pro", '
            f'"PRPVER": "{pipeline}"}}]')

        columns = {}
        for column in CATALOG_COLUMNS:
            if column == "FILENAME":
                columns[column] = filename
            elif column == "PARENT":
                columns[column] = parent
            elif column == "DATE":
                columns[column] = strings.time(created, "%Y-%m-%dT%H:%M:%S", unit="s")
            elif column == "PRSTEP1":
                columns[column] = pc.if_else(is_l2, "DARK-SUBTRACTION", "COMPRESSION")
            elif column == "PRPROC1":
                columns[column] = pc.if_else(is_l2, "spice_prep_dark_offset_correction.pro",
                                             "JPEG Compression (On-board)")
            elif column == "PRPVER1":
                # A string in the FITS headers, but a number once in a CSV file.
                columns[column] = pc.if_else(is_l2, float(pipeline), 1.0)
            elif column == "PRPARA1":
                columns[column] = pc.if_else(
                    is_l2, strings.join("dark_spiobsid=", sub["_dark"]), "JPEG quality 90")
            elif column == "WAVECOV":
                if number is not None and number < 3.0:
                    continue
                columns[column] = strings.take(_WINDOW_SETS, sub["_windows"].to_numpy())
            elif column == "proc_steps":
                columns[column] = pc.if_else(
                    is_l2, strings.join(steps_l2_head, sub["_dark"], steps_l2_tail), steps_l1)
            else:
                columns[column] = sub[column]
        return pa.table(columns)


def _descriptor_from_name(filename: str) -> str:
    parts = filename.split("_")
    return parts[2] if len(parts) > 2 else "spice-n-ras"


# --------------------------------------------------------------------- FITS

def _fits_string(value: str) -> str:
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(value))
    return text.replace("'", "''")


def _fits_card(key: str, value: object, comment: str = "") -> str | None:
    """One 80-character header card, or None if the value cannot be written."""
    key = key.upper()[:8]
    if isinstance(value, (bool, np.bool_)):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        text = f"{int(value):>20d}"
    elif isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return None
        number = repr(float(value)).upper()
        if len(number) > 20:
            number = f"{float(value):.14G}"
        if "." not in number and "E" not in number:
            number += ".0"
        text = f"{number:>20}"
    else:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        escaped = _fits_string(str(value))
        if len(escaped) > 68:
            escaped = escaped[:68]
            if escaped.endswith("'") and (len(escaped) - len(escaped.rstrip("'"))) % 2:
                escaped = escaped[:-1]
        text = f"'{escaped:<8}'"
    card = f"{key:<8}= {text}"
    if comment and len(card) + 3 + len(comment) <= 80:
        card += f" / {comment}"
    return f"{card:<80}"[:80]


_FITS_KEYS: tuple[tuple[str, str], ...] = (
    ("FILENAME", "Filename"),
    ("PARENT", "Source file"),
    ("LEVEL", "Data processing level"),
    ("DATE", "File creation date (UTC)"),
    ("DATE-BEG", "Beginning of acquisition (UTC)"),
    ("DATE-END", "End of acquisition (UTC)"),
    ("TELAPSE", "[s] Elapsed time of acquisition"),
    ("OBT_BEG", "[s] On-board time of acquisition start"),
    ("SPIOBSID", "SPICE Observation ID"),
    ("RASTERNO", "Raster number (starting at 0)"),
    ("STUDYTYP", "Study type"),
    ("STUDYDES", "Study description"),
    ("STUDY", "Study name"),
    ("MISOSTUD", "MISO study ID"),
    ("XPOSURE", "[s] Exposure time"),
    ("OBS_ID", "SOC observation ID"),
    ("SOOPNAME", "SOOP name"),
    ("SOOPTYPE", "SOOP type"),
    ("NWIN", "Number of windows"),
    ("SLIT_WID", "[arcsec] Slit width"),
    ("DSUN_AU", "[AU] Spacecraft-Sun distance"),
    ("HGLT_OBS", "[deg] Observer Stonyhurst latitude"),
    ("HGLN_OBS", "[deg] Observer Stonyhurst longitude"),
    ("CROTA", "[deg] Spacecraft roll"),
    ("COMPLETE", "Completeness flag"),
    ("STP", "Short-term plan"),
    ("WAVECOV", "[nm] Wavelength coverage"),
)


def _make_fits(row: dict, seed: int) -> bytes:
    """A FITS file (primary HDU, 2-D float32 image) describing one catalog row."""
    filename = str(row.get("FILENAME", ""))
    checksum = zlib.crc32(filename.encode("utf-8", errors="surrogateescape"))
    rng = np.random.default_rng([seed, checksum])
    width = 48
    rows_per_block = 2880 // (4 * width)
    data_blocks = 2 + checksum % 19  # with the 2-block header: about 11 to 60 kB
    height = rows_per_block * data_blocks
    x = np.arange(width, dtype=np.float32)
    centre = width / 2 + rng.normal(0, 2)
    profile = np.exp(-0.5 * ((x - centre) / (2.0 + rng.random())) ** 2)
    brightness = 50 + 400 * rng.random(height).astype(np.float32)
    image = (brightness[:, None] * profile[None, :]
             + rng.normal(0, 2, (height, width))).astype(">f4")

    level = str(row.get("LEVEL", ""))
    cards = [
        _fits_card("SIMPLE", True, "conforms to FITS standard"),
        _fits_card("BITPIX", -32, "array data type"),
        _fits_card("NAXIS", 2, "number of array dimensions"),
        _fits_card("NAXIS1", width),
        _fits_card("NAXIS2", height),
        _fits_card("EXTEND", True),
        _fits_card("TELESCOP", "SOLO/SPICE", "Telescope/Sensor name"),
        _fits_card("INSTRUME", "SPICE", "Instrument name"),
        _fits_card("OBSRVTRY", "Solar Orbiter", "Satellite name"),
        _fits_card("BUNIT", "W/m2/sr/nm" if level == "L2" else "adu", "Units of data"),
        _fits_card("VERSION", f"{data_item_id_version(filename):02d}", "File version"),
    ]
    for key, comment in _FITS_KEYS:
        if key in row:
            value = row[key]
            if isinstance(value, np.generic):
                value = value.item()
            cards.append(_fits_card(key, value, comment))
    for key in ("CTYPE1", "CUNIT1", "CRVAL1", "CDELT1", "CTYPE2", "CUNIT2", "CRVAL2", "CDELT2"):
        if key in row:
            value = row[key]
            if isinstance(value, np.generic):
                value = value.item()
            if key.startswith(("CRVAL", "CDELT")):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
            cards.append(_fits_card(key, value))
    cards.append(_fits_card("CRPIX1", (width + 1) / 2.0))
    cards.append(_fits_card("CRPIX2", (height + 1) / 2.0))
    header = "".join(card for card in cards if card is not None) + f"{'END':<80}"
    header += " " * (-len(header) % 2880)
    body = image.tobytes()
    body += b"\0" * (-len(body) % 2880)
    return header.encode("ascii") + body


# ---------------------------------------------------------------------- app

SPICE_DATA_KEY = web.AppKey("spice_data", SpiceArchiveData)
SPICE_FAULTS_KEY = web.AppKey("spice_faults", FaultConfig)

_SEARCH_SUFFIXES = ("/", "catalog.csv", "latest-release.txt", ".html")


def spice_classifier(request: web.BaseRequest) -> str | None:
    """Endpoint class of a request to the SPICE server.

    Catalogs, ``latest-release.txt``, listings and release notes are
    ``"search"``; FITS files and the SOAR data endpoint are ``"data"``.

    Parameters
    ----------
    request : aiohttp.web.BaseRequest
        The request.

    Returns
    -------
    str
        ``"search"`` or ``"data"``.
    """
    path = request.path
    if path.startswith("/soar-sl-tap/"):
        return "data"
    if path.endswith(_SEARCH_SUFFIXES):
        return "search"
    last = path.rsplit("/", 1)[-1]
    if path.startswith("/spice-data") and "." not in last:
        return "search"  # a directory named without its trailing slash
    return "data"


def _listing(title_path: str, subdirs: Sequence[str], files: Sequence[str],
             parent: bool = True) -> web.Response:
    lines = [
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">",
        "<html>",
        f"<head><title>Index of {html.escape(title_path)}</title></head>",
        "<body>",
        f"<h1>Index of {html.escape(title_path)}</h1>",
        "<pre>",
    ]
    if parent:
        lines.append('<a href="../">Parent Directory</a>')
    for name in subdirs:
        quoted = html.escape(name, quote=True)
        lines.append(f'<a href="{quoted}/">{quoted}/</a>')
    for name in files:
        quoted = html.escape(name, quote=True)
        lines.append(f'<a href="{quoted}">{quoted}</a>')
    lines += ["</pre>", "</body></html>", ""]
    return web.Response(text="\n".join(lines), content_type="text/html")


def _disposition(filename: str) -> str:
    safe = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in filename)
    safe = safe.replace("\\", "\\\\").replace('"', '\\"')
    return f'attachment; filename="{safe}"'


async def _in_thread(function, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, partial(function, *args))


def make_spice_app(data: SpiceArchiveData, faults: FaultConfig | None = None) -> web.Application:
    """Build the aiohttp application serving a SPICE release tree and SOAR data.

    Routes (all through the fault middleware):

    * ``/spice-data/metadata/latest-release.txt``
    * ``/spice-data/release-<TAG>/`` (listing), ``.../catalog.csv``,
      ``.../release-notes.html``, ``.../<FILE_PATH>/`` (listings),
      ``.../<FILE_PATH>/<FILENAME>`` (FITS; ``Range`` and ``HEAD`` supported)
    * ``/soar-sl-tap/data`` with ``retrieval_type=LAST_PRODUCT|PRODUCT``,
      ``product_type=SCIENCE``, ``data_item_id=...``, or with
      ``retrieval_type=ALL_PRODUCTS`` and a ``QUERY`` selecting one file name
      (parameter names are case-insensitive).

    Parameters
    ----------
    data : SpiceArchiveData
        What to serve.
    faults : FaultConfig, optional
        Fault configuration; a fresh (inactive) one by default.

    Returns
    -------
    aiohttp.web.Application
        The application; ``app[SPICE_DATA_KEY]`` and ``app[SPICE_FAULTS_KEY]``
        give back ``data`` and ``faults``.
    """
    faults = faults if faults is not None else FaultConfig()
    app = web.Application(middlewares=[fault_middleware(faults, spice_classifier)])
    app[SPICE_DATA_KEY] = data
    app[SPICE_FAULTS_KEY] = faults

    async def root(request: web.Request) -> web.StreamResponse:
        if not request.path.endswith("/"):
            raise web.HTTPMovedPermanently(request.path + "/")
        subdirs = ["metadata"] + [f"release-{tag}" for tag in data.releases]
        return _listing("/spice-data/", subdirs, [])

    async def metadata_dir(request: web.Request) -> web.StreamResponse:
        if not request.path.endswith("/"):
            raise web.HTTPMovedPermanently(request.path + "/")
        return _listing("/spice-data/metadata/", [], ["latest-release.txt"])

    async def latest_release(request: web.Request) -> web.StreamResponse:
        return await send_bytes(request, (data.latest + "\n").encode("ascii"),
                                content_type="text/plain", faults=faults)

    async def serve_file(request: web.Request, tag: str, position: int) -> web.StreamResponse:
        content = await _in_thread(data._fits_at, tag, position)
        return await send_bytes(request, content, content_type="application/fits", faults=faults)

    async def release(request: web.Request) -> web.StreamResponse:
        tag = request.match_info["tag"]
        path = request.match_info["path"]
        if not data.has_release(tag):
            raise web.HTTPNotFound(text=f"No release {tag}\n")
        if path == "catalog.csv":
            content = await _in_thread(data.catalog_csv, tag)
            return await send_bytes(request, content, content_type="text/csv", faults=faults)
        if path == "release-notes.html":
            notes = (
                f"<html><head><title>SPICE data release {html.escape(tag)}</title></head>"
                f"<body><h1>SPICE data release {html.escape(tag)}</h1>"
                f"<p>DOI: 10.48326/idoc.medoc.spice.{html.escape(tag)}</p>"
                "<p>Local test archive generated by sunpy_archives.testing.</p>"
                "</body></html>\n")
            return web.Response(text=notes, content_type="text/html")
        index = await _in_thread(data._release_index, tag)
        directory = path.strip("/")
        if path == "" or path.endswith("/"):
            listing = None
            if "//" not in path:
                listing = await _in_thread(data.directory, tag, directory)
            if listing is not None:
                return _listing(f"/spice-data/release-{tag}/{path}", *listing)
        elif await _in_thread(data.is_directory, tag, directory):
            raise web.HTTPMovedPermanently(request.path + "/")
        file_path, _, name = path.rpartition("/")
        if name:
            position = index["by_path"].get((file_path, name))
            if position is None:
                position = index["added_names"].get(name)
            if position is not None:
                return await serve_file(request, tag, position)
        raise web.HTTPNotFound(text="Not Found\n")

    async def soar_data(request: web.Request) -> web.StreamResponse:
        params = {key.lower(): value for key, value in request.query.items()}
        retrieval = params.get("retrieval_type", "").strip().upper()
        found = None
        if retrieval in ("LAST_PRODUCT", "PRODUCT"):
            product_type = params.get("product_type", "SCIENCE").strip().upper()
            item = params.get("data_item_id", "").strip()
            if not item:
                raise web.HTTPBadRequest(text="Missing parameter: data_item_id\n")
            if product_type != "SCIENCE":
                raise web.HTTPNotFound(text=f"No {product_type} product {item}\n")
            found = await _in_thread(data.find_item, item)
        elif retrieval == "ALL_PRODUCTS":
            query = params.get("query")
            if query is None:
                raise web.HTTPBadRequest(
                    text="ALL_PRODUCTS is only emulated with a QUERY selecting one filename\n")
            match = re.search(r"filename\s*=\s*'((?:[^']|'')*)'", query.replace("+", " "),
                              re.IGNORECASE)
            if match is None:
                raise web.HTTPBadRequest(text="QUERY must select one filename='...'\n")
            filename = match.group(1).replace("''", "'")
            found = await _in_thread(data.find, filename)
        else:
            raise web.HTTPBadRequest(
                text="retrieval_type must be LAST_PRODUCT, PRODUCT or ALL_PRODUCTS\n")
        if found is None:
            raise web.HTTPNotFound(text="No product matches the request\n")
        tag, position = found
        content = await _in_thread(data._fits_at, tag, position)
        filename = data.filename_at(tag, position)
        return await send_bytes(request, content, content_type="application/fits",
                                headers={"Content-Disposition": _disposition(filename)},
                                faults=faults)

    async def fallback(request: web.Request) -> web.StreamResponse:
        # A client that built a URL from hostile catalog values (for example
        # ``..`` in FILE_PATH) may end up outside /spice-data/release-<tag>/
        # once its HTTP library normalised the path: still serve added rows.
        name = request.path.rsplit("/", 1)[-1]
        if name:
            found = await _in_thread(data.find_added, name)
            if found is not None:
                return await serve_file(request, *found)
        raise web.HTTPNotFound(text="Not Found\n")

    app.router.add_get("/spice-data", root)
    app.router.add_get("/spice-data/", root)
    app.router.add_get("/spice-data/metadata", metadata_dir)
    app.router.add_get("/spice-data/metadata/", metadata_dir)
    app.router.add_get("/spice-data/metadata/latest-release.txt", latest_release)
    app.router.add_get(r"/spice-data/release-{tag:[^/]+}/{path:.*}", release)
    app.router.add_get(r"/spice-data/release-{tag:[^/]+}", root_redirect)
    app.router.add_get("/soar-sl-tap/data", soar_data)
    app.router.add_get("/{tail:.*}", fallback)
    return app


async def root_redirect(request: web.Request) -> web.StreamResponse:
    """Redirect a directory URL without its trailing slash (like Apache)."""
    raise web.HTTPMovedPermanently(request.path + "/")


class SpiceServer(LocalServer):
    """A `LocalServer` serving a `SpiceArchiveData`.

    Parameters
    ----------
    data : SpiceArchiveData, optional
        What to serve; `SpiceArchiveData.small` by default.
    faults : FaultConfig, optional
        Fault configuration; a fresh (inactive) one by default.
    host : str
        Interface.
    port : int
        Port (``0`` for a free one).
    """

    def __init__(self, data: SpiceArchiveData | None = None, faults: FaultConfig | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.data = data if data is not None else SpiceArchiveData.small()
        self.faults = faults if faults is not None else FaultConfig()
        super().__init__(make_spice_app(self.data, self.faults), host=host, port=port)

    def environment(self) -> dict[str, str]:
        """The environment variables that point the SPICE client at this server."""
        return {"SUNPY_ARCHIVES_SPICE_URL": self.base_url, "SUNPY_ARCHIVES_SOAR_URL": self.soar_url}

    @property
    def base_url(self) -> str:
        """Root of the release tree, ``http://127.0.0.1:PORT/spice-data/``."""
        return f"{self.url}/spice-data/"

    @property
    def soar_url(self) -> str:
        """The SOAR data endpoint, ``http://127.0.0.1:PORT/soar-sl-tap/data``."""
        return f"{self.url}/soar-sl-tap/data"

    def file_url(self, filename: str, tag: str | None = None) -> str:
        """URL of a file in the release tree (latest release holding it by default)."""
        row_tag, position = self.data.find(filename, tag) or (None, None)
        if row_tag is None:
            raise KeyError(f"no file {filename!r}")
        file_path = self.data.file_path_at(row_tag, position)
        return f"{self.base_url}release-{row_tag}/{file_path}/{filename}"


def start_spice_server(data: SpiceArchiveData | None = None,
                       faults: FaultConfig | None = None, *, host: str = "127.0.0.1",
                       port: int = 0) -> SpiceServer:
    """Start a SPICE archive server in a background thread.

    Parameters
    ----------
    data : SpiceArchiveData, optional
        What to serve; `SpiceArchiveData.small` by default.
    faults : FaultConfig, optional
        Fault configuration; a fresh (inactive) one by default.
    host : str
        Interface.
    port : int
        Port (``0`` for a free one).

    Returns
    -------
    SpiceServer
        The running server; call ``.stop()`` (or use it as a context manager).
    """
    return SpiceServer(data, faults, host=host, port=port).start()
