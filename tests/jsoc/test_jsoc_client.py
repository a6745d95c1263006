"""DRMSClient: attrs, routing next to sunpy's JSOCClient, and search."""

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from sunpy.net import Fido
from sunpy.net import attrs as a
from sunpy.net.jsoc import JSOCClient

import sunpy_archives.jsoc  # noqa: F401  (registers a.drms)
from sunpy_archives.core.errors import BadInputError, UnknownValueError
from sunpy_archives.jsoc import DRMSClient
from sunpy_archives.jsoc.client import walker
from sunpy.net.attr import and_

DAY = a.Time("2024-01-01T00:00:00", "2024-01-01T00:02:00")


# -- attrs (no network) ------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: a.drms.Series("not a series"),
    lambda: a.drms.Segment("bad name!"),
    lambda: a.drms.PrimeKey("HARPNUM", "[1]"),
    lambda: a.drms.Keys(""),
    lambda: a.drms.Notify("nobody"),
    lambda: a.drms.Protocol("jpg"),
    lambda: a.drms.Method("ftp"),
    lambda: a.drms.ExportID("JSOC_12"),
])
def test_attr_values_checked_at_construction(make):
    with pytest.raises(BadInputError):
        make()


def test_attrs_normalise():
    assert a.drms.Protocol("FITS").value == "fits"
    assert a.drms.Method("URL-TAR").value == "url-tar"
    assert a.drms.Keys("T_OBS, EXPTIME").value == ("T_OBS", "EXPTIME")
    assert a.drms.PrimeKey("HARPNUM", 7100).value == "7100"
    assert DRMSClient._attrs_module() == ("drms", "sunpy_archives.jsoc.attrs")
    assert "aia_lev1_euv_12s" in dir(a.drms.Series)


def test_walker_blocks_for_and_or():
    query = (a.drms.Series("aia.lev1_euv_12s") & DAY & a.drms.Segment("image") & a.drms.Segment("spikes")
             & (a.Wavelength(171 * u.AA) | a.Wavelength(193 * u.AA)))
    blocks = walker.create(query)
    assert len(blocks) == 2
    assert blocks[0]["segments"] == ["image", "spikes"]
    assert [b["wavelengths"][0][0] for b in blocks] == pytest.approx([171, 193])
    sunpy_style = walker.create(and_(a.drms.Series("hmi.m_720s"), a.jsoc.Segment("magnetogram"),
                                     a.jsoc.PrimeKey("CAMERA", 3), a.jsoc.Keyword("QUALITY") == 0,
                                     a.jsoc.Notify("user@example.com"), a.jsoc.Protocol("FITS"),
                                     a.Sample(1 * u.h), DAY))
    (block,) = sunpy_style
    assert block["primekeys"] == {"CAMERA": "3"} and block["filters"] == ["QUALITY = 0"]
    assert block["protocol"] == "fits" and block["sample"] == 3600 and block["notify"] == "user@example.com"


def test_routing_next_to_sunpy_jsoc_client():
    ours = (a.drms.Series("hmi.m_720s"), DAY)
    theirs = (a.jsoc.Series("hmi.m_720s"), DAY)
    assert DRMSClient._can_handle_query(*ours)
    assert not JSOCClient._can_handle_query(*ours)
    assert JSOCClient._can_handle_query(*theirs)
    assert not DRMSClient._can_handle_query(*theirs)
    # sunpy's own attrs alone never reach us
    assert not DRMSClient._can_handle_query(DAY, a.jsoc.Segment("image"))
    assert DRMSClient._can_handle_query(a.drms.ExportID("JSOC_20240101_1"))
    assert DRMSClient._can_handle_query(a.drms.Series("aia.lev1_euv_12s"), a.jsoc.Cutout(
        *_cutout_corners()), a.jsoc.Notify("user@example.com"))


def _cutout_corners():
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import frames

    bl = SkyCoord(-100 * u.arcsec, -100 * u.arcsec, obstime="2024-01-01", observer="earth",
                  frame=frames.Helioprojective)
    tr = SkyCoord(100 * u.arcsec, 100 * u.arcsec, obstime="2024-01-01", observer="earth",
                  frame=frames.Helioprojective)
    return bl, tr


# -- search against the local server -------------------------------------------------------------

def test_search_returns_keywords_without_staging(jsoc_env):
    res = Fido.search(DAY, a.drms.Series("aia.lev1_euv_12s"), a.Wavelength(171 * u.AA))
    table = res[0]
    assert len(table) == 11  # 00:00:00 .. 00:02:00 every 12 s, both ends included
    assert table["T_REC"][0] == Time("2024-01-01T00:00:00") and table["T_REC"][-1] == Time("2024-01-01T00:02:00")
    assert table["T_REC"].scale == "utc"
    assert set(table["WAVELNTH"]) == {171}
    assert table["QUALITY"].dtype.kind == "i"
    assert "Record" in table.hide_keys
    assert not jsoc_env.state.requests  # nothing staged


def test_search_hmi_time_scale_and_hex_quality(jsoc_env):
    table = Fido.search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"), a.drms.Series("hmi.m_720s"))[0]
    assert table["T_REC"].scale == "tai"
    # UTC 00:00 is TAI 00:00:35, so the first slot is 00:12:00 TAI
    assert table["T_REC"][0].isot == "2014-01-01T00:12:00.000"
    assert table["QUALITY"].dtype.kind == "i" and set(np.unique(table["QUALITY"])) <= {0, 1024}


