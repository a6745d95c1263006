"""
``sunpy-archives search`` and ``sunpy-archives fetch``: Fido searches from the command line.

Each archive has its own sub-command whose options are named after the Fido
attrs (``--release`` for ``a.spice.Release``, ``--series`` for
``a.drms.Series``...). The options become exactly the attrs a Python user
would write, the search goes through `~sunpy.net.Fido`, and ``fetch`` hands
the result to ``Fido.fetch``. So::

    sunpy-archives search spice --release 5.0 --level 2 --start 2023-03-01 --end 2023-03-31

runs ``Fido.search(a.spice.Release("5.0"), a.Level("2"), a.Time("2023-03-01", "2023-03-31"))``.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_commands(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["search", "jsoc", "--series", "aia.lev1_euv_12s",
...                           "--start", "2024-01-01", "--end", "2024-01-01T00:01"])
>>> [type(attr).__name__ for attr in build_query(args)]
['Series', 'Time']
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.errors import BadInputError

__all__ = ["add_commands", "build_query", "format_result", "fetch_result", "FetchSummary",
           "attr_code", "describe_query", "ARCHIVE_LAYOUTS"]

#: Default ``path=`` template under ``--path`` per archive: the archive's own folder layout
#: where it has one, else the folder itself.
ARCHIVE_LAYOUTS: dict[str, str] = {
    "spice": "{file_path}/{file}",
    "imap": "{sdc_dir}/{file}",
    "jsoc": "",
    "eso": "",
}

FORMATS = ("table", "json", "csv")


# -- Options ----------------------------------------------------------------------------------

def _time_options(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument("--start", help=f"start of the time range (ISO date or time); {meaning}")
    parser.add_argument("--end", help="end of the time range (included); needs --start")


def _spice_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--release", help="data release tag, e.g. 5.0 (a.spice.Release; default: "
                                          "the latest)")
    parser.add_argument("--soop", help="SOOP name (a.spice.SOOP), any case")
    parser.add_argument("--level", help="processing level: 1, 2, L1 or L2 (a.Level; default: all)")
    parser.add_argument("--query", help="catalog filter such as "
                                        "\"NAXIS1 < 100 & 600 < CRVAL1 < 700\" "
                                        "(a.spice.Query)")
    parser.add_argument("--closest", help="keep the file (per level) starting nearest this time "
                                          "(a.spice.Closest)")
    parser.add_argument("--provider", help="where fetch downloads from: IAS (default) or SOAR "
                                           "(a.Provider)")
    _time_options(parser, "files whose DATE-BEG is in [start, end]")


def _imap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default="science",
                        help="science (default), ancillary or spice (a.imap.Table)")
    parser.add_argument("--instrument", help="instrument, e.g. mag (a.Instrument)")
    parser.add_argument("--level", help="data level, e.g. l1a, l2 (a.Level)")
    parser.add_argument("--descriptor",
                        help="product descriptor, e.g. norm-rtn (a.imap.Descriptor)")
    parser.add_argument("--version", help="vMMM.mmmm, vNNN or 'latest' (a.imap.Version)")
    parser.add_argument("--major-version", help="science major version (a.imap.MajorVersion)")
    parser.add_argument("--minor-version", help="science minor version (a.imap.MinorVersion)")
    parser.add_argument("--repointing", help="repointing number (a.imap.Repointing)")
    parser.add_argument("--extension", help="file extension, e.g. cdf (a.imap.Extension)")
    parser.add_argument("--filename", help="one file by name (a.imap.Filename)")
    parser.add_argument("--kernel-type", help="SPICE kernel type (a.imap.KernelType)")
    parser.add_argument("--ingestion-start", help="ingested on or after this day "
                                                  "(a.imap.IngestionTime)")
    parser.add_argument("--ingestion-end", help="ingested on or before this day")
    _time_options(parser, "files whose start day is in [start day, end day]")


def _jsoc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", help="DRMS series, e.g. aia.lev1_euv_12s (a.drms.Series)")
    parser.add_argument("--segment", action="append", default=[],
                        help="segment to export, e.g. image (a.drms.Segment); repeat for several")
    parser.add_argument("--wavelength", type=float,
                        help="wavelength in angstrom, e.g. 171 (a.Wavelength)")
    parser.add_argument("--sample", type=float, help="one record every N seconds (a.Sample)")
    parser.add_argument("--keys", help="keywords to list, comma-separated (a.drms.Keys)")
    parser.add_argument("--notify", help="e-mail address registered with JSOC (a.drms.Notify; "
                                         "default: SUNPY_ARCHIVES_JSOC_EMAIL)")
    parser.add_argument("--protocol", help="export protocol: fits or as-is (a.drms.Protocol)")
    parser.add_argument("--method", help="export method: url, url_quick or url-tar "
                                         "(a.drms.Method)")
    parser.add_argument("--export-id", help="an existing export, JSOC_YYYYMMDD_N (a.drms.ExportID)")
    _time_options(parser, "records whose T_REC is in [start, end]")


def _eso_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", help="data collection, e.g. MUSE (a.eso.Collection)")
    parser.add_argument("--category", help="file category or prefix, e.g. ANCILLARY.PREVIEW "
                                           "(a.eso.Category)")
    parser.add_argument("--product-id", help="every file of one product (a.eso.ProductID)")
    parser.add_argument("--instrument", help="instrument, e.g. ESPRESSO (a.Instrument)")
    parser.add_argument("--extension", help="file extension, e.g. fits (a.eso.Extension)")
    parser.add_argument("--max-records", help="most rows to return (a.eso.MaxRecords)")
    _time_options(parser, "products whose observation overlaps [start, end]")


_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "spice": _spice_options, "imap": _imap_options, "jsoc": _jsoc_options, "eso": _eso_options}

_TITLES = {
    "spice": "Solar Orbiter SPICE data releases",
    "imap": "the IMAP Science Data Center",
    "jsoc": "Stanford JSOC (DRMS series)",
    "eso": "the ESO Science Archive",
}


# -- Queries ----------------------------------------------------------------------------------

def _time(args, archive: str):
    import sunpy.net.attrs as a

    if args.start is None and args.end is None:
        return []
    if args.start is None or args.end is None:
        raise BadInputError("give both --start and --end (the range includes both ends)",
                            archive=archive.upper())
    try:
        return [a.Time(args.start, args.end)]
    except ValueError as exc:
        raise BadInputError(f"--start/--end: {exc}", archive=archive.upper()) from None


def _spice_query(args) -> list:
    import sunpy.net.attrs as a

    import sunpy_archives.spice  # noqa: F401  (registers a.spice)

    query = []
    if args.release is not None:
        query.append(a.spice.Release(args.release))
    if args.soop is not None:
        query.append(a.spice.SOOP(args.soop))
    if args.query is not None:
        query.append(a.spice.Query(args.query))
    if args.closest is not None:
        query.append(a.spice.Closest(args.closest))
    if not query:
        # The documented default; it also sends the query to the SPICE client.
        query.append(a.spice.Release("latest"))
    if args.level is not None:
        query.append(a.Level(args.level))
    if args.provider is not None:
        query.append(a.Provider(args.provider))
    return query + _time(args, "spice")


def _imap_query(args) -> list:
    import sunpy.net.attrs as a

    import sunpy_archives.imap  # noqa: F401  (registers a.imap)

    query = [a.imap.Table(args.table)]
    simple = [("instrument", a.Instrument), ("level", a.Level), ("descriptor", a.imap.Descriptor),
              ("version", a.imap.Version), ("major_version", a.imap.MajorVersion),
              ("minor_version", a.imap.MinorVersion), ("repointing", a.imap.Repointing),
              ("extension", a.imap.Extension), ("filename", a.imap.Filename),
              ("kernel_type", a.imap.KernelType)]
    query += [attr(getattr(args, name)) for name, attr in simple if getattr(args, name) is not None]
    if args.ingestion_start is not None or args.ingestion_end is not None:
        if args.ingestion_start is None:
            raise BadInputError("--ingestion-end needs --ingestion-start", archive="IMAP")
        query.append(a.imap.IngestionTime(args.ingestion_start, args.ingestion_end))
    return query + _time(args, "imap")


def _jsoc_query(args) -> list:
    import astropy.units as u
    import sunpy.net.attrs as a

    import sunpy_archives.jsoc  # noqa: F401  (registers a.drms)

    if args.series is None and args.export_id is None:
        raise BadInputError("give --series (e.g. --series aia.lev1_euv_12s) or --export-id",
                            archive="JSOC")
    query = []
    if args.series is not None:
        query.append(a.drms.Series(args.series))
    if args.export_id is not None:
        query.append(a.drms.ExportID(args.export_id))
    query += [a.drms.Segment(name) for name in args.segment]
    if args.wavelength is not None:
        query.append(a.Wavelength(args.wavelength * u.AA))
    if args.sample is not None:
        query.append(a.Sample(args.sample * u.s))
    if args.keys is not None:
        query.append(a.drms.Keys(args.keys))
    if args.notify is not None:
        query.append(a.drms.Notify(args.notify))
    if args.protocol is not None:
        query.append(a.drms.Protocol(args.protocol))
    if args.method is not None:
        query.append(a.drms.Method(args.method))
    return query + _time(args, "jsoc")


def _eso_query(args) -> list:
    import sunpy.net.attrs as a

    import sunpy_archives.eso  # noqa: F401  (registers a.eso)

    own = [("collection", a.eso.Collection), ("category", a.eso.Category),
           ("product_id", a.eso.ProductID), ("extension", a.eso.Extension),
           ("max_records", a.eso.MaxRecords)]
    query = [attr(getattr(args, name)) for name, attr in own if getattr(args, name) is not None]
    if not query:
        raise BadInputError("give at least one of --collection, --category, --product-id, "
                            "--extension or --max-records", archive="ESO")
    if args.instrument is not None:
        query.append(a.Instrument(args.instrument))
    return query + _time(args, "eso")


_QUERIES: dict[str, Callable[[argparse.Namespace], list]] = {
    "spice": _spice_query, "imap": _imap_query, "jsoc": _jsoc_query, "eso": _eso_query}


def build_query(args: argparse.Namespace) -> list:
    """The Fido attrs that the parsed options of ``search``/``fetch`` stand for.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options; ``args.archive`` names the archive.

    Returns
    -------
    list
        Attrs to pass to ``Fido.search(*attrs)``.

    Raises
    ------
    sunpy_archives.core.errors.BadInputError
        A value the attrs reject, or a missing option (before any request).
    """
    return _QUERIES[args.archive](args)


_NAMESPACES = {"sunpy_archives.spice": "a.spice", "sunpy_archives.imap": "a.imap",
               "sunpy_archives.jsoc": "a.drms", "sunpy_archives.eso": "a.eso"}


def attr_code(attr) -> str:
    """The Python a user would write for ``attr``, e.g. ``a.spice.Release('5.0')``.

    Examples
    --------
    >>> import sunpy.net.attrs as a
    >>> attr_code(a.Time("2024-01-01", "2024-01-02"))
    "a.Time('2024-01-01 00:00:00', '2024-01-02 00:00:00')"
    """
    import sunpy.net.attrs as a

    name = type(attr).__name__
    module = type(attr).__module__.rsplit(".", 1)[0]
    space = _NAMESPACES.get(module, "a")
    if isinstance(attr, a.Time):
        return f"a.Time({attr.start.iso[:19]!r}, {attr.end.iso[:19]!r})"
    if isinstance(attr, a.Wavelength):
        if attr.min == attr.max:
            return f"a.Wavelength({attr.min.value:g} * u.{attr.min.unit})"
        return (f"a.Wavelength({attr.min.value:g} * u.{attr.min.unit}, "
                f"{attr.max.value:g} * u.{attr.max.unit})")
    if isinstance(attr, a.Sample):
        return f"a.Sample({attr.value:g} * u.s)"
    if hasattr(attr, "start") and hasattr(attr, "end"):
        return f"{space}.{name}({str(attr.start)!r}, {str(attr.end)!r})"
    value = getattr(attr, "value", None)
    if isinstance(value, tuple):
        value = ", ".join(value)
    return f"{space}.{name}({value!r})"


def describe_query(query: Sequence) -> str:
    """``Fido.search(...)`` as Python code, for the query the options built."""
    return "Fido.search(" + ", ".join(attr_code(attr) for attr in query) + ")"


# -- Output -----------------------------------------------------------------------------------

def _visible(table) -> list[str]:
    hidden = set(getattr(table, "hide_keys", None) or ())
    return [name for name in table.colnames if name not in hidden]


def _plain(value):
    """A JSON/CSV-friendly version of one table cell."""
    from astropy.time import Time
    from astropy.units import Quantity

    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, Time):
        return value.isot
    if isinstance(value, Quantity):
        return _plain(value.value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool):
        return value
    return str(value)


def _rows(result) -> tuple[list[str], list[dict]]:
    columns: list[str] = []
    rows: list[dict] = []
    for table in result:
        for name in table.colnames:
            if name not in columns:
                columns.append(name)
        for row in table:
            rows.append({name: _plain(row[name]) for name in table.colnames})
    return columns, rows


def format_result(result, fmt: str) -> str:
    """Render a Fido search result as text.

    Parameters
    ----------
    result : sunpy.net.fido_factory.UnifiedResponse
        What ``Fido.search`` returned.
    fmt : {"table", "json", "csv"}
        ``table``: every row of each table, hidden columns left out, as Fido prints them;
        ``json``: a list of objects, one per row, with every column; ``csv``: the same as
        comma-separated values with a header line. Times are ISO strings (UTC),
        quantities their values in the column's unit.

    Returns
    -------
    str

    Examples
    --------
    >>> from sunpy.net.base_client import QueryResponseTable
    >>> from sunpy.net.fido_factory import UnifiedResponse
    >>> result = UnifiedResponse(QueryResponseTable({"Filename": ["a.fits"], "Size": [3]}))
    >>> print(format_result(result, "json"))
    [{"Filename": "a.fits", "Size": 3}]
    """
    if fmt == "json":
        return json.dumps(_rows(result)[1])
    if fmt == "csv":
        columns, rows = _rows(result)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: json.dumps(v) if isinstance(v, list) else v
                             for key, v in row.items()})
        return out.getvalue().rstrip("\n")
    blocks = []
    for table in result:
        client = type(table.client).__name__ if getattr(table, "client", None) else "Fido"
        blocks.append(f"{len(table)} results from the {client}:")
        if len(table):
            shown = table.show(*_visible(table))
            blocks.append("\n".join(shown.pformat(max_lines=-1, max_width=-1)))
    if not blocks:
        blocks.append("0 results")
    return "\n\n".join(blocks)


# -- Fetching ---------------------------------------------------------------------------------

@dataclass
class FetchSummary:
    """What a fetch did: files written, their total size, and the failures."""

    files: list[str] = field(default_factory=list)
    bytes: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def lines(self, retry_command: str) -> list[str]:
        """The summary printed at the end of ``fetch``.

        Examples
        --------
        >>> FetchSummary(["a.fits"], 2048).lines("sunpy-archives fetch eso")
        ['Fetched 1 file (2.0 kB), 0 failed.']
        """
        size = _human(self.bytes)
        noun = "file" if len(self.files) == 1 else "files"
        out = [f"Fetched {len(self.files)} {noun} ({size}), {len(self.failures)} failed."]
        if self.failures:
            out.append("Run the same command again to retry the failed files "
                       "(complete files are skipped):")
            out.append(f"  {retry_command}")
        return out


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def fetch_result(result, folder: Path, layout: str, *, progress: bool) -> FetchSummary:
    """``Fido.fetch`` a search result under ``folder`` and summarise it.

    Parameters
    ----------
    result : sunpy.net.fido_factory.UnifiedResponse or QueryResponseTable
        What to fetch.
    folder : pathlib.Path
        Target folder (made if missing).
    layout : str
        ``path=`` template below ``folder`` (e.g. ``"{file_path}/{file}"``); empty for the
        folder itself.
    progress : bool
        Show parfive's progress bars.

    Returns
    -------
    FetchSummary
    """
    from sunpy.net import Fido

    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / layout) if layout else str(folder)
    files = Fido.fetch(result, path=path, progress=progress)
    summary = FetchSummary(files=[str(f) for f in files])
    for name in summary.files:
        try:
            summary.bytes += Path(name).stat().st_size
        except OSError:
            pass
    summary.failures = [(str(e.url), str(e.exception)) for e in files.errors]
    return summary


# -- Commands ---------------------------------------------------------------------------------

def _search(args) -> tuple:
    from sunpy.net import Fido

    query = build_query(args)
    return query, Fido.search(*query)


def cmd_search(args) -> int:
    """``sunpy-archives search <archive> ...``: print the result in ``--format``."""
    query, result = _search(args)
    text = format_result(result, args.format)
    if args.format == "table":
        text = f"{describe_query(query)}\n\n{text}"
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader stopped early (``... | head``): not an error. Send what is left of
        # standard output to nowhere so that Python's own flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_fetch(args) -> int:
    """``sunpy-archives fetch <archive> ... --path DIR``: search, fetch, summarise.

    Exit status 0 when every file arrived, 1 when some failed.
    """
    query, result = _search(args)
    found = sum(len(table) for table in result)
    folder = Path(args.path).expanduser().resolve()
    layout = ARCHIVE_LAYOUTS[args.archive] if args.layout is None else args.layout
    if args.max_files is not None:
        from sunpy.net.fido_factory import UnifiedResponse

        result = UnifiedResponse(*[table[: args.max_files] for table in result])
    chosen = sum(len(table) for table in result)
    log = sys.stderr if args.format != "table" else sys.stdout
    print(describe_query(query), file=log)
    print(f"Found {found} files; fetching {chosen} into {folder}"
          + (f" (layout {layout})" if layout else "") + ".", file=log)
    if args.archive == "jsoc" and chosen:
        print("JSOC stages the export first; the client polls it until it is ready.", file=log,
              flush=True)
    summary = fetch_result(result, folder, layout, progress=not args.no_progress)
    if args.format == "table":
        for name in summary.files:
            print(f"  {name}")
    else:
        print(json.dumps(summary.files) if args.format == "json" else "\n".join(summary.files))
    for url, reason in summary.failures:
        print(f"failed: {url}: {reason}", file=sys.stderr)
    retry = shlex.join(["sunpy-archives", *args.argv])
    for line in summary.lines(retry):
        print(line, file=log if not summary.failures else sys.stderr)
    return 1 if summary.failures else 0


def add_commands(subparsers) -> None:
    """Add ``search`` and ``fetch`` (each with one sub-command per archive) to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.
    """
    search = subparsers.add_parser(
        "search", help="search an archive through Fido; options are named as the attrs",
        description="Search an archive through Fido and print the result.")
    fetch = subparsers.add_parser(
        "fetch", help="search an archive and download the files found",
        description="Search an archive through Fido and download the files found. Running the "
                    "same command again skips complete files, so it retries the failed ones.")
    for command, func in ((search, cmd_search), (fetch, cmd_fetch)):
        archives = command.add_subparsers(dest="archive", required=True, metavar="ARCHIVE")
        for archive, add_options in _OPTIONS.items():
            sub = archives.add_parser(archive, help=_TITLES[archive],
                                      description=f"{command.prog.split()[-1].title()} "
                                                  f"{_TITLES[archive]}.")
            add_options(sub)
            sub.add_argument("--format", choices=FORMATS, default="table",
                             help="output: table (default), json or csv")
            if func is cmd_fetch:
                sub.add_argument("--path", required=True, help="folder for the files")
                sub.add_argument("--layout", default=None,
                                 help="path= template below --path (default: "
                                      f"{ARCHIVE_LAYOUTS[archive] or 'the folder itself'})")
                sub.add_argument("--max-files", type=int, default=None,
                                 help="fetch only the first N files of each result table")
                sub.add_argument("--no-progress", action="store_true", help="no progress bars")
            sub.set_defaults(func=func)
