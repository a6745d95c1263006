"""
The Fido client for the Solar Orbiter SPICE data releases.
"""

from __future__ import annotations

import difflib
import json
import re
import warnings
from importlib import resources

import numpy as np
import sunpy.net.attrs as a
from astropy.time import Time
from sunpy.net.attr import and_
from sunpy.net.base_client import BaseClient, convert_row_to_table

from ..core.download import DownloadJob, fetch, relpath_values
from ..core.errors import ArchiveWarning, BadInputError
from ..core.http import make_session
from ..core.table import make_table
from ..core.walker import append, block_walker, collect_values, routes_to
from . import _attrs as sa
from .catalog import closest_rows, date_mask, load_table, table_columns, table_dtypes
from .files import file_url, soar_file_url
from .release import ARCHIVE, Release, spice_base_url

__all__ = ["SPICEClient"]

LEVELS = ("L1", "L2", "L3")
PROVIDERS = {"IAS": "the SPICE release tree (Universite Paris-Saclay, IAS)",
             "SOAR": "the Solar Orbiter Archive (ESA), same files"}
OWN_ATTRS = (sa.Release, sa.SOOP, sa.Query, sa.Closest)
#: Catalog columns a search filters on or puts in its result table.
RESULT_COLUMNS = ("DATE-BEG", "DATE-END", "TELAPSE", "LEVEL", "SOOPNAME", "STUDY", "OBS_ID",
                  "SPIOBSID", "RASTERNO", "FILENAME", "FILE_PATH")
GENERIC_ATTRS = (a.Time, a.Level, a.Wavelength, a.Instrument, a.Provider)

# --- query tree -> one parameter block per OR branch ------------------------------------------

walker = block_walker()
collect_values(walker, {
    sa.Release: "release",
    sa.SOOP: "soop",
    sa.Closest: "near",
})


@walker.add_applier(sa.Query)
def _(wlk, attr, params):
    append(params, "query", attr)


@walker.add_applier(a.Time)
def _(wlk, attr, params):
    append(params, "time", (attr.start, attr.end))
    if getattr(attr, "near", None) is not None:
        append(params, "near", attr.near)


@walker.add_applier(a.Level)
def _(wlk, attr, params):
    append(params, "level", normalise_level(attr.value))


@walker.add_applier(a.Instrument)
def _(wlk, attr, params):
    if str(attr.value).upper() != "SPICE":
        raise BadInputError(f"the SPICE client serves Instrument('SPICE') only, not {attr.value!r}",
                            archive=ARCHIVE)


@walker.add_applier(a.Provider)
def _(wlk, attr, params):
    provider = str(attr.value).upper()
    if provider not in PROVIDERS:
        raise BadInputError(f"provider {attr.value!r} does not serve SPICE release files; use one of "
                            f"{', '.join(PROVIDERS)}", archive=ARCHIVE)
    append(params, "provider", provider)


@walker.add_applier(a.Wavelength)
def _(wlk, attr, params):
    import astropy.units as u

    append(params, "wavelength", (attr.min.to_value(u.nm, equivalencies=u.spectral()),
                                  attr.max.to_value(u.nm, equivalencies=u.spectral())))


def normalise_level(value) -> str:
    """``2``, ``"2"``, ``"L2"`` and ``"l2"`` all mean ``"L2"``.

    Examples
    --------
    >>> normalise_level(2)
    'L2'
    """
    text = str(value).strip().upper()
    if re.fullmatch(r"\d", text):
        text = "L" + text
    if text not in LEVELS:
        raise BadInputError(f"{value!r} is not a SPICE level; use 1, 2, 'L1' or 'L2'", archive=ARCHIVE)
    return text


# --- filters on the catalog (vectorised) -------------------------------------------------------

def _soop_mask(frame, name: str) -> np.ndarray:
    # A catalog has a few dozen distinct SOOPNAME values over many rows: match
    # the distinct values once and map the answer back to the rows.
    pattern = re.compile(rf"(?:^|,)\s*{re.escape(name)}\s*(?:,|$)", re.IGNORECASE)
    codes, values = frame["SOOPNAME"].factorize()
    hit = np.array([bool(pattern.search(str(v))) for v in values] + [False])
    return hit[codes]  # code -1 (missing) picks the trailing False


def _known_soops(frame) -> list[str]:
    names = set()
    for value in frame["SOOPNAME"].dropna().unique():
        names.update(part.strip() for part in str(value).split(",") if part.strip())
    return sorted(names)


