"""
``sunpy-archives imap query|download|upload``: a drop-in for the official
``imap-data-access`` command line, built on `sunpy_archives.imap`'s functions.

Same global options (``--api-key``, ``--data-dir``, ``--url``), same flags,
same ``--output-format table|json``; downloads run in parallel with a
progress bar. ``download`` takes one or more files.

Hook it into a parser with `add_commands`::

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["imap", "query", "--instrument", "mag"])
    args.func(args)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .filenames import INSTRUMENTS, KERNEL_TYPES, TABLES

__all__ = ["add_commands", "main", "format_table"]

QUERY_FLAGS = ("instrument", "data_level", "descriptor", "start_date", "end_date",
               "ingestion_start_date", "ingestion_end_date", "repointing", "version",
               "major_version", "minor_version", "extension")
SPICE_FLAGS = ("start_date", "end_date", "ingestion_start_date", "ingestion_end_date", "type",
               "version")


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Add the ``imap`` command (with ``query``, ``download``, ``upload``) to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``imap`` parser.
    """
    imap = subparsers.add_parser(
        "imap", help="query, download and upload IMAP SDC files (drop-in for imap-data-access)",
        description="Query, download and upload files of the IMAP Science Data Center.")
    imap.add_argument("--api-key", default=None,
                      help="API key of the IMAP SDC (default: IMAP_API_KEY); needed for uploads")
    imap.add_argument("--data-dir", type=Path, default=None,
                      help="local SDC mirror (default: IMAP_DATA_DIR, else ./data); must exist")
    imap.add_argument("--url", default=None,
                      help="URL of the IMAP SDC API (default: IMAP_DATA_ACCESS_URL, else "
                           "https://api.imap-mission.com)")
    imap.add_argument("--debug", action="store_true", help="debug logging, tracebacks on errors")
    imap.add_argument("-v", "--verbose", action="store_true", help="informational logging")
    commands = imap.add_subparsers(dest="imap_command", required=True)

    download = commands.add_parser(
        "download", help="download files into the data directory (SDC layout), in parallel",
        description="Download files from the IMAP SDC into the data directory, in the SDC "
                    "layout. Files already there are not fetched again.")
    download.add_argument("file_path", nargs="+", type=Path,
                          help="file name(s) or path(s), e.g. "
                               "imap/mag/l0/2025/01/imap_mag_l0_raw_20250101_v001.pkts")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.add_argument("--max-conn", type=int, default=None,
                          help="parallel downloads (default: SUNPY_ARCHIVES_MAX_CONN, 4)")
    download.set_defaults(func=_download)

    query = commands.add_parser(
        "query", help="query the SDC for files (at least one parameter)",
        description="Query the IMAP SDC for files matching the parameters; at least one is "
                    "needed.")
    query.add_argument("--table", choices=TABLES, default="science",
                       help="table to query (default: science)")
    query.add_argument("--instrument", choices=INSTRUMENTS, help="name of the instrument")
    query.add_argument("--data-level", help="data level (l0, l1a, l2...)")
    query.add_argument("--descriptor", help="descriptor of the product (raw, burst...)")
    query.add_argument("--start-date", help="files starting on or after this day (YYYYMMDD)")
    query.add_argument("--end-date", help="files starting on or before this day (YYYYMMDD)")
    query.add_argument("--ingestion-start-date", help="ingested on or after this day (YYYYMMDD)")
    query.add_argument("--ingestion-end-date", help="ingested on or before this day (YYYYMMDD)")
    query.add_argument("--repointing", help="repointing (repoint00012 or 12)")
    query.add_argument("--version", help="vMMM.mmmm, the legacy vXXX, or 'latest' (the newest "
                                         "per dataset and day; needs another parameter)")
    query.add_argument("--major-version", help="science major version (default: the latest)")
    query.add_argument("--minor-version", help="science minor version")
    query.add_argument("--extension", help="file extension (cdf, pkts...)")
    query.add_argument("--output-format", choices=("table", "json"), default="table",
                       help="output format (default: table)")
    query.add_argument("--filename", help="one file by name (used alone)")
    query.add_argument("--type", help="SPICE kernel type, with --table spice: "
                                      + ", ".join(KERNEL_TYPES))
    query.set_defaults(func=_query)

    upload = commands.add_parser("upload", help="upload a file to the SDC (needs an API key)",
                                 description="Upload a file to the IMAP SDC.")
    upload.add_argument("file_path", type=Path, help="the file to upload")
    upload.set_defaults(func=_upload)
    return imap


def _settings(args) -> dict:
    """``url``/``api_key`` keyword arguments from the global options (None: environment)."""
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else None
    if level is not None:
        logging.basicConfig(level=level)
        logging.getLogger("sunpy_archives").setLevel(level)
    return {"url": args.url, "api_key": args.api_key}


