"""The local ESO archive: pyvo (the official VO client) against it, unchanged."""

import re
import warnings

import pytest
import requests

from sunpy_archives.testing.eso import (
    DATALINK_FORMAT,
    AdqlError,
    EsoArchiveData,
    adql_to_sqlite,
    start_eso_server,
)

pyvo = pytest.importorskip("pyvo")


@pytest.fixture(scope="module")
def eso_server():
    """A server of this module (the shared fixtures live in tests/eso)."""
    server = start_eso_server(EsoArchiveData.small())
    yield server
    server.stop()


@pytest.fixture
def limits(eso_server):
    """Restore the server's row limits after the test."""
    saved = eso_server.data.default_maxrec, eso_server.data.hard_maxrec
    yield eso_server.data
    eso_server.data.default_maxrec, eso_server.data.hard_maxrec = saved


@pytest.fixture
def tap(eso_server):
    return pyvo.dal.TAPService(eso_server.tap_url)


def test_generated_archive_is_deterministic():
    one, two = EsoArchiveData.small(), EsoArchiveData.small()
    assert [p.dp_id for p in one.products] == [p.dp_id for p in two.products]
    aid = one.products[0].files[1].archive_id
    assert one.file_bytes(aid) == two.file_bytes(aid)
    assert {p.collection for p in one.products} >= {"MUSE", "ESPRESSO", "HARPS", "VVV"}
    assert any(p.deprecated for p in one.products)
    counts = {len(p.files) - 1 for p in one.products}
    assert 0 in counts and max(counts) >= 2  # 0..N ancillary files


def test_obscore_through_pyvo(eso_server, tap):
    result = tap.search(
        "SELECT TOP 3 * FROM ivoa.ObsCore WHERE obs_collection = 'MUSE' ORDER BY dp_id"
    )
    table = result.to_table()
    assert len(table) == 3 and result.query_status == "OK"
    assert {
        "dp_id",
        "s_ra",
        "t_min",
        "em_min",
        "access_url",
        "access_format",
        "abmaglim",
        "p3orig",
    } <= set(table.colnames)
    assert str(table["t_min"].unit) == "d" and str(table["em_min"].unit) == "m"
    row = table[0]
    assert row["access_format"] == DATALINK_FORMAT
    assert row["access_url"] == eso_server.datalink_url(row["dp_id"])
    assert row["obs_publisher_did"] == f"ivo://eso.org/ID?{row['dp_id']}"


def test_product_files_through_pyvo_matches_data(eso_server, tap):
    table = tap.search("SELECT * FROM phase3v2.product_files").to_table()
    assert table.colnames == [
        "product_id",
        "archive_id",
        "eso_category",
        "original_filename",
        "extension",
        "access_url",
        "access_estsize",
        "internal_file_id",
    ]
    listed = eso_server.data.listed_files()
    assert len(table) >= len(listed)
    ids = set(table["archive_id"])
    assert all(f.archive_id in ids for _, f in listed)
    deprecated = [p for p in eso_server.data.products if p.deprecated]
    assert deprecated and not any(p.dp_id in set(table["product_id"]) for p in deprecated)
    science = table[table["archive_id"] == table["product_id"]]
    assert all(c.startswith("SCIENCE.") for c in science["eso_category"])


def test_join_through_pyvo(tap):
    query = (
        "SELECT o.instrument_name, pf.archive_id, pf.eso_category, pf.access_estsize "
        "FROM phase3v2.product_files AS pf INNER JOIN ivoa.ObsCore AS o ON o.dp_id = pf.product_id "
        "WHERE o.instrument_name = 'ESPRESSO' AND pf.eso_category LIKE 'ANCILLARY.%' "
        "ORDER BY pf.archive_id"
    )
    table = tap.search(query).to_table()
    assert len(table) > 0 and set(table["instrument_name"]) == {"ESPRESSO"}
    assert all(c.startswith("ANCILLARY.") for c in table["eso_category"])
    assert list(table["archive_id"]) == sorted(table["archive_id"])
    # LIKE is case-sensitive in ADQL
    assert len(tap.search(query.replace("'ANCILLARY.%'", "'ancillary.%'")).to_table()) == 0


