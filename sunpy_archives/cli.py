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
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

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
    """A query with results: the busiest SOOP of the latest release, a month around its median file."""
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


def cmd_demo(args) -> int:
    from sunpy.net import Fido

    import sunpy_archives  # noqa: F401  (registers the clients)

    target = Path(args.path).expanduser().resolve()
    print("Starting the local SPICE release-tree server (generated data)...")
    server = start_server("spice", large=args.large)
    try:
        env = server.environment()
        for key, value in env.items():
            print(f"  {key}={value}")
        with _environment(env):
            query = _demo_query(server)
            release, soop, level, time = query
            print(f"\nFido.search(a.spice.Release({release.value!r}), a.spice.SOOP({soop.value!r}),\n"
                  f"            a.Level({level.value!r}), a.Time({time.start.iso[:19]!r}, "
                  f"{time.end.iso[:19]!r}))\n")
            result = Fido.search(*query)
            print(result)
            table = result[0][: args.max_files]
            print(f"\nFetching {len(table)} of {len(result[0])} files into {target} "
                  "(path template: {file_path}/{file}, the release tree's own layout)...")
            files = Fido.fetch(table, path=str(target / "{file_path}" / "{file}"),
                               progress=not args.no_progress)
    finally:
        server.stop()
    for name in files:
        print(f"  {name}")
    if files.errors:
        print(f"{len(files.errors)} file(s) failed:", file=sys.stderr)
        for error in files.errors:
            print(f"  {error.url}: {error.exception}", file=sys.stderr)
        return 1
    print(f"\nDone: {len(files)} files in {target}")
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

    demo = sub.add_parser("demo", help="search and fetch against the bundled local servers (offline)")
    demo.add_argument("--path", default="sunpy-archives-demo",
                      help="folder for the downloaded files (default: ./sunpy-archives-demo)")
    demo.add_argument("--max-files", type=int, default=5, help="how many files to fetch (default 5)")
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
    for module in ARCHIVE_COMMANDS:
        import_module(module).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sunpy-archives``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ArchiveError, OSError) as exc:
        if args.debug:
            raise
        print(f"sunpy-archives: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
