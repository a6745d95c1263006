"""ESOClient searches against the local ESO archive."""

import warnings

import astropy.units as u
import pytest
import sunpy.net.attrs as a
from astropy.coordinates import SkyCoord
from sunpy.net import Fido

import sunpy_archives.eso  # noqa: F401
from sunpy_archives.core.errors import ArchiveWarning, SearchError
from sunpy_archives.eso import ESOClient


def _rows(result):
    return result[0] if hasattr(result, "keys") else result


def _expected(data, predicate):
    """(product, file) pairs of the generated archive that a search should return."""
    return sorted(
        (p.dp_id, f.archive_id) for p in data.products for f in p.files if predicate(p, f)
    )


def _got(table):
    return sorted(zip(table["Product ID"], table["Archive ID"]))


def test_all_files_of_one_product(eso_env):
    product = next(p for p in eso_env.data.products if len(p.files) >= 3 and not p.deprecated)
    res = Fido.search(a.eso.ProductID(product.dp_id))
    table = res[0]
    assert isinstance(table.client, ESOClient)
    assert _got(table) == sorted((product.dp_id, f.archive_id) for f in product.files)
    science = table[table["Archive ID"] == product.dp_id][0]
    assert science["Category"] == product.science.category
    assert science["Original Filename"] == product.science.original_filename
    assert (
        science["Instrument"] == product.instrument and science["Collection"] == product.collection
    )
    assert set(table["Listed By"]) == {"product_files"}
    assert science["Start Time"].mjd == pytest.approx(product.t_min)


def test_all_ancillary_files_of_espresso(eso_env):
    table = Fido.search(a.Instrument("ESPRESSO"), a.eso.Category("ANCILLARY"))[0]
    expected = _expected(
        eso_env.data,
        lambda p, f: p.instrument == "ESPRESSO" and f.category.startswith("ANCILLARY."),
    )
    assert expected and _got(table) == expected
    assert all(c.startswith("ANCILLARY.") for c in table["Category"])


def test_all_previews_of_the_muse_collection_including_deprecated(eso_env):
    table = Fido.search(a.eso.Collection("MUSE"), a.eso.Category("ANCILLARY.PREVIEW"))[0]
    expected = _expected(
        eso_env.data, lambda p, f: p.collection == "MUSE" and f.category == "ANCILLARY.PREVIEW"
    )
    assert _got(table) == expected
    deprecated = {p.dp_id for p in eso_env.data.products if p.deprecated and p.collection == "MUSE"}
    assert (
        deprecated
        and {r["Product ID"] for r in table if r["Listed By"] == "DataLink"} == deprecated
    )


def test_deprecated_product_reached_through_datalink(eso_env):
    product = next(p for p in eso_env.data.products if p.deprecated)
    table = Fido.search(a.eso.ProductID(product.dp_id))[0]
    assert _got(table) == sorted((product.dp_id, f.archive_id) for f in product.files)
    assert set(table["Listed By"]) == {"DataLink"}
    by_id = {r["Archive ID"]: r for r in table}
    for f in product.files:
        row = by_id[f.archive_id]
        assert row["Category"] == f.category and row["Original Filename"] == f.original_filename
        assert row["Access URL"].endswith(f"/dataPortal/file/{f.archive_id}")
    hits = [k for k in eso_env.faults.hits if k.startswith("/datalink/links")]
    assert any(product.dp_id in k for k in hits)


def test_extension_and_category_filter_datalink_rows_too(eso_env):
    product = next(p for p in eso_env.data.products if p.deprecated and p.collection == "MUSE")
    table = Fido.search(a.eso.ProductID(product.dp_id), a.eso.Extension("png"))[0]
    assert list(table["Extension"]) == ["PNG"] and len(table) == 1


def test_extension_on_listed_products(eso_env):
    table = Fido.search(a.eso.Collection("VVV"), a.eso.Extension("FZ"))[0]
    assert _got(table) == _expected(
        eso_env.data, lambda p, f: p.collection == "VVV" and f.extension == "FZ"
    )


def test_time_overlap_includes_both_ends(eso_env):
    product = next(p for p in eso_env.data.products if p.collection == "HARPS" and not p.deprecated)
    from astropy.time import Time

    end_touch = Time(product.t_min, format="mjd")  # interval ends exactly at t_min
    table = Fido.search(a.eso.Collection("HARPS"), a.Time(end_touch - 1 * u.day, end_touch))[0]
    assert product.dp_id in set(table["Product ID"])
    later = Time(product.t_max, format="mjd") + 1 * u.s
    table = Fido.search(a.eso.Collection("HARPS"), a.Time(later, later + 1 * u.hour))[0]
    assert product.dp_id not in set(table["Product ID"])


