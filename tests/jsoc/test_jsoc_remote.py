"""Against the real JSOC (run with --remote-data)."""

import pytest
from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives.jsoc  # noqa: F401


@pytest.mark.remote_data
def test_real_jsoc_keyword_search(monkeypatch):
    monkeypatch.delenv("SUNPY_ARCHIVES_JSOC_URL", raising=False)
    table = Fido.search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"), a.drms.Series("hmi.m_720s"))[0]
    assert len(table) > 0 and table["T_REC"].scale == "tai"
    assert {"T_REC", "CAMERA", "QUALITY"} <= set(table.colnames)
