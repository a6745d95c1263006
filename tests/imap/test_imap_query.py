"""Searching the IMAP SDC through Fido: routing, every attr, clear errors before the network."""

import astropy.units as u
import imap_data_access
import numpy as np
import pytest
import sunpy.net.attrs as a
from astropy.time import Time
from sunpy.net import Fido

import sunpy_archives.imap as imap
from sunpy_archives.core.errors import BadInputError, SearchError
from sunpy_archives.imap import AuthenticationError, IMAPClient
from sunpy_archives.imap.client import plan_block, walker
from sunpy.net.attr import and_


@pytest.fixture
def official(imap_env):
    saved = dict(imap_data_access.config)
    imap_data_access.config.update(DATA_ACCESS_URL=imap_env.url, API_KEY=None, ACCESS_TOKEN=None)
    try:
        yield imap_data_access
    finally:
        imap_data_access.config.clear()
        imap_data_access.config.update(saved)


def _names(table):
    return sorted(table["Filename"])


def test_routing_needs_an_imap_attr(imap_env):
    assert IMAPClient._can_handle_query(a.Instrument("mag"), a.imap.Descriptor("norm-rtn"))
    assert not IMAPClient._can_handle_query(a.Instrument("mag"), a.Time("2025-01-01", "2025-01-02"))
    assert not IMAPClient._can_handle_query(a.imap.Descriptor("x"), a.Wavelength(1 * u.nm))
    res = Fido.search(a.Instrument("mag"), a.imap.Table("science"), a.Time("2025-01-02", "2025-01-02"))
    assert len(res) == 1 and isinstance(res[0].client, IMAPClient)


def test_registered_values_are_discoverable():
    assert "science" in str(a.imap.Table) and "leapseconds" in str(a.imap.KernelType)
    values = IMAPClient.register_values()
    assert {v for v, _ in values[a.Instrument]} >= {"mag", "swe", "glows"}
    assert "latest" in {v for v, _ in values[a.imap.Version]}


def test_time_includes_both_days_and_matches_official(imap_env, official):
    res = Fido.search(a.Instrument("mag"), a.Level("l2"), a.imap.Descriptor("norm-rtn"),
                      a.Time("2025-01-03 10:00", "2025-01-05 01:00"))[0]
    days = set(res["Start Time"].strftime("%Y%m%d"))
    assert days == {"20250103", "20250104", "20250105"}
    expected = official.query(instrument="mag", data_level="l2", descriptor="norm-rtn",
                              start_date="20250103", end_date="20250105")
    assert _names(res) == sorted(r["file_path"].rsplit("/", 1)[1] for r in expected)
    assert set(res["SDC Dir"]) == {"imap/mag/l2/2025/01"}


@pytest.mark.parametrize("attrs, kwargs", [
    ((a.Instrument("swe"), a.imap.Version("latest")), dict(instrument="swe", version="latest")),
    ((a.Instrument("swe"), a.imap.Version("v002")), dict(instrument="swe", version="v002")),
    ((a.Instrument("mag"), a.imap.MajorVersion(2)), dict(instrument="mag", major_version=2)),
    ((a.Instrument("mag"), a.imap.MajorVersion(1), a.imap.MinorVersion(2)),
     dict(instrument="mag", major_version=1, minor_version=2)),
    ((a.Instrument("glows"), a.imap.Repointing("repoint00004")),
     dict(instrument="glows", repointing="repoint00004")),
    ((a.Instrument("hi"), a.imap.Repointing(4)), dict(instrument="hi", repointing=4)),
    ((a.Instrument("swe"), a.imap.Extension("pkts")), dict(instrument="swe", extension="pkts")),
    ((a.imap.Table("ancillary"), a.Instrument("mag")), dict(table="ancillary", instrument="mag")),
    ((a.imap.Table("ancillary"), a.imap.Version("latest"), a.Instrument("swe")),
     dict(table="ancillary", instrument="swe", version="latest")),
    ((a.Instrument("hit"), a.imap.IngestionTime("2025-01-05", "2025-01-07")),
     dict(instrument="hit", ingestion_start_date="20250105", ingestion_end_date="20250107")),
])
def test_each_attr_agrees_with_official(imap_env, official, attrs, kwargs):
    res = Fido.search(*attrs)[0]
    expected = official.query(**kwargs)
    assert len(res) > 0
    assert _names(res) == sorted(r["file_path"].rsplit("/", 1)[1] for r in expected)


