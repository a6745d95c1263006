#!/usr/bin/env python
"""
Benchmark sunpy_archives' SPICE client against the official client, sospice.

Starts the large local SPICE archive (about 200,000 catalog rows in the latest
release) on 127.0.0.1, runs every measurement in fresh subprocesses
(``benchmarks/_measure.py``) so that one measurement cannot warm up another,
checks that both clients return the same files for the same query, and
prints one table. See ``benchmarks/README.md`` for what each row means.

Usage::

    python benchmarks/run.py [--json results.json] [--strict]
    tox -e bench

Progress goes to stderr; the report goes to stdout. The exit status is 2 if
the two clients disagree on the files a query returns, 1 with ``--strict``
if a target is missed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEASURE = HERE / "_measure.py"

#: Ratio ours/sospice allowed for "no slower" (timing noise on a shared machine).
NO_SLOWER_TOLERANCE = 1.05
#: Ratio ours/sospice required for "at least 10x faster".
TEN_TIMES = 0.10


class BenchmarkError(RuntimeError):
    """A child process failed or the setup is unusable."""


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- machine ------------------------------------------------------------------------------------

def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load = []
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": {name: _version(name) for name in
                     ("sunpy-archives", "sunpy", "sospice", "pandas", "pyarrow", "numpy",
                      "astropy", "requests")},
        "load_average_start": load,
    }


# --- the archive and the queries ----------------------------------------------------------------

def start_server(rows: int | None):
    """Start the local SPICE archive and build its latest catalog before anything is timed."""
    import requests

    from sunpy_archives.testing import SpiceArchiveData, start_spice_server

    data = SpiceArchiveData.large() if rows is None else SpiceArchiveData.large(n_files=rows)
    server = start_spice_server(data)
    tag = server.data.latest
    url = f"{server.base_url}release-{tag}/catalog.csv"
    t0 = time.perf_counter()
    with requests.get(url, stream=True, timeout=300) as response:  # first request builds it
        response.raise_for_status()
        size = sum(len(chunk) for chunk in response.iter_content(1 << 20))
    progress(f"local archive at {server.base_url} ready; catalog.csv of release {tag} built and "
             f"served once in {time.perf_counter() - t0:.1f} s ({size / 1e6:.1f} MB)")
    return server, tag, url, size


def _quarter_window(period) -> tuple[str, str]:
    start = period.start_time.strftime("%Y-%m-%dT00:00:00")
    end = period.end_time.strftime("%Y-%m-%dT23:59:59.999")
    return start, end


def choose_queries(frame, count: int, level: str = "L2") -> tuple[dict, list[dict]]:
    """The main query and ``count`` different ones for the repeated-search rows.

    The main query uses the most common SOOPNAME of the catalog and the
    calendar quarter holding the median start time of its ``level`` files;
    the others use the next SOOPs (cycling if needed) and quarters shifted
    from their own median, so that no two searches ask the same thing. Each
    query carries ``expected``: its files according to the server's own
    catalog frame.
    """
    import pandas as pd

    dates = pd.to_datetime(frame["DATE-BEG"], format="ISO8601", errors="coerce")
    at_level = (frame["LEVEL"] == level).to_numpy(dtype=bool, na_value=False)
    ranked = list(frame["SOOPNAME"].value_counts().index)
    if not ranked:
        raise BenchmarkError("the catalog has no SOOPNAME values")

    def build(soop: str, offset: int) -> dict | None:
        rows = at_level & (frame["SOOPNAME"] == soop).to_numpy(dtype=bool, na_value=False)
        rows &= dates.notna().to_numpy()
        if not rows.any():
            return None
        ordered = dates[rows].sort_values()
        middle = ordered.iloc[len(ordered) // 2]
        start, end = _quarter_window(pd.Period(middle, freq="Q") + offset)
        inside = rows & ((dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))).to_numpy()
        if not inside.any():
            return None
        expected = sorted(frame.loc[inside, "FILENAME"].astype(str))
        return {"soop": soop, "level": level, "start": start, "end": end, "expected": expected}

    main = build(ranked[0], 0)
    if main is None:
        raise BenchmarkError(f"no {level} file of SOOP {ranked[0]!r} to search for")
    others: list[dict] = []
    offsets = (-1, 1, -2, 2, -3, 3, -4, 4)
    seen = {(main["soop"], main["start"])}
    attempt = 0
    while len(others) < count and attempt < 20 * max(count, 1):
        soop = ranked[1 + attempt % max(len(ranked) - 1, 1)] if len(ranked) > 1 else ranked[0]
        offset = offsets[attempt % len(offsets)]
        attempt += 1
        query = build(soop, offset)
        if query is None or (query["soop"], query["start"]) in seen:
            continue
        seen.add((query["soop"], query["start"]))
        others.append(query)
    if len(others) < count:
        raise BenchmarkError(f"could only find {len(others)} distinct non-empty queries")
    return main, others


def public_query(query: dict) -> dict:
    """A query without its expected file list (what goes to the children and the JSON)."""
    return {key: value for key, value in query.items() if key != "expected"}


# --- child processes ----------------------------------------------------------------------------

@dataclass
class Children:
    """Runs ``_measure.py`` tasks in fresh interpreters."""

    workdir: Path
    env: dict
    count: int = 0
    log: list = field(default_factory=list)

    def run(self, task: str, spec: dict, *, cache: Path | None = None, timeout: float = 600) -> dict:
        self.count += 1
        spec_path = self.workdir / f"spec-{self.count:03d}.json"
        out_path = self.workdir / f"out-{self.count:03d}.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(self.env)
        if cache is not None:
            env["SUNPY_ARCHIVES_CACHE_DIR"] = str(cache)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(MEASURE), task, str(spec_path), str(out_path)],
                              env=env, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out_path.exists():
            raise BenchmarkError(f"child task {task!r} failed (exit {proc.returncode}):\n"
                                 f"{proc.stderr[-4000:]}")
        result = json.loads(out_path.read_text())
        result["wall_s"] = wall
        self.log.append({"task": task, "wall_s": round(wall, 3)})
        return result


# --- statistics and formatting -------------------------------------------------------------------

def median(values) -> float:
    return statistics.median(values)


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.1f} ms"


def fmt_mb(mb: float, sign: bool = False) -> str:
    return f"{mb:+.0f} MB" if sign else f"{mb:.0f} MB"


def fmt_ratio(ratio: float) -> str:
    if ratio <= 0:
        return f"{ratio:.3f}"
    if ratio < 1:
        return f"{ratio:.3f} ({1 / ratio:.1f}x less)"
    if ratio > 1:
        return f"{ratio:.3f} ({ratio:.2f}x more)"
    return "1.000"


def spread(values) -> str:
    return f"{fmt_time(min(values))}..{fmt_time(max(values))}"


@dataclass
class Row:
    key: str
    label: str
    ours: str
    other: str
    ratio: str = ""
    target: str = "info"
    result: str = ""
    n: str = ""
    data: dict = field(default_factory=dict)


def time_row(key, label, ours: list[float], other: list[float], target: float | None,
             target_text: str) -> Row:
    ours_m, other_m = median(ours), median(other)
    ratio = ours_m / other_m if other_m else float("inf")
    result = "" if target is None else ("PASS" if ratio <= target else "FAIL")
    n = str(len(ours)) if len(ours) == len(other) else f"{len(ours)}/{len(other)}"
    text = fmt_ratio(ratio).replace("less", "faster").replace("more", "slower")
    return Row(key, label, fmt_time(ours_m), fmt_time(other_m), text,
               target_text if target is not None else "info", result, n,
               {"unit": "s", "ours": ours_m, "sospice": other_m, "ratio": ratio,
                "ours_samples": ours, "sospice_samples": other, "target_ratio": target})


def memory_row(key, label, ours: list[float], other: list[float], target: float | None,
               target_text: str) -> Row:
    ours_m, other_m = median(ours), median(other)
    ratio = ours_m / other_m if other_m else float("inf")
    result = "" if target is None else ("PASS" if ratio <= target else "FAIL")
    return Row(key, label, fmt_mb(ours_m, sign=True), fmt_mb(other_m, sign=True), fmt_ratio(ratio),
               target_text if target is not None else "info", result, str(len(ours)),
               {"unit": "MB", "ours": ours_m, "sospice": other_m, "ratio": ratio,
                "ours_samples": ours, "sospice_samples": other, "target_ratio": target})


def render_table(rows: list[Row]) -> str:
    header = ["#", "measurement", "ours", "sospice/ref", "ours/sospice", "target", "result", "n"]
    cells = [header] + [[r.key, r.label, r.ours, r.other, r.ratio, r.target, r.result, r.n]
                        for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    right = {2, 3, 7}

    def fmt(line):
        parts = [(c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in
                 enumerate(zip(line, widths))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule] + [fmt(line) for line in cells[1:]])


# --- the benchmark ------------------------------------------------------------------------------

@dataclass
class Check:
    label: str
    ok: bool
    n: int
    detail: str = ""


def compare(label: str, expected: list[str], **sides: list[str]) -> Check:
    """All sides must return exactly the expected file names (as multisets)."""
    reference = sorted(expected)
    problems = []
    for side, names in sides.items():
        names = sorted(names)
        if names != reference:
            missing = sorted(set(reference) - set(names))[:3]
            extra = sorted(set(names) - set(reference))[:3]
            problems.append(f"{side}: {len(names)} files vs {len(reference)} "
                            f"(missing e.g. {missing}, extra e.g. {extra})")
    return Check(label, not problems, len(reference), "; ".join(problems))


def run(args) -> int:
    started = time.perf_counter()
    info = machine_info()
    progress(f"starting the local SPICE archive ({args.rows or 'about 200,000'} catalog rows)")
    server, tag, catalog_url, csv_size = start_server(args.rows)
    workdir = Path(tempfile.mkdtemp(prefix="sunpy-archives-bench-"))
    try:
        frame = server.data.catalog(tag)
        n_rows, n_cols = frame.shape
        main, others = choose_queries(frame, args.reps)
        del frame
        env = dict(os.environ)
        env.update({"SUNPY_ARCHIVES_SPICE_URL": server.base_url, "MPLBACKEND": "agg"})
        # Measure imports as users see them: with bytecode caches (some machines disable them).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-c", "import sunpy.net, sunpy_archives, sospice, pandas"],
                       env=env, check=True, capture_output=True)
        children = Children(workdir, env)
        report = measure(args, children, server.base_url, tag, catalog_url, main, others, workdir)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    catalog = {"release": tag, "rows": n_rows, "columns": n_cols, "csv_mb": csv_size / 1e6,
               "cache_mb": report["cache_mb"]}
    text = format_report(info, catalog, main, others, report, time.perf_counter() - started)
    print(text)
    if args.json:
        payload = {"machine": info, "catalog": catalog, "main_query": public_query(main),
                   "repeat_queries": [public_query(q) for q in others],
                   "rows": [{"key": r.key, "label": r.label, "ours": r.ours, "sospice_or_ref": r.other,
                             "ratio": r.ratio, "target": r.target, "result": r.result, "n": r.n,
                             **r.data} for r in report["rows"]],
                   "checks": [vars(c) for c in report["checks"]],
                   "cpu_samples": report["cpu"], "peak_reset": report["peak_reset"],
                   "first_search_in_process": report["first_in_process"],
                   "children": children.log, "table": text,
                   "elapsed_s": time.perf_counter() - started}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
        progress(f"wrote {args.json}")
    if not all(c.ok for c in report["checks"]):
        print("\nERROR: the two clients do not return the same files:", file=sys.stderr)
        for c in report["checks"]:
            if not c.ok:
                print(f"  {c.label}: {c.detail}", file=sys.stderr)
        return 2
    if args.strict and any(r.result == "FAIL" for r in report["rows"]):
        return 1
    return 0


def measure(args, children: Children, base_url: str, tag: str, catalog_url: str, main: dict,
            others: list[dict], workdir: Path) -> dict:
    query = public_query(main)
    checks: list[Check] = []
    rows: list[Row] = []

    # 1 and 4: cold first load + search, each in a fresh process with an empty cache.
    ours_cold, sos_cold = [], []
    warm_cache = csv = None
    for i in range(args.cold_reps):
        progress(f"cold first load + search, repetition {i + 1}/{args.cold_reps}")
        cache = workdir / f"cold-ours-{i}"
        folder = workdir / f"cold-sospice-{i}"
        folder.mkdir()
        path = folder / "catalog.csv"

        def ours_run():
            return children.run("ours-search", {"tag": tag, "query": query}, cache=cache)

        def sos_run():
            return children.run("sospice-search", {"tag": tag, "query": query, "base_url": base_url,
                                                   "download": True, "csv": str(path)})
        # Alternate who goes first so that a drift in machine load hits both sides.
        if i % 2 == 0:
            ours_cold.append(ours_run())
            sos_cold.append(sos_run())
        else:
            sos_cold.append(sos_run())
            ours_cold.append(ours_run())
        checks.append(compare(f"cold search, repetition {i + 1}", main["expected"],
                              ours=ours_cold[-1]["files"], sospice=sos_cold[-1]["files"]))
        if warm_cache is not None:
            shutil.rmtree(warm_cache, ignore_errors=True)
        if csv is not None:
            shutil.rmtree(csv.parent, ignore_errors=True)
        warm_cache, csv = cache, path
    cached = list(warm_cache.rglob("catalog-*.arrow"))
    cache_mb = sum(p.stat().st_size for p in cached) / 1e6
    if not cached:
        raise BenchmarkError(f"the cold search left no cached catalog in {warm_cache}")

    rows.append(time_row("1", "first load + search (cold, new process)",
                         [r["search_s"] for r in ours_cold], [r["search_s"] for r in sos_cold],
                         NO_SLOWER_TOLERANCE, f"<= {NO_SLOWER_TOLERANCE:.2f}"))
    rows.append(time_row("1b", "  same, including the imports",
                         [r["search_s"] + r["imports_s"] for r in ours_cold],
                         [r["search_s"] + r["imports_s"] for r in sos_cold], None, ""))

    # 2: repeated search in the same process.
    progress(f"repeated search in one process ({len(others)} different queries per side)")
    spec = {"tag": tag, "base_url": base_url, "cache": str(warm_cache), "first": query,
            "queries": [public_query(q) for q in others], "catalog_url": catalog_url,
            "small_url": f"{base_url}metadata/latest-release.txt"}
    ours_rep = children.run("ours-repeat", spec, cache=warm_cache)
    sos_rep = children.run("sospice-repeat", dict(spec, csv=str(csv)))
    for i, q in enumerate(others):
        checks.append(compare(f"repeated search {i + 1} ({q['soop']}, {q['start'][:10]}..{q['end'][:10]})",
                              q["expected"], ours_fido=ours_rep["repeat_files"][i],
                              ours_catalog=ours_rep["kept_files"][i],
                              sospice_reread=sos_rep["repeat_files"][i],
                              sospice_kept=sos_rep["kept_files"][i]))
    rows.append(time_row("2", "repeated search, same process",
                         ours_rep["repeat_s"], sos_rep["repeat_s"], TEN_TIMES, ">= 10x faster"))
    rows.append(time_row("2b", "  Catalog kept in memory: find_files only",
                         ours_rep["kept_s"], sos_rep["kept_s"], None, ""))

    # 3: repeated search in a new process (our disk cache warm, sospice's CSV already downloaded).
    ours_new, sos_new = [], []
    for i in range(args.reps):
        progress(f"repeated search in a new process, repetition {i + 1}/{args.reps}")

        def ours_run():
            return children.run("ours-search", {"tag": tag, "query": query}, cache=warm_cache)

        def sos_run():
            return children.run("sospice-search", {"tag": tag, "query": query, "base_url": base_url,
                                                   "download": False, "csv": str(csv)})
        if i % 2 == 0:
            ours_new.append(ours_run())
            sos_new.append(sos_run())
        else:
            sos_new.append(sos_run())
            ours_new.append(ours_run())
        checks.append(compare(f"new-process search, repetition {i + 1}", main["expected"],
                              ours=ours_new[-1]["files"], sospice=sos_new[-1]["files"]))
    rows.append(time_row("3", "repeated search, new process (disk warm)",
                         [r["search_s"] for r in ours_new], [r["search_s"] for r in sos_new],
                         TEN_TIMES, ">= 10x faster"))

    # 4: memory of the cold runs.
    rows.append(memory_row("4", "peak RSS, cold load + search (- baseline)",
                           [r["peak_mb"] - r["baseline_mb"] for r in ours_cold],
                           [r["peak_mb"] - r["baseline_mb"] for r in sos_cold], 1.0, "no higher"))
    rows.append(memory_row("4b", "  RSS still held after the search",
                           [r["after_mb"] - r["baseline_mb"] for r in ours_cold],
                           [r["after_mb"] - r["baseline_mb"] for r in sos_cold], None, ""))
    rows.append(memory_row("4c", "  peak RSS, new-process search (disk warm)",
                           [r["peak_mb"] - r["baseline_mb"] for r in ours_new],
                           [r["peak_mb"] - r["baseline_mb"] for r in sos_new], None, ""))

    # 5: import overhead.
    base_runs, with_runs = [], []
    for i in range(args.import_reps):
        progress(f"import overhead, repetition {i + 1}/{args.import_reps}")
        pair = [("base", ["sunpy.net"]), ("with", ["sunpy.net", "sunpy_archives"])]
        for name, modules in (pair if i % 2 == 0 else pair[::-1]):
            result = children.run("import", {"modules": modules})
            (base_runs if name == "base" else with_runs).append(result)
    base_t = [r["total_s"] for r in base_runs]
    with_t = [r["total_s"] for r in with_runs]
    step_t = [r["steps"][1]["s"] for r in with_runs]
    base_m = [r["rss_mb"] for r in base_runs]
    with_m = [r["rss_mb"] for r in with_runs]
    step_m = [r["steps"][1]["rss_mb"] - r["steps"][0]["rss_mb"] for r in with_runs]
    n = str(len(with_runs))
    added_t = median(with_t) - median(base_t)
    rows.append(Row("5", "import time: sunpy.net + sunpy_archives", fmt_time(median(with_t)),
                    fmt_time(median(base_t)),
                    f"{median(with_t) / median(base_t):.3f} ({added_t * 1e3:+.0f} ms)", "info", "", n,
                    {"unit": "s", "ours": median(with_t), "sunpy_net": median(base_t),
                     "ours_samples": with_t, "sunpy_net_samples": base_t}))
    rows.append(Row("5b", "  import sunpy_archives alone, after sunpy.net", fmt_time(median(step_t)),
                    "", "", "info", "", n, {"unit": "s", "ours": median(step_t), "samples": step_t}))
    added_m = median(with_m) - median(base_m)
    rows.append(Row("5c", "import RSS: sunpy.net + sunpy_archives", fmt_mb(median(with_m)),
                    fmt_mb(median(base_m)),
                    f"{median(with_m) / median(base_m):.3f} ({added_m:+.0f} MB)", "info", "", n,
                    {"unit": "MB", "ours": median(with_m), "sunpy_net": median(base_m),
                     "added_in_child": step_m}))
    watched = ("pyvo", "drms")
    after_base = {m: any(r["steps"][0]["loaded"][m] for r in with_runs) for m in watched}
    after_ours = {m: any(r["steps"][1]["loaded"][m] for r in with_runs) for m in watched}
    added = [m for m in watched if after_ours[m] and not after_base[m]]
    ours_text = " / ".join("yes" if after_ours[m] else "no" for m in watched)
    base_text = " / ".join("yes" if after_base[m] else "no" for m in watched)
    rows.append(Row("5d", "pyvo / drms in sys.modules after import", ours_text, base_text,
                    "added: " + (", ".join(added) if added else "none"), "none added",
                    "PASS" if not added else "FAIL", n,
                    {"after_sunpy_net": after_base, "after_sunpy_archives": after_ours,
                     "added": added,
                     "new_top_level_modules": with_runs[0]["steps"][1]["new_top_level"]}))

    # Context: every search of ours starts with a HEAD request on catalog.csv (is the cached
    # copy still current?); how long the local server takes to answer it, next to a HEAD on a
    # tiny file (the bare round trip).
    head, small = ours_rep["head_s"], ours_rep["small_head_s"]
    rows.append(Row("i", "HEAD catalog.csv (in every search of ours)", fmt_time(median(head)),
                    fmt_time(median(small)), "ref: HEAD of a tiny file", "info", "", str(len(head)),
                    {"unit": "s", "catalog_samples": head, "tiny_file_samples": small}))

    samples = {
        "1 ours": [r["search_s"] for r in ours_cold], "1 sospice": [r["search_s"] for r in sos_cold],
        "2 ours": ours_rep["repeat_s"], "2 sospice": sos_rep["repeat_s"],
        "2b ours": ours_rep["kept_s"], "2b sospice": sos_rep["kept_s"],
        "3 ours": [r["search_s"] for r in ours_new], "3 sospice": [r["search_s"] for r in sos_new],
    }
    # CPU time (all threads) of the timed step: less sensitive than wall time to other jobs
    # competing for the CPUs, more sensitive to multi-threading (Arrow uses every core).
    cpu = {
        "1 ours": [r["cpu_s"] for r in ours_cold], "1 sospice": [r["cpu_s"] for r in sos_cold],
        "3 ours": [r["cpu_s"] for r in ours_new], "3 sospice": [r["cpu_s"] for r in sos_new],
    }
    peak_reset = all(r["peak_reset"] for r in ours_cold + sos_cold + ours_new + sos_new)
    return {"rows": rows, "checks": checks, "samples": samples, "cpu": cpu, "cache_mb": cache_mb,
            "peak_reset": peak_reset,
            "first_in_process": {"ours": ours_rep["first_s"], "sospice": sos_rep["first_s"]}}


def format_report(info: dict, catalog: dict, main: dict, others: list[dict], report: dict,
                  elapsed: float) -> str:
    v = info["versions"]
    lines = [
        "sunpy_archives SPICE client vs sospice, local archive on 127.0.0.1",
        f"machine : {info['cpu_count']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
        f"{info['platform']}",
        f"python  : {info['implementation']} {info['python']}; pandas {v['pandas']}, "
        f"pyarrow {v['pyarrow']}, numpy {v['numpy']}, sunpy {v['sunpy']}, astropy {v['astropy']}",
        f"clients : sunpy-archives {v['sunpy-archives']}, sospice {v['sospice']}",
        f"load avg: {info['load_average_start']} at start, {info['load_average_end']} at end "
        "(other work on the machine adds noise)",
        f"catalog : release {catalog['release']}, {catalog['rows']:,} rows x {catalog['columns']} "
        f"columns, catalog.csv {catalog['csv_mb']:.1f} MB, our Arrow cache "
        f"{catalog['cache_mb']:.1f} MB",
        f"query   : SOOP {main['soop']} (most common), level {main['level']}, DATE-BEG "
        f"{main['start']} .. {main['end']} -> {len(main['expected'])} files "
        "(rows 1, 3, 4)",
        f"row 2   : {len(others)} other queries (next SOOPs, other quarters), each searched once per side",
        "",
        render_table(report["rows"]),
        "",
    ]
    for check in report["checks"]:
        mark = "yes" if check.ok else "NO"
        lines.append(f"same files: {mark} ({check.n} files) - {check.label}"
                     + ("" if check.ok else f": {check.detail}"))
    lines += [
        "",
        "Notes: times are medians of n runs (time.perf_counter, after the imports unless said);",
        "  ratio = ours / sospice (row 5: ours / `import sunpy.net` alone); memory = RSS from",
        "  /proc/self/status in the child, peak (VmHWM" + (", reset after the imports" if
                                                         report["peak_reset"] else "")
        + ") minus the RSS after the imports.",
        "  sospice rows 1-3: download catalog.csv (row 1 only) + Catalog(filename=) + find_files;",
        "  row 2b: find_files on a Catalog object kept in memory, ours and sospice's.",
        f"  first search of the row-2 processes (not in the table): ours "
        f"{fmt_time(report['first_in_process']['ours'])} (from the disk cache), sospice "
        f"{fmt_time(report['first_in_process']['sospice'])}.",
        "wall-time samples (min..max): "
        + "; ".join(f"{k} {spread(s)}" for k, s in report["samples"].items()),
        "CPU time, median (process_time, all threads): "
        + "; ".join(f"{k} {fmt_time(median(s))}" for k, s in report["cpu"].items()),
        f"total benchmark time: {elapsed:.0f} s",
    ]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--reps", type=int, default=5,
                        help="repetitions of the warm measurements (rows 2 and 3; default 5)")
    parser.add_argument("--cold-reps", type=int, default=5,
                        help="repetitions of the cold first load (rows 1 and 4; default 5)")
    parser.add_argument("--import-reps", type=int, default=5,
                        help="fresh processes per import variant (row 5; default 5)")
    parser.add_argument("--rows", type=int, default=None,
                        help="catalog rows of the latest release (default: the large archive, "
                             "200,000); smaller values are for trying the script out")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 if a target is missed")
    args = parser.parse_args(argv)
    for name in ("reps", "cold_reps", "import_reps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
