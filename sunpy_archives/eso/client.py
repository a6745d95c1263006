"""
The Fido client for the ESO Science Archive (Phase 3 products and their files).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import sunpy.net.attrs as a
from sunpy.net.attr import and_
from sunpy.net.base_client import BaseClient, convert_row_to_table

from ..core.config import get_setting
from ..core.download import DownloadJob, fetch
from ..core.errors import ArchiveWarning, BadInputError, SearchError
from ..core.http import make_session
from ..core.table import make_table
from ..core.walker import append, block_walker, collect_values, routes_to
from . import _attrs as ea
from .adql import deprecated_query, files_query
from .datalink import product_files

__all__ = ["ESOClient", "default_filename"]

ARCHIVE = ea.ARCHIVE
OWN_ATTRS = (ea.Collection, ea.Category, ea.ProductID, ea.Extension, ea.MaxRecords, ea.Cone)
GENERIC_ATTRS = (a.Instrument, a.Time)
#: Parallel DataLink requests for deprecated products.
DATALINK_WORKERS = 4

COLUMNS = (
    "Product ID",
    "Archive ID",
    "Category",
    "Extension",
    "Original Filename",
    "Estimated Size",
    "Instrument",
    "Collection",
    "Start Time",
    "End Time",
    "Access URL",
    "Listed By",
)
HIDDEN = ("Access URL", "Listed By")

# --- query tree -> one parameter block per OR branch ------------------------------------------

walker = block_walker()
collect_values(walker, {
    ea.Collection: "collection",
    ea.Category: "category",
    ea.ProductID: "product_id",
    ea.Extension: "extension",
    ea.MaxRecords: "maxrec",
})


@walker.add_applier(ea.Cone)
def _(wlk, attr, params):
    append(params, "cone", (attr.ra, attr.dec, attr.radius))


@walker.add_applier(a.Instrument)
def _(wlk, attr, params):
    text = str(attr.value).strip().upper()
    if not text:
        raise BadInputError("a.Instrument needs a name such as 'MUSE'", archive=ARCHIVE)
    append(params, "instrument", text)


@walker.add_applier(a.Time)
def _(wlk, attr, params):
    append(params, "time", (float(attr.start.utc.mjd), float(attr.end.utc.mjd)))


def build_blocks(*query) -> list[dict]:
    """Turn Fido attrs into one parameter block per OR branch (pure; raises BadInputError).

    Examples
    --------
    >>> import sunpy_archives.eso.attrs as eso
    >>> build_blocks(eso.Collection("MUSE") & eso.Category("ANCILLARY.PREVIEW"))
    [{'collection': ['MUSE'], 'category': ['ANCILLARY.PREVIEW']}]
    """
    blocks = walker.create(and_(*query))
    for params in blocks:
        if len(params.get("maxrec", [])) > 1:
            raise BadInputError("give a.eso.MaxRecords once per query", archive=ARCHIVE)
        files_query(params)  # checks every value can be quoted, before any request
        deprecated_query(params)
    return blocks


def _suffix(original: str, extension: str) -> str:
    name = str(original).replace("\\", "/").rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) >= 3 and parts[-2].lower() == "fits" and parts[-1].isalnum():
        return ".".join(parts[-2:])
    if len(parts) >= 2 and parts[-1].isalnum() and len(parts[-1]) <= 10:
        return parts[-1]
    return str(extension).lower() or "dat"


def default_filename(archive_id: str, original_filename: str, extension: str) -> str:
    """The default name of a downloaded file: the archive id with the original file's extension.

    Original file names are not unique across products; archive ids are.

    Examples
    --------
    >>> default_filename("ADP.2024-03-19T05:58:04.410", "r.MUSE.2024-03-07T08:09:46.977_tpl.png", "PNG")
    'ADP.2024-03-19T05:58:04.410.png'
    >>> default_filename("ADP.2012-03-26T07:26:24.407", "v20120314_00531_st_tl.fits.fz", "FZ")
    'ADP.2012-03-26T07:26:24.407.fits.fz'
    """
    return f"{archive_id}.{_suffix(original_filename, extension)}"


class ESOClient(BaseClient):
    """
    Search and fetch ESO Science Archive products and their ancillary files.

    A query reaches this client when it holds at least one ``a.eso`` attr:
    ``Collection``, ``Category`` (an ``eso_category`` or a prefix such as
    ``"ANCILLARY"``), ``ProductID``, ``Extension``, ``MaxRecords`` or
    ``Cone`` (a sky position and radius). It also understands
    ``a.Instrument`` and ``a.Time`` (products whose observation interval
    [t_min, t_max] overlaps [start, end], both ends included).

    The search joins ``phase3v2.product_files`` to ``ivoa.ObsCore`` on the
    archive's TAP service and returns one row per file. Products missing from
    ``product_files`` (deprecated products) are found in ObsCore and their
    files listed through DataLink, when the query constrains products (by id,
    collection, instrument, time or position). Only public data for now.

    Sizes are the archive's estimates (column "Estimated Size"), so Fido
    prints no total for this client and downloads are not checked against them.

    Parameters
    ----------
    base_url : str, optional
        Archive root; default ``SUNPY_ARCHIVES_ESO_URL``, then sunpyrc, then
        ``https://archive.eso.org``. The TAP service is ``<base_url>/tap_obs``.

    Examples
    --------
    >>> import sunpy_archives.eso  # registers a.eso with Fido
    >>> from sunpy.net import Fido, attrs as a
    >>> res = Fido.search(a.eso.Collection("MUSE"), a.eso.Category("ANCILLARY.PREVIEW"))  # doctest: +SKIP
    >>> files = Fido.fetch(res, path="~/eso/{product_id}/{file}")  # doctest: +SKIP
    """

    def __init__(self, base_url: str | None = None):
        self.base_url = get_setting("eso_url", base_url).rstrip("/")
        self._session = None

    @property
    def tap_url(self) -> str:
        """The TAP service, ``<base_url>/tap_obs``."""
        return f"{self.base_url}/tap_obs"

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
        """Search the archive; one row per file.

        Returns
        -------
        sunpy.net.base_client.QueryResponseTable
        """
        from astropy.table import vstack

        blocks = build_blocks(*query)
        tables = [self._search_block(params) for params in blocks]
        if len(tables) == 1:
            return tables[0]
        table = vstack(tables, metadata_conflicts="silent")
        table.client = self
        table.hide_keys = list(HIDDEN)
        return table

    def run_query(self, adql: str, maxrec: int | None = None):
        """Run one ADQL query on the TAP service; return ``(pyvo results, overflowed)``.

        Raises
        ------
        SearchError
            The service refused the query (its message is included) or could not be reached.
        """
        import pyvo
        from pyvo.dal import DALFormatError, DALQueryError, DALServiceError

        service = pyvo.dal.TAPService(self.tap_url, session=self.session)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pyvo.dal.DALOverflowWarning)
                results = service.search(adql, maxrec=maxrec)
        except DALQueryError as exc:
            raise SearchError(
                f"the TAP service refused the query: {exc}\nQuery was:\n{adql}",
                archive=ARCHIVE,
                url=self.tap_url,
            ) from None
        except (DALServiceError, DALFormatError) as exc:
            raise SearchError(
                f"the TAP service failed ({exc}); check SUNPY_ARCHIVES_ESO_URL or try again later",
                archive=ARCHIVE,
                url=self.tap_url,
            ) from None
        return results, str(results.query_status or "").upper() == "OVERFLOW"

    def _warn_cut(self, rows: int, maxrec: int | None, what: str) -> None:
        if maxrec is None:
            warnings.warn(
                f"{ARCHIVE}: the archive cut the {what} at {rows} rows, its default limit; "
                f"ask for more with a.eso.MaxRecords(n), e.g. a.eso.MaxRecords({rows * 10})",
                ArchiveWarning,
                stacklevel=5,
            )
        elif rows < maxrec:
            warnings.warn(
                f"{ARCHIVE}: the archive cut the {what} at {rows} rows, below the "
                f"a.eso.MaxRecords({maxrec}) asked for (its hard limit); narrow the query",
                ArchiveWarning,
                stacklevel=5,
            )

    def _search_block(self, params: dict):
        maxrec = params.get("maxrec", [None])[0]
        rows: list[dict] = []
        results, cut = self.run_query(files_query(params), maxrec)
        categories = [ea.Category(c) for c in params.get("category", [])]
        for record in results.to_table():
            category = str(record["eso_category"])
            if categories and not all(c.matches(category) for c in categories):
                continue
            rows.append(
                {
                    "Product ID": str(record["product_id"]),
                    "Archive ID": str(record["archive_id"]),
                    "Category": category,
                    "Extension": str(record["extension"]),
                    "Original Filename": str(record["original_filename"]),
                    "Estimated Size": _float(record["access_estsize"]),
                    "Instrument": str(record["instrument_name"]),
                    "Collection": str(record["obs_collection"]),
                    "Start Time": _float(record["t_min"]),
                    "End Time": _float(record["t_max"]),
                    "Access URL": str(record["access_url"]),
                    "Listed By": "product_files",
                }
            )
        if cut:
            self._warn_cut(len(results), maxrec, "file list")
        rows.extend(self._deprecated_rows(params, maxrec))
        rows.sort(key=lambda row: (row["Product ID"], row["Archive ID"]))
        if maxrec is not None and len(rows) > maxrec:
            rows = rows[:maxrec]
        return self._make_table(rows, params)

    def _deprecated_rows(self, params: dict, maxrec: int | None) -> list[dict]:
        """Files of matching products that ``product_files`` lacks, through DataLink."""
        product_keys = ("product_id", "collection", "instrument", "time", "cone")
        if not any(params.get(key) for key in product_keys):
            return []  # without a product constraint this would DataLink every deprecated product
        results, cut = self.run_query(deprecated_query(params), maxrec)
        if cut:
            self._warn_cut(len(results), maxrec, "list of deprecated products")
        products = [
            row
            for row in results.to_table()
            if str(row["access_format"]).startswith("application/x-votable+xml")
        ]
        if not products:
            return []
        urls = [str(row["access_url"]) for row in products]
        with ThreadPoolExecutor(max_workers=min(DATALINK_WORKERS, len(urls))) as pool:
            listings = list(pool.map(lambda url: product_files(url, session=self.session), urls))
        categories = [ea.Category(c) for c in params.get("category", [])]
        extensions = set(params.get("extension", []))
        rows = []
        for product, files in zip(products, listings):
            for f in files:
                category = f.category or ("SCIENCE" if f.semantics == "#this" else "ANCILLARY")
                if categories and not all(c.matches(category) for c in categories):
                    continue
                if extensions and f.extension not in extensions:
                    continue
                rows.append(
                    {
                        "Product ID": str(product["dp_id"]),
                        "Archive ID": f.archive_id,
                        "Category": category,
                        "Extension": f.extension,
                        "Original Filename": f.original_filename,
                        "Estimated Size": np.nan if f.size is None else f.size / 1000.0,
                        "Instrument": str(product["instrument_name"]),
                        "Collection": str(product["obs_collection"]),
                        "Start Time": _float(product["t_min"]),
                        "End Time": _float(product["t_max"]),
                        "Access URL": f.access_url,
                        "Listed By": "DataLink",
                    }
                )
        return rows

    def _make_table(self, rows: list[dict], params: dict):
        import astropy.units as u
        from astropy.time import Time

        columns = {name: [row[name] for row in rows] for name in COLUMNS}
        for name in ("Start Time", "End Time"):
            values = np.array(columns[name], dtype=float)
            times = Time(values, format="mjd", scale="utc")
            times.format = "isot"
            times.precision = 3
            columns[name] = times
        size = u.Quantity(np.array(columns["Estimated Size"], dtype=float), u.kB)
        columns["Estimated Size"] = size
        for name in COLUMNS:
            if name not in ("Start Time", "End Time", "Estimated Size"):
                columns[name] = (
                    np.array(columns[name], dtype=str) if rows else np.array([], dtype=str)
                )
        table = make_table(
            columns,
            self,
            hide_keys=HIDDEN,
            meta={"tap_url": self.tap_url, "adql": files_query(params)},
        )
        table["Estimated Size"].description = (
            "The archive's size estimate (kB); the file served may differ, so Fido prints no total"
        )
        return table

    # -- fetch -----------------------------------------------------------------------------

    @convert_row_to_table
    def fetch(
        self,
        query_results,
        *,
        path=None,
        downloader=None,
        wait=True,
        progress=True,
        overwrite=False,
        **kwargs,
    ):
        """Download the files of ``query_results`` (any subset), in parallel.

        Parameters
        ----------
        query_results : QueryResponseTable or QueryResponseRow
            Rows from `search`.
        path : str or path-like, optional
            A folder or a template. ``{file}`` is the default name,
            ``<archive_id>.<extension>`` (unique); every column works as a field.
            ``{original_filename}`` in place of ``{file}`` names files as the
            archive's original names, e.g. ``"~/eso/{product_id}/{original_filename}"``
            (one folder per product: original names repeat across products, and
            two files that would land on one name are refused before any download).
        downloader : parfive.Downloader, optional
            Queue on this downloader (as Fido does) instead of downloading now.
        wait, progress, overwrite
            As in `~sunpy.net.Fido.fetch`, when no downloader is given.

        Returns
        -------
        parfive.Results or None
        """
        import os

        original_names = False
        if path is not None and "{original_filename}" in os.fspath(path):
            text = os.fspath(path)
            # Fido appends "/{file}" to any path without it: undo that here.
            for tail in ("/{file}", os.sep + "{file}"):
                if text.endswith(tail) and "{original_filename}" in os.path.basename(
                    text[: -len(tail)]
                ):
                    text = text[: -len(tail)]
            if "{file}" not in text:
                # "{original_filename}" is then the file name, as "{file}" would be.
                path = text.replace("{original_filename}", "{file}")
                original_names = True
        jobs = []
        for row in query_results:
            values = dict(row.response_block_map)
            if original_names and str(row["Original Filename"]):
                name = str(row["Original Filename"])
            else:
                name = default_filename(
                    row["Archive ID"], row["Original Filename"], row["Extension"]
                )
            # Sizes are estimates: never checked (size=None).
            jobs.append(DownloadJob(str(row["Access URL"]), name, values))
        try:
            return fetch(
                jobs,
                path=path,
                downloader=downloader,
                wait=wait,
                progress=progress,
                overwrite=overwrite,
                max_splits=kwargs.get("max_splits"),
                max_conn=kwargs.get("max_conn"),
                archive=ARCHIVE,
            )
        except BadInputError as exc:
            if "two different files" not in str(exc):
                raise
            raise BadInputError(
                f"{exc}. Original file names repeat across ESO products: keep the default name "
                "{file} (<archive_id>.<ext>, unique) or add {product_id}, e.g. "
                "path='~/eso/{product_id}/{original_filename}'",
                archive=ARCHIVE,
            ) from None

    # -- Fido plumbing ---------------------------------------------------------------------

    @classmethod
    def _can_handle_query(cls, *query) -> bool:
        return routes_to(query, OWN_ATTRS, GENERIC_ATTRS)

    @classmethod
    def _attrs_module(cls):
        return "eso", "sunpy_archives.eso.attrs"

    @classmethod
    def register_values(cls):
        return {
            ea.Collection: ea.registered_pairs("collections"),
            ea.Category: ea.registered_pairs("categories"),
            ea.Extension: ea.registered_pairs("extensions"),
            a.Instrument: ea.registered_pairs("instruments"),
        }


def _float(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return np.nan
    return number
