"""
The Fido client for JSOC's DRMS series, built on the ``drms`` library.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import socket
import time
import warnings
from importlib import resources
from urllib.error import HTTPError, URLError

import numpy as np
import sunpy.net.attrs as a
from sunpy.net.attr import and_
from sunpy.net.base_client import BaseClient, convert_row_to_table

from ..core.config import SETTINGS, get_setting
from ..core.download import DownloadJob, fetch
from ..core.errors import ArchiveWarning, BadInputError, SearchError, UnknownValueError
from ..core.http import retry_delay
from ..core.polling import Backoff
from ..core.table import make_table
from ..core.walker import block_walker, routes_to
from . import _attrs as da
from .export import ExportFailed, ExportResult, ExportTimeout, ExportTooLarge, Stager
from .recordset import (TIME_KEYS, compact, drms_time, parse_times, query_spec, record_keys,
                        string_dtype, to_tai_seconds)

__all__ = ["DRMSClient", "server_config", "DEFAULT_KEYS", "EMAIL_VARIABLE"]

ARCHIVE = da.ARCHIVE
#: Keywords returned besides the prime keys when ``a.drms.Keys`` is not given (those the series has).
DEFAULT_KEYS = ("T_OBS", "WAVELNTH", "EXPTIME", "QUALITY", "INSTRUME", "TELESCOP", "NOAA_AR", "CAMERA")
#: Environment variable with the default notify address (also ``jsoc_email`` in sunpyrc).
EMAIL_VARIABLE = "SUNPY_ARCHIVES_JSOC_EMAIL"
_DEFAULT_ROOT = SETTINGS["jsoc_url"].default

OWN_ATTRS = (da.Series, da.Segment, da.PrimeKey, da.Keys, da.Notify, da.Protocol, da.Method, da.ExportID)
SUNPY_ATTRS = (a.jsoc.Segment, a.jsoc.PrimeKey, a.jsoc.Notify, a.jsoc.Protocol, a.jsoc.KeywordComparison,
               a.jsoc.Cutout, a.Time, a.Sample, a.Wavelength)

# --- query tree -> one parameter block per OR branch ------------------------------------------

walker = block_walker()


def _set_once(params, key, value, what):
    if key in params and params[key] != value:
        raise BadInputError(f"a query can hold one {what}; combine several with | instead of &",
                            archive=ARCHIVE)
    params[key] = value


@walker.add_applier(da.Series)
def _(wlk, attr, params):
    _set_once(params, "series", attr.value, "series")


@walker.add_applier(da.Segment, a.jsoc.Segment)
def _(wlk, attr, params):
    params.setdefault("segments", [])
    if attr.value not in params["segments"]:
        params["segments"].append(str(attr.value))


@walker.add_applier(da.PrimeKey, a.jsoc.PrimeKey)
def _(wlk, attr, params):
    params.setdefault("primekeys", {})[str(attr.label)] = str(attr.value)


@walker.add_applier(da.Keys)
def _(wlk, attr, params):
    params.setdefault("keys", [])
    params["keys"].extend(k for k in attr.value if k not in params["keys"])


@walker.add_applier(da.Notify, a.jsoc.Notify)
def _(wlk, attr, params):
    _set_once(params, "notify", str(attr.value), "notify address")


@walker.add_applier(da.Protocol, a.jsoc.Protocol)
def _(wlk, attr, params):
    value = str(attr.value).strip().lower()
    if value not in da.PROTOCOLS:
        raise BadInputError(f"protocol {attr.value!r} is not supported by the DRMS client; use "
                            f"{' or '.join(da.PROTOCOLS)}", archive=ARCHIVE)
    _set_once(params, "protocol", value, "protocol")


@walker.add_applier(da.Method)
def _(wlk, attr, params):
    _set_once(params, "method", attr.value, "export method")


@walker.add_applier(da.ExportID)
def _(wlk, attr, params):
    _set_once(params, "export_id", attr.value, "export ID")


@walker.add_applier(a.jsoc.KeywordComparison)
def _(wlk, attr, params):
    name = str(attr.name)
    if not re.match(r"^[A-Za-z_]\w*$", name):
        raise BadInputError(f"{name!r} is not a keyword name", archive=ARCHIVE)
    value = attr.value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        text = repr(value.item() if hasattr(value, "item") else value)
    else:
        text = "'" + str(value).replace("'", "") + "'"
    params.setdefault("filters", []).append(f"{name} {attr.operator} {text}")


@walker.add_applier(a.jsoc.Cutout)
def _(wlk, attr, params):
    _set_once(params, "process", {"im_patch": dict(attr.value)}, "cutout")


@walker.add_applier(a.Time)
def _(wlk, attr, params):
    _set_once(params, "time", (attr.start, attr.end), "time range")


@walker.add_applier(a.Sample)
def _(wlk, attr, params):
    import astropy.units as u

    seconds = float(attr.value.to_value(u.s)) if hasattr(attr.value, "unit") else float(attr.value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadInputError(f"a.Sample must be a positive, finite interval, not {attr.value!r}",
                            archive=ARCHIVE)
    _set_once(params, "sample", seconds, "sample")


@walker.add_applier(a.Wavelength)
def _(wlk, attr, params):
    import astropy.units as u

    lo = attr.min.to_value(u.AA, equivalencies=u.spectral())
    hi = attr.max.to_value(u.AA, equivalencies=u.spectral())
    params.setdefault("wavelengths", []).append((min(lo, hi), max(lo, hi)))


def server_config(root: str):
    """A ``drms.ServerConfig`` for the JSOC site at ``root`` (``http://host/``).

    The real JSOC lists series through its ``showextseries`` wrapper, as drms
    does; any other root is assumed to serve the plain ``show_series``.

    Examples
    --------
    >>> server_config("http://127.0.0.1:8000/").url_jsoc_info
    'http://127.0.0.1:8000/cgi-bin/ajax/jsoc_info'
    """
    import drms

    root = root if root.endswith("/") else root + "/"
    extra = {}
    if root.rstrip("/").split("://")[-1] == _DEFAULT_ROOT.rstrip("/").split("://")[-1]:
        extra = {"cgi_show_series_wrapper": "showextseries", "show_series_wrapper_dbhost": "hmidb2"}
    return drms.ServerConfig(name="SUNPY_ARCHIVES_JSOC", cgi_baseurl=root + "cgi-bin/ajax/",
                             cgi_jsoc_info="jsoc_info", cgi_jsoc_fetch="jsoc_fetch",
                             cgi_check_address="checkAddress.sh", cgi_show_series="show_series",
                             http_download_baseurl=root, **extra)


def _default_email() -> str | None:
    return get_setting("jsoc_email") or None


def _registered() -> dict:
    return json.loads(resources.files("sunpy_archives.jsoc").joinpath("data/attrs.json").read_text())


def _local_name(record: str, server_name: str, segments, requestid: str) -> str:
    """A file name unique per record and segment, built from the record name."""
    base = server_name.rsplit("/", 1)[-1]
    ext = ""
    for candidate in (".fits", ".tar", ".txt", ".jpg", ".mp4", ".mpg"):
        if base.endswith(candidate):
            ext = candidate
    series, pkeys, segment = record_keys(record)
    if not series:
        return f"{requestid}.{base}" if requestid and not base.startswith(requestid) else base
    if segment is None:
        stem = base[: -len(ext)] if ext else base
        last = stem.rsplit(".", 1)[-1] if "." in stem else ""
        # segments None: any name (an export found by ID, whose segments are not known)
        segment = last if last and (segments is None or last in segments) else None
    parts = [series.lower()]
    for value in pkeys:
        value = value.strip()
        if re.match(r"^\d{4}[.-]\d\d[.-]\d\d", value):
            value = value.replace(".", "").replace(":", "").replace("-", "")
        if value:
            parts.append(value)
    if segment:
        parts.append(segment)
    elif base and not ext:
        parts.append(base)
    return ".".join(parts) + (ext or ".fits")


class DRMSClient(BaseClient):
    """
    Search JSOC's DRMS series and fetch exactly the records found, staged for you.

    A query reaches this client when it holds an ``a.drms`` attr
    (``Series``, ``Segment``, ``PrimeKey``, ``Keys``, ``Notify``,
    ``Protocol``, ``Method``, ``ExportID``); sunpy's ``JSOCClient`` keeps
    queries holding ``a.jsoc.Series``. It also understands sunpy's
    ``a.jsoc.Segment``, ``PrimeKey``, ``Notify``, ``Protocol``, ``Keyword``
    comparisons (``a.jsoc.Keyword("QUALITY") == 0``) and ``Cutout``, plus
    ``a.Time`` (T_REC within [start, end], both ends included), ``a.Sample``
    and ``a.Wavelength``.

    The search returns the records' keywords without staging anything. Fetch
    stages an export of exactly the rows given (any slice, list or mix of
    series), polls it with a short, growing interval inside a time budget,
    and downloads the files through one connection (JSOC's request).

    Parameters
    ----------
    url : str, optional
        JSOC site root; default ``SUNPY_ARCHIVES_JSOC_URL``, then sunpyrc, then the real JSOC.
    email : str, optional
        Default notify address; default ``SUNPY_ARCHIVES_JSOC_EMAIL``. ``a.drms.Notify`` wins.
    export_timeout : float
        Seconds one export may take to stage before a warning with its ID.
    max_conn : int
        Parallel downloads when the client makes its own downloader (1, as JSOC asks).
    poll_first, poll_factor, poll_cap : float
        Poll schedule: first interval, growth factor, longest interval.
    retries : int
        Retries of transient failures of JSOC's CGI programs.
    max_spec_length : int
        Longest record-set specification in one export request.

    Examples
    --------
    >>> import sunpy_archives.jsoc  # registers a.drms with Fido
    >>> from sunpy.net import Fido, attrs as a
    >>> res = Fido.search(a.Time("2024-01-01", "2024-01-01 01:00"), a.drms.Series("aia.lev1_euv_12s"),
    ...                   a.Wavelength(171 * u.AA), a.drms.Segment("image"),
    ...                   a.drms.Notify("me@example.org"))  # doctest: +SKIP
    >>> files = Fido.fetch(res[0][::10])  # doctest: +SKIP
    """

    def __init__(self, url: str | None = None, *, email: str | None = None,
                 export_timeout: float = 1800.0, max_conn: int = 1, poll_first: float = 0.5,
                 poll_factor: float = 1.5, poll_cap: float = 20.0, retries: int | None = None,
                 max_spec_length: int = 3000):
        root = get_setting("jsoc_url", url)
        self.url = root if root.endswith("/") else root + "/"
        self.email = email
        self.export_timeout = float(export_timeout)
        self.max_conn = int(max_conn)
        self.backoff = Backoff(poll_first, poll_factor, poll_cap)
        self.retries = int(get_setting("retries", None if retries is None else str(retries)))
        self.max_spec_length = int(max_spec_length)
        self._drms = None

    def __repr__(self):
        return f"<{type(self).__name__} {self.url}>"

    @property
    def info_url(self) -> str:
        return self.url

    # -- drms access ------------------------------------------------------------------------

    @property
    def drms(self):
        """The ``drms.Client`` this client uses (pointed at `url`)."""
        if self._drms is None:
            import drms

            self._drms = drms.Client(server_config(self.url))
        return self._drms

    def _call(self, what: str, func, *args, error=SearchError, **kwargs):
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except HTTPError as exc:
                if exc.code not in (408, 429, 500, 502, 503, 504) or attempt >= self.retries:
                    raise error(f"{what} failed: HTTP {exc.code}", archive=ARCHIVE,
                                url=self.drms._server.url_jsoc_info) from None
                delay = retry_delay(attempt, exc.headers.get("Retry-After") if exc.headers else None)
            except (URLError, socket.timeout, TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
                if attempt >= self.retries:
                    raise error(f"{what} failed after {attempt + 1} attempts: {exc}", archive=ARCHIVE,
                                url=self.drms._server.url_jsoc_info) from None
                delay = retry_delay(attempt)
            time.sleep(delay)
            attempt += 1

    def info(self, series: str):
        """The series' ``drms.SeriesInfo`` (prime keys, keywords, segments), clear errors.

        Raises
        ------
        UnknownValueError
            JSOC does not know the series.
        """
        import drms

        try:
            return self._call(f"series information of {series}", self.drms.info, series)
        except drms.DrmsQueryError as exc:
            names = [name for name, _ in _registered()["series"]]
            close = difflib.get_close_matches(series.lower(), names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; list series with DRMSClient().series()"
            raise UnknownValueError(f"series {series!r} is not known to JSOC ({exc}){hint}",
                                    archive=ARCHIVE, url=self.url) from None

    def series(self, regex: str | None = None, *, full: bool = False):
        """Series names matching a regular expression (drms's ``series``)."""
        return self._call("series list", self.drms.series, regex, full=full)

    def pkeys(self, series: str) -> list[str]:
        """Prime keys of a series, in order."""
        return list(self.info(series).primekeys)

    def keys(self, series: str) -> list[str]:
        """Keywords of a series."""
        return list(self.info(series).keywords.index)

    def segments(self, series: str):
        """The segments table of a series (pandas DataFrame, drms's ``info().segments``)."""
        return self.info(series).segments

    def check_email(self, email: str) -> bool:
        """drms's address check: True only if JSOC says the address is registered."""
        return bool(self._call(f"address check of {email}", self.drms.check_email, email))

    def _stager(self, progress: bool = True) -> Stager:
        from drms import HttpJsonClient

        return Stager(HttpJsonClient(self.drms._server), self.url, budget=self.export_timeout,
                      backoff=self.backoff, retries=self.retries, progress=progress)

    # -- search ----------------------------------------------------------------------------

    def search(self, *query, **kwargs):
        """Search JSOC; one row per record with its keywords (nothing is staged).

        Returns
        -------
        sunpy.net.base_client.QueryResponseTable
        """
        from astropy.table import vstack

        blocks = walker.create(and_(*query))
        for params in blocks:
            self._validate(params)
        tables = [self._search_block(params) for params in blocks]
        tables = [t for t in tables if t is not None]
        if not tables:
            return make_table({}, self)
        if len(tables) == 1:
            return tables[0]
        table = vstack(tables, metadata_conflicts="silent", join_type="outer")
        for name in table.colnames:
            if hasattr(table[name], "filled") and table[name].dtype.kind in "OUS":
                table[name] = table[name].filled("")
        table.client = self
        table.hide_keys = tables[0].hide_keys
        return table

    def _validate(self, params: dict) -> None:
        if "export_id" in params:
            extra = set(params) - {"export_id"}
            if extra:
                raise BadInputError("a.drms.ExportID lists the files of an existing export; combine "
                                    f"it with no other attr (got {', '.join(sorted(extra))})",
                                    archive=ARCHIVE)
            return
        if "series" not in params:
            raise BadInputError("a JSOC query needs a.drms.Series (or a.drms.ExportID)", archive=ARCHIVE)
        if "sample" in params and "time" not in params:
            raise BadInputError("a.Sample needs a.Time", archive=ARCHIVE)
        method = params.get("method", "url")
        protocol = params.get("protocol", "as-is" if method == "url_quick" else "fits")
        if method == "url_quick" and protocol != "as-is":
            raise BadInputError("method 'url_quick' serves protocol 'as-is' only; use method 'url' "
                                "for FITS exports", archive=ARCHIVE)
        if "process" in params and protocol != "fits":
            raise BadInputError("a cutout needs protocol 'fits'", archive=ARCHIVE)

    def _search_block(self, params: dict):
        if "export_id" in params:
            return self._export_table(params["export_id"])
        import drms

        info = self.info(params["series"])
        series = info.name
        primekeys = list(info.primekeys)
        keywords = list(info.keywords.index)
        time_key = next((k for k in primekeys if k in TIME_KEYS), None)
        constraints = dict(params.get("primekeys", {}))
        filters = list(params.get("filters", []))
        unknown = [k for k in constraints if k not in primekeys]
        if unknown:
            raise BadInputError(f"{unknown[0]!r} is not a prime key of {series}; its prime keys are "
                                f"{', '.join(primekeys)}", archive=ARCHIVE)
        if "time" in params:
            if time_key is None:
                raise BadInputError(f"{series} has no time prime key; drop a.Time", archive=ARCHIVE)
            start, end = params["time"]
            text = f"{drms_time(start)}-{drms_time(end)}"
            if "sample" in params:
                text += f"@{params['sample']:g}s"
            constraints[time_key] = text
        for lo, hi in params.get("wavelengths", []):
            if "WAVELNTH" in primekeys:
                value = f"{round(lo):d}" if abs(hi - lo) < 1e-6 else f"{lo:g}-{hi:g}"
                previous = constraints.get("WAVELNTH")
                constraints["WAVELNTH"] = f"{previous},{value}" if previous else value
            elif "WAVELNTH" in keywords:
                filters.append(f"WAVELNTH >= {lo:g} AND WAVELNTH <= {hi:g}")
            else:
                raise BadInputError(f"{series} has no WAVELNTH keyword; drop a.Wavelength", archive=ARCHIVE)
        segments = list(params.get("segments", []))
        known_segments = list(info.segments.index)
        bad = [s for s in segments if s not in known_segments]
        if bad:
            raise BadInputError(f"{series} has no segment {bad[0]!r}; its segments are "
                                f"{', '.join(known_segments)}", archive=ARCHIVE)
        if not constraints and not filters:
            raise BadInputError(f"constrain at least one prime key of {series} ({', '.join(primekeys)}), "
                                "e.g. with a.Time", archive=ARCHIVE)
        wanted = params.get("keys")
        if wanted and "**ALL**" in wanted:
            keys = keywords
        else:
            extra = list(wanted) if wanted else [k for k in DEFAULT_KEYS if k in keywords]
            missing = [k for k in extra if k not in keywords and not k.startswith("*")]
            if missing:
                raise BadInputError(f"{series} has no keyword {missing[0]!r}", archive=ARCHIVE)
            keys = list(dict.fromkeys(primekeys + extra))
        notify = params.get("notify")
        if notify and not self.check_email(notify):
            raise BadInputError(f"notify address {notify!r} is not registered with JSOC; register it "
                                "on JSOC's export page first", archive=ARCHIVE, url=self.url)
        ds = query_spec(series, primekeys, constraints, filters=filters)
        try:
            frame = self._call(f"query {ds}", self.drms.query, ds, key=keys, convert_numeric=False)
        except drms.DrmsQueryError as exc:
            raise BadInputError(f"JSOC refused the query {ds!r}: {exc}", archive=ARCHIVE,
                                url=self.url) from None
        except KeyError:
            # drms 0.9 fails on rec_index with zero records: JSOC then sends only the count.
            import pandas as pd

            frame = pd.DataFrame({k: [] for k in keys})
        method = params.get("method", "url")
        protocol = params.get("protocol", "as-is" if method == "url_quick" else "fits")
        return self._make_table(frame, info, keys, {
            "Segments": ",".join(segments), "Protocol": protocol, "Method": method,
            "Notify": notify or "", "Process": json.dumps(params["process"]) if "process" in params else ""})

    def _make_table(self, frame, info, keys, extra):
        import pandas as pd

        n = len(frame)
        columns: dict = {"Series": np.full(n, info.name, dtype=object).astype(str)}
        for key in keys:
            values = frame[key] if key in frame.columns else pd.Series([""] * n, dtype=object)
            columns[key] = _convert(info, key, values)
        if n:
            records = pd.Series([info.name] * n, dtype=object)
            for key in info.primekeys:
                records = records + "[" + frame[key].astype(str).to_numpy(dtype=object) + "]"
            columns["Record"] = records.to_numpy(dtype=str)
        else:
            columns["Record"] = np.array([], str)
        for name, value in extra.items():
            columns[name] = np.full(n, value, dtype=object).astype(str) if n else np.array([], str)
        return make_table(columns, self, hide_keys=["Record", "Segments", "Protocol", "Method", "Notify",
                                                    "Process"])

    def _export_table(self, requestid: str):
        stager = self._stager(progress=False)
        try:
            result = stager.from_id(requestid)
        except ExportTimeout as exc:
            warnings.warn(str(exc), ArchiveWarning, stacklevel=4)
            return None
        except ExportFailed as exc:
            raise UnknownValueError(f"export {requestid} cannot be listed: {exc.jsoc_message}",
                                    archive=ARCHIVE, url=self.url) from None
        return self._files_table(result)

    def _files_table(self, result: ExportResult):
        records = [f.record for f in result.files]
        columns = {
            "Export ID": np.full(len(records), result.requestid or "").astype(str),
            "Series": np.array([record_keys(r)[0] for r in records], dtype=str),
            "Record": np.array(records, dtype=str),
            "Filename": np.array([f.filename for f in result.files], dtype=str),
            "URL": np.array([f.url for f in result.files], dtype=str),
        }
        return make_table(columns, self, hide_keys=["URL"])

    # -- fetch -----------------------------------------------------------------------------

    @convert_row_to_table
    def fetch(self, query_results, *, path=None, downloader=None, wait=True, progress=True,
              overwrite=False, export_timeout=None, max_conn=None, **kwargs):
        """Stage exactly the rows given, wait for JSOC, and download the files.

        Parameters
        ----------
        query_results : QueryResponseTable or QueryResponseRow
            Rows from `search`: any slice, list of rows or mix of series.
        path : str or path-like, optional
            A folder or template; ``{file}`` is the record-based file name, row
            columns (``{series}``...) work as fields.
        downloader : parfive.Downloader, optional
            Queue on this downloader (as Fido does).
        wait, progress, overwrite
            As in `~sunpy.net.Fido.fetch`, when no downloader is given.
        export_timeout : float, optional
            Overrides the client's staging budget for this fetch.
        max_conn : int, optional
            Parallel downloads of the downloader made here (default 1).
        poll_first : float, optional
            First poll interval of this fetch (default: the client's).

        Returns
        -------
        parfive.Results or None
        """
        rows = list(query_results)
        if not rows:
            return fetch([], path=path, downloader=downloader, wait=wait, progress=progress,
                         overwrite=overwrite, archive=ARCHIVE)
        names = query_results.colnames
        budget = float(export_timeout) if export_timeout is not None else self.export_timeout
        stager = self._stager(progress=progress)
        stager.budget = budget
        if kwargs.get("poll_first") is not None:
            stager.backoff = Backoff(float(kwargs["poll_first"]), self.backoff.factor, self.backoff.cap)
        jobs: list[DownloadJob] = []
        expected: dict[str, str] = {}
        if "Export ID" in names:
            for row in rows:
                url = str(row["URL"])
                name = _local_name(str(row["Record"]), str(row["Filename"]), None, str(row["Export ID"]))
                jobs.append(DownloadJob(url, name, {"series": str(row["Series"]),
                                                    "export_id": str(row["Export ID"])}, max_splits=1))
                expected[url] = str(row["Record"]) or name
        else:
            groups = self._groups(rows)
            for notify in {g[4] for g in groups}:
                if not self.check_email(notify):
                    raise BadInputError(f"notify address {notify!r} is not registered with JSOC",
                                        archive=ARCHIVE, url=self.url)
            for key, group_rows in groups.items():
                jobs.extend(self._stage_group(stager, key, group_rows, expected))
        connections = int(max_conn) if max_conn is not None else self.max_conn
        results = fetch(jobs, path=path, downloader=downloader, wait=wait, progress=progress,
                        overwrite=overwrite, max_conn=connections, max_splits=1, archive=ARCHIVE,
                        middlewares=(_connection_limit(downloader, connections),))
        if downloader is not None and jobs:
            _attach_report(downloader, expected)
        elif results is not None and hasattr(results, "errors"):
            failed = {e.url for e in results.errors}
            missing = [expected[u] for u in expected if u in failed]
            if missing:
                warnings.warn(f"{ARCHIVE}: received {len(expected) - len(missing)} of {len(expected)} "
                              f"exported files; missing: {', '.join(missing[:5])}"
                              + (" ..." if len(missing) > 5 else ""), ArchiveWarning, stacklevel=3)
        return results

    def _groups(self, rows) -> dict:
        groups: dict = {}
        default_email = self.email or _default_email()
        for row in rows:
            notify = str(row["Notify"]) or default_email
            if not notify:
                raise BadInputError(
                    "JSOC exports need a registered e-mail address: add a.drms.Notify('you@...') to the "
                    f"search, pass email= to DRMSClient, or set {EMAIL_VARIABLE}", archive=ARCHIVE)
            key = (str(row["Series"]), str(row["Segments"]), str(row["Protocol"]), str(row["Method"]),
                   notify, str(row["Process"]))
            groups.setdefault(key, []).append(row)
        return groups

    def _stage_group(self, stager: Stager, key, rows, expected) -> list[DownloadJob]:
        series, segments_text, protocol, method, notify, process_text = key
        info = self.info(series)
        primekeys = list(info.primekeys)
        segments = [s for s in segments_text.split(",") if s] or list(info.segments.index)
        time_index = next((i for i, k in enumerate(primekeys) if k in TIME_KEYS), None)
        by_record: dict[str, object] = {}
        values = []
        for row in rows:
            record = str(row["Record"])
            _, pk, _ = record_keys(record)
            by_record[_record_id(record)] = row
            values.append(pk)
        if time_index is not None and values:
            seconds = to_tai_seconds(parse_times([v[time_index] for v in values]))
            values = [[*v[:time_index], s, *v[time_index + 1:]] for v, s in zip(values, seconds)]
        process = json.loads(process_text) if process_text else None
        fmt = ".".join([info.name, *(f"{{{k}:A}}" if k in TIME_KEYS else f"{{{k}}}" for k in primekeys),
                        "{segment}"])
        jobs: list[DownloadJob] = []
        self._stage_rows(stager, info.name, primekeys, values, segments, dict(
            notify=notify, method=method, protocol=protocol, filenamefmt=fmt, process=process),
            by_record, jobs, expected, depth=0)
        return jobs

    def _stage_rows(self, stager, series, primekeys, values, segments, request, by_record, jobs,
                    expected, depth):
        specs = compact(series, primekeys, values, step=None, segments=segments,
                        max_length=self.max_spec_length)
        if len(specs) > 1 and len(values) > 1 and depth < 20:
            half = len(values) // 2
            for part in (values[:half], values[half:]):
                self._stage_rows(stager, series, primekeys, part, segments, request, by_record, jobs,
                                 expected, depth + 1)
            return
        for spec in specs:
            try:
                result = stager.stage(spec, **request)
            except ExportTooLarge as exc:
                if len(values) > 1 and depth < 20:
                    half = len(values) // 2
                    warnings.warn(f"{ARCHIVE}: {exc.jsoc_message}; splitting the {len(values)} records "
                                  "into smaller exports", ArchiveWarning, stacklevel=2)
                    for part in (values[:half], values[half:]):
                        self._stage_rows(stager, series, primekeys, part, segments, request, by_record,
                                         jobs, expected, depth + 1)
                else:
                    warnings.warn(str(exc), ArchiveWarning, stacklevel=2)
                continue
            except ExportTimeout as exc:
                warnings.warn(str(exc), ArchiveWarning, stacklevel=2)
                continue
            except ExportFailed as exc:
                warnings.warn(f"{ARCHIVE}: JSOC could not export {spec[:200]}: {exc.jsoc_message}",
                              ArchiveWarning, stacklevel=2)
                continue
            self._add_jobs(result, segments, len(values), by_record, jobs, expected)

    def _add_jobs(self, result: ExportResult, segments, n_records, by_record, jobs, expected):
        want = n_records * (1 if result.answer.get("tarfile") else len(segments))
        if len(result.files) < want and not result.answer.get("tarfile"):
            warnings.warn(f"{ARCHIVE}: export {result.requestid or '(url_quick)'} lists "
                          f"{len(result.files)} files for {want} requested (records x segments); "
                          "the difference has no data at JSOC", ArchiveWarning, stacklevel=3)
        for f in result.files:
            name = _local_name(f.record, f.filename, segments, result.requestid)
            row = by_record.get(_record_id(f.record))
            values = dict(row.response_block_map) if row is not None else {}
            values.update({"series": record_keys(f.record)[0] or values.get("series", ""),
                           "export_id": result.requestid})
            jobs.append(DownloadJob(f.url, name, values, size=f.size, max_splits=1))
            expected[f.url] = f"{f.record or name} (export {result.requestid or 'url_quick'})"

    # -- Fido plumbing ---------------------------------------------------------------------

    @classmethod
    def _can_handle_query(cls, *query) -> bool:
        return routes_to(query, OWN_ATTRS, SUNPY_ATTRS)

    @classmethod
    def _attrs_module(cls):
        return "drms", "sunpy_archives.jsoc.attrs"

    @classmethod
    def register_values(cls):
        data = _registered()
        return {
            da.Series: [(name, desc) for name, desc in data["series"]],
            da.Protocol: [(name, desc) for name, desc in data["protocols"]],
            da.Method: [(name, desc) for name, desc in data["methods"]],
        }


def _record_id(record: str) -> str:
    """A record name without its segment suffix, lower-case (for matching export rows to search rows)."""
    return re.sub(r"\{[^}]*\}\s*$", "", str(record)).strip().lower()


def _convert(info, key, values):
    """Keyword strings to numbers (hex included) or Time, following the series' types."""
    from astropy.table import MaskedColumn

    import pandas as pd

    values = values.astype(string_dtype())
    plain = values.fillna("").to_numpy(dtype=object).astype(str)
    kw = info.keywords
    if key not in kw.index:
        return plain
    row = kw.loc[key]
    if bool(row["is_time"]):
        if not len(plain) or re.match(r"^\d{4}", plain[0]):
            return parse_times(values)
        return plain
    if bool(row["is_integer"]) or bool(row["is_real"]):
        texts = values.str.strip()
        numbers = pd.to_numeric(texts, errors="coerce")
        if bool(row["is_integer"]):
            hexes = texts.str.lower().str.startswith("0x")
            if hexes.any():
                numbers[hexes] = [int(t, 16) for t in texts[hexes]]
        mask = numbers.isna().to_numpy()
        out = numbers.fillna(0).to_numpy(dtype=np.int64 if bool(row["is_integer"]) else float)
        return MaskedColumn(out, mask=mask) if mask.any() else out
    return plain


class ConnectionLimit:
    """aiohttp client middleware: at most ``limit`` requests to JSOC open at once.

    JSOC asks for one connection per user. When Fido hands in its own
    downloader (five connections by default, shared with other archives),
    this keeps JSOC's files to ``limit`` at a time while the other archives'
    files still use the rest. A slot is held from the request until the
    response is released (body read or abandoned).
    """

    def __init__(self, limit: int = 1):
        self.limit = max(1, int(limit))
        self._semaphores: dict = {}

    def _semaphore(self):
        import asyncio

        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(id(loop))
        if semaphore is None or semaphore[0] is not loop:
            semaphore = (loop, asyncio.Semaphore(self.limit))
            self._semaphores = {id(loop): semaphore}
        return semaphore[1]

    async def __call__(self, request, handler):
        semaphore = self._semaphore()
        await semaphore.acquire()
        try:
            response = await handler(request)
        except BaseException:
            semaphore.release()
            raise
        done = False

        def wrap(method):
            def wrapped(*args, **kwargs):
                nonlocal done
                if not done:
                    done = True
                    semaphore.release()
                return method(*args, **kwargs)
            return wrapped

        response.release = wrap(response.release)
        response.close = wrap(response.close)
        return response


def _connection_limit(downloader, limit: int) -> ConnectionLimit:
    """One limit per downloader, shared by every JSOC file queued on it."""
    if downloader is None:
        return ConnectionLimit(limit)
    existing = getattr(downloader, "_sunpy_archives_jsoc_limit", None)
    if existing is None or existing.limit != limit:
        existing = ConnectionLimit(limit)
        downloader._sunpy_archives_jsoc_limit = existing
    return existing


class _ExportReport:
    """parfive done-callback: warns, with record and export ID, for each exported file that failed."""

    def __init__(self):
        self.expected: dict[str, str] = {}

    def __call__(self, filepath, url, exception):
        if exception is not None and url in self.expected:
            warnings.warn(f"{ARCHIVE}: exported file not received: {self.expected[url]} ({exception})",
                          ArchiveWarning, stacklevel=2)


def _attach_report(downloader, expected: dict) -> None:
    report = getattr(downloader, "_sunpy_archives_jsoc_report", None)
    if report is None:
        report = _ExportReport()
        config = downloader.config.config
        config.done_callbacks = (*tuple(config.done_callbacks or ()), report)
        downloader._sunpy_archives_jsoc_report = report
    report.expected.update(expected)