def test_sample_keys_primekey_and_keyword_filter(jsoc_env):
    table = Fido.search(a.Time("2024-01-01", "2024-01-01 01:00"), a.drms.Series("aia.lev1_euv_12s"),
                        a.drms.PrimeKey("WAVELNTH", "171,193"), a.Sample(10 * u.min),
                        a.drms.Keys("FSN"), a.jsoc.Keyword("QUALITY") == 0)[0]
    assert set(table["WAVELNTH"]) == {171, 193}
    assert "FSN" in table.colnames and "EXPTIME" not in table.colnames
    assert len(table) <= 14 and len(table) >= 10
    all_keys = Fido.search(DAY, a.drms.Series("aia.lev1_euv_12s"), a.Wavelength(171 * u.AA),
                           a.drms.Keys("**ALL**"))[0]
    assert {"DATAMEAN", "FSN", "EXPTIME", "T_OBS"} <= set(all_keys.colnames)


def test_or_of_series(jsoc_env):
    res = Fido.search(DAY & (a.drms.Series("hmi.v_45s") | a.drms.Series("hmi.m_720s")))
    assert len(res) == 2
    v45, m720 = res[0], res[1]
    # 00:00-00:02 UTC is 00:00:37-00:02:37 TAI: three 45 s slots, no 720 s slot
    assert list(v45["Series"]) == ["hmi.v_45s"] * 3
    assert [t.isot for t in v45["T_REC"]] == ["2024-01-01T00:00:45.000", "2024-01-01T00:01:30.000",
                                               "2024-01-01T00:02:15.000"]
    assert len(m720) == 0 and "T_REC" in m720.colnames


def test_sharp_by_harpnum(jsoc_env):
    table = Fido.search(a.drms.Series("hmi.sharp_720s"), a.drms.PrimeKey("HARPNUM", 7100),
                        a.Time("2018-10-28T00:00", "2018-10-28T01:00"))[0]
    assert set(table["HARPNUM"]) == {7100} and len(table) == 5
    assert table.colnames[:3] == ["Series", "HARPNUM", "T_REC"]


def test_bad_input_fails_clearly(jsoc_env):
    with pytest.raises(UnknownValueError, match="hmi.m_72s.*did you mean hmi.m_720s"):
        Fido.search(DAY, a.drms.Series("hmi.m_72s"))
    with pytest.raises(BadInputError, match="'HARPNUM' is not a prime key of hmi.m_720s"):
        Fido.search(DAY, a.drms.Series("hmi.m_720s"), a.drms.PrimeKey("HARPNUM", 1))
    with pytest.raises(BadInputError, match="JSOC refused the query.*cannot parse"):
        Fido.search(a.drms.Series("hmi.m_720s"), a.drms.PrimeKey("T_REC", "not-a-time"))
    with pytest.raises(BadInputError, match="no segment 'image'"):
        Fido.search(DAY, a.drms.Series("hmi.m_720s"), a.drms.Segment("image"))
    with pytest.raises(BadInputError, match="constrain at least one prime key"):
        Fido.search(a.drms.Series("hmi.m_720s"))
    with pytest.raises(BadInputError, match="not registered"):
        Fido.search(DAY, a.drms.Series("hmi.m_720s"), a.drms.Notify("stranger@example.com"))
    with pytest.raises(BadInputError, match="needs a.drms.Series"):
        Fido.search(DAY, a.drms.Segment("image"))
    with pytest.raises(BadInputError, match="url_quick"):
        Fido.search(DAY, a.drms.Series("hmi.m_720s"), a.drms.Method("url_quick"), a.drms.Protocol("fits"))


def test_bad_time_fails_before_network():
    with pytest.raises(ValueError):
        a.Time("2024-13-45", "2024-01-01")


def test_helpers_with_drms_parity(jsoc_env):
    client = DRMSClient()
    assert client.pkeys("hmi.sharp_720s") == ["HARPNUM", "T_REC"]
    assert "USFLUX" in client.keys("hmi.sharp_720s")
    assert list(client.segments("hmi.m_720s").index) == ["magnetogram"]
    assert client.series(r"hmi\.m_") == ["hmi.M_720s"]
    assert client.check_email("user@example.com") and not client.check_email("x@example.com")
    assert client.url == jsoc_env.root


def test_search_retries_transient_failures(jsoc_env, jsoc_faults):
    jsoc_faults.configure(fail_first=2, statuses=(503,), retry_after=0.01, classes={"search"})
    table = Fido.search(DAY, a.drms.Series("hmi.v_45s"))[0]
    assert len(table) > 0 and jsoc_faults.failures_injected >= 2


def test_import_is_offline_and_light():
    import subprocess
    import sys

    child = (
        "import socket, sys\n"
        "def refuse(*a, **k):\n    raise AssertionError('network access during import')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\nsocket.getaddrinfo = refuse\n"
        "import sunpy.net\nbefore = set(sys.modules)\n"
        "import sunpy_archives.jsoc\nfrom sunpy.net import Fido, attrs as a\n"
        "assert sunpy_archives.jsoc.DRMSClient in Fido.registry and hasattr(a.drms, 'ExportID')\n"
        "heavy = [m for m in ('drms', 'pandas', 'pyarrow', 'tqdm', 'aiohttp.web', 'sunpy_archives.testing')\n"
        "         if m in sys.modules and m not in before]\n"
        "print('heavy:', ','.join(heavy))\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "heavy:"