def _wavelength_mask(frame, wmin: float, wmax: float) -> np.ndarray:
    if "WAVECOV" not in frame.columns:
        raise BadInputError("this release's catalog has no WAVECOV column (wavelength coverage is "
                            "listed from release 3.0 on); drop a.Wavelength or pick a later release",
                            archive=ARCHIVE)
    ranges = frame["WAVECOV"].str.extractall(r"(?P<lo>\d+(?:\.\d+)?)\s*-\s*(?P<hi>\d+(?:\.\d+)?)")
    if ranges.empty:
        return np.zeros(len(frame), dtype=bool)
    lo = ranges["lo"].astype(float).to_numpy()
    hi = ranges["hi"].astype(float).to_numpy()
    hit = (lo <= wmax) & (hi >= wmin)
    rows = ranges.index.get_level_values(0)[hit]
    return frame.index.isin(rows)


def _end_times(frame):
    import pandas as pd

    if "DATE-END" in frame.columns:
        end = frame["DATE-END"]
    else:
        end = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    if "TELAPSE" in frame.columns:
        derived = frame["DATE-BEG"] + pd.to_timedelta(pd.to_numeric(frame["TELAPSE"], errors="coerce"),
                                                      unit="s")
        end = end.fillna(derived)
    return end.fillna(frame["DATE-BEG"])


def _times(series) -> Time:
    # Through MJD: astropy's datetime64 format goes through strings, ~50x slower.
    ms = series.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    missing = series.isna().to_numpy()
    days, rest = np.divmod(ms, 86_400_000)
    time = Time(days + 40587.0, rest / 86_400_000, format="mjd", scale="utc")
    if missing.any():
        time[missing] = np.ma.masked
    time.format = "isot"
    time.precision = 3
    return time


