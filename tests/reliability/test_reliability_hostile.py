"""Hostile servers: nothing is written outside the target folder, errors are clear.

Already covered elsewhere (not repeated): ``..`` and absolute values in
SPICE catalog columns (``tests/spice/test_fetch.py::
test_hostile_filename_and_file_path_stay_inside``), hostile JSOC export file
names (``tests/jsoc/test_jsoc_fetch.py::test_hostile_filenames_stay_in_folder``),
hostile ESO original names (``tests/eso/test_eso_fetch.py::
test_hostile_original_filename_stays_inside``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.eso  # noqa: F401
import sunpy_archives.imap  # noqa: F401
import sunpy_archives.jsoc  # noqa: F401
import sunpy_archives.spice  # noqa: F401
from sunpy_archives.core.errors import ArchiveError, SearchError
from sunpy_archives.core.download import MARKER_SUFFIX
from sunpy_archives.eso import ESOClient
from sunpy_archives.imap import IMAPClient
from sunpy_archives.jsoc import DRMSClient
from sunpy_archives.testing import FaultConfig
from sunpy_archives.testing.eso import EsoFile, EsoProduct

from hostile_servers import MALFORMED_VOTABLES, eso_app, imap_app, jsoc_app, serve

HUGE = 2 ** 40  # a terabyte announced


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_inside(tmp_path: Path, target: Path) -> None:
    for path in _files_under(tmp_path):
        assert path.resolve().is_relative_to(target.resolve()), f"{path} is outside {target}"


@pytest.fixture
def hostile_imap(request, monkeypatch, tmp_path):
    servers = []

    def start(mode):
        server = serve(imap_app(mode, FaultConfig()))
        servers.append(server)
        monkeypatch.setenv("IMAP_DATA_ACCESS_URL", server.url)
        monkeypatch.setenv("IMAP_DATA_DIR", str(tmp_path / "imap-data"))
        monkeypatch.delenv("IMAP_API_KEY", raising=False)
        monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
        return server

    yield start
    for server in servers:
        server.stop()


def test_imap_hostile_file_paths_stay_inside(hostile_imap, tmp_path, reliability_stats):
    hostile_imap("paths")
    table = IMAPClient().search(a.Instrument("mag"), a.Level("l2"))
    assert len(table) == 4
    target = tmp_path / "deep" / "inside"
    files = Fido.fetch(table, path=str(target / "{sdc_dir}" / "{file}"), progress=False)
    assert len(files) + len(files.errors) == 4
    _assert_inside(tmp_path, target)
    for path in files:
        assert "\x00" not in path
    reliability_stats["hostile_answers"] += 4


def test_imap_record_whose_name_is_not_an_imap_name_is_refused_clearly(hostile_imap, tmp_path,
                                                                       reliability_stats):
    hostile_imap("badname")
    with pytest.raises(ArchiveError) as info:
        IMAPClient().search(a.Instrument("mag"), a.Level("l2"))
    message = str(info.value)
    assert "IMAP" in message and "outside" in message  # names the archive and the value
    assert not _files_under(tmp_path)
    reliability_stats["hostile_answers"] += 1


@pytest.mark.parametrize("mode", ["notjson", "cutjson", "notlist"])
def test_imap_bad_json_is_a_search_error(hostile_imap, mode, reliability_stats):
    server = hostile_imap(mode)
    with pytest.raises(SearchError) as info:
        IMAPClient().search(a.Instrument("mag"), a.Level("l2"))
    assert "IMAP" in str(info.value)
    reliability_stats["hostile_answers"] += 1


@pytest.mark.parametrize("mode", ["notjson", "cutjson"])
def test_jsoc_bad_json_is_a_clear_error(mode, monkeypatch, reliability_stats):
    server = serve(jsoc_app(mode, FaultConfig()))
    try:
        monkeypatch.setenv("SUNPY_ARCHIVES_JSOC_URL", server.url + "/")
        monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
        with pytest.raises(ArchiveError) as info:
            DRMSClient().search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"),
                                a.drms.Series("hmi.m_720s"))
        assert "JSOC" in str(info.value)
        assert isinstance(info.value, ValueError) is False or "JSON" in str(info.value)
    finally:
        server.stop()
    reliability_stats["hostile_answers"] += 1


@pytest.mark.parametrize("mode", list(MALFORMED_VOTABLES))
def test_eso_malformed_votable_is_a_search_error(mode, monkeypatch, reliability_stats):
    server = serve(eso_app(mode, FaultConfig()))
    try:
        monkeypatch.setenv("SUNPY_ARCHIVES_ESO_URL", server.url)
        monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
        with pytest.raises(SearchError) as info:
            ESOClient().search(a.eso.Collection("MUSE"))
        assert "ESO" in str(info.value)
    finally:
        server.stop()
    reliability_stats["hostile_answers"] += 1


# --- the real local servers, made hostile --------------------------------------------------------

def test_spice_nul_and_separators_in_catalog_stay_inside(spice_env, tmp_path, reliability_stats):
    data = spice_env.data
    data.add_rows(data.latest, [
        {"FILENAME": "nul\x00evil.fits", "FILE_PATH": "level2/a\x00b", "SOOPNAME": "HOSTILE2"},
        {"FILENAME": "back\\..\\..\\evil.fits", "FILE_PATH": "..\\..\\up", "SOOPNAME": "HOSTILE2"},
        {"FILENAME": "sep/../../evil.fits", "FILE_PATH": "level2//../../../x", "SOOPNAME": "HOSTILE2"},
    ])
    try:
        table = Fido.search(a.spice.Release("latest"), a.spice.SOOP("HOSTILE2"))[0]
        assert len(table) == 3
        target = tmp_path / "inside"
        files = Fido.fetch(table, path=str(target / "{file_path}" / "{file}"), progress=False)
        assert len(files) + len(files.errors) == 3
        _assert_inside(tmp_path, target)
        assert all("\x00" not in p for p in files)
    finally:
        data.clear_added_rows()
    reliability_stats["hostile_answers"] += 3


def test_eso_hostile_content_disposition_and_ids_stay_inside(eso_env, eso_faults, tmp_path,
                                                             monkeypatch, reliability_stats):
    data = eso_env.data
    dp_id = "ADP.2031-01-01T00:00:00.001"
    if data.find_file(dp_id) is None:
        files = [EsoFile(dp_id, "SCIENCE.CUBE", "../../../escape.fits", "FITS", 6000,
                         "application/fits", 99_000_001),
                 EsoFile("../../ADP.2031-01-01T00:00:00.002", "ANCILLARY.PREVIEW",
                         "/etc/passwd\\..\\x.png", "PNG", 3000, "image/png", 99_000_002)]
        data.add_product(EsoProduct(
            dp_id=dp_id, collection="HOSTILE2", instrument="MUSE", facility="ESO-VLT-U4",
            dataproduct_type="cube", target="x", ra=10.0, dec=10.0, fov=0.01,
            t_min=70100.0, t_max=70100.1, em_min=5e-7, em_max=9e-7, proposal_id="0",
            files=files))
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    data.content_disposition[dp_id] = 'attachment; filename="../../../../cd-escape.fits"'
    table = ESOClient().search(a.eso.Collection("HOSTILE2"))
    assert len(table) >= 1
    target = tmp_path / "inside"
    results = Fido.fetch(table, path=target, progress=False)
    assert len(results) + len(results.errors) == len(table)
    _assert_inside(tmp_path, target)
    assert not (tmp_path / "cd-escape.fits").exists()
    assert len(results) >= 1, [str(e.exception)[:300] for e in results.errors]
    reliability_stats["hostile_answers"] += len(table)


# --- a Content-Length far larger than the body ---------------------------------------------------

def _small_search(name):
    if name == "spice":
        return Fido.search(a.spice.Release("latest"), a.Level(2), a.spice.Query("RASTERNO == 0"))[0][:2]
    if name == "imap":
        return Fido.search(a.Instrument("mag"), a.Level("l2"), a.imap.Version("latest"),
                           a.Time("2025-01-06", "2025-01-07"))[0][:2]
    if name == "jsoc":
        return Fido.search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"),
                           a.drms.Series("hmi.m_720s"))[0][:2]
    return Fido.search(a.eso.Collection("HARPS"))[0][:2]


@pytest.mark.parametrize("name", ["spice", "imap", "jsoc", "eso"])
def test_huge_content_length_is_an_error_not_a_file(name, request, tmp_path, monkeypatch,
                                                    reliability_stats):
    server = request.getfixturevalue(f"{name}_env")
    faults = request.getfixturevalue(f"{name}_faults")
    if name == "jsoc":
        server.state.image_shape = (4, 4)
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    table = _small_search(name)
    faults.configure(overlong_rate=1.0, overlong_extra=HUGE, classes={"data"})
    kwargs = {"poll_first": 0.05} if name == "jsoc" else {}
    target = tmp_path / "out"
    results = Fido.fetch(table, path=target, progress=False, **kwargs)
    assert len(results) == 0 and len(results.errors) == 2
    assert faults.overlongs_injected >= 2
    # Nothing left that looks complete; a leftover is marked as in flight.
    for path in _files_under(tmp_path):
        assert path.name.endswith(MARKER_SUFFIX) or (path.parent / f".{path.name}{MARKER_SUFFIX}").exists(), path
    reliability_stats["faults_injected"] += faults.faults_injected
