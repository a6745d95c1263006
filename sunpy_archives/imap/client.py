"""
The Fido client for the IMAP Science Data Center.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib import resources

import numpy as np
import sunpy.net.attrs as a
from astropy.time import Time
from sunpy.net.attr import and_
from sunpy.net.base_client import BaseClient, convert_row_to_table

from ..core.download import DownloadJob, fetch, relpath_values
from ..core.errors import BadInputError
from ..core.table import make_table
from ..core.walker import block_walker, routes_to
from . import _attrs as ia
from .api import SDCApi, build_query_params, build_spice_params, storage_splits
from .filenames import ARCHIVE, parse_filename

__all__ = ["IMAPClient", "walker", "records_to_columns"]

OWN_ATTRS = (ia.Table, ia.Descriptor, ia.Version, ia.MajorVersion, ia.MinorVersion, ia.Repointing,
             ia.Extension, ia.IngestionTime, ia.Filename, ia.KernelType)
GENERIC_ATTRS = (a.Time, a.Instrument, a.Level)

# --- query tree -> one parameter block per OR branch -------------------------------------------

walker = block_walker()


def _set(params: dict, key: str, value, label: str) -> None:
    if key in params and params[key] != value:
        raise BadInputError(f"a query can hold one {label} ({params[key]!r} and {value!r} given); "
                            "combine alternatives with | instead of &", archive=ARCHIVE)
    params[key] = value


def _day(time: Time) -> str:
    return time.utc.strftime("%Y%m%d")


@walker.add_applier(a.Time)
def _(wlk, attr, params):
    _set(params, "start_date", _day(attr.start), "a.Time")
    _set(params, "end_date", _day(attr.end), "a.Time")


@walker.add_applier(ia.IngestionTime)
def _(wlk, attr, params):
    _set(params, "ingestion_start_date", _day(attr.start), "a.imap.IngestionTime")
    _set(params, "ingestion_end_date", _day(attr.end), "a.imap.IngestionTime")


_SIMPLE = {
    a.Instrument: ("instrument", "a.Instrument"),
    a.Level: ("data_level", "a.Level"),
    ia.Table: ("table", "a.imap.Table"),
    ia.Descriptor: ("descriptor", "a.imap.Descriptor"),
    ia.Version: ("version", "a.imap.Version"),
    ia.MajorVersion: ("major_version", "a.imap.MajorVersion"),
    ia.MinorVersion: ("minor_version", "a.imap.MinorVersion"),
    ia.Repointing: ("repointing", "a.imap.Repointing"),
    ia.Extension: ("extension", "a.imap.Extension"),
    ia.Filename: ("filename", "a.imap.Filename"),
    ia.KernelType: ("type", "a.imap.KernelType"),
}


def _simple_applier(key, label):
    def apply(wlk, attr, params):
        value = attr.value
        if key in ("instrument", "data_level", "table", "extension", "type"):
            value = str(value).strip().lower()
        _set(params, key, value, label)
    return apply


for _attr_type, (_key, _label) in _SIMPLE.items():
    walker.add_applier(_attr_type)(_simple_applier(_key, _label))


def plan_block(params: dict) -> tuple[str, dict]:
    """Turn one parameter block into ``("query" | "spice", checked parameters)``.

    Every value is checked here, before any request.

    Raises
    ------
    BadInputError
        A malformed or unknown value, or a combination the SDC cannot answer.

    Examples
    --------
    >>> plan_block({"instrument": "mag", "start_date": "20250101", "end_date": "20250131"})
    ('query', {'table': 'science', 'instrument': 'mag', 'start_date': '20250101', 'end_date': '20250131'})
    """
    params = dict(params)
    filename = params.pop("filename", None)
    if filename is not None:
        extra = sorted(k for k in params if k != "table")
        if extra:
            raise BadInputError(f"a.imap.Filename names one file; drop the other attrs ({extra}) or "
                                "search without Filename", archive=ARCHIVE)
        return filename_block(str(filename))
    table = params.pop("table", None)
    kernel_type = params.pop("type", None)
    if table == "spice" or (table is None and kernel_type is not None):
        for key in ("instrument", "data_level", "descriptor", "repointing", "major_version",
                    "minor_version", "extension"):
            if key in params:
                raise BadInputError(f"{key} does not apply to SPICE kernels", archive=ARCHIVE)
        return "spice", build_spice_params(type=kernel_type, **params)
    if kernel_type is not None:
        raise BadInputError("a.imap.KernelType applies to the SPICE table only", archive=ARCHIVE)
    if table == "ancillary":
        for key in ("data_level", "major_version", "minor_version"):
            if key in params:
                raise BadInputError(f"{key} does not apply to ancillary files", archive=ARCHIVE)
    return "query", build_query_params(table=table or "science", **params)


def filename_block(filename: str) -> tuple[str, dict]:
    """The query that finds exactly one file, as the official ``--filename`` builds it."""
    parsed = parse_filename(filename)
    if parsed.kind == "spice":
        params = build_spice_params(type=parsed.kernel_type)
    elif parsed.kind == "ancillary":
        params = build_query_params(table="ancillary", instrument=parsed.instrument,
                                    descriptor=parsed.descriptor, start_date=parsed.start_date,
                                    end_date=parsed.start_date, version=parsed.version,
                                    extension=parsed.extension)
    elif parsed.kind == "science":
        params = build_query_params(table="science", instrument=parsed.instrument,
                                    data_level=parsed.level, descriptor=parsed.descriptor,
                                    start_date=parsed.start_date, end_date=parsed.start_date,
                                    repointing=parsed.repointing, version=parsed.version,
                                    extension=parsed.extension)
    else:
        raise BadInputError(f"{filename!r} is a {parsed.kind} file, which the SDC query does not "
                            "list; download it by name with sunpy_archives.imap.download",
                            archive=ARCHIVE)
    params["_filename"] = parsed.name
    return ("spice" if parsed.kind == "spice" else "query"), params


# --- records -> table -------------------------------------------------------------------------

def _basename(record: dict) -> str:
    name = record.get("file_name") or str(record.get("file_path", "")).rsplit("/", 1)[-1]
    return str(name)


def _date(text, *, end_of_day: bool = False) -> datetime | None:
    if not text:
        return None
    text = str(text)
    for fmt in ("%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text[:19] if "%H" in fmt else text[:10 if "-" in fmt else 8],
                                       fmt)
        except ValueError:
            continue
        if end_of_day and fmt in ("%Y%m%d", "%Y-%m-%d"):
            moment += timedelta(days=1, seconds=-1)
        return moment
    return None


def _times(values: list[datetime | None]) -> Time:
    import warnings

    from erfa import ErfaWarning

    filled = [v if v is not None else datetime(1970, 1, 1) for v in values]
    with warnings.catch_warnings():  # kernels cover far-future dates ("dubious year")
        warnings.simplefilter("ignore", ErfaWarning)
        time = Time(filled, scale="utc") if filled else Time([], format="isot", scale="utc")
    time.format = "iso"
    time.precision = 0
    return time


def _sdc_dir(record: dict, name: str) -> str:
    path = str(record.get("file_path") or "")
    if "/" in path:
        return path.rsplit("/", 1)[0]
    return parse_filename(name).sdc_dir


def records_to_columns(records: list[dict], table: str) -> dict:
    """Column data for a result table from SDC records of one table.

    ``Start Time``/``End Time``: science files cover their start day;
    ancillary files run to their end date (to their start day when they have
    none: they stay valid until superseded); kernels cover their coverage dates.
    """
    names = [_basename(r) for r in records]
    if table == "spice":
        starts = [_date(r.get("min_date_datetime")) for r in records]
        ends = [_date(r.get("max_date_datetime")) for r in records]
    else:
        starts = [_date(r.get("start_date")) for r in records]
        ends = [_date(r.get("end_date") or r.get("start_date"), end_of_day=True) for r in records]
    versions = []
    for record in records:
        version = record.get("version")
        if table == "spice" and isinstance(version, int):
            version = f"v{version:03d}"
        versions.append("" if version is None else str(version))
    repointing = np.array([r.get("repointing") if r.get("repointing") is not None else -1
                           for r in records], dtype=np.int64)
    columns = {
        "Instrument": np.array([str(r.get("instrument") or "") for r in records], dtype=str),
        "Level": np.array([str(r.get("data_level") or "") for r in records], dtype=str),
        "Descriptor": np.array([str(r.get("descriptor") or r.get("kernel_type") or "")
                                for r in records], dtype=str),
        "Start Time": _times(starts),
        "End Time": _times(ends),
        "Version": np.array(versions, dtype=str),
        "Repointing": repointing,
        "Filename": np.array(names, dtype=str),
        "Ingestion Date": _times([_date(r.get("ingestion_date")) for r in records]),
        "SDC Dir": np.array([_sdc_dir(r, n) for r, n in zip(records, names)], dtype=str),
        "Table": np.array([table] * len(records), dtype=str),
    }
    if table == "spice":
        columns["Kernel Type"] = np.array([str(r.get("kernel_type") or "") for r in records],
                                          dtype=str)
    return columns


class IMAPClient(BaseClient):
    """
    Search and fetch files of the IMAP Science Data Center (SDC).

    A query reaches this client when it holds at least one ``a.imap`` attr
    (``Table``, ``Descriptor``, ``Version``, ``MajorVersion``,
    ``MinorVersion``, ``Repointing``, ``Extension``, ``IngestionTime``,
    ``Filename``, ``KernelType``); it also understands ``a.Instrument`` (the
    IMAP instruments), ``a.Level`` (``l1a``, ``l2``...) and ``a.Time`` (files
    whose *start date* is within [start day, end day], both days included,
    as the SDC API defines it).

    The result has an ``SDC Dir`` column (``imap/<instrument>/<level>/<YYYY>/<MM>``),
    so ``Fido.fetch(res, path=f"{data_dir}/{{sdc_dir}}/{{file}}")`` reproduces the
    SDC layout (the layout of ``IMAP_DATA_DIR`` in the official client).

    Parameters
    ----------
    url : str, optional
        API root; default ``IMAP_DATA_ACCESS_URL``, then sunpyrc ``imap_url``, then the SDC.
    api_key : str, optional
        Default ``IMAP_API_KEY``; sent as ``x-api-key`` to the API only, never shown.
    access_token : str, optional
        Default ``IMAP_ACCESS_TOKEN`` (used without an API key).
    data_dir : path-like, optional
        Where `fetch` puts files when given no ``path`` (in the SDC layout);
        default ``IMAP_DATA_DIR``, else ``./data``, as the official client.

    All of these are read when the client is constructed.

    Examples
    --------
    >>> import sunpy_archives.imap  # registers a.imap with Fido
    >>> from sunpy.net import Fido, attrs as a
    >>> res = Fido.search(a.Instrument("mag"), a.Level("l2"), a.imap.Version("latest"),
    ...                   a.Time("2025-01-01", "2025-01-31"))  # doctest: +SKIP
    >>> files = Fido.fetch(res, path="data/{sdc_dir}/{file}")  # doctest: +SKIP
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 access_token: str | None = None, data_dir=None):
        from . import data_dir as default_data_dir

        self.api = SDCApi(url, api_key=api_key, access_token=access_token)
        self.data_dir = default_data_dir(data_dir)

    @property
    def info_url(self) -> str:
        return self.api.url

    def __repr__(self) -> str:
        return f"{super().__repr__()}\n{self.api!r}"

    # -- search ------------------------------------------------------------------------------

    def search(self, *query, **kwargs):
        """Search the SDC.

        Returns
        -------
        sunpy.net.base_client.QueryResponseTable
            One row per file, sorted by start time then file name.

        Raises
        ------
        BadInputError
            A bad attr value (raised before any request).
        SearchError, AuthenticationError
            The SDC could not answer.
        """
        from astropy.table import vstack

        plans = [plan_block(params) for params in walker.create(and_(*query))]
        tables = [self._search_one(kind, params) for kind, params in plans]
        if len(tables) == 1:
            return tables[0]
        table = vstack(tables, metadata_conflicts="silent")
        table.client = self
        table.hide_keys = tables[0].hide_keys
        return table

    def _search_one(self, kind: str, params: dict):
        params = dict(params)
        exact = params.pop("_filename", None)
        if kind == "spice":
            records = _records(self.api, "spice", params)
            table = "spice"
        else:
            records = _records(self.api, "query", params)
            table = params["table"]
        if exact is not None:
            records = [r for r in records if _basename(r) == exact]
        records.sort(key=lambda r: (str(r.get("start_date") or r.get("min_date_datetime") or ""),
                                    _basename(r)))
        return self.make_table(records, table)

    def make_table(self, records: list[dict], table: str = "science"):
        """A result table (with this client attached) from SDC records."""
        return make_table(records_to_columns(records, table), self,
                          hide_keys=["Table"] if table != "spice" else [],
                          meta={"sdc_url": self.api.url})

    # -- fetch -------------------------------------------------------------------------------

    def jobs(self, rows) -> list[DownloadJob]:
        """One download job per row: ``<base>/download/<SDC Dir>/<Filename>``."""
        jobs = []
        for row in rows:
            name = str(row["Filename"])
            folder = str(row["SDC Dir"]).strip("/")
            jobs.append(DownloadJob(self.api.download_url(f"{folder}/{name}"), name,
                                    relpath_values(row.response_block_map, ["sdc_dir"])))
        return jobs

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
            (``{sdc_dir}/{file}`` reproduces the SDC layout). Default:
            ``<data_dir>/{sdc_dir}/{file}`` (``IMAP_DATA_DIR``, as the official client).
        downloader : parfive.Downloader, optional
            Queue on this downloader (as Fido does) instead of downloading now.
        wait, progress, overwrite
            As in `~sunpy.net.Fido.fetch`, when no downloader is given.

        Returns
        -------
        parfive.Results or None
        """
        middleware = self.api.middleware()
        if path is None:
            path = f"{self.data_dir}/{{sdc_dir}}/{{file}}"
        return fetch(self.jobs(query_results), path=path, downloader=downloader, wait=wait,
                     progress=progress, overwrite=overwrite, max_conn=kwargs.get("max_conn"),
                     max_splits=kwargs.get("max_splits") or storage_splits(), archive=ARCHIVE,
                     middlewares=(middleware,))

    # -- Fido plumbing -----------------------------------------------------------------------

    @classmethod
    def _can_handle_query(cls, *query) -> bool:
        return routes_to(query, OWN_ATTRS, GENERIC_ATTRS)

    @classmethod
    def _attrs_module(cls):
        return "imap", "sunpy_archives.imap.attrs"

    @classmethod
    def register_values(cls):
        data = json.loads(resources.files("sunpy_archives.imap").joinpath("data/attrs.json")
                          .read_text())
        return {
            a.Instrument: [tuple(pair) for pair in data["instruments"]],
            a.Level: [tuple(pair) for pair in data["levels"]],
            ia.Table: [tuple(pair) for pair in data["tables"]],
            ia.Extension: [tuple(pair) for pair in data["extensions"]],
            ia.Version: [tuple(pair) for pair in data["versions"]],
            ia.Descriptor: [tuple(pair) for pair in data["descriptors"]],
            ia.KernelType: [tuple(pair) for pair in data["kernel_types"]],
        }


def _records(api: SDCApi, kind: str, params: dict) -> list[dict]:
    """Run a checked parameter block (from `plan_block`) against ``api``."""
    params = dict(params)
    if kind == "spice":
        return api.spice_query(**_spice_kwargs(params))
    return api.query(**_query_kwargs(params))


def _query_kwargs(params: dict) -> dict:
    out = dict(params)
    if out.pop("latest", None) == "true":
        out["version"] = "latest"
    return out


def _spice_kwargs(params: dict) -> dict:
    out = dict(params)
    if out.pop("latest", None) == "true":
        out["version"] = "latest"
    if "start_ingest_date" in out:
        out["ingestion_start_date"] = out.pop("start_ingest_date")
    if "end_ingest_date" in out:
        out["ingestion_end_date"] = out.pop("end_ingest_date")
    return out