def test_cone_search(eso_env):
    product = next(p for p in eso_env.data.products if p.collection == "VVV")
    centre = SkyCoord(product.ra * u.deg, product.dec * u.deg)
    table = Fido.search(a.eso.Cone(centre, 0.1 * u.deg), a.eso.Category("SCIENCE"))[0]
    assert set(table["Product ID"]) == {product.dp_id}
    far = SkyCoord((product.ra + 90) * u.deg, product.dec * u.deg)
    assert len(Fido.search(a.eso.Cone(far, 0.01 * u.deg), a.eso.Collection("VVV"))[0]) == 0


def test_or_gives_one_table_with_both(eso_env):
    res = Fido.search(a.eso.Category("ANCILLARY.WEIGHTMAP") | a.eso.Category("ANCILLARY.HARPSTAR"))
    cats = set()
    for table in res:
        cats |= set(table["Category"])
    assert {"ANCILLARY.WEIGHTMAP", "ANCILLARY.HARPSTAR"} <= cats


def test_value_with_a_quote_is_escaped(eso_env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = Fido.search(a.eso.Collection("MUSE' OR '1'='1"))[0]
    assert len(table) == 0
    hits = [k for k in eso_env.faults.hits if k.startswith("/tap_obs/sync")]
    assert hits  # it did reach the server and ran there


def test_no_match_is_an_empty_table_with_columns(eso_env):
    table = Fido.search(a.eso.Collection("NOSUCHCOLLECTION"))[0]
    assert len(table) == 0 and "Archive ID" in table.colnames


def test_tap_error_is_reported_with_the_server_message(eso_env):
    client = ESOClient()
    with pytest.raises(SearchError, match="refused the query.*LIMIT is not ADQL"):
        client.run_query("SELECT * FROM ivoa.ObsCore LIMIT 3")
    with pytest.raises(SearchError, match="no such column"):
        client.run_query("SELECT nope FROM ivoa.ObsCore")


def test_unreachable_server_is_a_search_error(monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_ESO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    with pytest.raises(SearchError, match="SUNPY_ARCHIVES_ESO_URL"):
        ESOClient().search(a.eso.Collection("MUSE"))


def test_transient_tap_failures_are_retried(eso_env, eso_faults):
    eso_faults.configure(fail_first=2, statuses=(503,), retry_after=0, classes={"search"})
    table = ESOClient().search(a.eso.Collection("HARPS"))
    assert len(table) > 0 and eso_faults.failures_injected >= 2


def test_server_limit_cut_warns_with_limit_and_remedy(eso_env, eso_faults):
    eso_env.data.default_maxrec = 4
    with pytest.warns(ArchiveWarning, match=r"cut the file list at 4 rows.*a\.eso\.MaxRecords"):
        table = Fido.search(a.eso.Category("ANCILLARY"))[0]
    assert len(table) == 4


def test_user_limit_is_not_warned_about(eso_env, eso_faults):
    eso_env.data.default_maxrec = 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = Fido.search(a.eso.Category("ANCILLARY"), a.eso.MaxRecords(6))[0]
    assert len(table) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = Fido.search(a.eso.Collection("MUSE"), a.eso.MaxRecords(2))[0]
    assert len(table) == 2


def test_hard_limit_below_user_limit_warns(eso_env, eso_faults):
    eso_env.data.hard_maxrec = 3
    with pytest.warns(ArchiveWarning, match="hard limit"):
        table = Fido.search(a.eso.Category("SCIENCE"), a.eso.MaxRecords(50))[0]
    assert len(table) == 3


def test_sizes_are_estimates_and_not_totalled(eso_env):
    product = next(p for p in eso_env.data.products if not p.deprecated)
    table = Fido.search(a.eso.ProductID(product.dp_id))[0]
    assert table["Estimated Size"].unit == u.kB
    assert "estimate" in table["Estimated Size"].description
    assert getattr(table, "size_column", None) is None
    exact = product.science.size / 1000
    assert table[table["Archive ID"] == product.dp_id]["Estimated Size"][0].value != exact
    assert "Access URL" in table.hide_keys


def test_datalink_failure_is_a_search_error(eso_env):
    from sunpy_archives.core.http import make_session
    from sunpy_archives.eso.datalink import datalink_url, product_files

    with pytest.raises(SearchError, match="NotFoundFault"):
        product_files(
            datalink_url(eso_env.url, "ADP.1999-01-01T00:00:00.000"), session=make_session()
        )
    files = product_files(
        datalink_url(eso_env.url, eso_env.data.products[0].dp_id), session=make_session()
    )
    assert [f.semantics for f in files][0] == "#this"
    assert {f.archive_id for f in files} == {f.archive_id for f in eso_env.data.products[0].files}
