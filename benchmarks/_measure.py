"""
Child-process side of the benchmarks (run by ``benchmarks/run.py``, not by hand).

Every measurement that must start from a fresh interpreter runs this file as
a script::

    python benchmarks/_measure.py TASK SPEC.json OUT.json

``SPEC.json`` says what to do (server URL, release tag, queries, cache folder,
catalog file...); the result goes to ``OUT.json``. Nothing is printed on
stdout, so warnings or log lines from the libraries cannot corrupt a result.

Memory is the resident set size read from ``/proc/self/status``: tracemalloc
does not see Arrow's allocations, RSS does. Before the measured step the
high-water mark (VmHWM) is reset to the current RSS through
``/proc/self/clear_refs`` when the kernel allows it, so "peak minus baseline"
is exactly what the step added; if the reset is refused the peak still
includes whatever the imports reached, which can only overstate the step.

Only the standard library is imported at module level: each task imports what
it measures, inside the timed or baseline region it belongs to.
"""

from __future__ import annotations

import json
import os
import sys
import time

perf = time.perf_counter


# --- memory -------------------------------------------------------------------------------------

def _status_mb(field: str) -> float | None:
    """A ``Vm*`` field of /proc/self/status in MiB (None where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size in MiB."""
    value = _status_mb("VmRSS")
    if value is None:  # pragma: no cover - non-Linux fallback: only the peak is known
        import resource

        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return value


def peak_mb() -> float:
    """Resident set size high-water mark in MiB (VmHWM, else ru_maxrss)."""
    value = _status_mb("VmHWM")
    if value is None:  # pragma: no cover
        import resource

        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return value


def reset_peak() -> bool:
    """Make the high-water mark equal to the current RSS; False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


# --- the two clients ----------------------------------------------------------------------------

def ours_fido(fido, a, tag: str, query: dict):
    """``Fido.search`` as a user types it; returns the list of file names."""
    result = fido.search(a.spice.Release(tag), a.spice.SOOP(query["soop"]),
                         a.Level(int(query["level"].lstrip("L"))),
                         a.Time(query["start"], query["end"]))
    names = []
    for table in result:
        names.extend(str(name) for name in table["Filename"])
    return names


def find_files(catalog, query: dict):
    """``find_files`` with the same arguments for sospice's and our Catalog."""
    found = catalog.find_files(soopname=query["soop"], date_min=query["start"],
                               date_max=query["end"], level=query["level"])
    return [str(name) for name in found["FILENAME"]]


def download(url: str, path: str) -> int:
    """Stream ``url`` to ``path`` in 1 MiB chunks (what a sospice user's download does)."""
    import requests

    size = 0
    with requests.get(url, stream=True, timeout=120) as response:
        response.raise_for_status()
        with open(path, "wb") as out:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
                size += len(chunk)
    return size


# --- tasks --------------------------------------------------------------------------------------

def task_ours_search(spec: dict) -> dict:
    """One Fido search in a fresh process (cold or warm disk cache: the caller decides)."""
    t0 = perf()
    from sunpy.net import Fido, attrs as a

    import sunpy_archives  # noqa: F401  (registers a.spice)

    imports = perf() - t0
    baseline = rss_mb()
    reset = reset_peak()
    c1, t1 = time.process_time(), perf()
    names = ours_fido(Fido, a, spec["tag"], spec["query"])
    elapsed, cpu = perf() - t1, time.process_time() - c1
    return {"imports_s": imports, "search_s": elapsed, "cpu_s": cpu, "baseline_mb": baseline,
            "peak_mb": peak_mb(), "after_mb": rss_mb(), "peak_reset": reset, "files": names}


def task_sospice_search(spec: dict) -> dict:
    """sospice in a fresh process: [download catalog.csv +] Catalog(filename=) + find_files."""
    t0 = perf()
    import requests  # noqa: F401
    from sospice import Catalog, Release

    imports = perf() - t0
    baseline = rss_mb()
    reset = reset_peak()
    c1, t1 = time.process_time(), perf()
    if spec["download"]:
        release = Release(spec["tag"], base_url=spec["base_url"])
        download(release.catalog_url, spec["csv"])
    catalog = Catalog(filename=spec["csv"])
    names = find_files(catalog, spec["query"])
    elapsed, cpu = perf() - t1, time.process_time() - c1
    return {"imports_s": imports, "search_s": elapsed, "cpu_s": cpu, "baseline_mb": baseline,
            "peak_mb": peak_mb(), "after_mb": rss_mb(), "peak_reset": reset, "files": names}


