"""The local JSOC server speaks the protocol drms uses: drms.Client drives it unchanged."""

import json
import urllib.request
from pathlib import Path

import drms
import numpy as np
import pytest
from astropy.io import fits

from sunpy_archives.testing.jsoc import (RecordSetError, parse_recordset, select, start_jsoc_server,
                                         tai_minus_utc)
# until the shared plugin registers them:

EMAIL = "user@example.com"


@pytest.fixture
def server(jsoc_server, jsoc_faults):
    return jsoc_server


@pytest.fixture
def client(server):
    return drms.Client(server.server_config(), email=EMAIL)


def _get(url):
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read().decode("latin1"))


def test_series_pkeys_keys_info(client):
    names = client.series()
    assert "aia.lev1_euv_12s" in names and "hmi.sharp_720s" in names
    assert client.series(r"hmi\.sharp") == ["hmi.sharp_720s"]
    full = client.series("hmi", full=True)
    assert list(full.columns) == ["name", "primekeys", "note"]
    assert full.set_index("name").loc["hmi.sharp_720s", "primekeys"] == ["HARPNUM", "T_REC"]
    assert client.pkeys("hmi.m_720s") == ["T_REC", "CAMERA"]
    assert client.pkeys("AIA.LEV1_EUV_12S") == ["T_REC", "WAVELNTH"]
    assert "EXPTIME" in client.keys("aia.lev1_euv_12s")
    info = client.info("hmi.sharp_720s")
    assert list(info.segments.index) == ["magnetogram", "bitmap", "continuum"]
    assert info.keywords.loc["T_REC", "is_time"] and info.keywords.loc["HARPNUM", "is_integer"]


def test_showextseries_wrapper(server):
    config = server.server_config()
    config = drms.ServerConfig(config.to_dict() | {"name": "WRAP", "cgi_show_series_wrapper": "showextseries",
                                                   "show_series_wrapper_dbhost": "hmidb2"})
    wrapped = drms.Client(config)
    assert "hmi.V_45s" in wrapped.series(r"hmi\.V")
    assert list(wrapped.series("aia", full=True)["name"]) == ["aia.lev1_euv_12s"]


def test_query_one_day_of_aia_at_one_wavelength(client):
    keys = client.query("aia.lev1_euv_12s[2024.01.01_00:00:00_TAI/1d][171]", key="T_REC,WAVELNTH,QUALITY")
    assert len(keys) == 7200
    assert set(keys.WAVELNTH) == {171}
    # TAI 2024.01.01_00:00:00 is 23:59:23 UTC; AIA T_REC is UTC in ISO form
    assert keys.T_REC.iloc[0] == "2023-12-31T23:59:24Z"
    steps = np.diff(drms.to_datetime(keys.T_REC).to_numpy()).astype("timedelta64[s]").astype(int)
    assert set(steps) == {12}


def test_query_with_segments_rec_index_and_hex_quality(client):
    keys, segs = client.query("hmi.m_720s[2014.01.01_TAI/1h]", key="**ALL**", seg="magnetogram",
                              rec_index=True, convert_numeric=False)
    assert len(keys) == 5 and list(keys.index)[0] == "hmi.M_720s[2014.01.01_00:00:00_TAI][3]"
    assert keys.columns[0] == "T_REC" and "CRLN_OBS" in keys.columns
    assert all(v.startswith("0x") for v in keys.QUALITY)
    assert all(p.startswith("/SUM") and p.endswith("/magnetogram.fits") for p in segs.magnetogram)
    # a stored segment can be fetched directly: bare data, no keyword header
    url = client._server.http_download_baseurl + segs.magnetogram.iloc[0].lstrip("/")
    with urllib.request.urlopen(url) as response:
        data = response.read()
    header = fits.Header.fromstring(data[:2880])
    assert "T_REC" not in header and header["NAXIS"] == 2


