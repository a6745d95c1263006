"""A fetch killed mid-transfer (SIGKILL of a real process), then run again.

SPICE has this test in ``tests/spice/test_fetch.py``
(``test_fetch_killed_mid_transfer_then_repeated``); here the same is proved
for IMAP, JSOC and ESO: the files being written when the process dies carry
an in-flight marker, and the second run ends with every file byte-identical
to the server's and no marker left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.eso  # noqa: F401
import sunpy_archives.imap  # noqa: F401
import sunpy_archives.jsoc  # noqa: F401
from sunpy_archives.core.download import MARKER_SUFFIX, marker_for

CHILD = textwrap.dedent("""
    import sys
    import sunpy_archives.{module}
    from sunpy.net import Fido, attrs as a
    res = Fido.search({search})
    print("searched", flush=True)
    Fido.fetch(res[0][:4], path=sys.argv[1] + "/{{file}}", progress=False, max_conn=4{extra})
    print("finished", flush=True)
""")

CASES = {
    "imap": ('a.Instrument("mag"), a.Level("l2"), a.imap.Version("latest"), '
             'a.Time("2025-01-06", "2025-01-09")', ""),
    "eso": ('a.eso.Collection("MUSE"), a.eso.Category("SCIENCE.CUBE")', ""),
    "jsoc": ('a.Time("2014-01-01T00:00", "2014-01-01T01:00"), a.drms.Series("hmi.m_720s")',
             ", poll_first=0.05"),
}


def _expected(name, server, path: Path, reference: dict):
    return reference[path.name]


def _reference(name, table, tmp_path):
    ref = tmp_path / "reference"
    kwargs = {"poll_first": 0.05} if name == "jsoc" else {}
    files = Fido.fetch(table, path=ref, progress=False, **kwargs)
    assert not files.errors and len(files) == len(table)
    return {Path(f).name: Path(f).read_bytes() for f in files}


@pytest.mark.parametrize("name", list(CASES))
def test_fetch_killed_mid_transfer_then_repeated(name, request, tmp_path, reliability_stats):
    server = request.getfixturevalue(f"{name}_env")
    faults = request.getfixturevalue(f"{name}_faults")
    search, extra = CASES[name]
    module = name
    if name == "jsoc":
        server.state.image_shape = (64, 64)  # about 20 kB per file
    table = eval(f"Fido.search({search})", {"Fido": Fido, "a": a})[0][:4]  # noqa: S307
    reference = _reference(name, table, tmp_path)
    assert len(reference) == 4
    out = tmp_path / "out"
    out.mkdir()
    faults.configure(bandwidth=3000, classes=frozenset({"data"}))
    script = CHILD.format(module=module, search=search, extra=extra)
    child = subprocess.Popen([sys.executable, "-c", script, str(out)], env=dict(os.environ),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "searched", child.stderr.read()
        deadline = time.monotonic() + 30
        partial = []
        while time.monotonic() < deadline and not partial:
            partial = [p for p in out.iterdir()
                       if not p.name.endswith(MARKER_SUFFIX) and p.stat().st_size > 0]
            time.sleep(0.05)
        assert partial, "the child never started writing"
        time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    faults.reset()
    left = [p for p in out.iterdir() if not p.name.endswith(MARKER_SUFFIX)]
    assert left
    assert any(marker_for(p).exists() for p in left), "a file was in flight when the process died"
    for path in left:
        if path.read_bytes() != reference[path.name]:
            assert marker_for(path).exists(), f"{path.name} is incomplete and unmarked"
    kwargs = {"poll_first": 0.05} if name == "jsoc" else {}
    files = Fido.fetch(table, path=out, progress=False, **kwargs)
    assert not files.errors and len(files) == 4
    for f in files:
        path = Path(f)
        assert path.read_bytes() == reference[path.name]
        assert not marker_for(path).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(MARKER_SUFFIX)]
    reliability_stats["processes_killed"] += 1
    reliability_stats["files_fetched"] += 4
    reliability_stats["files_fetched_" + name] += 4
