"""SPICEClient through Fido, against the local SPICE release-tree server."""

import warnings

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
import sunpy.net.attrs as a
from astropy.time import Time
from sunpy.net import Fido
from sunpy.net.base_client import QueryResponseTable

import sunpy_archives  # noqa: F401  (registers a.spice)
from sunpy_archives.core.errors import ArchiveWarning, BadInputError, QuerySyntaxError, UnknownValueError
from sunpy_archives.spice import SPICEClient
from sunpy_archives.spice.client import normalise_level


@pytest.fixture
def catalog(spice_env):
    """The latest catalog as the server generated it (dates parsed)."""
    frame = spice_env.data.catalog(spice_env.data.latest).copy()
    frame["DATE-BEG"] = pd.to_datetime(frame["DATE-BEG"], format="ISO8601")
    return frame


def _table(res):
    assert len(res) == 1, "only the SPICE client should answer"
    table = res[0]
    assert isinstance(table.client, SPICEClient)
    return table


def test_search_returns_query_response_table(spice_env, catalog):
    table = _table(Fido.search(a.spice.Release(spice_env.data.latest)))
    assert isinstance(table, QueryResponseTable)
    assert len(table) == len(catalog)
    for column in ("Start Time", "End Time", "Level", "SOOP Name", "Study", "OBS_ID", "Filename",
                   "Release", "File Path"):
        assert column in table.colnames
    assert isinstance(table["Start Time"], Time)
    assert np.all(np.diff(table["Start Time"].mjd) >= 0), "rows sorted by start time"
    assert np.all(table["End Time"] >= table["Start Time"])
    assert set(table["Release"]) == {spice_env.data.latest}


def test_default_release_is_latest(spice_env):
    latest = _table(Fido.search(a.spice.SOOP("L_BOTH_HRES_HCAD_Major-Flare")))
    assert set(latest["Release"]) == {spice_env.data.latest}


@pytest.mark.parametrize("value", [2, "2", "L2", "l2"])
def test_level_spellings(spice_env, catalog, value):
    table = _table(Fido.search(a.spice.Release("latest"), a.Level(value)))
    assert len(table) == (catalog["LEVEL"] == "L2").sum() > 0
    assert set(table["Level"]) == {"L2"}


def test_no_level_means_every_level(spice_env, catalog):
    table = _table(Fido.search(a.spice.Release("latest")))
    assert set(table["Level"]) == set(catalog["LEVEL"]) == {"L1", "L2"}


def test_time_includes_both_ends(spice_env, catalog):
    starts = catalog["DATE-BEG"].sort_values()
    t0, t1 = starts.iloc[10], starts.iloc[40]
    table = _table(Fido.search(a.spice.Release("latest"),
                               a.Time(Time(t0.to_pydatetime()), Time(t1.to_pydatetime()))))
    expected = ((catalog["DATE-BEG"] >= t0) & (catalog["DATE-BEG"] <= t1)).sum()
    assert len(table) == expected
    names = set(table["Filename"])
    assert set(catalog.loc[catalog["DATE-BEG"] == t0, "FILENAME"]) <= names
    assert set(catalog.loc[catalog["DATE-BEG"] == t1, "FILENAME"]) <= names


def test_soop(spice_env, catalog):
    soop = catalog["SOOPNAME"].value_counts().index[0]
    table = _table(Fido.search(a.spice.SOOP(soop.lower())))
    assert len(table) == (catalog["SOOPNAME"] == soop).sum()
    assert set(table["SOOP Name"]) == {soop}


def test_soop_matching_nothing_warns_with_closest_names(spice_env, catalog):
    soop = catalog["SOOPNAME"].value_counts().index[0]
    typo = soop[:-3] + "xyz"
    with pytest.warns(ArchiveWarning, match=f"closest known SOOPs: .*{soop}"):
        table = _table(Fido.search(a.spice.SOOP(typo)))
    assert len(table) == 0
    assert "Filename" in table.colnames


def test_query_attr(spice_env, catalog):
    expr = "LEVEL=='L2' & NAXIS1 < 100 & -500 < CRVAL1 < 500"
    table = _table(Fido.search(a.spice.Query(expr)))
    expected = catalog[(catalog.LEVEL == "L2") & (catalog.NAXIS1 < 100)
                       & (catalog.CRVAL1 > -500) & (catalog.CRVAL1 < 500)]
    assert 0 < len(table) == len(expected)
    assert set(table["Filename"]) == set(expected["FILENAME"])


def test_query_with_backticks_on_dates(spice_env, catalog):
    table = _table(Fido.search(a.spice.Query("`DATE-BEG` >= '2023-01-01' and `DATE-BEG` < '2023-02-01'")))
    expected = catalog[(catalog["DATE-BEG"] >= "2023-01-01") & (catalog["DATE-BEG"] < "2023-02-01")]
    assert len(table) == len(expected) > 0


