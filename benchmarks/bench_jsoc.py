"""
JSOC: the DRMS client against raw drms and sunpy's JSOCClient, on the local server.

Run ``python benchmarks/bench_jsoc.py`` (``--repeat N`` for more runs). The
local JSOC server gets ~50 ms of latency on every request and a
per-connection bandwidth cap, then:

1. a one-day keyword query of ``aia.lev1_euv_12s`` at 171 Å (7,200 records):
   ``Fido.search`` through `DRMSClient` vs ``drms.Client.query`` with the same
   keys (target: ours within 1.2x);
2. a staged ``url``/``fits`` export of 50 ``hmi.m_720s`` records and their
   download through one connection: ``Fido.fetch`` through `DRMSClient` vs
   ``Fido.fetch`` through sunpy's ``JSOCClient`` (pointed at the server by
   replacing drms's ``jsoc`` registry entry; its fixed sleeps are left as they
   are, which is the point) (target: ours at least 1.3x faster).

The export stays pending for two status polls, as a small real export does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

LATENCY = 0.05
BANDWIDTH = 2_000_000  # bytes per second per connection
QUERY_KEYS = ["T_REC", "WAVELNTH", "T_OBS", "EXPTIME", "QUALITY", "INSTRUME", "TELESCOP"]


def _query_ours():
    import astropy.units as u
    from sunpy.net import Fido
    from sunpy.net import attrs as a

    res = Fido.search(a.Time("2024-01-01T00:00:00", "2024-01-01T23:59:59"),
                      a.drms.Series("aia.lev1_euv_12s"), a.Wavelength(171 * u.AA))
    return len(res[0])


def _query_drms(server):
    import drms

    client = drms.Client(server.server_config())
    frame = client.query("aia.lev1_euv_12s[2024.01.01_00:00:37_TAI-2024.01.02_00:00:36_TAI][171]",
                         key=QUERY_KEYS)
    return len(frame)


def _export_search(jsoc_attrs: bool):
    from sunpy.net import Fido
    from sunpy.net import attrs as a

    time_range = a.Time("2014-01-01T00:00:00", "2014-01-01T10:00:00")  # 50 slots of 720 s
    if jsoc_attrs:
        return Fido.search(time_range, a.jsoc.Series("hmi.M_720s"), a.jsoc.Segment("magnetogram"),
                           a.jsoc.Notify("user@example.com"))
    return Fido.search(time_range, a.drms.Series("hmi.M_720s"), a.drms.Segment("magnetogram"),
                       a.drms.Notify("user@example.com"))


def _export_ours(folder):
    from sunpy.net import Fido

    res = _export_search(False)
    files = Fido.fetch(res, path=folder, progress=False, max_conn=1)
    return len(res[0]), len(files) - len(files.errors)


def _export_sunpy(folder, server):
    import drms
    from sunpy.net import Fido

    saved = drms.config._server_configs.get("jsoc")
    drms.config._server_configs["jsoc"] = server.server_config("JSOC")
    try:
        res = _export_search(True)
        files = Fido.fetch(res, path=os.path.join(folder, "{file}"), progress=False, max_conn=1)
        return len(res[0]), len(files) - len(files.errors)
    finally:
        drms.config._server_configs["jsoc"] = saved


def _timed(func, *args):
    start = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - start, value


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement (median kept)")
    args = parser.parse_args(argv)

    import logging

    import sunpy_archives.jsoc  # noqa: F401
    from sunpy_archives.testing.jsoc import JsocState, start_jsoc_server

    logging.getLogger("drms").setLevel(logging.WARNING)
    logging.getLogger("sunpy").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    state = JsocState(pending_polls=2, image_shape=(256, 256))
    server = start_jsoc_server(state=state)
    server.faults.configure(latency=LATENCY, bandwidth=BANDWIDTH)
    old_url = os.environ.get("SUNPY_ARCHIVES_JSOC_URL")
    os.environ["SUNPY_ARCHIVES_JSOC_URL"] = server.root
    rows = []
    try:
        _query_ours(), _query_drms(server)  # warm imports and caches on both sides
        ours, theirs, counts = [], [], []
        for _ in range(args.repeat):
            t, n_ours = _timed(_query_ours)
            ours.append(t)
            t, n_drms = _timed(_query_drms, server)
            theirs.append(t)
            counts = (n_ours, n_drms)
        rows.append(_row("query: 1 day aia.lev1_euv_12s 171 (keys)", "raw drms.Client.query", counts,
                         ours, theirs, "<= 1.2x of drms", lambda r: r <= 1.2))

        ours, theirs, counts = [], [], []
        for _ in range(args.repeat):
            state.reset()
            state.pending_polls, state.image_shape = 2, (256, 256)
            with tempfile.TemporaryDirectory() as folder:
                t, (n_rows, n_files) = _timed(_export_ours, folder)
            ours.append(t)
            state.reset()
            state.pending_polls, state.image_shape = 2, (256, 256)
            with tempfile.TemporaryDirectory() as folder:
                t, (s_rows, s_files) = _timed(_export_sunpy, folder, server)
            theirs.append(t)
            counts = (n_files, s_files)
        rows.append(_row("export url/fits + download 50 files, 1 conn", "sunpy JSOCClient Fido.fetch",
                         counts, ours, theirs, ">= 1.3x faster", lambda r: r <= 1 / 1.3))
    finally:
        server.stop()
        if old_url is None:
            os.environ.pop("SUNPY_ARCHIVES_JSOC_URL", None)
        else:
            os.environ["SUNPY_ARCHIVES_JSOC_URL"] = old_url
    _print(rows)
    return rows


def _row(name, baseline, counts, ours, theirs, target, check):
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    ratio = ours_s / theirs_s
    return {"benchmark": name, "baseline": baseline, "rows (ours/theirs)": f"{counts[0]}/{counts[1]}",
            "ours_s": round(ours_s, 3), "theirs_s": round(theirs_s, 3), "ratio": round(ratio, 3),
            "target": target, "pass": bool(check(ratio)) and counts[0] == counts[1]}


def _print(rows):
    header = ["benchmark", "baseline", "rows (ours/theirs)", "ours_s", "theirs_s", "ratio", "target", "pass"]
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))
    print(f"(latency {LATENCY * 1000:.0f} ms per request, {BANDWIDTH / 1e6:g} MB/s per connection; "
          "ratio = ours / theirs)")


if __name__ == "__main__":
    sys.exit(0 if all(r["pass"] for r in main()) else 1)
