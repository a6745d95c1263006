"""DRMSClient.fetch: exact-row exports, polling, refusals, splits, timeouts, export IDs."""

import tarfile
from pathlib import Path

import astropy.units as u
import drms
import parfive
import pytest
from astropy.io import fits
from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives.jsoc  # noqa: F401
from sunpy_archives.core.errors import ArchiveWarning, BadInputError
from sunpy_archives.jsoc import DRMSClient
from sunpy_archives.testing.jsoc import parse_recordset, select

FAST = {"poll_first": 0.05, "progress": False}
TEN_MIN = a.Time("2024-01-01T00:00:00", "2024-01-01T00:10:00")


def _aia(time=TEN_MIN, *extra):
    return Fido.search(time, a.drms.Series("aia.lev1_euv_12s"), a.Wavelength(171 * u.AA),
                       a.drms.Segment("image"), *extra)[0]


def _hmi(hours=1, *extra):
    return Fido.search(a.Time("2014-01-01T00:00", f"2014-01-01T{hours:02d}:00"), a.drms.Series("hmi.m_720s"),
                       *extra)[0]


def _exported_records(server, index=-1):
    ds = server.state.requests[index]["ds"]
    names = set()
    for rs in parse_recordset(ds):
        records = select(rs)
        names |= {(int(r)) for r in records.recnum}
    return ds, names


def test_rows_0_and_2_of_four(jsoc_env, tmp_path):
    table = _hmi(1)[:4]
    subset = table[[0, 2]]
    files = Fido.fetch(subset, path=tmp_path, **FAST)
    assert not files.errors and len(files) == 2
    ds, recnums = _exported_records(jsoc_env)
    assert len(recnums) == 2 and len(jsoc_env.state.requests) == 1
    got = sorted(Path(f).name for f in files)
    expected = sorted("hmi.m_720s." + t.strftime("%Y%m%d_%H%M%S") + "_TAI.3.magnetogram.fits"
                      for t in subset["T_REC"])
    assert got == expected
    for f in files:
        header = fits.getheader(f)  # fits protocol: keywords in the header
        assert header["CAMERA"] == 3 and header["T_REC"].endswith("_TAI")


def test_every_other_row_of_a_day_is_one_compact_request(jsoc_env, tmp_path):
    day = _aia(a.Time("2024-01-01T00:00:00", "2024-01-01T23:59:59"))
    assert len(day) == 7200
    jsoc_env.state.max_export_mb = 10**7  # 3600 x 64 MB would be refused as too large by JSOC
    downloader = DRMSClient().fetch(day[::2], path=tmp_path, wait=False, **FAST)
    assert isinstance(downloader, parfive.Downloader)
    assert downloader.queued_downloads == 3600
    assert len(jsoc_env.state.requests) == 1
    ds, recnums = _exported_records(jsoc_env)
    assert len(recnums) == 3600 and "@24s" in ds and len(ds) < 200


def test_mixed_series_and_lists(jsoc_env, tmp_path):
    aia = _aia()
    hmi = _hmi(1)
    files = Fido.fetch(aia[[1, 5, 6, 7, 30]], hmi[[0, 3]], path=tmp_path, **FAST)
    assert not files.errors and len(files) == 7
    series = sorted({r["ds"].split("[")[0] for r in jsoc_env.state.requests})
    assert series == ["aia.lev1_euv_12s", "hmi.m_720s"]
    assert sum(len(_exported_records(jsoc_env, i)[1]) for i in range(2)) == 7


def test_as_is_url_quick_needs_no_staging_and_names_are_unique(jsoc_env, tmp_path):
    table = _aia(TEN_MIN, a.drms.Method("url_quick"), a.drms.Protocol("as-is"))
    files = Fido.fetch(table[:6], path=tmp_path, **FAST)
    assert len(files) == 6 and not files.errors
    assert jsoc_env.state.status_polls == 0  # done at once: nothing polled
    names = sorted(Path(f).name for f in files)
    assert len(set(names)) == 6 and names[0] == "aia.lev1_euv_12s.20240101T000000Z.171.image.fits"
    assert "T_REC" not in fits.getheader(files[0])  # as-is: bare stored file


def test_as_is_through_url_method(jsoc_env, tmp_path):
    table = _hmi(1, a.drms.Protocol("as-is"))
    files = Fido.fetch(table[:2], path=tmp_path, **FAST)
    assert len(files) == 2 and jsoc_env.state.requests[0]["method"] == "url"


def test_tar_export(jsoc_env, tmp_path):
    table = _hmi(1, a.drms.Method("url-tar"))
    files = Fido.fetch(table[:3], path=tmp_path, **FAST)
    assert len(files) == 1 and files[0].endswith(".tar")
    with tarfile.open(files[0]) as tar:
        assert len([n for n in tar.getnames() if n.endswith(".fits")]) == 3