def test_query_lists_cadence_filter_and_limits(client):
    keys = client.query("aia.lev1_euv_12s[2014-01-01T00:00:00Z-2014-01-01T00:10:00Z@1m][171,193]",
                        key="T_REC,WAVELNTH")
    assert len(keys) == 22 and set(keys.WAVELNTH) == {171, 193}
    good = client.query("aia.lev1_euv_12s[2014.01.01_TAI/1h][171][? QUALITY = 0 ?]", key="QUALITY")
    everything = client.query("aia.lev1_euv_12s[2014.01.01_TAI/1h][171]", key="QUALITY")
    assert (good.QUALITY == 0).all() and 0 < len(good) < len(everything) == 300
    assert len(client.query("aia.lev1_euv_12s[2014.01.01_TAI/1h][171]", key="T_REC", n=3)) == 3
    last = client.query("aia.lev1_euv_12s[2014.01.01_TAI/1h][171]", key="T_REC", n=-2)
    times = client.query("aia.lev1_euv_12s[2014.01.01_TAI/1h][171]", key="T_REC")
    assert list(last.T_REC) == list(times.T_REC.iloc[-2:])
    sharp = client.query("hmi.sharp_720s[7100][]", key="HARPNUM,T_REC,NOAA_AR")
    assert len(sharp) == 1200 and set(sharp.HARPNUM) == {7100}
    assert client.query("hmi.m_720s[2030.01.01_TAI/1d]", key="T_REC").empty


def test_unknown_key_and_segment_placeholders(client):
    keys, segs = client.query("hmi.m_720s[2014.01.01_TAI/24m]", key="NOPE", seg="nope",
                              convert_numeric=False)
    assert set(keys.NOPE) == {"Invalid KeyLink"} and set(segs.nope) == {"InvalidSegName"}


def test_query_errors(client):
    with pytest.raises(drms.DrmsQueryError, match="not found"):
        client.info("hmi.nothing")
    with pytest.raises(drms.DrmsQueryError, match="cannot parse"):
        client.query("hmi.m_720s[yesterday]", key="T_REC")
    with pytest.raises(drms.DrmsQueryError, match="too large"):
        client.query("aia.lev1_euv_12s[][171]", key="T_REC")


def test_rs_summary(server):
    answer = _get(server.cgi_url + "jsoc_info?op=rs_summary&ds=hmi.m_720s%5B2014.01.01_TAI%2F1d%5D")
    assert answer == {"count": 120, "runtime": answer["runtime"], "status": 0}


def test_check_address(client, server):
    assert client.check_email(EMAIL)
    assert not client.check_email("stranger@example.com")
    with pytest.raises(ValueError, match="not registered"):
        drms.Client(server.server_config(), email="stranger@example.com")
    bad = _get(server.cgi_url + "checkAddress.sh?address=nonsense&checkonly=1")
    assert bad["status"] == -2


def test_export_url_quick_as_is_is_immediate_and_downloads(client, tmp_path):
    request = client.export("hmi.m_720s[2014.01.01_TAI/1h]{magnetogram}")
    assert request.status == 0 and request.id is None
    assert len(request.urls) == 5
    out = request.download(tmp_path)
    names = sorted(Path(p).name for p in out.download)
    assert names[0] == "hmi.m_720s.20140101_000000_TAI.3.magnetogram.fits"
    assert all(fits.getdata(tmp_path / n).shape == (32, 32) for n in names)


def test_export_url_fits_pending_then_done(client, server, tmp_path, monkeypatch):
    server.state.pending_polls = 3
    request = client.export("hmi.m_720s[2014.01.01_TAI/1h]{magnetogram}", method="url", protocol="fits")
    assert request.status == 2 and request.id.startswith("JSOC_")
    seen = []
    monkeypatch.setattr(drms.client.time, "sleep", lambda s: seen.append(s))
    assert request.wait(sleep=0.01)
    assert len(seen) == 4  # three pending answers, the fourth poll finds it done
    assert server.state.exports[request.id].polls_seen == 3
    answer = request._d
    assert answer["status"] == "0" and answer["count"] == "5" and answer["size"]
    assert answer["dir"].startswith("/SUM") and answer["keywords"] == "**IN FITS FILES**"
    out = request.download(tmp_path)
    first = sorted(out.download)[0]
    header = fits.getheader(first)
    assert header["T_REC"] == "2014.01.01_00:00:00_TAI" and header["CAMERA"] == 3
    assert Path(first).name == "hmi.m_720s.20140101_000000_TAI.3.magnetogram.fits"