def test_aggregates_strings_and_subqueries(tap):
    table = tap.search(
        "SELECT obs_collection, COUNT(*) AS n FROM ivoa.ObsCore GROUP BY obs_collection "
        "ORDER BY obs_collection"
    ).to_table()
    assert "MUSE" in list(table["obs_collection"]) and all(table["n"] > 0)
    table = tap.search(
        "SELECT LOWER(instrument_name) || '-x' AS s FROM ivoa.ObsCore "
        "WHERE dp_id IN (SELECT product_id FROM phase3v2.product_files "
        "WHERE eso_category = 'ANCILLARY.HARPSTAR')"
    ).to_table()
    assert set(table["s"]) == {"harps-x"}
    table = tap.search(
        'SELECT TOP 1 "dp_id" FROM ivoa.ObsCore WHERE t_min BETWEEN 0 AND 99999'
    ).to_table()
    assert len(table) == 1


def test_cone_predicates(eso_server, tap):
    product = eso_server.data.products[0]
    for predicate in (
        f"CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {product.ra}, {product.dec}, 0.01)) = 1",
        f"INTERSECTS(s_region, CIRCLE('', {product.ra + 0.014}, {product.dec}, 0.001)) = 1",
        f"DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', {product.ra}, {product.dec})) < 0.01",
    ):
        ids = set(
            tap.search(f"SELECT dp_id FROM ivoa.ObsCore WHERE {predicate}").to_table()["dp_id"]
        )
        assert product.dp_id in ids and len(ids) < len(eso_server.data.products)


def test_tap_schema_lists_the_columns_and_join_key(tap):
    cols = tap.search(
        "SELECT column_name FROM TAP_SCHEMA.columns WHERE table_name = 'phase3v2.product_files'"
    ).to_table()
    assert len(cols) == 8
    keys = tap.search("SELECT from_column, target_column FROM TAP_SCHEMA.key_columns").to_table()
    assert ("product_id", "dp_id") in {(r["from_column"], r["target_column"]) for r in keys}


def test_vosi_resources(eso_server, tap):
    names = [t.name for t in tap.tables]
    assert names == ["ivoa.ObsCore", "phase3v2.product_files"]
    assert "dp_id" in [c.name for c in tap.tables["ivoa.ObsCore"].columns]
    assert (
        tap.maxrec == eso_server.data.default_maxrec
        and tap.hardlimit == eso_server.data.hard_maxrec
    )
    body = requests.get(eso_server.tap_url + "/availability", timeout=10).text
    assert "<vosi:available>true</vosi:available>" in body


