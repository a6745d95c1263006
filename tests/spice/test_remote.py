"""Against the real SPICE release tree (run with ``pytest --remote-data=any``)."""

import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives  # noqa: F401
from sunpy_archives.spice import Release


@pytest.fixture
def real(monkeypatch):
    monkeypatch.delenv("SUNPY_ARCHIVES_SPICE_URL", raising=False)
    monkeypatch.delenv("SUNPY_ARCHIVES_SOAR_URL", raising=False)


@pytest.mark.remote_data
def test_latest_release_exists(real):
    release = Release()
    assert release.exists
    assert release.tag in Release.list_releases() or not Release.list_releases()


@pytest.mark.remote_data
def test_real_search_has_files(real, tmp_path):
    res = Fido.search(a.spice.Release("2.0"), a.Level(2), a.Time("2022-03-01", "2022-03-02"))
    table = res[0]
    # Never assert exact counts of a live archive.
    assert len(table) > 0
    assert set(table["Level"]) == {"L2"}
    files = Fido.fetch(table[:1], path=tmp_path / "{file_path}" / "{file}", progress=False)
    assert len(files) == 1 and not files.errors
