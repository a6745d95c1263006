"""``sunpy-archives search`` and ``fetch`` for every archive, against the local servers."""

import csv
import io
import json
import shlex
from pathlib import Path

import pytest

from sunpy_archives.cli import main

SPICE = ["spice", "--release", "5.0", "--level", "2",
         "--start", "2023-03-01", "--end", "2023-03-31"]
IMAP = ["imap", "--instrument", "mag", "--level", "l2", "--version", "latest",
        "--start", "2025-01-03", "--end", "2025-01-04"]
JSOC = ["jsoc", "--series", "aia.lev1_euv_12s", "--wavelength", "171", "--segment", "image",
        "--start", "2024-01-01T00:00", "--end", "2024-01-01T00:01"]
ESO = ["eso", "--collection", "MUSE", "--category", "ANCILLARY.PREVIEW"]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_spice_formats_agree(spice_env, capsys):
    code, out, err = _run(capsys, "search", *SPICE, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows, "the small archive has level 2 files in March 2023"
    assert all(row["Level"] == "L2" and row["Release"] == "5.0" for row in rows)
    assert all("2023-03-01" <= row["Start Time"] <= "2023-03-31T00:00:00" for row in rows)

    code, out, _ = _run(capsys, "search", *SPICE, "--format", "csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["Filename"] for r in table] == [r["Filename"] for r in rows]
    assert "SPIOBSID" in table[0]  # csv keeps the columns the table view hides

    code, out, _ = _run(capsys, "search", *SPICE)
    assert code == 0
    assert "Fido.search(a.spice.Release('5.0'), a.Level('2'), a.Time(" in out
    assert f"{len(rows)} results from the SPICEClient" in out
    assert "SPIOBSID" not in out
    for row in rows:
        assert row["Filename"] in out


def test_search_imap(imap_env, capsys):
    code, out, err = _run(capsys, "search", *IMAP, "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows
    assert {row["Instrument"] for row in rows} == {"mag"}
    assert all(row["Filename"].startswith("imap_mag_l2_") for row in rows)
    assert {row["Start Time"][:10] for row in rows} <= {"2025-01-03", "2025-01-04"}


def test_search_jsoc_lists_keywords(jsoc_env, capsys):
    code, out, err = _run(capsys, "search", *JSOC, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6  # 12 s cadence, both ends included
    assert {r["WAVELNTH"] for r in rows} == {"171"}
    assert not jsoc_env.state.exports, "a search stages nothing"


def test_search_eso_instrument_and_category(eso_env, capsys):
    code, out, err = _run(capsys, "search", "eso", "--instrument", "ESPRESSO", "--category",
                          "ANCILLARY", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows
    assert {row["Instrument"] for row in rows} == {"ESPRESSO"}
    assert all(row["Category"].startswith("ANCILLARY") for row in rows)


@pytest.mark.parametrize("argv, layout", [(SPICE, "level2"), (IMAP, "imap")])
def test_fetch_uses_the_archive_layout_and_skips_complete_files(argv, layout, request,
                                                                tmp_path, capsys):
    server = request.getfixturevalue(f"{argv[0]}_env")
    target = tmp_path / "out"
    code, out, err = _run(capsys, "fetch", *argv, "--path", str(target), "--max-files", "2",
                          "--no-progress")
    assert code == 0, err
    files = sorted(p for p in target.rglob("*") if p.is_file())
    assert len(files) == 2
    assert all(p.relative_to(target).parts[0] == layout for p in files)
    size = sum(p.stat().st_size for p in files)
    assert "Fetched 2 files" in out and "0 failed" in out
    assert f"({size / 1024:.1f} kB)" in out or f"({size} B)" in out
    # again: the same files, nothing new
    before = {p: p.stat().st_mtime_ns for p in files}
    code, out, _ = _run(capsys, "fetch", *argv, "--path", str(target), "--max-files", "2",
                        "--no-progress")
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert server is not None


def test_fetch_jsoc_stages_exactly_the_rows(jsoc_env, tmp_path, capsys):
    code, out, err = _run(capsys, "fetch", *JSOC, "--path", str(tmp_path), "--max-files", "3",
                          "--no-progress", "--format", "json")
    assert code == 0, err
    files = json.loads(out)
    assert len(files) == 3
    assert all(Path(f).parent == tmp_path and Path(f).name.endswith(".image.fits") for f in files)
    assert "staging" in err.lower() or "stages" in err.lower()
    assert "Fetched 3 files" in err


def test_fetch_eso_csv_lists_files(eso_env, tmp_path, capsys):
    code, out, err = _run(capsys, "fetch", *ESO, "--path", str(tmp_path), "--no-progress",
                          "--format", "csv")
    assert code == 0, err
    files = out.split()
    assert len(files) == 5 and all(Path(f).is_file() and f.endswith(".png") for f in files)


def test_fetch_failure_exit_1_and_retry_command(spice_env, spice_faults, tmp_path, capsys,
                                                monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    spice_faults.configure(fail_rate=1.0, statuses=(500,), classes=frozenset({"data"}))
    argv = ["fetch", *SPICE, "--path", str(tmp_path), "--max-files", "2", "--no-progress"]
    code, out, err = _run(capsys, *argv)
    assert code == 1
    assert "Fetched 0 files (0 B), 2 failed." in err
    retry = err.strip().splitlines()[-1].strip()
    assert shlex.split(retry) == ["sunpy-archives", *argv]
    spice_faults.reset()
    code, out, err = _run(capsys, *shlex.split(retry)[1:])
    assert code == 0, err
    assert len(list(tmp_path.rglob("*.fits"))) == 2


@pytest.mark.parametrize("argv, message", [
    (["search", "spice", "--level", "7"], "not a SPICE level"),
    (["search", "jsoc", "--start", "2024-01-01", "--end", "2024-01-02"], "give --series"),
    (["search", "jsoc", "--series", "no-dot"], "not a DRMS series name"),
    (["search", "eso", "--instrument", "MUSE"], "at least one of --collection"),
    (["search", "eso", "--collection", "MUSE", "--max-records", "0"], "MaxRecords"),
    (["search", "spice", "--start", "2023-01-01"], "both --start and --end"),
    (["search", "spice", "--start", "yesterday-ish", "--end", "2023-01-01"], "--start/--end"),
])
def test_bad_values_are_one_line_exit_2(argv, message, capsys):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sunpy-archives: error:")
    assert message in lines[0]
    assert "Traceback" not in err


def test_debug_shows_the_exception(capsys):
    with pytest.raises(ValueError, match="not a SPICE level"):
        main(["--debug", "search", "spice", "--level", "7"])


def test_unreachable_server_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SUNPY_ARCHIVES_ESO_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    code, out, err = _run(capsys, *["search", *ESO])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "127.0.0.1:9" in err


def test_unknown_option_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["search", "eso", "--series", "x"])
    assert info.value.code == 2
    assert "unrecognized arguments: --series" in capsys.readouterr().err
