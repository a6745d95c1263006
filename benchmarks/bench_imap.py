#!/usr/bin/env python
"""
Benchmark sunpy_archives' IMAP client against the official ``imap-data-access``.

Starts the large local SDC (about 100,000 files) on 127.0.0.1 with ~50 ms of
latency added to every request and a per-connection bandwidth cap, then, in
one run:

* queries a year of one instrument (``mag``, 2025) with both clients;
* downloads the same 50 files with both: ``imap_data_access.download`` (one
  file at a time, as it works), ``Fido.fetch`` (its default ``max_conn=5``)
  and ``sunpy_archives.imap.download`` (default ``max_conn``, the
  ``SUNPY_ARCHIVES_MAX_CONN`` setting, 4), checking every file's bytes.

Prints a table (rows, seconds, ratio to the official client, target, pass)
and returns it from `main` as a list of dicts. Usage::

    python benchmarks/bench_imap.py [--latency 0.05] [--bandwidth 250000] [--files 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

QUERY = {"instrument": "mag", "start_date": "20250101", "end_date": "20251231"}
#: "no slower" allows for timing noise on a shared machine.
NO_SLOWER = 1.05


def _best(function, repeat: int = 2):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per request")
    parser.add_argument("--bandwidth", type=float, default=250_000,
                        help="bytes per second per connection")
    parser.add_argument("--files", type=int, default=50, help="files to download")
    args = parser.parse_args(argv)

    import logging

    import imap_data_access
    from sunpy.net import Fido
    from sunpy.net import attrs as a

    import sunpy_archives.imap as imap
    from sunpy_archives.testing.faults import FaultConfig
    from sunpy_archives.testing.imap import ImapArchiveData, start_imap_server

    logging.getLogger("imap_data_access").setLevel(logging.WARNING)  # one line per file otherwise
    print("Building the large SDC catalogue...", file=sys.stderr, flush=True)
    data = ImapArchiveData.large()
    faults = FaultConfig(latency=args.latency, bandwidth=args.bandwidth)
    server = start_imap_server(data, faults)
    work = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    saved_env = {k: os.environ.get(k) for k in ("IMAP_DATA_ACCESS_URL", "IMAP_API_KEY", "IMAP_DATA_DIR")}
    saved_config = dict(imap_data_access.config)
    rows: list[dict] = []
    try:
        os.environ["IMAP_DATA_ACCESS_URL"] = server.url
        os.environ.pop("IMAP_API_KEY", None)
        imap_data_access.config.update(DATA_ACCESS_URL=server.url, API_KEY=None, ACCESS_TOKEN=None)

        # -- query: a year of one instrument -----------------------------------------------
        t_official, theirs = _best(lambda: imap_data_access.query(**QUERY))
        t_ours, ours = _best(lambda: imap.query(**QUERY))
        if sorted(r["file_path"] for r in ours) != sorted(r["file_path"] for r in theirs):
            raise SystemExit("the two clients disagree on the query result")
        rows.append(dict(task=f"query a year of mag ({len(ours)} files)", client="imap_data_access",
                         seconds=t_official, ratio=1.0, target="", passed=None))
        rows.append(dict(task="", client="sunpy_archives.imap.query", seconds=t_ours,
                         ratio=t_ours / t_official, target=f"<= {NO_SLOWER:.2f}",
                         passed=t_ours <= t_official * NO_SLOWER))
        t_fido, table = _best(lambda: Fido.search(a.Instrument("mag"), a.imap.Table("science"),
                                                  a.Time("2025-01-01", "2025-12-31"))[0], repeat=1)
        rows.append(dict(task="", client="Fido.search (table of results)", seconds=t_fido,
                         ratio=t_fido / t_official, target="(info)", passed=None))

        # -- download: the same N files -------------------------------------------------------
        step = max(1, len(ours) // args.files)
        chosen = sorted(ours, key=lambda r: r["file_path"])[::step][: args.files]
        names = [r["file_path"].rsplit("/", 1)[1] for r in chosen]

        def check(root: Path):
            for record in chosen:
                if (root / record["file_path"]).read_bytes() != data.file_bytes(record["file_path"]):
                    raise SystemExit(f"wrong bytes for {record['file_path']} in {root}")

        official_dir = work / "official"
        imap_data_access.config["DATA_DIR"] = official_dir
        start = time.perf_counter()
        for name in names:
            imap_data_access.download(name)
        t_official = time.perf_counter() - start
        check(official_dir)
        total = sum(len(data.file_bytes(r["file_path"])) for r in chosen)
        rows.append(dict(task=f"download {len(names)} files ({total / 1e6:.1f} MB)",
                         client="imap_data_access (serial)", seconds=t_official, ratio=1.0,
                         target="", passed=None))

        wanted = set(names)
        rows_table = table[[str(n) in wanted for n in table["Filename"]]]
        fido_dir = work / "fido"
        start = time.perf_counter()
        files = Fido.fetch(rows_table, path=f"{fido_dir}/{{sdc_dir}}/{{file}}", progress=False)
        t_fido = time.perf_counter() - start
        if files.errors or len(files) != len(names):
            raise SystemExit(f"Fido.fetch failed: {files.errors}")
        check(fido_dir)
        rows.append(dict(task="", client="Fido.fetch (max_conn=5)", seconds=t_fido,
                         ratio=t_fido / t_official, target="<= 0.20 (5x)",
                         passed=t_fido <= t_official / 5))

        ours_dir = work / "ours"
        start = time.perf_counter()
        imap.download(chosen, data_dir=ours_dir, progress=False)
        t_ours = time.perf_counter() - start
        check(ours_dir)
        rows.append(dict(task="", client="imap.download (default max_conn)", seconds=t_ours,
                         ratio=t_ours / t_official, target="<= 0.20 (5x)",
                         passed=t_ours <= t_official / 5))

        split_dir = work / "split"
        start = time.perf_counter()
        files = Fido.fetch(rows_table, path=f"{split_dir}/{{sdc_dir}}/{{file}}", progress=False,
                           max_splits=2)
        t_split = time.perf_counter() - start
        check(split_dir)
        rows.append(dict(task="", client="Fido.fetch (max_conn=5, max_splits=2)", seconds=t_split,
                         ratio=t_split / t_official, target="(info)", passed=None))
    finally:
        server.stop()
        imap_data_access.config.clear()
        imap_data_access.config.update(saved_config)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nIMAP SDC, local server: {len(data)} files, latency {args.latency * 1000:.0f} ms per "
          f"request, {args.bandwidth / 1000:.0f} kB/s per connection\n")
    header = f"{'task':<34} {'client':<40} {'seconds':>8} {'ratio':>6} {'target':>13} {'pass':>5}"
    print(header)
    print("-" * len(header))
    for row in rows:
        passed = "" if row["passed"] is None else ("yes" if row["passed"] else "NO")
        print(f"{row['task']:<34} {row['client']:<40} {row['seconds']:>8.2f} {row['ratio']:>6.2f} "
              f"{row['target']:>13} {passed:>5}")
    return rows


if __name__ == "__main__":
    main()
