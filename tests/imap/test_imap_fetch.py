"""Fetching IMAP files: SDC layout, parallel parfive downloads, skip-complete, the API key kept safe."""

import logging
import os
from pathlib import Path

import parfive
import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.imap as imap
from sunpy_archives.core.download import marker_for
from sunpy_archives.core.errors import BadInputError, DownloadError
from sunpy_archives.imap import IMAPClient


def _search(n=4):
    res = Fido.search(a.Instrument("mag"), a.Level("l2"), a.imap.Version("latest"),
                      a.Time("2025-01-06", "2025-01-09"))
    return res[0][:n]


def _get_count(server, name):
    return sum(1 for method, path, _ in server.seen if method == "GET" and path.endswith(name))


def test_fido_fetch_reproduces_sdc_layout(imap_env, tmp_path):
    table = _search(4)
    files = Fido.fetch(table, path=f"{tmp_path}/{{sdc_dir}}/{{file}}", progress=False)
    assert not files.errors and len(files) == 4
    for row in table:
        rel = f"{row['SDC Dir']}/{row['Filename']}"
        assert row["SDC Dir"] == f"imap/mag/l2/{row['Start Time'].strftime('%Y/%m')}"
        dest = tmp_path / rel
        assert str(dest) in files
        assert dest.read_bytes() == imap_env.data.file_bytes(rel)
        assert not marker_for(dest).exists()


def test_second_fetch_downloads_nothing(imap_env, tmp_path):
    table = _search(3)
    template = f"{tmp_path}/{{sdc_dir}}/{{file}}"
    first = Fido.fetch(table, path=template, progress=False)
    stamps = {p: os.stat(p).st_mtime_ns for p in first}
    storage = sum(1 for m, p, _ in imap_env.seen if m == "GET" and p.startswith("/sds-data/"))
    second = Fido.fetch(table, path=template, progress=False)
    assert sorted(second) == sorted(first) and not second.errors
    assert {p: os.stat(p).st_mtime_ns for p in second} == stamps
    # no file body is asked for again from the storage
    assert sum(1 for m, p, _ in imap_env.seen if m == "GET" and p.startswith("/sds-data/")) == storage


def test_client_fetch_single_row_and_folder(imap_env, tmp_path):
    table = _search(2)
    results = IMAPClient().fetch(table[0], path=tmp_path, progress=False)
    assert isinstance(results, parfive.Results)
    assert [Path(p).name for p in results] == [table[0]["Filename"]]


def test_transient_5xx_is_retried(imap_env, imap_faults, tmp_path):
    table = _search(3)
    imap_faults.configure(fail_first=1, statuses=(503,), classes=frozenset({"data"}))
    files = Fido.fetch(table, path=f"{tmp_path}/{{sdc_dir}}/{{file}}", progress=False)
    assert not files.errors and len(files) == 3
    assert imap_faults.failures_injected >= 3


def test_api_key_only_to_the_api_never_to_storage(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    client = IMAPClient()
    table = client.search(a.Instrument("swe"), a.imap.Version("latest"), a.Time("2025-01-05", "2025-01-05"))
    imap_env.seen.clear()
    files = client.fetch(table, path=f"{tmp_path}/{{sdc_dir}}/{{file}}", progress=False)
    assert not files.errors and len(files) == len(table) > 0
    api = [c for _, p, c in imap_env.seen if p.startswith("/api-key/download/")]
    storage = [c for m, p, c in imap_env.seen if m == "GET" and p.startswith("/sds-data/")]
    # one API request per file (the probe); the transfer goes straight to storage, in
    # imap_max_splits range requests per file
    assert len(api) == len(table)
    assert len(storage) >= len(table)
    assert set(api) == {"x-api-key"} and set(storage) == {None}


def test_key_absent_from_parfive_debug_log_and_errors(imap_env, monkeypatch, tmp_path, caplog, capfd):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    monkeypatch.setenv("PARFIVE_DEBUG", "1")
    caplog.set_level(logging.DEBUG)
    client = IMAPClient()
    table = client.search(a.Instrument("swe"), a.Level("l1b"), a.imap.Version("latest"),
                          a.Time("2025-01-05", "2025-01-06"))
    # one file that the SDC does not have: its error path goes through parfive too
    downloader = parfive.Downloader(max_conn=2, progress=False)
    client.fetch(table, path=f"{tmp_path}/{{sdc_dir}}/{{file}}", downloader=downloader, wait=False)
    from sunpy_archives.core.download import DownloadJob, enqueue

    enqueue(downloader, [DownloadJob(client.api.download_url("imap/swe/l1b/2025/01/"
                                                             "imap_swe_l1b_sci_20250101_v099.cdf"),
                                     "missing.cdf")], tmp_path, middlewares=(client.api.middleware(),))
    results = downloader.download()
    assert len(results) == len(table) and len(results.errors) == 1
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records) + out + err
    assert "request made" in logged and "headers=" in logged  # parfive's debug lines were there
    assert imap_env.api_key not in logged
    assert imap_env.api_key not in repr(results.errors) + str(results.errors)
    # the key was really sent to the API
    assert {c for _, p, c in imap_env.seen if p.startswith("/api-key/")} == {"x-api-key"}