def test_maxrec_overflow_marked_after_the_table(eso_server, tap):
    body = requests.post(
        eso_server.tap_url + "/sync",
        timeout=10,
        data={
            "REQUEST": "doQuery",
            "LANG": "ADQL",
            "MAXREC": "2",
            "QUERY": "SELECT archive_id FROM phase3v2.product_files",
        },
    ).text
    assert body.count("<TR>") == 2
    assert re.search(r"</TABLE>\s*<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"", body)
    result = tap.search("SELECT archive_id FROM phase3v2.product_files", maxrec=2)
    assert len(result) == 2 and result.query_status == "OVERFLOW"
    exact = tap.search("SELECT TOP 2 archive_id FROM phase3v2.product_files", maxrec=5)
    assert len(exact) == 2 and exact.query_status == "OK"


def test_default_limit_overflow_warns_in_pyvo(eso_server, limits, tap):
    eso_server.data.default_maxrec = 3
    with pytest.warns(pyvo.dal.DALOverflowWarning):
        result = tap.search("SELECT archive_id FROM phase3v2.product_files")
    assert len(result) == 3


def test_bad_adql_is_a_votable_error(eso_server, tap):
    response = requests.post(
        eso_server.tap_url + "/sync",
        timeout=10,
        data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT nope FROM ivoa.ObsCore"},
    )
    assert response.status_code == 400
    assert 'name="QUERY_STATUS" value="ERROR"' in response.text
    with pytest.raises(pyvo.dal.DALQueryError, match="no such column"):
        tap.search("SELECT nope FROM ivoa.ObsCore")
    for bad in (
        "SELECT * FROM ivoa.ObsCore LIMIT 2",
        "DELETE FROM ivoa.ObsCore",
        "SELECT 1; DROP TABLE x",
        "SELECT 'unterminated FROM ivoa.ObsCore",
    ):
        with pytest.raises(pyvo.dal.DALQueryError):
            tap.search(bad)
    assert len(tap.search("SELECT dp_id FROM ivoa.ObsCore")) == len(eso_server.data.products)


def test_get_sync_and_unknown_format(eso_server):
    ok = requests.get(
        eso_server.tap_url + "/sync",
        timeout=10,
        params={
            "REQUEST": "doQuery",
            "LANG": "ADQL",
            "QUERY": "SELECT TOP 1 dp_id FROM ivoa.ObsCore",
        },
    )
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith(
        "application/x-votable+xml"
    )
    bad = requests.get(
        eso_server.tap_url + "/sync",
        timeout=10,
        params={
            "REQUEST": "doQuery",
            "LANG": "ADQL",
            "QUERY": "SELECT 1",
            "RESPONSEFORMAT": "fits",
        },
    )
    assert bad.status_code == 400 and "ERROR" in bad.text


def test_translation_keeps_literals():
    sql, top = adql_to_sqlite("SELECT TOP 5 a FROM t WHERE b = 'LIMIT 3; --' -- note")
    assert top == 5 and "'LIMIT 3; --'" in sql and "note" not in sql
    with pytest.raises(AdqlError):
        adql_to_sqlite("SELECT TOP x FROM t")


def test_datalink_with_pyvo(eso_server, tap):
    result = tap.search(
        "SELECT TOP 2 dp_id, access_url, access_format FROM ivoa.ObsCore "
        "WHERE obs_collection = 'MUSE' ORDER BY dp_id"
    )
    seen = 0
    for row, links in zip(result, result.iter_datalinks()):
        product = eso_server.data.product(row["dp_id"])
        this = links.bysemantics("#this", include_narrower=False)
        assert [r.access_url for r in this] == [eso_server.file_url(product.dp_id)]
        aux = links.bysemantics("#auxiliary", include_narrower=False)
        assert sorted((r["eso_category"], r["eso_origfile"]) for r in aux) == sorted(
            (f.category, f.original_filename) for f in product.files[1:]
        )
        assert any(r.semantics == "#cutout" and r.service_def for r in links)
        seen += 1
    assert seen == 2


def test_datalink_consistent_with_product_files(eso_server, tap):
    product = next(p for p in eso_server.data.products if not p.deprecated and len(p.files) > 1)
    listed = tap.search(
        f"SELECT archive_id, eso_category, original_filename FROM phase3v2.product_files "
        f"WHERE product_id = '{product.dp_id}'"
    ).to_table()
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(eso_server.datalink_url(product.dp_id))
    files = {
        (r.access_url.rsplit("/", 1)[1], r["eso_category"], r["eso_origfile"])
        for r in links
        if r.semantics in ("#this", "#auxiliary")
    }
    assert files == {(r["archive_id"], r["eso_category"], r["original_filename"]) for r in listed}


def test_deprecated_products_only_through_datalink(eso_server, tap):
    product = next(p for p in eso_server.data.products if p.deprecated)
    assert (
        len(
            tap.search(f"SELECT * FROM phase3v2.product_files WHERE product_id = '{product.dp_id}'")
        )
        == 0
    )
    assert len(tap.search(f"SELECT * FROM ivoa.ObsCore WHERE dp_id = '{product.dp_id}'")) == 1
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(eso_server.datalink_url(product.dp_id))
    assert len([r for r in links if r.semantics in ("#this", "#auxiliary")]) == len(product.files)


def test_datalink_unknown_id_has_an_error_row(eso_server):
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(eso_server.datalink_url("ADP.nope"))
    assert "NotFoundFault" in links[0]["error_message"]


def test_portal_download_with_content_disposition(eso_server):
    product = eso_server.data.products[0]
    preview = product.files[1]
    response = requests.get(eso_server.file_url(preview.archive_id), timeout=10)
    assert response.status_code == 200 and response.content == eso_server.data.file_bytes(
        preview.archive_id
    )
    assert len(response.content) == preview.size
    assert (
        response.headers["Content-Disposition"] == f"attachment; filename={preview.archive_id}.png"
    )
    assert response.headers["Content-Type"] == "image/png"
    part = requests.get(
        eso_server.file_url(preview.archive_id), headers={"Range": "bytes=0-9"}, timeout=10
    )
    assert part.status_code == 206 and part.content == response.content[:10]
    assert requests.get(eso_server.file_url("ADP.nope"), timeout=10).status_code == 404


def test_science_fits_is_valid(eso_server):
    import io

    from astropy.io import fits

    product = eso_server.data.products[0]
    raw = requests.get(eso_server.file_url(product.dp_id), timeout=10).content
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(io.BytesIO(raw)) as hdul:
            assert hdul[0].header["ARCFILE"] == product.dp_id
            assert hdul[0].header["PRODCATG"] == product.science.category