def test_pending_then_ready_polls_until_done(jsoc_env, tmp_path):
    jsoc_env.state.pending_polls = 5
    files = DRMSClient(poll_first=0.01, poll_factor=1.2).fetch(_hmi(1)[:2], path=tmp_path, progress=False)
    assert len(files) == 2
    (export,) = jsoc_env.state.exports.values()
    assert export.polls_seen == 5 and jsoc_env.state.status_polls == 6


def test_pending_export_of_same_user_is_waited_for(jsoc_env, tmp_path):
    jsoc_env.state.pending_polls = 2
    other = drms.Client(jsoc_env.server_config(), email="user@example.com")
    blocking = other.export("hmi.m_720s[2015.01.01_TAI/1h]{magnetogram}", method="url", protocol="fits")
    assert blocking.status == 2
    files = Fido.fetch(_hmi(1)[:2], path=tmp_path, **FAST)
    assert len(files) == 2 and not files.errors
    refusals = [r for r in jsoc_env.state.requests if r["ds"].startswith("hmi.m_720s[2014")]
    assert len(refusals) == 2  # refused once (status 7), accepted after the other finished
    assert jsoc_env.state.exports[blocking.id].done


def test_failed_export_warns_with_jsoc_message_and_others_proceed(jsoc_env, tmp_path):
    jsoc_env.state.fail_next = "RecordSet specified does not exist"
    with pytest.warns(ArchiveWarning, match="RecordSet specified does not exist"):
        files = Fido.fetch(_hmi(1)[:2], _aia()[:3], path=tmp_path, **FAST)
    assert len(files) == 3 and not files.errors  # the AIA export went through, no fake errors


def test_too_large_export_is_split(jsoc_env, tmp_path):
    jsoc_env.state.max_export_mb = 100  # 32 MB per magnetogram: 5 records are too many
    with pytest.warns(ArchiveWarning, match="exceeds max byte limit"):
        files = Fido.fetch(_hmi(1)[:5], path=tmp_path, **FAST)
    assert len(files) == 5 and not files.errors
    assert len(jsoc_env.state.exports) >= 2
    assert all(e.size_mb <= 100 for e in jsoc_env.state.exports.values())


def test_timeout_warns_with_id_then_export_id_fetches_without_new_request(jsoc_env, tmp_path):
    jsoc_env.state.pending_polls = 1000
    with pytest.warns(ArchiveWarning, match=r"JSOC_\d{8}_\d+.*a\.drms\.ExportID") as record:
        files = Fido.fetch(_hmi(1)[:3], path=tmp_path, export_timeout=0.3, **FAST)
    assert len(files) == 0
    (requestid,) = jsoc_env.state.exports
    assert requestid in str(record[0].message)
    jsoc_env.state.exports[requestid].polls_needed = 0  # JSOC finishes it later
    submitted = len(jsoc_env.state.requests)
    res = Fido.search(a.drms.ExportID(requestid))
    table = res[0]
    assert len(table) == 3 and set(table["Export ID"]) == {requestid}
    files = Fido.fetch(res, path=tmp_path / "later", **FAST)
    assert len(files) == 3 and not files.errors
    assert all(Path(f).name.endswith(".3.magnetogram.fits") for f in files)
    assert len(jsoc_env.state.requests) == submitted  # no new export request


def test_export_id_of_a_multi_segment_export_keeps_names_apart(jsoc_env, tmp_path):
    table = Fido.search(a.drms.Series("hmi.sharp_720s"), a.drms.PrimeKey("HARPNUM", 7100),
                        a.Time("2018-10-28T00:00", "2018-10-28T00:30"))[0]
    files = Fido.fetch(table, path=tmp_path / "first", **FAST)
    assert len(files) == len(table) * 3  # every segment of each record
    (requestid,) = jsoc_env.state.exports
    again = Fido.fetch(Fido.search(a.drms.ExportID(requestid)), path=tmp_path / "again", **FAST)
    assert sorted(Path(f).name for f in again) == sorted(Path(f).name for f in files)


def test_unknown_export_id(jsoc_env):
    from sunpy_archives.core.errors import UnknownValueError

    with pytest.raises(UnknownValueError, match="invalid export DRMS record"):
        Fido.search(a.drms.ExportID("JSOC_20200101_1"))


def test_hostile_filenames_stay_in_folder(jsoc_env, tmp_path):
    jsoc_env.state.hostile_names = True
    target = tmp_path / "inside"
    files = Fido.fetch(_hmi(1)[:2], path=target, **FAST)
    assert len(files) == 2
    for f in files:
        assert Path(f).resolve().parent == target.resolve()
    assert not list(tmp_path.glob("*.fits"))