def test_bad_query_string_fails_before_network():
    with pytest.raises(QuerySyntaxError, match="unterminated"):
        a.spice.Query("LEVEL == 'L2")
    with pytest.raises(QuerySyntaxError):
        a.spice.Query("__import__('os').system('true')")


def test_query_unknown_column_is_named(spice_env):
    with pytest.raises(QuerySyntaxError, match="unknown column 'NAXIS5'.*NAXIS1"):
        Fido.search(a.spice.Query("NAXIS5 > 3"))


def test_closest(spice_env, catalog):
    target = catalog["DATE-BEG"].iloc[len(catalog) // 2] + pd.Timedelta(seconds=1)
    table = _table(Fido.search(a.spice.Closest(Time(target.to_pydatetime())), a.Level(2)))
    assert len(table) == 1
    l2 = catalog[catalog.LEVEL == "L2"]
    best = l2.loc[(l2["DATE-BEG"] - target).abs().idxmin(), "FILENAME"]
    assert table["Filename"][0] == best


def test_closest_without_level_gives_one_per_level(spice_env, catalog):
    target = Time(catalog["DATE-BEG"].iloc[100].to_pydatetime())
    table = _table(Fido.search(a.spice.Closest(target)))
    assert sorted(table["Level"]) == ["L1", "L2"]


def test_time_near_is_the_same_as_closest(spice_env, catalog):
    mid = catalog["DATE-BEG"].sort_values().iloc[300].to_pydatetime()
    near = Time(mid)
    one = _table(Fido.search(a.spice.Release("latest"), a.Level(2),
                             a.Time(near - 30 * u.day, near + 30 * u.day, near=near)))
    two = _table(Fido.search(a.spice.Closest(near), a.Level(2)))
    assert list(one["Filename"]) == list(two["Filename"])


def test_wavelength(spice_env, catalog):
    window = catalog["WAVECOV"].dropna().iloc[0].split(",")[0]
    lo, hi = (float(x) for x in window.split("-"))
    centre = (lo + hi) / 2 * u.nm
    table = _table(Fido.search(a.spice.Release("latest"), a.Wavelength(centre)))

    def covers(wavecov):
        if not isinstance(wavecov, str):
            return False
        return any(float(p.split("-")[0]) <= centre.value <= float(p.split("-")[1])
                   for p in wavecov.split(","))
    expected = catalog[catalog["WAVECOV"].map(covers)]
    assert 0 < len(table) == len(expected)
    # Angstrom works through astropy units.
    again = _table(Fido.search(a.spice.Release("latest"), a.Wavelength(centre.to(u.AA))))
    assert len(again) == len(table)


def test_wavelength_on_a_release_without_wavecov(spice_env):
    first = spice_env.data.releases[0]
    with pytest.raises(BadInputError, match="WAVECOV"):
        Fido.search(a.spice.Release(first), a.Wavelength(77 * u.nm))


def test_instrument_and_provider(spice_env, catalog):
    table = _table(Fido.search(a.spice.Release("latest"), a.Instrument("SPICE"), a.Level(1)))
    assert set(table["Instrument"]) == {"SPICE"}
    assert set(table["Provider"]) == {"IAS"}
    soar = _table(Fido.search(a.spice.Release("latest"), a.Provider("SOAR"), a.Level(1)))
    assert set(soar["Provider"]) == {"SOAR"} and len(soar) == len(table)
    with pytest.raises(BadInputError, match="Instrument"):
        Fido.search(a.spice.Release("latest"), a.Instrument("EUI"))
    with pytest.raises(BadInputError, match="provider 'VSO'"):
        Fido.search(a.spice.Release("latest"), a.Provider("VSO"))


def test_or_of_releases_and_levels(spice_env):
    releases = spice_env.data.releases
    res = Fido.search(a.spice.Release(releases[-1]) & (a.Level(1) | a.Level(2)))
    assert len(res) == 2
    assert {set(t["Level"]).pop() for t in res} == {"L1", "L2"}
    res = Fido.search(a.spice.Release(releases[-2]) | a.spice.Release(releases[-1]))
    assert [set(t["Release"]) for t in res] == [{releases[-2]}, {releases[-1]}]
    assert len(res[0]) < len(res[1])


def test_combination_and(spice_env, catalog):
    soop = catalog["SOOPNAME"].value_counts().index[0]
    table = _table(Fido.search(a.spice.SOOP(soop) & a.Level(2) & a.Time("2022-01-01", "2023-12-31")
                               & a.spice.Query("NWIN >= 4")))
    sel = catalog[(catalog.SOOPNAME == soop) & (catalog.LEVEL == "L2") & (catalog.NWIN >= 4)
                  & (catalog["DATE-BEG"] >= "2022-01-01") & (catalog["DATE-BEG"] <= "2023-12-31")]
    assert len(table) == len(sel) > 0


def test_older_release_has_older_catalog(spice_env):
    first = spice_env.data.releases[0]
    table = _table(Fido.search(a.spice.Release(first)))
    assert set(table["Release"]) == {first}
    assert len(table) == len(spice_env.data.catalog(first))


def test_unknown_release_names_known_ones(spice_env):
    with pytest.raises(UnknownValueError, match=r"no release '9.0'.*known releases: .*2.0"):
        Fido.search(a.spice.Release("9.0"))


@pytest.mark.parametrize("bad", ["two", "1.2.3", "", "../x"])
def test_bad_release_syntax_fails_at_construction(bad):
    with pytest.raises(BadInputError, match="release tag"):
        a.spice.Release(bad)


@pytest.mark.parametrize("bad", [0, 7, "L9", "level2", "x"])
def test_bad_level(bad):
    with pytest.raises(BadInputError, match="not a SPICE level"):
        normalise_level(bad)


def test_bad_level_through_fido_fails_before_network(monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_SPICE_URL", "http://127.0.0.1:9/spice-data/")  # nothing listens
    with pytest.raises(BadInputError, match="not a SPICE level"):
        Fido.search(a.spice.Release("2.0"), a.Level("L7"))


def test_bad_closest_and_soop():
    with pytest.raises(BadInputError, match="not a time"):
        a.spice.Closest("yesterday-ish")
    with pytest.raises(BadInputError, match="SOOP"):
        a.spice.SOOP("A,B")


def test_unreachable_server_names_the_variable(monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_SPICE_URL", "http://127.0.0.1:9/spice-data/")
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    with pytest.raises(Exception, match="SUNPY_ARCHIVES_SPICE_URL") as info:
        Fido.search(a.spice.Release("2.0"))
    assert "SPICE" in str(info.value)


# --- routing ---------------------------------------------------------------------------------

def _clients(*query):
    return [c for c in Fido.registry if c._can_handle_query(*query)]


def test_routing_needs_an_own_attr():
    t = a.Time("2022-01-01", "2022-02-01")
    assert SPICEClient in _clients(a.spice.Release("2.0"), t)
    assert SPICEClient in _clients(a.spice.SOOP("X"), a.Level(2), a.Wavelength(77 * u.nm))
    assert SPICEClient in _clients(a.spice.Query("NWIN > 1"))
    assert SPICEClient in _clients(a.spice.Closest("2022-01-01"), a.Instrument("SPICE"), a.Provider("SOAR"))
    # Plain core attrs stay with sunpy's clients (SOAR), so Fido never lists a file twice.
    assert SPICEClient not in _clients(a.Instrument("SPICE"), t)
    assert SPICEClient not in _clients(a.Instrument("SPICE"), t, a.Level(2))
    # An attr we do not understand keeps us out.
    assert SPICEClient not in _clients(a.spice.Release("2.0"), a.Detector("x"))


def test_only_spice_answers_a_spice_query(spice_env):
    res = Fido.search(a.spice.Release("latest"), a.Instrument("SPICE"), a.Level(2),
                      a.Time("2022-01-01", "2022-01-31"))
    assert [type(t.client) for t in res] == [SPICEClient]


def test_registered_values_are_discoverable():
    text = repr(a.spice.SOOP)
    assert "L_BOTH_HRES_HCAD_Major-Flare" in text or "l_both_hres_hcad_major_flare" in text
    assert "SPICEClient" in repr(Fido) or "SPICE" in str(Fido)
    assert "Release" in str(SPICEClient())


def test_path_format_keys_all_work(spice_env, tmp_path):
    table = _table(Fido.search(a.spice.Release("latest"), a.Level(2), a.spice.Query("RASTERNO == 0")))[:2]
    keys = table.path_format_keys()
    assert {"file_path", "filename", "release", "soop_name", "start_time"} <= keys
    template = str(tmp_path) + "/" + "/".join(f"{{{k}}}" for k in sorted(keys)) + "/{file}"
    files = Fido.fetch(table, path=template, progress=False)
    assert len(files) == 2 and not files.errors
    for path in files:
        assert str(path).startswith(str(tmp_path))


def test_client_repr_and_info_url(spice_env):
    client = SPICEClient()
    assert client.info_url == spice_env.base_url


def test_no_warning_on_ordinary_search(spice_env):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ArchiveWarning)
        Fido.search(a.spice.Release("latest"), a.Level(2))
