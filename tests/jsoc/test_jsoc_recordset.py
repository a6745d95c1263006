"""Record-set building and compaction (pure, offline)."""

import pytest
from astropy.time import Time

from sunpy_archives.core.errors import BadInputError
from sunpy_archives.jsoc.recordset import (compact, drms_time, parse_times, query_spec, record_keys,
                                           tai_string, to_tai_seconds)
from sunpy_archives.testing.jsoc import parse_recordset, select

T0 = to_tai_seconds(Time("2024-01-01T00:00:00", scale="utc"))[()]


def test_drms_time_and_back():
    assert drms_time(Time("2014-01-01T00:00:00")) == "2014.01.01_00:00:35_TAI"
    assert tai_string(T0) == "2024.01.01_00:00:37_TAI"
    assert parse_times(["2014.01.01_00:00:45_TAI"]).scale == "tai"
    utc = parse_times(["2014-01-01T00:00:12Z", "MISSING"])
    assert utc.scale == "utc" and utc.mask[1] and not utc.mask[0]


def test_query_spec_orders_brackets_and_rejects_unknown_keys():
    spec = query_spec("hmi.sharp_720s", ["HARPNUM", "T_REC"], {"T_REC": "2018.10.28_TAI/1d"},
                      segments=["bitmap", "magnetogram"])
    assert spec == "hmi.sharp_720s[][2018.10.28_TAI/1d]{bitmap,magnetogram}"
    with pytest.raises(BadInputError, match="not a prime key"):
        query_spec("hmi.m_720s", ["T_REC", "CAMERA"], {"HARPNUM": "1"})


def _rows(times, wl="171"):
    return [(t, wl) for t in times]


def test_every_other_record_of_a_day_is_one_range():
    rows = _rows([T0 + 24 * i for i in range(3600)])
    specs = compact("aia.lev1_euv_12s", ["T_REC", "WAVELNTH"], rows, step=12, segments=["image"])
    assert len(specs) == 1 and "@24s" in specs[0] and specs[0].count("[") == 2
    (rs,) = parse_recordset(specs[0])
    assert len(select(rs)) == 3600


def test_runs_lists_and_wavelength_merge_select_exactly_the_rows():
    times = [T0, T0 + 12, T0 + 24, T0 + 36, T0 + 120, T0 + 600]
    rows = _rows(times, "171") + _rows(times, "193") + _rows([T0 + 48], "211")
    specs = compact("aia.lev1_euv_12s", ["T_REC", "WAVELNTH"], rows, step=12)
    assert len(specs) == 1
    selected = set()
    for rs in parse_recordset(specs[0]):
        records = select(rs)
        selected |= {(float(t), int(v)) for t, v in zip(records.t_rec, records.variant)}
    # the server works in UTC seconds for AIA: compare counts and wavelengths
    assert len(selected) == len(rows)
    assert {v for _, v in selected} == {171, 193, 211}


def test_long_lists_are_split():
    rows = _rows([T0 + 12 * i * i for i in range(400)])  # no runs at all
    specs = compact("aia.lev1_euv_12s", ["T_REC", "WAVELNTH"], rows, step=12, max_length=1000)
    assert len(specs) > 1 and all(len(s) <= 1000 for s in specs)
    total = sum(len(select(rs)) for s in specs for rs in parse_recordset(s))
    assert total == 400


def test_series_without_time_key_and_sharp_order():
    rows = [("7100", T0), ("7101", T0)]
    specs = compact("hmi.sharp_720s", ["HARPNUM", "T_REC"], [(h, t) for h, t in rows], step=720)
    assert specs == [f"hmi.sharp_720s[7100,7101][{tai_string(T0)}]"]


def test_record_keys():
    assert record_keys("hmi.M_720s[2014.01.01_00:00:00_TAI][3]{magnetogram}") == (
        "hmi.M_720s", ["2014.01.01_00:00:00_TAI", "3"], "magnetogram")
    assert record_keys("") == ("", [], None)
