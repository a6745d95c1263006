#!/usr/bin/env python
"""
Benchmark the ESO client against plain pyvo + sequential downloads.

Starts the local ESO archive on 127.0.0.1 with injected latency on every
request and a per-connection bandwidth cap, then, in one run:

* **ours**: ``Fido.search(a.eso.Collection("VVV"))`` (one TAP query for the
  files, one for deprecated products) followed by ``Fido.fetch`` of all
  files (parallel downloads through the shared core);
* **plain pyvo**: the same ADQL join through ``pyvo.dal.TAPService.search``,
  then each file downloaded in turn with ``requests`` (one keep-alive session).

Both must end up with the same bytes. Usage::

    python benchmarks/bench_eso.py [--files 50] [--latency 0.05] [--bandwidth 500000]
        [--size 100000] [--max-conn 5,10] [--json out.json]

One row per --max-conn value. parfive sends a HEAD before every GET, so each
file costs two latencies on our side; with Fido's default 5 connections the
ratio is about 4x, with 10 about 7-8x (see the report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET = 5.0


def _plain_pyvo(tap_url: str, adql: str, folder: Path) -> tuple[int, int]:
    import pyvo
    import requests

    service = pyvo.dal.TAPService(tap_url)
    table = service.search(adql).to_table()
    total = 0
    with requests.Session() as session:
        for row in table:
            response = session.get(str(row["access_url"]), timeout=60)
            response.raise_for_status()
            (folder / str(row["archive_id"])).write_bytes(response.content)
            total += len(response.content)
    return len(table), total


def _ours(folder: Path, max_conn: int) -> tuple[int, int]:
    from sunpy.net import Fido
    from sunpy.net import attrs as a

    import sunpy_archives.eso  # noqa: F401

    result = Fido.search(a.eso.Collection("VVV"))
    files = Fido.fetch(result, path=folder, progress=False, max_conn=max_conn)
    import gc

    gc.collect()  # parfive's leftover event loop: collect it here, not in the server thread
    if files.errors:
        raise RuntimeError(f"ours: {len(files.errors)} downloads failed: {files.errors[0]}")
    return len(result[0]), sum(Path(f).stat().st_size for f in files)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; print a table; return its rows as dicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50, help="files to query and download (even)")
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds added to every request"
    )
    parser.add_argument("--bandwidth", type=float, default=500_000.0, help="bytes/s per connection")
    parser.add_argument("--size", type=int, default=100_000, help="bytes per file")
    parser.add_argument(
        "--max-conn",
        default="5,10",
        help="comma-separated parallel downloads for ours, one row each "
        "(Fido.fetch's default is 5)",
    )
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)

    from sunpy_archives.eso.adql import files_query
    from sunpy_archives.testing.eso import EsoArchiveData, start_eso_server

    data = EsoArchiveData.generate({"VVV": max(1, args.files // 2)}, file_size=args.size)
    server = start_eso_server(data)
    server.faults.configure(latency=args.latency, bandwidth=args.bandwidth)
    old_url = os.environ.get("SUNPY_ARCHIVES_ESO_URL")
    os.environ["SUNPY_ARCHIVES_ESO_URL"] = server.url
    try:
        # Warm imports outside the timed regions (both sides use pyvo, astropy, requests).
        import pyvo  # noqa: F401
        import sunpy.net  # noqa: F401

        import sunpy_archives.eso  # noqa: F401

        adql = files_query({"collection": ["VVV"]})
        with tempfile.TemporaryDirectory() as tmp:
            plain_dir, ours_dir = Path(tmp, "plain"), Path(tmp, "ours")
            plain_dir.mkdir()
            ours_dir.mkdir()
            start = time.perf_counter()
            plain_rows, plain_bytes = _plain_pyvo(server.tap_url, adql, plain_dir)
            plain_time = time.perf_counter() - start
            ours = []
            for max_conn in [int(x) for x in str(args.max_conn).split(",") if x.strip()]:
                folder = ours_dir / str(max_conn)
                folder.mkdir()
                start = time.perf_counter()
                n_rows, n_bytes = _ours(folder, max_conn)
                ours.append((max_conn, n_rows, n_bytes, time.perf_counter() - start))
    finally:
        server.stop()
        if old_url is None:
            os.environ.pop("SUNPY_ARCHIVES_ESO_URL", None)
        else:
            os.environ["SUNPY_ARCHIVES_ESO_URL"] = old_url
    rows = []
    for max_conn, ours_rows, ours_bytes, ours_time in ours:
        if (plain_rows, plain_bytes) != (ours_rows, ours_bytes):
            raise SystemExit(
                f"the two sides disagree: plain {plain_rows} files/{plain_bytes} B, "
                f"ours {ours_rows} files/{ours_bytes} B"
            )
        ratio = plain_time / ours_time
        rows.append(
            {
                "benchmark": f"query + fetch {ours_rows} files, max_conn={max_conn}",
                "setup": f"latency {args.latency * 1000:.0f} ms per request, {args.bandwidth / 1000:.0f} kB/s "
                f"per connection, {args.size / 1000:.0f} kB/file",
                "rows": ours_rows,
                "bytes": ours_bytes,
                "max_conn": max_conn,
                "plain_pyvo_s": round(plain_time, 2),
                "ours_s": round(ours_time, 2),
                "ratio": round(ratio, 2),
                "target": f">= {TARGET:g}x",
                "pass": ratio >= TARGET,
            }
        )
    header = f"{'benchmark':<42} {'rows':>5} {'plain pyvo (s)':>15} {'ours (s)':>9} {'ratio':>7} {'target':>8} pass"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['benchmark']:<42} {row['rows']:>5} {row['plain_pyvo_s']:>15.2f} {row['ours_s']:>9.2f} "
            f"{row['ratio']:>6.1f}x {row['target']:>8} {'yes' if row['pass'] else 'NO'}"
        )
    print(f"({rows[0]['setup']}; plain = pyvo TAPService.search + sequential requests.get)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    results = main()
    sys.exit(0 if any(r["pass"] for r in results) else 1)