def _data_dir(args) -> Path | None:
    if args.data_dir is None:
        return None
    path = args.data_dir.expanduser().resolve()
    if not path.is_dir():
        from ..core.errors import BadInputError

        raise BadInputError(f"data directory {str(args.data_dir)!r} does not exist; create it or "
                            "pass another --data-dir", archive="IMAP")
    return path


def _query(args) -> int:
    from . import query as run_query
    from . import spice_query
    from .api import SDCApi
    from .client import _records, filename_block
    from ..core.errors import BadInputError

    settings = _settings(args)
    values = {key: getattr(args, key) for key in QUERY_FLAGS + ("type",)
              if getattr(args, key, None) is not None}
    if args.filename is not None:
        if values:
            raise BadInputError("--filename is used by itself", archive="IMAP")
        kind, params = filename_block(args.filename)
        exact = params.pop("_filename")
        records = [r for r in _records(SDCApi(**settings), kind, params)
                   if (r.get("file_name") or str(r.get("file_path", "")).rsplit("/", 1)[-1]) == exact]
        table = "spice" if kind == "spice" else params["table"]
    elif args.table == "spice":
        extra = sorted(set(values) - set(SPICE_FLAGS))
        if extra:
            raise BadInputError(f"--table spice takes no {', '.join(extra)}", archive="IMAP")
        records = spice_query(**settings, **values)
        table = "spice"
    else:
        if "type" in values:
            raise BadInputError("--type applies to --table spice only", archive="IMAP")
        records = run_query(**settings, table=args.table, **values)
        table = args.table
    if args.output_format == "json":
        print(json.dumps(records))
    else:
        print(format_table(records, table))
    return 0


def _download(args) -> int:
    from . import download

    settings = _settings(args)
    paths = download([str(p) for p in args.file_path], data_dir=_data_dir(args),
                     progress=not args.no_progress, max_conn=args.max_conn, **settings)
    for path in paths:
        print(f"Successfully downloaded the file to: {path}")
    return 0


def _upload(args) -> int:
    from . import upload

    settings = _settings(args)
    where = upload(args.file_path, **settings)
    print(f"Successfully uploaded the file to the IMAP SDC: {where}")
    return 0


def _science_version(record: dict) -> str:
    from .filenames import format_version

    minor = record.get("minor_version")
    if minor is None:
        return str(record.get("version", ""))
    return format_version(record.get("major_version"), minor)


def format_table(records: list[dict], table: str) -> str:
    """The text table the official CLI prints for query results (same columns and layout).

    Examples
    --------
    >>> print(format_table([], "science"))
    Found [0] matching files
    """
    if not records:
        return "Found [0] matching files"
    name = (lambda r: str(r.get("file_name", ""))) if table == "spice" else (
        lambda r: os.path.basename(str(r.get("file_path", ""))))
    if table == "spice":
        columns = [("Kernel Type", "kernel_type"), ("Min Date", "min_date_datetime"),
                   ("Max Date", "max_date_datetime"), ("Ingestion Date", "ingestion_date"),
                   ("Version", "version")]
    elif table == "ancillary":
        columns = [("Instrument", "instrument"), ("Descriptor", "descriptor"),
                   ("Start Date", "start_date"), ("End Date", "end_date"),
                   ("Ingestion Date", "ingestion_date"), ("Version", "version")]
    else:
        columns = [("Instrument", "instrument"), ("Data Level", "data_level"),
                   ("Descriptor", "descriptor"), ("Start Date", "start_date"),
                   ("Ingestion Date", "ingestion_date"), ("Version", "version")]
        if any(r.get("cr") not in (None, "") for r in records):
            columns.append(("CR", "cr"))
        if any(r.get("repointing") not in (None, "") for r in records):
            columns.append(("Repointing", "repointing"))

    def cell(record, key):
        if table == "science" and key == "version":
            return _science_version(record)
        value = record.get(key, "")
        return "None" if value is None else str(value)

    rows = [[cell(r, key) for _, key in columns] + [name(r)] for r in records]
    headers = [title for title, _ in columns] + ["Filename"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "|" + "-" * (sum(widths) + 3 * len(widths) - 1) + "|"

    def fmt(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    out = [f"Found [{len(records)}] matching files in {table} table", line, fmt(headers), line]
    out += [fmt(row) for row in rows]
    out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run ``imap ...`` on its own (``python -m sunpy_archives.imap.cli query ...``)."""
    from ..core.errors import ArchiveError

    parser = argparse.ArgumentParser(prog="sunpy-archives")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["imap", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ArchiveError, OSError) as exc:
        if args.debug:
            raise
        print(f"sunpy-archives imap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