class SPICEClient(BaseClient):
    """
    Search and fetch Solar Orbiter SPICE files from the SPICE data releases.

    A query reaches this client when it holds at least one ``a.spice`` attr
    (``Release``, ``SOOP``, ``Query``, ``Closest``); it also understands
    ``a.Time`` (DATE-BEG within [start, end], both ends included),
    ``a.Level`` (``2``, ``"L2"``...; all levels if absent), ``a.Wavelength``
    (files whose WAVECOV windows overlap the range), ``a.Instrument("SPICE")``
    and ``a.Provider`` (``"IAS"``, the release tree, by default; ``"SOAR"``
    fetches the same files from the Solar Orbiter Archive).

    Parameters
    ----------
    base_url : str, optional
        Release-tree root; default ``SUNPY_ARCHIVES_SPICE_URL``, then sunpyrc, then the public tree.
    soar_url : str, optional
        SOAR data endpoint; default ``SUNPY_ARCHIVES_SOAR_URL``, then sunpyrc, then ESA's.
    cache : path-like, optional
        Folder for parsed catalogs; default ``SUNPY_ARCHIVES_CACHE_DIR`` or the user cache.

    Examples
    --------
    >>> import sunpy_archives  # registers a.spice with Fido
    >>> from sunpy.net import Fido, attrs as a
    >>> res = Fido.search(a.spice.Release("2.0"), a.spice.SOOP("L_BOTH_HRES_HCAD_Major-Flare"),
    ...                   a.Level(2), a.Time("2022-03-01", "2022-03-31"))  # doctest: +SKIP
    >>> files = Fido.fetch(res, path="~/spice/{file_path}/{file}")  # doctest: +SKIP
    """

    def __init__(self, base_url: str | None = None, soar_url: str | None = None, cache=None):
        self.base_url = spice_base_url(base_url)
        self.soar_url = soar_url
        self.cache = cache
        self._session = None

    @property
    def session(self):
        if self._session is None:
            self._session = make_session()
        return self._session

    @property
    def info_url(self) -> str:
        return self.base_url

    # -- search ----------------------------------------------------------------------------

    def search(self, *query, **kwargs):
        """Search the SPICE release catalogs.

        Returns
        -------
        sunpy.net.base_client.QueryResponseTable
            One row per file, sorted by start time.
        """
        from astropy.table import vstack

        blocks = walker.create(and_(*query))
        tables = [self._search_block(params) for params in blocks]
        if len(tables) == 1:
            return tables[0]
        table = vstack(tables, metadata_conflicts="silent")
        table.client = self
        table.hide_keys = tables[0].hide_keys
        return table

    def _search_block(self, params: dict):
        tags = set(params.get("release", ["latest"]))
        if len(tags) > 1:
            raise BadInputError("a query can name one release; combine releases with | instead of &",
                                archive=ARCHIVE)
        providers = set(params.get("provider", ["IAS"]))
        if len(providers) > 1:
            raise BadInputError("a query can name one provider", archive=ARCHIVE)
        release = Release(tags.pop(), base_url=self.base_url, session=self.session)
        table = load_table(release, cache=self.cache, session=self.session)

        # Convert to pandas only the columns this search reads or returns.
        needed = list(RESULT_COLUMNS)
        if params.get("wavelength"):
            needed.append("WAVECOV")
        if params.get("query"):
            from .query import check

            dtypes = table_dtypes(table)
            for query in params["query"]:
                check(query.node, dtypes, expression=query.value)
                needed.extend(sorted(query.node.columns()))
        frame = table_columns(table, needed)

        mask = np.ones(len(frame), dtype=bool)
        for level in params.get("level", []):
            mask &= (frame["LEVEL"] == level).to_numpy(dtype=bool, na_value=False)
        for soop in params.get("soop", []):
            soop_hits = _soop_mask(frame, soop)
            if not soop_hits.any():
                close = difflib.get_close_matches(soop, _known_soops(frame), n=3, cutoff=0.4)
                hint = f"closest known SOOPs: {', '.join(close)}" if close else "see print(a.spice.SOOP)"
                warnings.warn(f"{ARCHIVE}: no file of release {release.tag} has SOOP {soop!r}; {hint}",
                              ArchiveWarning, stacklevel=4)
            mask &= soop_hits
        for wmin, wmax in params.get("wavelength", []):
            mask &= _wavelength_mask(frame, wmin, wmax)
        for query in params.get("query", []):
            from .query import evaluate

            mask &= evaluate(query.node, frame, expression=query.value)
        for start, end in params.get("time", []):
            mask &= date_mask(frame, start, end)
        selected = frame[mask]
        for near in params.get("near", []):
            selected = closest_rows(selected, near, per=["LEVEL"])
        selected = selected.sort_values("DATE-BEG", kind="stable")
        return self._make_table(selected, release, providers.pop())

    def _make_table(self, frame, release: Release, provider: str):
        n = len(frame)

        def column(name, default=""):
            if name in frame.columns:
                return frame[name].to_numpy(dtype=object, na_value=default)
            return np.full(n, default, dtype=object)

        columns = {
            "Start Time": _times(frame["DATE-BEG"]),
            "End Time": _times(_end_times(frame)),
            "Instrument": np.full(n, "SPICE"),
            "Level": column("LEVEL").astype(str),
            "SOOP Name": column("SOOPNAME").astype(str),
            "Study": column("STUDY").astype(str),
            "OBS_ID": column("OBS_ID").astype(str),
            "SPIOBSID": column("SPIOBSID", -1).astype(np.int64),
            "Raster": column("RASTERNO", -1).astype(np.int64),
            "Filename": column("FILENAME").astype(str),
            "Release": np.full(n, release.tag),
            "File Path": column("FILE_PATH").astype(str),
            "Provider": np.full(n, provider),
        }
        return make_table(columns, self, hide_keys=["SPIOBSID", "Raster"],
                          meta={"release_url": release.url})

    # -- fetch -----------------------------------------------------------------------------

    def _url(self, row) -> str:
        if row["Provider"] == "SOAR":
            return soar_file_url(row["Filename"], self.soar_url)
        return file_url(f"{self.base_url}release-{row['Release']}/", row["File Path"], row["Filename"])

    @convert_row_to_table
    def fetch(self, query_results, *, path=None, downloader=None, wait=True, progress=True,
              overwrite=False, **kwargs):
        """Download the files of ``query_results``.

        Parameters
        ----------
        query_results : QueryResponseTable or QueryResponseRow
            Rows from `search` (any subset).
        path : str or path-like, optional
            A folder or a template; every column works as a field
            (``{file_path}`` reproduces the release tree), ``{file}`` is the file name.
        downloader : parfive.Downloader, optional
            Queue on this downloader (as Fido does) instead of downloading now.
        wait : bool
            With no downloader: download now (True) or return the downloader (False).
        progress, overwrite
            As in `~sunpy.net.Fido.fetch`, when no downloader is given.

        Returns
        -------
        parfive.Results or None
        """
        jobs = [DownloadJob(self._url(row), str(row["Filename"]),
                            relpath_values(row.response_block_map, ["file_path"]))
                for row in query_results]
        return fetch(jobs, path=path, downloader=downloader, wait=wait, progress=progress,
                     overwrite=overwrite, max_splits=kwargs.get("max_splits"), archive=ARCHIVE)

    # -- Fido plumbing ---------------------------------------------------------------------

    @classmethod
    def _can_handle_query(cls, *query) -> bool:
        return routes_to(query, OWN_ATTRS, GENERIC_ATTRS)

    @classmethod
    def _attrs_module(cls):
        return "spice", "sunpy_archives.spice.attrs"

    @classmethod
    def register_values(cls):
        data = json.loads(resources.files("sunpy_archives.spice").joinpath("data/attrs.json").read_text())
        return {
            sa.Release: [(tag, desc) for tag, desc in data["releases"]],
            sa.SOOP: [(name, desc) for name, desc in data["soops"]],
            a.Instrument: [("SPICE", "SPectral Imaging of the Coronal Environment on Solar Orbiter")],
            a.Level: [("L1", "SPICE level 1: uncalibrated"), ("L2", "SPICE level 2: calibrated")],
            a.Provider: [(name, desc) for name, desc in PROVIDERS.items()],
        }
