"""
The ``sunpy-archives`` command line.

A thin layer over the functions users call from Python: every subcommand
builds the same Fido queries and uses the same local servers as the library
and its tests.

* ``sunpy-archives demo``: start the bundled local archive servers, run a
  real search and fetch against them, print the results and where the files
  went.
* ``sunpy-archives serve``: start the bundled local servers and print their
  URLs and the environment variables that point the clients at them.
* ``sunpy-archives search <archive> [filters]`` and ``sunpy-archives fetch
  <archive> [filters] --path DIR``: Fido searches and downloads, with options
  named as the attrs (see `sunpy_archives._cli_search`).
* ``sunpy-archives imap query|download|upload``: the drop-in for the IMAP
  SDC's own command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

from ._cli_search import add_commands as add_search_commands
from .core.errors import ArchiveError
from .testing.registry import ARCHIVES, start_server

__all__ = ["main"]

#: Modules contributing sub-commands (e.g. the ``imap`` drop-in for the IMAP SDC's own CLI).
ARCHIVE_COMMANDS: tuple[str, ...] = ("sunpy_archives.imap.cli",)


@contextmanager
def _environment(values: dict[str, str]):
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _demo_query(server):
    """A query with results: the busiest SOOP of the latest release, a month around its median."""
    import pandas as pd
    import sunpy.net.attrs as a
    from astropy.time import Time

    frame = server.data.catalog(server.data.latest)
    frame = frame[frame["LEVEL"] == "L2"]
    soop = frame["SOOPNAME"].value_counts().index[0]
    starts = pd.to_datetime(frame.loc[frame["SOOPNAME"] == soop, "DATE-BEG"], format="ISO8601")
    middle = starts.sort_values().iloc[len(starts) // 2]
    start = Time((middle - pd.Timedelta(days=15)).to_pydatetime())
    end = Time((middle + pd.Timedelta(days=15)).to_pydatetime())
    return (a.spice.Release(server.data.latest), a.spice.SOOP(soop), a.Level(2),
            a.Time(start, end))


def _imap_demo_query(server):
    import sunpy.net.attrs as a

    import sunpy_archives.imap  # noqa: F401

    return (a.Instrument("mag"), a.Level("l2"), a.imap.Version("latest"),
            a.Time("2025-01-03", "2025-01-05"))


def _jsoc_demo_query(server):
    import astropy.units as u
    import sunpy.net.attrs as a

    import sunpy_archives.jsoc  # noqa: F401

    return (a.drms.Series("aia.lev1_euv_12s"), a.Time("2024-01-01T00:00", "2024-01-01T00:02"),
            a.Wavelength(171 * u.AA), a.drms.Segment("image"))


def _eso_demo_query(server):
    import sunpy.net.attrs as a

    import sunpy_archives.eso  # noqa: F401

    return (a.eso.Collection("MUSE"), a.eso.Category("ANCILLARY.PREVIEW"))


#: Per archive: the demo query (given the running server) and the ``path=`` layout.
_DEMOS = {
    "spice": (_demo_query, "{file_path}/{file}"),
    "imap": (_imap_demo_query, "{sdc_dir}/{file}"),
    "jsoc": (_jsoc_demo_query, ""),
    "eso": (_eso_demo_query, ""),
}


def cmd_demo(args) -> int:
    from sunpy.net import Fido

    import sunpy_archives  # noqa: F401  (registers the clients)

    from ._cli_search import describe_query, fetch_result, format_result

    target = Path(args.path).expanduser().resolve()
    archives = ARCHIVES if args.archive == "all" else (args.archive,)
    total = failed = 0
    for archive in archives:
        make_query, layout = _DEMOS[archive]
        print(f"== {archive}: starting the local server (generated data)...")
        server = start_server(archive, large=args.large)
        try:
            env = server.environment()
            for key, value in env.items():
                print(f"  {key}={value}")
            with _environment(env):
                query = make_query(server)
                print(f"\n{describe_query(query)}\n")
                result = Fido.search(*query)
                print(format_result(result, "table"))
                table = result[0][: args.max_files]
                folder = target / archive
                print(f"\nFetching {len(table)} of {len(result[0])} files into {folder}"
                      + (f" (path template: {layout})" if layout else "") + "...")
                summary = fetch_result(table, folder, layout, progress=not args.no_progress)
        finally:
            server.stop()
        for name in summary.files:
            print(f"  {name}")
        for url, reason in summary.failures:
            print(f"  failed: {url}: {reason}", file=sys.stderr)
        total += len(summary.files)
        failed += len(summary.failures)
        print()
    if failed:
        print(f"{failed} file(s) failed", file=sys.stderr)
        return 1
    print(f"Done: {total} files in {target}")
    return 0


def cmd_serve(args) -> int:
    archives = ARCHIVES if args.archive == "all" else (args.archive,)
    if args.port and len(archives) > 1:
        print("sunpy-archives: error: --port needs one archive", file=sys.stderr)
        return 2
    servers = []
    try:
        for archive in archives:
            server = start_server(archive, large=args.large, port=args.port)
            servers.append(server)
            print(f"{archive}: {server.url}")
            for key, value in server.environment().items():
                print(f"export {key}={value}")
        print("Serving until Ctrl-C.", flush=True)
        servers[0].wait_closed()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sunpy-archives",
        description="Search and download SPICE, IMAP, JSOC and ESO data through sunpy's Fido.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo",
                          help="search and fetch against the bundled local servers (offline)")
    demo.add_argument("archive", nargs="?", default="all", choices=("all",) + ARCHIVES,
                      help="one archive, or all (default)")
    demo.add_argument("--path", default="sunpy-archives-demo",
                      help="folder for the downloaded files (default: ./sunpy-archives-demo)")
    demo.add_argument("--max-files", type=int, default=5,
                      help="how many files to fetch per archive (default 5)")
    demo.add_argument("--large", action="store_true", help="serve the ~200,000-row catalog")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="run the bundled local archive servers")
    serve.add_argument("archive", nargs="?", default="all", choices=("all",) + ARCHIVES)
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--large", action="store_true", help="serve the large generated archive")
    serve.set_defaults(func=cmd_serve)

    # Archive-specific commands live beside their client; each module has
    # ``add_commands(subparsers)``.
    add_search_commands(sub)
    for module in ARCHIVE_COMMANDS:
        import_module(module).add_commands(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line each, without the source line Python adds."""
    print(f"sunpy-archives: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sunpy-archives``; returns the exit code.

    Errors end the command with one line on standard error and exit status 2
    (a traceback only with ``--debug``); a fetch with failed files exits with 1.
    """
    import warnings

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if not args.debug:
        warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("sunpy-archives: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure is one line unless --debug
        if args.debug:
            raise
        known = isinstance(exc, ArchiveError | ValueError | OSError)
        text = " ".join(str(exc).split()) or type(exc).__name__
        prefix = "" if known else f"{type(exc).__name__}: "
        print(f"sunpy-archives: error: {prefix}{text} (--debug shows the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
