"""The IMAP API key never shows: CLI output (every command, with --debug), result
tables in every rendering, search and download exceptions with their tracebacks,
every log record at DEBUG level (parfive's included).

Already in ``tests/imap``: the client's reprs, parfive's debug log during a
fetch, scrubbed download errors, the upload CLI's error messages.
"""

from __future__ import annotations

import logging
import pickle
import traceback

import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.imap  # noqa: F401
from sunpy_archives.core.errors import ArchiveError
from sunpy_archives.imap import IMAPClient
from sunpy_archives.imap.cli import main


@pytest.fixture
def keyed(imap_env, imap_faults, monkeypatch, caplog, capfd):
    key = imap_env.api_key
    monkeypatch.setenv("IMAP_API_KEY", key)
    monkeypatch.setenv("PARFIVE_DEBUG", "1")
    caplog.set_level(logging.DEBUG)
    yield imap_env, imap_faults, key
    out, err = capfd.readouterr()
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert key not in out + err + logged + caplog.text, "the key leaked into output or logs"
    # the key was really used
    assert any(c == "x-api-key" for _, p, c in imap_env.seen if p.startswith("/api-key/"))


def _texts(obj) -> list[str]:
    texts = [str(obj), repr(obj)]
    for method in ("_repr_html_", "__str__"):
        if hasattr(obj, method):
            texts.append(str(getattr(obj, method)()))
    return texts


def test_result_tables_never_show_the_key(keyed, reliability_stats):
    server, _, key = keyed
    res = Fido.search(a.Instrument("mag"), a.imap.Descriptor("raw"))
    table = res[0]
    texts = _texts(res) + _texts(table) + [str(table.meta), repr(dict(table.meta))]
    texts += [str(row.response_block_map) for row in table]
    texts += [repr(table.client), str(vars(table.client))]
    texts += ["\n".join(map(str, table.to_pandas().to_dict("records")))]
    for text in texts:
        assert key not in text
    with pytest.raises(Exception) as info:  # the key cannot travel in a pickle
        pickle.dumps(table)
    assert key not in str(info.value)
    reliability_stats["secret_checks"] += len(texts) + 1


@pytest.mark.parametrize("status", [500, 403])
def test_search_errors_and_tracebacks_never_show_the_key(keyed, status, reliability_stats,
                                                         monkeypatch):
    server, faults, key = keyed
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    faults.configure(fail_rate=1.0, statuses=(status,), classes={"search"})
    with pytest.raises(ArchiveError) as info:
        IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))
    exc = info.value
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(vars(exc))
    assert key not in text
    reliability_stats["secret_checks"] += 1


CLI_RUNS = [
    ["query", "--instrument", "mag", "--descriptor", "raw"],
    ["query", "--instrument", "mag", "--descriptor", "raw", "--output-format", "json"],
    ["query", "--filename", "imap_mag_l0_raw_20250101_v001.pkts"],
]


@pytest.mark.parametrize("argv", CLI_RUNS)
@pytest.mark.parametrize("flags", [[], ["--debug"], ["-v"]])
def test_cli_never_prints_the_key(keyed, argv, flags, tmp_path, reliability_stats):
    server, _, key = keyed
    assert main(["--api-key", key, *flags, *argv]) == 0
    reliability_stats["secret_checks"] += 1


def test_cli_download_and_failures_never_print_the_key(keyed, tmp_path, monkeypatch,
                                                       reliability_stats):
    server, faults, key = keyed
    record = server.data.science[5]
    name = record["file_path"].rsplit("/", 1)[1]
    assert main(["--api-key", key, "--debug", "--data-dir", str(tmp_path), "download",
                 "--no-progress", name]) == 0
    assert (tmp_path / record["file_path"]).read_bytes() == server.data.file_bytes(
        record["file_path"])
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    faults.configure(fail_rate=1.0, statuses=(502,), classes={"search", "data"})
    assert main(["--api-key", key, "query", "--instrument", "mag"]) == 2
    assert main(["--api-key", key, "--data-dir", str(tmp_path / "x"), "download",
                 "--no-progress", name]) == 2
    with pytest.raises(ArchiveError) as info:  # --debug re-raises: the traceback is clean too
        main(["--api-key", key, "--debug", "query", "--instrument", "mag"])
    assert key not in "".join(traceback.format_exception(info.value))
    reliability_stats["secret_checks"] += 4
