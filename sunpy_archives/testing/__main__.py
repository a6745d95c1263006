"""
Serve a local archive from the command line::

    python -m sunpy_archives.testing spice [--large] [--port N] [--seed S]
        [--fail-rate F] [--latency S] [--bandwidth B]

Prints the URLs and the environment variables that point the clients at the
server, then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time

from .faults import FaultConfig
from .spice import SpiceArchiveData, SpiceServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sunpy_archives.testing",
        description="Serve a local, generated archive on 127.0.0.1 until Ctrl-C.",
    )
    sub = parser.add_subparsers(dest="archive", required=True)
    spice = sub.add_parser("spice", help="SPICE data releases and the SOAR data endpoint")
    spice.add_argument("--large", action="store_true",
                       help="about 200,000 rows in the latest catalog (default: small)")
    spice.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    spice.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    spice.add_argument("--seed", type=int, default=0, help="random seed of the archive")
    spice.add_argument("--fail-rate", type=float, default=0.0,
                       help="fraction of requests answered with an error")
    spice.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    spice.add_argument("--bandwidth", type=float, default=None,
                       help="bytes per second per response")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (``sys.argv[1:]`` by default).

    Returns
    -------
    int
        Exit status.
    """
    args = _parser().parse_args(argv)
    if args.archive == "spice":
        started = time.perf_counter()
        data = SpiceArchiveData.large(args.seed) if args.large else SpiceArchiveData.small(
            args.seed)
        faults = FaultConfig(seed=args.seed, fail_rate=args.fail_rate, latency=args.latency,
                             bandwidth=args.bandwidth)
        server = SpiceServer(data, faults, host=args.host, port=args.port).start()
        print(f"Building the catalog of release {data.latest}...", flush=True)
        rows = len(data.catalog(data.latest))
        data.catalog_csv(data.latest)
        print(f"{rows} rows in release {data.latest} "
              f"(ready in {time.perf_counter() - started:.1f} s)")
        print(f"SPICE release tree: {server.base_url}")
        print(f"SOAR data endpoint: {server.soar_url}")
        print("Point the clients at it with:")
        print(f"  export SUNPY_ARCHIVES_SPICE_URL={server.base_url}")
        print(f"  export SUNPY_ARCHIVES_SOAR_URL={server.soar_url}")
        print("Press Ctrl-C to stop.", flush=True)
        server.run_forever()
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