def test_ingestion_time_semantics(imap_env):
    res = Fido.search(a.Instrument("hit"), a.imap.IngestionTime("2025-01-05", "2025-01-07"))[0]
    days = set(res["Ingestion Date"].strftime("%Y%m%d"))
    assert days <= {"20250105", "20250106", "20250107"} and "20250107" in days


def test_spice_kernels_by_type(imap_env, official):
    res = Fido.search(a.imap.KernelType("attitude_history"), a.Time("2025-01-03", "2025-01-04"))[0]
    expected = official.spice_query(type="attitude_history", start_date="20250103", end_date="20250104")
    assert _names(res) == sorted(r["file_name"] for r in expected) and len(res) > 0
    assert set(res["SDC Dir"]) == {"imap/spice/ck"} and set(res["Kernel Type"]) == {"attitude_history"}
    latest = Fido.search(a.imap.Table("spice"), a.imap.KernelType("attitude_history"),
                         a.imap.Version("latest"), a.Time("2025-01-01", "2025-01-10"))[0]
    assert 0 < len(latest) < len(Fido.search(a.imap.KernelType("attitude_history"),
                                             a.Time("2025-01-01", "2025-01-10"))[0])


def test_filename_finds_exactly_one(imap_env):
    for record in (imap_env.data.science[40], imap_env.data.ancillary[3]):
        name = record["file_path"].rsplit("/", 1)[1]
        res = Fido.search(a.imap.Filename(name))[0]
        assert list(res["Filename"]) == [name]
        assert res["SDC Dir"][0] == record["file_path"].rsplit("/", 1)[0]
    kernel = imap_env.data.spice[-1]["file_name"]
    assert list(Fido.search(a.imap.Filename(kernel))[0]["Filename"]) == [kernel]


def test_or_gives_one_table(imap_env):
    either = a.Instrument("swe") | a.Instrument("swapi")
    res = Fido.search(a.imap.Descriptor("sci"), a.Time("2025-01-02", "2025-01-02"), either)
    assert len(res) == 2  # Fido asks once per OR branch
    assert set(res[0]["Instrument"]) == {"swe"} and set(res[1]["Instrument"]) == {"swapi"}
    own = IMAPClient().search(a.imap.Descriptor("sci") & a.Time("2025-01-02", "2025-01-02") & either)
    assert set(own["Instrument"]) == {"swe", "swapi"}  # the client stacks its own OR branches


@pytest.mark.parametrize("attrs, match", [
    ((a.Instrument("aia"), a.imap.Descriptor("x")), "not an IMAP instrument"),
    ((a.Instrument("mag"), a.Level("l9")), "not an IMAP data level"),
    ((a.Instrument("mag"), a.imap.Version("v1")), "not an IMAP version"),
    ((a.Instrument("mag"), a.imap.Version("latest"), a.imap.Table("bogus")), "not an SDC table"),
    ((a.Instrument("mag"), a.imap.MajorVersion("one")), "not a whole number"),
    ((a.Instrument("mag"), a.imap.Repointing("repoint12")), "repoint"),
    ((a.Instrument("mag"), a.imap.Extension("fits")), "file extension"),
    ((a.imap.Table("ancillary"), a.imap.Extension("pkts")), "file extension"),
    ((a.imap.Descriptor("a_b"),), "hold no '_'"),
    ((a.imap.Version("latest"),), "one other parameter"),
    ((a.imap.KernelType("nope"),), "not a kernel type"),
    ((a.imap.Table("spice"),), "needs a kernel type"),
    ((a.imap.KernelType("leapseconds"), a.Instrument("mag")), "does not apply to SPICE"),
    ((a.Instrument("mag"), a.imap.KernelType("leapseconds"), a.imap.Table("science")), "SPICE table only"),
    ((a.imap.Filename("imap_mag_l2_x_2025_v001.cdf"),), "not a valid IMAP file name"),
    ((a.imap.Filename("imap_mag_l2_x_20250101_v001.cdf"), a.Instrument("mag")), "names one file"),
])
def test_bad_input_fails_before_network(imap_env, attrs, match):
    with pytest.raises(BadInputError, match=match):
        IMAPClient().search(*attrs)
    assert imap_env.seen == []


