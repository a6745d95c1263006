"""``sunpy-archives imap``: a drop-in for the official imap-data-access command line."""

import argparse
import json
import sys

import imap_data_access
import imap_data_access.cli as official_cli
import pytest

from sunpy_archives.core.errors import BadInputError
from sunpy_archives.imap.cli import add_commands, main


def _run(argv):
    parser = argparse.ArgumentParser(prog="sunpy-archives")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["imap", *argv])
    return args.func(args)


@pytest.fixture
def official(imap_env, monkeypatch):
    saved = dict(imap_data_access.config)
    imap_data_access.config.update(API_KEY=None, ACCESS_TOKEN=None)

    def run(argv, capsys):
        monkeypatch.setattr(sys, "argv", ["imap-data-access", "--url", imap_env.url, *argv])
        official_cli.main()
        return capsys.readouterr().out

    try:
        yield run
    finally:
        imap_data_access.config.clear()
        imap_data_access.config.update(saved)


FLAG_SETS = [
    ["--instrument", "mag", "--data-level", "l2", "--start-date", "20250103", "--end-date", "20250105"],
    ["--instrument", "swe", "--descriptor", "sci", "--version", "latest"],
    ["--instrument", "swe", "--version", "v002"],
    ["--instrument", "mag", "--major-version", "1", "--minor-version", "2"],
    ["--instrument", "mag", "--major-version", "2"],
    ["--instrument", "glows", "--repointing", "repoint00006"],
    ["--instrument", "swe", "--extension", "pkts"],
    ["--instrument", "hit", "--ingestion-start-date", "20250106", "--ingestion-end-date", "20250108"],
    ["--table", "ancillary", "--instrument", "mag"],
    ["--table", "spice", "--type", "attitude_history", "--start-date", "20250104", "--end-date", "20250105"],
    ["--table", "spice", "--type", "leapseconds", "--version", "latest"],
]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: " ".join(f[:4]))
def test_query_json_same_as_official(imap_env, official, capsys, flags):
    theirs = json.loads(official(["query", *flags, "--output-format", "json"], capsys))
    assert _run(["query", *flags, "--output-format", "json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert ours == theirs and ours


def test_query_filename(imap_env, capsys):
    # The official 1.3.0 CLI fails on --filename (science: no .version attribute; ancillary: its
    # query is never run), so compare with the records the SDC holds instead.
    for record in (imap_env.data.science[120], imap_env.data.ancillary[2], imap_env.data.spice[3]):
        name = record.get("file_name") or record["file_path"].rsplit("/", 1)[1]
        assert _run(["query", "--filename", name, "--output-format", "json"]) == 0
        assert json.loads(capsys.readouterr().out) == [record]


@pytest.mark.parametrize("flags", [FLAG_SETS[0], FLAG_SETS[5], FLAG_SETS[8], FLAG_SETS[9],
                                   ["--instrument", "lo", "--descriptor", "nothing"]],
                         ids=["science", "repointing", "ancillary", "spice", "empty"])
def test_query_table_same_as_official(imap_env, official, capsys, flags):
    theirs = official(["query", *flags], capsys)
    assert _run(["query", *flags]) == 0
    assert capsys.readouterr().out == theirs


def test_query_bad_input(imap_env):
    with pytest.raises(BadInputError, match="YYYYMMDD"):
        _run(["query", "--instrument", "mag", "--start-date", "2025-01-01"])
    with pytest.raises(BadInputError, match="at least one"):
        _run(["query"])
    with pytest.raises(BadInputError, match="by itself"):
        _run(["query", "--instrument", "mag", "--filename", "imap_swe_l1b_sci_20250110_v001.0001.cdf"])
    with pytest.raises(SystemExit):
        _run(["query", "--instrument", "aia"])
    assert imap_env.seen == []


def test_download_several_into_data_dir(imap_env, capsys, tmp_path):
    names = [r["file_path"].rsplit("/", 1)[1] for r in imap_env.data.science[100:103]]
    assert _run(["--data-dir", str(tmp_path), "download", "--no-progress", *names]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("Successfully downloaded the file to: ") for line in out)
    for record in imap_env.data.science[100:103]:
        assert (tmp_path / record["file_path"]).read_bytes() == imap_env.data.file_bytes(record["file_path"])


def test_download_missing_data_dir(imap_env, tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "nope"), "download",
                 "imap_swe_l1b_sci_20250110_v001.0001.cdf"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_upload_with_api_key_option_then_conflict(imap_env, tmp_path, capsys):
    path = tmp_path / "imap_hit_l1a_count-rates_20250104_v004.0001.cdf"
    path.write_bytes(b"payload")
    key = imap_env.api_key
    assert main(["--api-key", key, "upload", str(path)]) == 0
    assert "Successfully uploaded" in capsys.readouterr().out
    assert main(["--api-key", key, "upload", str(path)]) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and key not in err
    assert main(["--api-key", "bad-key-xyz", "--url", imap_env.url, "upload", str(path)]) == 2
    err = capsys.readouterr().err
    assert "403" in err and "bad-key-xyz" not in err


def test_official_cli_accepts_our_upload(imap_env, official, tmp_path, capsys):
    path = tmp_path / "imap_hit_l1a_count-rates_20250105_v004.0001.cdf"
    path.write_bytes(b"payload")
    out = official(["--api-key", imap_env.api_key, "upload", str(path)], capsys)
    assert "Successfully uploaded" in out
    assert _run(["query", "--instrument", "hit", "--major-version", "4", "--output-format", "json"]) == 0
    assert path.name in capsys.readouterr().out


def test_hooks_into_sunpy_archives_command(imap_env, monkeypatch, capsys):
    import sunpy_archives.cli as suite_cli

    monkeypatch.setattr(suite_cli, "ARCHIVE_COMMANDS", ("sunpy_archives.imap.cli",))
    assert suite_cli.main(["imap", "--url", imap_env.url, "query", "--instrument", "mag",
                           "--descriptor", "raw", "--output-format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and {r["descriptor"] for r in records} == {"raw"}
    assert suite_cli.main(["imap", "query", "--instrument", "mag", "--start-date", "2025"]) == 2
    assert "YYYYMMDD" in capsys.readouterr().err
