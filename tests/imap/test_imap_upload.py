"""Uploading to the IMAP SDC: success, conflict, bad key, bad names, no key: all clear, key never shown."""

import logging

import pytest

import sunpy_archives.imap as imap
from sunpy_archives.core.errors import BadInputError
from sunpy_archives.imap import AuthenticationError, UploadConflictError

NAME = "imap_swe_l1b_sci_20250108_v003.0001.cdf"


def _file(tmp_path, name=NAME, body=b"fresh bytes"):
    path = tmp_path / name
    path.write_bytes(body)
    return path


def test_upload_success_then_found_and_downloadable(imap_env, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    caplog.set_level(logging.DEBUG)
    where = imap.upload(_file(tmp_path))
    assert where == f"imap/swe/l1b/2025/01/{NAME}"
    assert imap_env.data.uploads[where] == b"fresh bytes"
    upload_calls = [(m, p, c) for m, p, c in imap_env.seen if NAME in p]
    assert upload_calls[0] == ("GET", f"/api-key/upload/{NAME}", "x-api-key")
    assert upload_calls[1][0] == "PUT" and upload_calls[1][2] is None  # no key to the storage
    found = imap.query(instrument="swe", data_level="l1b", major_version=3, minor_version=1)
    assert [r["file_path"] for r in found] == [where]
    dest = imap.download(NAME, data_dir=tmp_path / "mirror", progress=False)
    assert dest.read_bytes() == b"fresh bytes"
    assert imap_env.api_key not in caplog.text


def test_upload_conflict(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    existing = next(r["file_path"].rsplit("/", 1)[1] for r in imap_env.data.science
                    if r["major_version"] is not None)
    with pytest.raises(UploadConflictError, match="already holds") as info:
        imap.upload(_file(tmp_path, existing))
    assert imap_env.api_key not in str(info.value)


def test_upload_bad_key(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_API_KEY", "definitely-not-valid-key")
    with pytest.raises(AuthenticationError) as info:
        imap.upload(_file(tmp_path))
    assert "403" in str(info.value) and "definitely-not-valid-key" not in str(info.value)
    assert "definitely-not-valid-key" not in repr(info.value)
    assert not imap_env.data.uploads


def test_upload_without_key_fails_before_network(imap_env, tmp_path):
    with pytest.raises(AuthenticationError, match="IMAP_API_KEY"):
        imap.upload(_file(tmp_path))
    assert imap_env.seen == []


@pytest.mark.parametrize("name, match", [
    ("imap_swe_l1b_sci_20250108_v003.cdf", "legacy version"),
    ("imap_swe_l1b_sci_20250132_v003.0001.cdf", "not a date"),
    ("imap_foo_l1b_sci_20250108_v003.0001.cdf", "instrument"),
    ("imap_swe_l1b_sci_20250108_v003.0001.fits", "extension"),
    ("notes.txt", "not a valid IMAP file name"),
])
def test_upload_bad_filename_fails_before_network(imap_env, monkeypatch, tmp_path, name, match):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    with pytest.raises(BadInputError, match=match):
        imap.upload(_file(tmp_path, name))
    assert imap_env.seen == []


def test_upload_missing_file(imap_env, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    with pytest.raises(BadInputError, match="no file to upload"):
        imap.upload(tmp_path / NAME)
