"""The ``sunpy-archives`` command line, run as a user runs it."""

import json
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


def test_demo_fetches_from_every_archive(tmp_path):
    target = tmp_path / "out"
    done = subprocess.run(CLI + ["demo", "--path", str(target), "--max-files", "2",
                                 "--no-progress"],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    layouts = {"spice": ("level2", ".fits"), "imap": ("imap", ".cdf"), "jsoc": (None, ".fits"),
               "eso": (None, ".png")}
    for archive, (first, suffix) in layouts.items():
        files = sorted(p for p in (target / archive).rglob("*") if p.is_file())
        assert len(files) == 2, archive
        for path in files:
            assert path.suffix == suffix
            parts = path.relative_to(target / archive).parts
            assert (parts[0] == first) if first else len(parts) == 1
            assert str(path) in done.stdout
    for client in ("SPICEClient", "IMAPClient", "DRMSClient", "ESOClient"):
        assert f"results from the {client}" in done.stdout
    assert f"Done: 8 files in {target}" in done.stdout


def test_demo_one_archive(tmp_path):
    target = tmp_path / "out"
    assert main(["demo", "eso", "--path", str(target), "--max-files", "1", "--no-progress"]) == 0
    assert [p.parent.name for p in target.rglob("*.png")] == ["eso"]
    assert not (target / "spice").exists()


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


def test_serve_all_prints_every_archive(tmp_path):
    proc = subprocess.Popen(CLI + ["serve"], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Serving"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.strip())
        names = [line.split(":", 1)[0] for line in lines
                 if not line.startswith(("export", "Serving"))]
        assert names == ["spice", "imap", "jsoc", "eso"]
        exports = dict(line[len("export "):].split("=", 1)
                       for line in lines if line.startswith("export "))
        assert {"IMAP_DATA_ACCESS_URL", "SUNPY_ARCHIVES_JSOC_URL",
                "SUNPY_ARCHIVES_ESO_URL"} <= set(exports)
        with urllib.request.urlopen(exports["SUNPY_ARCHIVES_ESO_URL"] + "/tap_obs/availability",
                                    timeout=10) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_port_needs_one_archive(capsys):
    assert main(["serve", "--port", "8765"]) == 2
    assert "--port needs one archive" in capsys.readouterr().err


def test_imap_dropin_still_there(imap_env, capsys):
    assert main(["imap", "query", "--instrument", "mag", "--data-level", "l2",
                 "--output-format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and {r["instrument"] for r in records} == {"mag"}


def test_bad_argument_is_one_line_and_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--max-files", "many"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_entry_point_installed():
    assert shutil.which("sunpy-archives") or Path(sys.executable).with_name("sunpy-archives").exists()