def task_ours_repeat(spec: dict) -> dict:
    """Searches in a process that already loaded the catalog once."""
    from sunpy.net import Fido, attrs as a

    import sunpy_archives  # noqa: F401
    from sunpy_archives.spice import Catalog

    t0 = perf()
    first = ours_fido(Fido, a, spec["tag"], spec["first"])
    first_s = perf() - t0
    fido_s, fido_files = [], []
    for query in spec["queries"]:
        t0 = perf()
        fido_files.append(ours_fido(Fido, a, spec["tag"], query))
        fido_s.append(perf() - t0)
    # A user of the Catalog object: it is built once (from the memory cache here) and kept.
    catalog = Catalog(spec["tag"], base_url=spec["base_url"], cache=spec["cache"])
    kept_s, kept_files = [], []
    for query in spec["queries"]:
        t0 = perf()
        kept_files.append(find_files(catalog, query))
        kept_s.append(perf() - t0)
    # Context for the numbers above: every search starts with a HEAD request on catalog.csv.
    import requests

    head_s, small_head_s = [], []
    with requests.Session() as session:
        for _ in spec["queries"]:
            t0 = perf()
            session.head(spec["catalog_url"], timeout=60).raise_for_status()
            head_s.append(perf() - t0)
            t0 = perf()
            session.head(spec["small_url"], timeout=60).raise_for_status()
            small_head_s.append(perf() - t0)
    return {"first_s": first_s, "first_files": first, "repeat_s": fido_s,
            "repeat_files": fido_files, "kept_s": kept_s, "kept_files": kept_files,
            "head_s": head_s, "small_head_s": small_head_s}


def task_sospice_repeat(spec: dict) -> dict:
    """sospice in one process: Catalog(filename=) again for every search, and a kept object."""
    from sospice import Catalog

    t0 = perf()
    first = find_files(Catalog(filename=spec["csv"]), spec["first"])
    first_s = perf() - t0
    again_s, again_files = [], []
    for query in spec["queries"]:
        t0 = perf()
        again_files.append(find_files(Catalog(filename=spec["csv"]), query))
        again_s.append(perf() - t0)
    catalog = Catalog(filename=spec["csv"])
    kept_s, kept_files = [], []
    for query in spec["queries"]:
        t0 = perf()
        kept_files.append(find_files(catalog, query))
        kept_s.append(perf() - t0)
    return {"first_s": first_s, "first_files": first, "repeat_s": again_s,
            "repeat_files": again_files, "kept_s": kept_s, "kept_files": kept_files}


WATCHED_MODULES = ("pyvo", "drms", "pandas", "pyarrow", "aiohttp", "matplotlib", "requests")


def task_import(spec: dict) -> dict:
    """Import ``spec["modules"]`` one after the other; time, RSS and sys.modules after each."""
    import importlib

    steps = []
    start = perf()
    for name in spec["modules"]:
        before = set(sys.modules)
        t0 = perf()
        importlib.import_module(name)
        elapsed = perf() - t0
        added = set(sys.modules) - before
        steps.append({"module": name, "s": elapsed, "rss_mb": rss_mb(),
                      "new_modules": len(added),
                      "new_top_level": sorted({m.split(".")[0] for m in added}),
                      "loaded": {m: m in sys.modules for m in WATCHED_MODULES}})
    return {"total_s": perf() - start, "rss_mb": rss_mb(), "steps": steps}


TASKS = {
    "ours-search": task_ours_search,
    "sospice-search": task_sospice_search,
    "ours-repeat": task_ours_repeat,
    "sospice-repeat": task_sospice_repeat,
    "import": task_import,
}


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in TASKS:
        sys.stderr.write(f"usage: {argv[0]} {{{','.join(TASKS)}}} SPEC.json OUT.json\n")
        return 2
    with open(argv[2]) as spec_file:
        spec = json.load(spec_file)
    result = TASKS[argv[1]](spec)
    result["pid"] = os.getpid()
    tmp = argv[3] + ".part"
    with open(tmp, "w") as out:
        json.dump(result, out)
    os.replace(tmp, argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
