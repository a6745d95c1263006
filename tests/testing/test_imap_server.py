"""The local IMAP SDC server speaks the real API: the official imap_data_access works unchanged."""

import json

import imap_data_access
import pytest
import requests
from imap_data_access.file_validation import generate_imap_file_path
from imap_data_access.io import IMAPDataAccessError

from sunpy_archives.testing.imap import ImapArchiveData, start_imap_server


@pytest.fixture
def official(imap_server, tmp_path):
    """imap_data_access pointed at the local server (its env vars are read at import)."""
    saved = dict(imap_data_access.config)
    imap_data_access.config.update(DATA_ACCESS_URL=imap_server.url, DATA_DIR=tmp_path / "data",
                                   API_KEY=None, ACCESS_TOKEN=None)
    imap_server.seen.clear()
    try:
        yield imap_data_access
    finally:
        imap_data_access.config.clear()
        imap_data_access.config.update(saved)
        imap_server.data.clear_uploads()


def test_generated_names_pass_official_validation_and_paths_agree(official, imap_server):
    data = imap_server.data
    for record in data.science + data.ancillary:
        name = record["file_path"].rsplit("/", 1)[-1]
        path = generate_imap_file_path(name).construct_path()
        assert path.relative_to(official.config["DATA_DIR"]).as_posix() == record["file_path"]
    for record in data.spice:
        path = generate_imap_file_path(record["file_name"]).construct_path()
        assert path.relative_to(official.config["DATA_DIR"]).as_posix() == record["file_path"]


def test_catalogue_is_deterministic_and_covers_instruments():
    one, two = ImapArchiveData.small(seed=3), ImapArchiveData.small(seed=3)
    assert one.science == two.science and one.spice == two.spice
    assert ImapArchiveData.small(seed=4).science != one.science
    assert {r["instrument"] for r in one.science} >= {"mag", "swe", "glows", "hi", "lo", "ultra"}
    assert {r["major_version"] for r in one.science} >= {None, 1}
    assert any(r["repointing"] is not None for r in one.science)
    assert any(r["end_date"] for r in one.ancillary) and any(not r["end_date"] for r in one.ancillary)


def test_large_catalogue_size():
    data = ImapArchiveData.large()
    assert 90_000 <= len(data) <= 120_000


