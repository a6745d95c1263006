"""The ``sunpy-archives`` command line, run as a user runs it."""

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sunpy_archives.cli import main

CLI = [sys.executable, "-m", "sunpy_archives.cli"]


def _env(tmp_path):
    env = dict(os.environ, SUNPY_ARCHIVES_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("SUNPY_ARCHIVES_SPICE_URL", None)
    return env


def test_demo_fetches_into_the_release_layout(tmp_path):
    target = tmp_path / "out"
    done = subprocess.run(CLI + ["demo", "--path", str(target), "--max-files", "3", "--no-progress"],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    files = sorted(target.rglob("*.fits"))
    assert len(files) == 3
    for path in files:
        assert path.relative_to(target).parts[0] == "level2"
        assert str(path) in done.stdout
    assert "Results from the SPICEClient" in done.stdout
    assert f"Done: 3 files in {target}" in done.stdout


def test_serve_prints_urls_and_variables(tmp_path):
    proc = subprocess.Popen(CLI + ["serve", "spice"], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Serving"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.strip())
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        base = exports["SUNPY_ARCHIVES_SPICE_URL"]
        assert set(exports) == {"SUNPY_ARCHIVES_SPICE_URL", "SUNPY_ARCHIVES_SOAR_URL"}
        with urllib.request.urlopen(base + "metadata/latest-release.txt", timeout=10) as response:
            assert response.read().decode().strip() == "5.0"
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_argument_is_one_line_and_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--max-files", "many"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_entry_point_installed():
    assert shutil.which("sunpy-archives") or Path(sys.executable).with_name("sunpy-archives").exists()
