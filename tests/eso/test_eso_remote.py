"""Against the real ESO archive (skipped offline; no exact counts asserted)."""

import pytest
import sunpy.net.attrs as a

import sunpy_archives.eso  # noqa: F401
from sunpy_archives.eso import ESOClient


@pytest.mark.remote_data
def test_muse_previews_on_the_real_archive(monkeypatch):
    monkeypatch.delenv("SUNPY_ARCHIVES_ESO_URL", raising=False)
    table = ESOClient().search(
        a.eso.Collection("MUSE"), a.eso.Category("ANCILLARY.PREVIEW"), a.eso.MaxRecords(5)
    )
    assert 0 < len(table) <= 5
    assert all(c.startswith("ANCILLARY.PREVIEW") for c in table["Category"])
    assert all(u.startswith("https://") for u in table["Access URL"])