def test_export_url_tar(client, server, monkeypatch, tmp_path):
    import tarfile

    server.state.pending_polls = 0
    monkeypatch.setattr(drms.client.time, "sleep", lambda s: None)
    request = client.export("hmi.m_720s[2014.01.01_TAI/36m]{magnetogram}", method="url-tar", protocol="fits")
    request.wait(sleep=0)
    assert len(request.urls) == 1 and request.urls.url[0].endswith(f"{request.id}.tar")
    out = request.download(tmp_path)
    with tarfile.open(out.download[0]) as tar:
        names = tar.getnames()
    assert "index.json" in names and len(names) == 4


def test_export_errors(client, server):
    request = client.export("hmi.nothing[2014.01.01_TAI]", method="url", protocol="fits")
    with pytest.raises(drms.DrmsExportError, match="does not exist"):
        request.wait(sleep=0)
    server.state.max_export_mb = 10
    big = client.export("hmi.m_720s[2014.01.01_TAI/1d]{magnetogram}", method="url", protocol="fits")
    assert big.status == 3 and big.id == "VOID"
    with pytest.raises(drms.DrmsExportError, match="exceeds max byte limit"):
        big.wait(sleep=0)
    server.state.max_export_mb = 100_000
    unregistered = client.export("hmi.m_720s[2014.01.01_TAI/1h]", method="url", protocol="fits",
                                 email="stranger@example.com")
    with pytest.raises(drms.DrmsExportError, match="Cannot process your request"):
        unregistered.wait(sleep=0)
    with pytest.raises(drms.DrmsExportError, match="Bad RequestID"):
        client.export_from_id("nonsense").wait(sleep=0)
    with pytest.raises(drms.DrmsExportError, match="invalid export DRMS record"):
        client.export_from_id("JSOC_20200101_1").wait(sleep=0)


def test_pending_refusal_identical_reuse_and_failure(client, server, monkeypatch):
    monkeypatch.setattr(drms.client.time, "sleep", lambda s: None)
    first = client.export("hmi.m_720s[2014.01.01_TAI/1h]{magnetogram}", method="url", protocol="fits")
    again = client.export("hmi.m_720s[2014.01.01_TAI/1h]{magnetogram}", method="url", protocol="fits")
    assert again.id == first.id and again.status == 2
    other = client.export("hmi.m_720s[2014.01.02_TAI/1h]{magnetogram}", method="url", protocol="fits")
    assert other.status == 7
    with pytest.raises(drms.DrmsExportError, match=rf"pending export requests \({first.id}\)"):
        other.wait(sleep=0)
    first.wait(sleep=0)
    server.state.fail_next = "RecordSet specified does not exist"
    failing = client.export("hmi.m_720s[2014.01.03_TAI/1h]{magnetogram}", method="url", protocol="fits")
    with pytest.raises(drms.DrmsExportError, match="RecordSet specified does not exist"):
        failing.wait(sleep=0)


def test_record_set_parser_units():
    (rs,) = parse_recordset("aia.lev1_euv_12s[2014.01.01_TAI/1h@6m][171,193-211]{image}")
    assert rs.segments == ["image"]
    records = select(rs)
    assert len(records) == 10 * 3
    both = parse_recordset("hmi.m_720s[2014.01.01_TAI/1h],hmi.m_720s[2014.01.02_TAI/1h]")
    assert [len(select(r)) for r in both] == [5, 5]
    with pytest.raises(RecordSetError):
        parse_recordset("hmi.m_720s[2014.01.01_TAI][3][4]")
    with pytest.raises(RecordSetError):
        parse_recordset("hmi.nothing[2014]")
    assert tai_minus_utc(1_700_000_000) == 37


def test_faults_apply_to_data_and_staging_classes():
    server = start_jsoc_server()
    try:
        server.faults.configure(fail_first=1, classes={"search"})
        url = server.cgi_url + "jsoc_info?op=series_struct&ds=hmi.m_720s"
        with pytest.raises(urllib.error.HTTPError):
            _get(url)
        assert _get(url)["primekeys"] == ["T_REC", "CAMERA"]
    finally:
        server.stop()