def test_official_query_every_parameter(official, imap_server):
    data = imap_server.data
    records = official.query(instrument="mag", data_level="l1a", descriptor="norm-mago",
                             start_date="20250105", end_date="20250107")
    assert records and all(r["instrument"] == "mag" and r["data_level"] == "l1a" for r in records)
    assert {r["start_date"] for r in records} <= {"20250105", "20250106", "20250107"}
    assert "20250107" in {r["start_date"] for r in records}  # end day included
    assert set(records[0]) >= {"file_path", "repointing", "cr", "version", "major_version",
                               "minor_version", "extension", "ingestion_date"}
    latest = official.query(instrument="swe", data_level="l1b", version="latest")
    keys = [(r["start_date"], r["descriptor"]) for r in latest]
    assert len(keys) == len(set(keys))
    rep = official.query(instrument="glows", repointing="repoint00003")
    assert rep and {r["repointing"] for r in rep} == {3}
    ext = official.query(instrument="mag", extension="pkts")
    assert ext and {r["extension"] for r in ext} == {"pkts"}
    major = official.query(instrument="mag", data_level="l2", major_version=2)
    assert major and {r["major_version"] for r in major} == {2}
    minor = official.query(instrument="mag", data_level="l2", major_version="1", minor_version="2")
    assert minor and {(r["major_version"], r["minor_version"]) for r in minor} == {(1, 2)}
    legacy = official.query(instrument="swe", version="v002")
    assert legacy and {r["version"] for r in legacy} == {"v002"}
    day = sorted(r["ingestion_date"][:10].replace("-", "") for r in data.science)[len(data.science) // 2]
    ingested = official.query(instrument="hit", ingestion_start_date=day, ingestion_end_date=day)
    assert ingested and {r["ingestion_date"][:10].replace("-", "") for r in ingested} == {day}
    anc = official.query(table="ancillary", instrument="mag")
    assert anc and all("end_date" in r and "repointing" not in r for r in anc)
    anc_latest = official.query(table="ancillary", instrument="mag", version="latest")
    assert len(anc_latest) < len(anc)


def test_default_is_latest_major_version(imap_server):
    url = f"{imap_server.url}/query"
    everything = requests.get(url, params={"instrument": "mag", "data_level": "l2",
                                           "major_version": 1}, timeout=10).json()
    default = requests.get(url, params={"instrument": "mag", "data_level": "l2"}, timeout=10).json()
    twos = {(r["descriptor"], r["start_date"]) for r in default if r["major_version"] == 2}
    assert twos, "the generated archive has some major version 2 files"
    assert not [r for r in default if (r["descriptor"], r["start_date"]) in twos
                and r["major_version"] == 1]
    assert any((r["descriptor"], r["start_date"]) in twos for r in everything)


def test_official_spice_query(official):
    records = official.spice_query(type="attitude_history", start_date="20250103",
                                   end_date="20250104")
    assert records and {r["kernel_type"] for r in records} == {"attitude_history"}
    assert set(records[0]) >= {"file_name", "kernel_type", "min_date_datetime",
                               "max_date_datetime", "ingestion_date", "version"}
    latest = official.spice_query(type="attitude_history", start_date="20250101",
                                  end_date="20250110", version="latest")
    assert len(latest) < len(official.spice_query(type="attitude_history", start_date="20250101",
                                                  end_date="20250110"))


def test_official_download_follows_redirect(official, imap_server):
    record = imap_server.data.science[10]
    name = record["file_path"].rsplit("/", 1)[-1]
    dest = official.download(name)
    assert dest == official.config["DATA_DIR"] / record["file_path"]
    assert dest.read_bytes() == imap_server.data.file_bytes(record["file_path"])
    paths = [p for _, p, _ in imap_server.seen]
    assert f"/download/{record['file_path']}" in paths and f"/sds-data/{record['file_path']}" in paths


def test_download_errors_and_range(imap_server):
    base = imap_server.url
    missing = requests.get(f"{base}/download/imap/mag/l2/2025/01/imap_mag_l2_x_20250101_v001.cdf",
                           timeout=10)
    assert missing.status_code == 404 and "File not found" in missing.json()
    assert requests.get(f"{base}/download/", timeout=10).status_code == 400
    path = imap_server.data.science[0]["file_path"]
    hop = requests.get(f"{base}/download/{path}", allow_redirects=False, timeout=10)
    assert hop.status_code == 302 and "X-Amz-Signature=" in hop.headers["Location"]
    part = requests.get(hop.headers["Location"], headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == imap_server.data.file_bytes(path)[10:20]
    forged = hop.headers["Location"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.get(forged, timeout=10).status_code == 403


def test_api_key_routes(imap_server):
    url = f"{imap_server.url}/api-key/query"
    assert requests.get(url, params={"instrument": "mag"}, timeout=10).status_code == 401
    bad = requests.get(url, params={"instrument": "mag"}, headers={"x-api-key": "nope"}, timeout=10)
    assert bad.status_code == 403
    good = requests.get(url, params={"instrument": "mag"},
                        headers={"x-api-key": imap_server.api_key}, timeout=10)
    assert good.status_code == 200 and good.json()
    token = sorted(imap_server.data.access_tokens)[0]
    auth = requests.get(f"{imap_server.url}/authorized/query", params={"instrument": "mag"},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert auth.status_code == 200


def test_unknown_parameter_is_400_json_string(imap_server):
    answer = requests.get(f"{imap_server.url}/query", params={"colour": "red"}, timeout=10)
    assert answer.status_code == 400
    assert "colour is not a valid query parameter" in json.loads(answer.text)


def test_official_upload_with_key_then_conflict(official, imap_server, tmp_path):
    official.config["API_KEY"] = imap_server.api_key
    local = tmp_path / "imap_mag_l1a_norm-mago_20250103_v009.0001.cdf"
    local.write_bytes(b"new file body")
    official.upload(local)
    path = "imap/mag/l1a/2025/01/" + local.name
    assert imap_server.data.uploads[path] == b"new file body"
    with pytest.raises(IMAPDataAccessError, match="409"):
        official.upload(local)
    found = official.query(instrument="mag", data_level="l1a", major_version=9, minor_version=1)
    assert [r["file_path"] for r in found] == [path]


def test_official_upload_bad_key_and_bad_name(official, imap_server, tmp_path):
    official.config["API_KEY"] = "wrong"
    local = tmp_path / "imap_mag_l1a_norm-mago_20250103_v009.0002.cdf"
    local.write_bytes(b"x")
    with pytest.raises(IMAPDataAccessError, match="403"):
        official.upload(local)
    official.config["API_KEY"] = imap_server.api_key
    odd = tmp_path / "imap_mag_l1a_norm-mago_20250103_v009.0002.txt"
    odd.write_bytes(b"x")
    with pytest.raises(IMAPDataAccessError, match="400"):
        official.upload(odd)
    assert not imap_server.data.uploads


def test_official_reprocess(official, imap_server):
    official.reprocess(start_date="20250101", end_date="20250102", instrument="mag")
    assert imap_server.data.reprocess_requests[-1]["instrument"] == "mag"


def test_server_own_lifecycle():
    with start_imap_server(ImapArchiveData(days=2, datasets=2)) as server:
        assert requests.get(f"{server.url}/query", params={"instrument": "mag"}, timeout=10).json()
