"""Every gallery example runs to the end against the bundled local servers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="agg", SUNPY_ARCHIVES_CACHE_DIR=str(tmp_path / "cache"))
    for key in [k for k in env if k.endswith("_URL") and k.startswith(("SUNPY_ARCHIVES_", "IMAP_"))]:
        del env[key]  # the example must point the clients at its own servers
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