def test_ingestion_time_bad_values():
    with pytest.raises(BadInputError):
        a.imap.IngestionTime("yesterday-ish")
    with pytest.raises(BadInputError, match="before the start"):
        a.imap.IngestionTime("2025-01-05", "2025-01-01")


def test_walker_blocks_are_pure():
    blocks = walker.create(and_(a.Instrument("MAG"), a.Level("L2"), a.imap.Version("latest"),
                                a.Time("2025-01-01", "2025-01-31")))
    assert plan_block(blocks[0]) == ("query", {
        "table": "science", "instrument": "mag", "data_level": "l2", "start_date": "20250101",
        "end_date": "20250131", "latest": "true"})


def test_environment_read_at_construction(imap_env, monkeypatch):
    client = IMAPClient()
    assert client.api.url == imap_env.url
    monkeypatch.setenv("IMAP_DATA_ACCESS_URL", "http://127.0.0.1:9")
    assert IMAPClient().api.url == "http://127.0.0.1:9"
    assert len(client.search(a.Instrument("mag"), a.imap.Descriptor("raw"))) > 0  # still its server
    monkeypatch.setenv("IMAP_API_KEY", "k-123")
    assert IMAPClient().api.base_url == "http://127.0.0.1:9/api-key"
    assert IMAPClient(url="http://127.0.0.1:9/api-key").api.base_url == "http://127.0.0.1:9/api-key"


def test_unreachable_server_names_the_variable(imap_env, monkeypatch):
    monkeypatch.setenv("IMAP_DATA_ACCESS_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    with pytest.raises(SearchError, match="IMAP_DATA_ACCESS_URL"):
        IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))


def test_key_sent_to_query_and_bad_key_is_clear(imap_env, monkeypatch):
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    assert len(IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))) > 0
    assert imap_env.seen[-1][1:] == ("/api-key/query", "x-api-key")
    monkeypatch.setenv("IMAP_API_KEY", "secret-but-wrong")
    with pytest.raises(AuthenticationError) as info:
        IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))
    assert "403" in str(info.value) and "secret-but-wrong" not in str(info.value)
    assert "IMAP_API_KEY" in str(info.value)


def test_access_token(imap_env, monkeypatch):
    monkeypatch.setenv("IMAP_ACCESS_TOKEN", sorted(imap_env.data.access_tokens)[0])
    assert len(imap.query(instrument="mag", descriptor="raw")) > 0
    assert imap_env.seen[-1][1:] == ("/authorized/query", "bearer")


def test_table_columns_and_types(imap_env):
    res = IMAPClient().search(a.Instrument("glows"), a.Level("l3e"), a.Time("2025-01-02", "2025-01-03"))
    for column in ("Instrument", "Level", "Descriptor", "Start Time", "End Time", "Version",
                   "Repointing", "Filename", "Ingestion Date", "SDC Dir"):
        assert column in res.colnames
    assert isinstance(res["Start Time"], Time) and np.all(res["Repointing"] > 0)
    assert np.all(res["End Time"] > res["Start Time"])
    assert "sdc_dir" in res[0].response_block_map


def test_non_fido_query_matches_official(imap_env, official):
    ours = imap.query(instrument="swapi", start_date="20250104", end_date="20250106", version="latest")
    theirs = official.query(instrument="swapi", start_date="20250104", end_date="20250106",
                            version="latest")
    assert ours == theirs and ours
    assert imap.spice_query(type="leapseconds") == official.spice_query(type="leapseconds")


def test_key_not_in_any_log_line(imap_env, monkeypatch, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("IMAP_API_KEY", imap_env.api_key)
    imap.query(instrument="mag", descriptor="raw")
    IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))
    assert caplog.records and imap_env.api_key not in caplog.text


def test_transient_search_failures_are_retried(imap_env, imap_faults):
    imap_faults.configure(fail_first=2, statuses=(503,), classes=frozenset({"search"}))
    res = IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))
    assert len(res) > 0 and imap_faults.failures_injected == 2


def test_server_error_is_a_search_error(imap_env, imap_faults, monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    imap_faults.configure(fail_rate=1.0, statuses=(500,), classes=frozenset({"search"}))
    with pytest.raises(SearchError, match="500"):
        IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw"))
