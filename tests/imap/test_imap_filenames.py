"""The IMAP file-name convention and SDC paths agree with the official client's."""

from pathlib import Path

import imap_data_access
import pytest
from imap_data_access.file_validation import generate_imap_file_path

from sunpy_archives.core.errors import BadInputError
from sunpy_archives.imap.api import Secret, build_query_params, build_spice_params
from sunpy_archives.imap.filenames import format_version, parse_filename, parse_version, relative_path

NAMES = [
    "imap_swe_l1b_sci_20240510_v012.cdf",
    "imap_mag_l2_norm-rtn_20260115_v001.0003.cdf",
    "imap_glows_l3e_survival-probability-hi-45_20250101-repoint00002_v001.0002.cdf",
    "imap_hi_l1a_45sensor-de_20250101-cr02291_v001.0001.cdf",
    "imap_mag_l0_raw_20250101_v001.pkts",
    "imap_mag_calibration_20240229_v001.cdf",
    "imap_swe_lookup_20250101_20250131_v002.csv",
    "imap_ultra_params_20250101-repoint00007_v001.json",
    "imap_codice_l1a_lo-counters_20250101_v001.0001.png",
    "imap_swe_l1b_sci_20250101_v001.0001.json",
    "imap_hit_data-release-001_20260101_20260131_v001.txt",
    "imap_2026_062_2026_063_01.ah.bc",
    "imap_2026_062_2026_063_02.ap.bc",
    "imap_dps_2026_062_2026_063_01.ah.bc",
    "imap_lopivot-repoint00012_2026_062_2026_063_01.bc",
    "imap_2026_062_01.repoint.csv",
    "imap_2026_062_2026_062_01.spin.csv",
    "imap_pred_od025_20260303_20260414_v01.bsp",
    "imap_recon_20260101_20260201_v02.bsp",
    "de440.bsp", "L1_de431.bsp", "pck00011.tpc", "naif0012.tls", "imap_sclk_0001.tsc",
    "imap_001.tf", "imap_science_001.tf", "imap_2026_062_2026_063_burn_01.sff",
    "imap_sdc_metakernel_2026_v001.tm", "imap_2026_062_a01.spice.mk", "IMAP_2026_062_e01.mk",
    "earth_200101_260101_251201.bpc",
]


@pytest.fixture
def official_dir(tmp_path):
    saved = imap_data_access.config["DATA_DIR"]
    imap_data_access.config["DATA_DIR"] = tmp_path
    yield tmp_path
    imap_data_access.config["DATA_DIR"] = saved


@pytest.mark.parametrize("name", NAMES)
def test_relative_path_same_as_official(official_dir, name):
    theirs = generate_imap_file_path(name).construct_path().relative_to(official_dir).as_posix()
    assert relative_path(name) == theirs
    assert relative_path(Path("some/dir") / name) == theirs


@pytest.mark.parametrize("name", [
    "imap_swe_l1b_sci_20240532_v012.cdf", "imap_aia_l1b_sci_20240510_v012.cdf",
    "imap_swe_l9_sci_20240510_v012.cdf", "imap_swe_l1b_sci_20240510_v12.cdf",
    "imap_swe_l1b_sci_20240510_v012.fits", "swe_l1b_sci_20240510_v012.cdf", "", "a b.cdf",
    "imap_2026_400_2026_401_01.ah.bc",
])
def test_bad_names(name):
    with pytest.raises(BadInputError, match="not a valid IMAP file name"):
        parse_filename(name)


def test_parsed_fields():
    f = parse_filename(NAMES[2])
    assert (f.kind, f.instrument, f.level, f.descriptor, f.start_date, f.repointing, f.version,
            f.major_version, f.minor_version, f.extension) == (
        "science", "glows", "l3e", "survival-probability-hi-45", "20250101", 2, "v001.0002", 1, 2, "cdf")
    assert parse_filename(NAMES[3]).cr == 2291
    anc = parse_filename(NAMES[6])
    assert (anc.kind, anc.end_date, anc.version) == ("ancillary", "20250131", "v002")
    assert parse_filename("naif0012.tls").kernel_type == "leapseconds"


def test_versions():
    assert parse_version("v001.0002") == (1, 2) and parse_version("v012") == (None, 12)
    assert format_version(*parse_version("v123.4567")) == "v123.4567"
    for bad in ("v1", "1.2", "v0001.0002", "latest"):
        with pytest.raises(BadInputError):
            parse_version(bad)


def test_query_params_like_official():
    assert build_query_params(instrument="mag", repointing="repoint00012") == {
        "table": "science", "instrument": "mag", "repointing": 12}
    assert build_query_params(table="ancillary", instrument="mag", version="latest") == {
        "table": "ancillary", "instrument": "mag", "version": "latest"}
    assert build_spice_params(type="leapseconds", ingestion_start_date="20250101") == {
        "type": "leapseconds", "start_ingest_date": "20250101"}
    with pytest.raises(BadInputError):
        build_query_params(table="ancillary", instrument="mag", version="v001.0001")


def test_secret_never_shows():
    key = Secret("s3cr3t")
    assert "s3cr3t" not in repr(key) + str(key) + f"{key}" + repr([key])
    assert key.scrub("x s3cr3t y") == "x *** y"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(key)
