"""a.eso attrs and ADQL building: offline, no server."""

import subprocess
import sys

import astropy.units as u
import pytest
import sunpy.net.attrs as a
from astropy.coordinates import SkyCoord

import sunpy_archives.eso  # noqa: F401  (registers a.eso)
from sunpy_archives.core.errors import BadInputError
from sunpy_archives.eso import adql
from sunpy_archives.eso.client import ESOClient, build_blocks, default_filename
from sunpy_archives.testing.eso import adql_to_sqlite


def test_namespace_and_registered_values():
    for name in ("Collection", "Category", "ProductID", "Extension", "MaxRecords", "Cone"):
        assert getattr(a.eso, name).__module__ == "sunpy_archives.eso.attrs"
    assert a.eso.Category.ancillary_preview.value.upper() == "ANCILLARY.PREVIEW"
    assert "muse" in dir(a.eso.Collection)


@pytest.mark.parametrize(
    "attr, given, expected",
    [
        (a.eso.Collection, "muse", "MUSE"),
        (a.eso.Collection, "SomeNewCollection", "SomeNewCollection"),
        (a.eso.Category, "ancillary.preview", "ANCILLARY.PREVIEW"),
        (
            a.eso.ProductID,
            "ivo://eso.org/ID?ADP.2024-03-19T05:58:04.407",
            "ADP.2024-03-19T05:58:04.407",
        ),
        (a.eso.Extension, ".png", "PNG"),
        (a.eso.MaxRecords, "25", 25),
    ],
)
def test_values_are_normalised(attr, given, expected):
    assert attr(given).value == expected


@pytest.mark.parametrize(
    "attr, bad",
    [
        (a.eso.Category, "PREVIEW"),
        (a.eso.Category, "ANCILLARY..PREVIEW"),
        (a.eso.Category, "ANCILLARY.PRE'VIEW"),
        (a.eso.ProductID, "ADP.1' OR '1'='1"),
        (a.eso.ProductID, ""),
        (a.eso.Extension, "fits; DROP"),
        (a.eso.MaxRecords, 0),
        (a.eso.MaxRecords, 2.5),
        (a.eso.MaxRecords, "many"),
        (a.eso.Collection, "MU\nSE"),
        (a.eso.Collection, "MU\x00SE"),
    ],
)
def test_bad_values_fail_clearly(attr, bad):
    with pytest.raises(BadInputError, match="ESO"):
        attr(bad)


def test_cone_validation_and_repr():
    cone = a.eso.Cone(SkyCoord(185.22 * u.deg, 3.71 * u.deg), 1 * u.arcmin)
    assert cone.radius == pytest.approx(1 / 60)
    assert "ra=185.22" in repr(cone)
    galactic = a.eso.Cone(SkyCoord(0 * u.deg, 0 * u.deg, frame="galactic"), 1 * u.deg)
    assert galactic.ra == pytest.approx(266.405, abs=1e-2)
    with pytest.raises(BadInputError, match="angle"):
        a.eso.Cone(SkyCoord(1 * u.deg, 2 * u.deg), 3)
    with pytest.raises(BadInputError, match="sky position"):
        a.eso.Cone("not a place", 1 * u.deg)
    with pytest.raises(BadInputError, match="between"):
        a.eso.Cone(SkyCoord(1 * u.deg, 2 * u.deg), -1 * u.deg)


def test_category_prefix_matches_whole_tokens():
    cat = a.eso.Category("ANCILLARY.IMAGE")
    assert cat.matches("ANCILLARY.IMAGE.WHITELIGHT") and cat.matches("ancillary.image")
    assert not cat.matches("ANCILLARY.IMAGES") and not cat.matches("SCIENCE.IMAGE")


def test_quote_doubles_quotes_and_refuses_control_characters():
    assert adql.quote("O'Brien") == "'O''Brien'"
    assert adql.quote("a''b") == "'a''''b'"
    with pytest.raises(BadInputError):
        adql.quote("a\x00b")
    with pytest.raises(BadInputError):
        adql.number(float("nan"))


def test_hostile_collection_stays_inside_one_literal():
    hostile = "MUSE' OR '1'='1"
    query = adql.files_query({"collection": [hostile]})
    sql, _ = adql_to_sqlite(query)  # our server's tokenizer: the value is one literal
    assert "o.obs_collection = 'MUSE'' OR ''1''=''1'" in sql


def test_blocks_per_or_branch_and_time_overlap():
    blocks = build_blocks(
        (a.eso.Collection("MUSE") | a.eso.Collection("VVV")),
        a.Time("2024-03-01", "2024-03-02T00:00"),
    )
    assert [b["collection"] for b in blocks] == [["MUSE"], ["VVV"]]
    start, end = blocks[0]["time"][0]
    assert (start, end) == (pytest.approx(60370.0), pytest.approx(60371.0))
    query = adql.files_query(blocks[0])
    assert "o.t_min <= 60371.0 AND o.t_max >= 60370.0" in query


def test_files_query_shapes():
    query = adql.files_query(
        {
            "product_id": ["ADP.1"],
            "instrument": ["ESPRESSO"],
            "category": ["ANCILLARY"],
            "extension": ["FITS"],
            "cone": [(10.0, -20.0, 0.5)],
        }
    )
    assert (
        "FROM phase3v2.product_files AS pf JOIN ivoa.ObsCore AS o ON o.dp_id = pf.product_id"
        in query
    )
    assert "pf.product_id = 'ADP.1'" in query and "o.instrument_name = 'ESPRESSO'" in query
    assert "pf.eso_category LIKE 'ANCILLARY.%'" in query and "pf.extension = 'FITS'" in query
    assert "INTERSECTS(o.s_region, CIRCLE('ICRS', 10.0, -20.0, 0.5)) = 1" in query
    dep = adql.deprecated_query({"collection": ["MUSE"]})
    assert "pf.product_id IS NULL" in dep and "LEFT OUTER JOIN" in dep


def test_routing_needs_an_eso_attr():
    assert ESOClient._can_handle_query(a.eso.Collection("MUSE"))
    assert ESOClient._can_handle_query(a.Instrument("ESPRESSO"), a.eso.Category("ANCILLARY"))
    assert not ESOClient._can_handle_query(a.Instrument("ESPRESSO"))
    assert not ESOClient._can_handle_query(a.eso.Collection("MUSE"), a.Level(2))
    assert not ESOClient._can_handle_query(a.Time("2020-01-01", "2020-01-02"))


def test_default_filename_is_archive_id_with_original_extension():
    assert default_filename("ADP.1", "x.tpl.png", "PNG") == "ADP.1.png"
    assert default_filename("ADP.1", "v.fits.fz", "FZ") == "ADP.1.fits.fz"
    assert default_filename("ADP.1", "", "TAR") == "ADP.1.tar"
    assert default_filename("ADP.1", "../../evil", "FITS") == "ADP.1.fits"


def test_base_url_from_environment(monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_ESO_URL", "http://example.invalid/root/")
    assert ESOClient().tap_url == "http://example.invalid/root/tap_obs"
    assert ESOClient("http://other.invalid").base_url == "http://other.invalid"
    monkeypatch.delenv("SUNPY_ARCHIVES_ESO_URL")
    assert ESOClient().base_url == "https://archive.eso.org"


def test_importing_the_client_does_not_import_pyvo():
    code = (
        "import sys, sunpy.net; before = set(sys.modules); import sunpy_archives.eso; "
        "print('pyvo' in sys.modules and 'pyvo' not in before)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