def test_transient_staging_errors_are_retried(jsoc_env, jsoc_faults, tmp_path):
    jsoc_faults.configure(fail_first=1, statuses=(503,), retry_after=0.01, classes={"staging"})
    files = Fido.fetch(_hmi(1)[:2], path=tmp_path, **FAST)
    assert len(files) == 2 and jsoc_faults.failures_injected >= 2


def test_missing_files_are_reported(jsoc_env, jsoc_faults, tmp_path):
    table = _hmi(1)[:3]
    jsoc_faults.configure(fail_rate=1.0, statuses=(404,), classes={"data"})
    with pytest.warns(ArchiveWarning, match="received 0 of 3 exported files"):
        results = DRMSClient().fetch(table, path=tmp_path, progress=False, poll_first=0.05)
    assert len(results.errors) == 3


def test_notify_required_and_checked(jsoc_env, tmp_path, monkeypatch):
    table = _hmi(1)[:1]
    monkeypatch.delenv("SUNPY_ARCHIVES_JSOC_EMAIL")
    with pytest.raises(BadInputError, match="registered e-mail"):
        Fido.fetch(table, path=tmp_path, **FAST)
    with pytest.raises(BadInputError, match="not registered"):
        DRMSClient(email="stranger@example.com").fetch(table, path=tmp_path, **FAST)
    assert not jsoc_env.state.requests
    files = Fido.fetch(_hmi(1, a.drms.Notify("other@example.com"))[:1], path=tmp_path, **FAST)
    assert len(files) == 1 and jsoc_env.state.requests[0]["notify"] == "other@example.com"


def test_cutout_is_sent_as_im_patch(jsoc_env, tmp_path):
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import frames

    bl = SkyCoord(-100 * u.arcsec, -100 * u.arcsec, obstime="2024-01-01", observer="earth",
                  frame=frames.Helioprojective)
    table = _aia(TEN_MIN, a.jsoc.Cutout(bl, width=200 * u.arcsec, height=200 * u.arcsec))
    files = Fido.fetch(table[:2], path=tmp_path, **FAST)
    assert len(files) == 2
    assert "im_patch" in jsoc_env.state.requests[0]["process=n"]


def test_sunpy_jsoc_client_against_the_local_server(jsoc_env, tmp_path, monkeypatch):
    """sunpy's JSOCClient works against the server after replacing drms's 'jsoc' registry entry."""
    import sunpy.net.jsoc.jsoc as sunpy_jsoc

    monkeypatch.setitem(drms.config._server_configs, "jsoc", jsoc_env.server_config("JSOC"))
    monkeypatch.setattr(sunpy_jsoc.time, "sleep", lambda s: None)
    monkeypatch.setattr(drms.client.time, "sleep", lambda s: None)
    res = Fido.search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"), a.jsoc.Series("hmi.m_720s"),
                      a.jsoc.Notify("user@example.com"))
    assert res[0].client.__class__.__name__ == "JSOCClient" and len(res[0]) == 5
    files = Fido.fetch(res, path=str(tmp_path / "{file}"), progress=False)
    assert len(files) == 5 and not files.errors


def test_stager_polls_with_short_growing_intervals(jsoc_env):
    from drms import HttpJsonClient

    from sunpy_archives.core.polling import Backoff
    from sunpy_archives.jsoc.export import ExportState, Stager, state_of

    jsoc_env.state.pending_polls = 4
    sleeps = []
    stager = Stager(HttpJsonClient(jsoc_env.server_config()), jsoc_env.root, budget=60,
                    backoff=Backoff(0.5, 2.0, 10.0), progress=False, sleep=sleeps.append)
    result = stager.stage("hmi.m_720s[2014.01.01_TAI/1h]{magnetogram}", "user@example.com")
    assert state_of(result.answer) is ExportState.DONE and len(result.files) == 5
    # first interval short, then growing, never above the server's own estimate ("wait")
    assert sleeps[:3] == [0.5, 1.0, 2.0] and len(sleeps) == 5 and max(sleeps) <= 2.0
    assert all(f.url.startswith(jsoc_env.root + "SUM") for f in result.files)


def test_one_connection_to_jsoc_even_with_fidos_downloader(jsoc_env, jsoc_faults, tmp_path):
    jsoc_faults.configure(bandwidth=100_000, classes={"data"})  # each file takes ~50 ms to send
    downloader = parfive.Downloader(max_conn=5, progress=False)
    table = _hmi(2)[:8]
    Fido.fetch(table, path=tmp_path, downloader=downloader, poll_first=0.05)
    assert len(list(tmp_path.glob("*.fits"))) == 8
    assert jsoc_env.state.max_active_downloads == 1
    jsoc_env.state.max_active_downloads = 0
    files = DRMSClient(max_conn=3).fetch(_hmi(2)[6:], path=tmp_path / "three", progress=False,
                                         poll_first=0.05)
    assert len(files) == 4 and 2 <= jsoc_env.state.max_active_downloads <= 3  # configurable