def test_key_not_in_repr(imap_env, monkeypatch):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    client = IMAPClient()
    for text in (repr(client), str(client), repr(client.api), repr(client.api.middleware()),
                 str(vars(client.api))):
        assert imap_env.api_key not in text


def test_download_function_default_data_dir(imap_env, tmp_path):
    record = imap.query(instrument="idex", data_level="l1a", start_date="20250110",
                        end_date="20250110")[0]
    name = record["file_path"].rsplit("/", 1)[-1]
    dest = imap.download(name, progress=False)
    assert dest == Path(os.environ["IMAP_DATA_DIR"]) / record["file_path"]
    assert dest.read_bytes() == imap_env.data.file_bytes(record["file_path"])
    before = len(imap_env.seen)
    assert imap.download(Path("some/where") / name, progress=False) == dest
    assert len(imap_env.seen) == before  # complete: no request at all


def test_download_many_records_in_parallel(imap_env, tmp_path):
    records = imap.query(instrument="hit", start_date="20250101", end_date="20250103")
    paths = imap.download(records, data_dir=tmp_path, progress=False, max_conn=4)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [r["file_path"] for r in records]
    assert all(p.read_bytes() == imap_env.data.file_bytes(r["file_path"])
               for p, r in zip(paths, records))


def test_download_bad_name_fails_before_network(imap_env, tmp_path):
    with pytest.raises(BadInputError, match="not a valid IMAP file name"):
        imap.download(["imap_mag_l2_norm-rtn_20250101_v001.cdf", "notes.txt"], data_dir=tmp_path)
    assert imap_env.seen == []


def test_download_missing_file_raises_scrubbed(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    with pytest.raises(DownloadError) as info:
        imap.download("imap_mag_l2_norm-rtn_20250101_v099.cdf", data_dir=tmp_path, progress=False)
    assert "404" in str(info.value) and imap_env.api_key not in str(info.value)
    assert len(info.value.results.errors) == 1


def test_wrong_key_download_is_clear(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_API_KEY", "this-key-is-wrong")
    with pytest.raises(DownloadError) as info:
        imap.download("imap_mag_l2_norm-rtn_20250101_v001.cdf", data_dir=tmp_path, progress=False)
    assert "403" in str(info.value) and "this-key-is-wrong" not in str(info.value)


def test_client_fetch_defaults_to_imap_data_dir(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_DATA_DIR", str(tmp_path / "mirror"))
    client = IMAPClient()
    monkeypatch.setenv("IMAP_DATA_DIR", str(tmp_path / "elsewhere"))  # read at construction
    table = _search(2)
    files = client.fetch(table, progress=False)
    assert sorted(files) == sorted(str(tmp_path / "mirror" / r["SDC Dir"] / r["Filename"]) for r in table)


def test_results_with_key_can_be_copied_not_pickled(imap_env, monkeypatch):
    import copy
    import pickle

    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    table = Fido.search(a.Instrument("mag"), a.imap.Descriptor("raw"))[0]
    clone = copy.deepcopy(table)
    assert len(clone) == len(table) and clone.client.api.has_key
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(table.client)
