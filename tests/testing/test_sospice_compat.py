"""The official SPICE client, sospice, driven unchanged against the local server."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

sospice = pytest.importorskip("sospice")
fits = pytest.importorskip("astropy.io.fits")

from astropy.config.paths import set_temp_cache  # noqa: E402
from sospice import Catalog, FileMetadata, Release  # noqa: E402


@pytest.fixture(scope="module")
def catalog_file(spice_server, tmp_path_factory) -> Path:
    """The latest catalog, downloaded from ``Release(...).catalog_url`` like a user would."""
    release = Release(tag=None, base_url=spice_server.base_url)
    answer = requests.get(release.catalog_url, timeout=30)
    answer.raise_for_status()
    path = tmp_path_factory.mktemp("catalog") / "catalog.csv"
    path.write_bytes(answer.content)
    return path


@pytest.fixture(scope="module")
def catalog(catalog_file) -> Catalog:
    return Catalog(filename=str(catalog_file))


def test_release_latest_from_latest_release_txt(spice_server):
    release = Release(tag=None, base_url=spice_server.base_url)
    assert release.tag == spice_server.data.latest == "5.0"
    assert release.url == f"{spice_server.base_url}release-5.0/"
    assert release.catalog_url.endswith("/release-5.0/catalog.csv")
    assert release.exists
    assert release.is_latest


def test_release_explicit_tag(spice_server):
    release = Release("2.0", base_url=spice_server.base_url)
    assert release.exists
    assert not release.is_latest
    assert not Release("9.9", base_url=spice_server.base_url).exists


def test_release_latest_error_is_runtime_error(spice_server, spice_faults):
    # sospice turns a non-2xx latest-release.txt into RuntimeError.
    spice_faults.fail_first = 1
    with pytest.raises(RuntimeError, match="latest release"):
        Release(tag=None, base_url=spice_server.base_url)
    # The second request for the same path goes through.
    assert Release(tag=None, base_url=spice_server.base_url).tag == "5.0"


def test_catalog_from_downloaded_file(catalog, catalog_file, spice_server):
    data = spice_server.data
    assert catalog_file.read_bytes() == data.catalog_csv(data.latest)
    assert len(catalog) == len(data.catalog(data.latest))
    assert sospice.catalog.file_metadata.required_columns <= set(catalog.columns)
    # sospice parsed the three date columns, MISSING becoming NaT.
    for column in ("DATE-BEG", "DATE", "TIMAQUTC"):
        assert pd.api.types.is_datetime64_any_dtype(catalog[column])
    assert catalog["TIMAQUTC"].isna().any()
    assert not catalog["DATE-BEG"].isna().any()


def test_find_files_level_and_dates(catalog):
    date_min, date_max = pd.Timestamp("2022-01-01"), pd.Timestamp("2022-12-31")
    result = catalog.find_files(level="L2", date_min="2022-01-01", date_max="2022-12-31")
    expected = catalog[(catalog.LEVEL == "L2") & (catalog["DATE-BEG"] >= date_min)
                       & (catalog["DATE-BEG"] <= date_max)]
    assert 0 < len(result) == len(expected)
    assert set(result.FILENAME) == set(expected.FILENAME)
    assert (result.LEVEL == "L2").all()
    # Default level is L2; level=None keeps both.
    assert len(catalog.find_files()) == (catalog.LEVEL == "L2").sum()
    assert len(catalog.find_files(level=None)) == len(catalog)
    l1 = catalog.find_files(level="L1", date_min="2022-01-01", date_max="2022-12-31")
    assert len(l1) == len(result)  # one L1 file per L2 file


def test_find_files_keywords_and_query(catalog):
    soop = catalog.SOOPNAME.iloc[0]
    result = catalog.find_files(soopname=soop)
    assert len(result) > 0 and (result.SOOPNAME == soop).all()
    result = catalog.find_files(query="NBIN3 == 2")
    assert len(result) > 0 and (result.NBIN3 == 2).all()


def test_find_files_closest_to_date(catalog):
    target = pd.Timestamp("2023-06-15T12:00")
    result = catalog.find_files(closest_to_date=target)
    assert len(result) == 1
    row = result.iloc[0]
    l2 = catalog[catalog.LEVEL == "L2"]
    nearest = l2.iloc[np.argmin(np.abs((l2["DATE-BEG"] - target).to_numpy()))]
    assert row.FILENAME == nearest.FILENAME


def test_download_file_through_release(catalog, spice_server, spice_faults, tmp_path):
    row = catalog.find_files(closest_to_date="2022-04-02").iloc[0]
    metadata = FileMetadata(row)
    release = Release(tag=None, base_url=spice_server.base_url)
    url = metadata.get_file_url(release=release)
    assert url == f"{spice_server.base_url}release-5.0/{row.FILE_PATH}/{row.FILENAME}"
    result = metadata.download_file(tmp_path, release=release)
    assert not result.errors
    path = tmp_path / row.FILE_PATH / row.FILENAME
    assert [str(path)] == list(result)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        header = hdul[0].header
        assert header["FILENAME"] == row.FILENAME
        assert header["SPIOBSID"] == row.SPIOBSID
        assert header["LEVEL"] == "L2"
        assert hdul[0].data.size > 0
    # parfive split the file into ranges (HEAD, then ranged GETs), but the file
    # was transferred once: parfive's inclusive range ends overlap by one byte
    # per split, nothing more.
    key = f"/spice-data/release-5.0/{row.FILE_PATH}/{row.FILENAME}"
    size = path.stat().st_size
    assert size <= spice_faults.bytes_sent[key] <= size + 8
    assert spice_faults.get_hits[key] > 1
    assert path.read_bytes() == spice_server.data.fits_bytes(row.FILENAME)


def test_download_file_with_base_url(catalog, spice_server, tmp_path):
    row = catalog.find_files(level="L1").iloc[3]
    base_url = spice_server.base_url + "release-5.0"  # no trailing slash: sospice adds it
    result = FileMetadata(row).download_file(tmp_path, base_url=base_url, keep_tree=False)
    assert not result.errors
    with fits.open(tmp_path / row.FILENAME) as hdul:
        assert hdul[0].header["FILENAME"] == row.FILENAME
        assert hdul[0].header["LEVEL"] == "L1"


def test_download_files_from_catalog(catalog, spice_server, tmp_path):
    release = Release("5.0", base_url=spice_server.base_url)
    subset = catalog.find_files(level="L2", date_min="2023-01-01")
    result = subset.download_files(tmp_path, release=release, max_download=3)
    assert not result.errors
    assert len(result) == 3
    for name in subset.FILENAME.iloc[:3]:
        assert any(Path(p).name == name for p in result)


def test_older_release_catalog_and_wavelengths(spice_server, tmp_path):
    import astropy.units as u

    for tag, has_wavecov in (("2.0", False), ("3.0", True)):
        release = Release(tag, base_url=spice_server.base_url)
        path = tmp_path / f"catalog-{tag}.csv"
        path.write_bytes(requests.get(release.catalog_url, timeout=30).content)
        catalog = Catalog(filename=str(path))
        assert ("WAVECOV" in catalog.columns) is has_wavecov
        row = FileMetadata(catalog.iloc[0])
        if has_wavecov:
            covered = [FileMetadata(r).get_wavelengths() for _, r in catalog.iloc[:50].iterrows()]
            assert any(77.0 * u.nm in w for w in covered)
        # The files of an older release are served under that release.
        url = row.get_file_url(release=release)
        answer = requests.get(url, timeout=30)
        assert answer.status_code == 200
        assert answer.content[:6] == b"SIMPLE"


def test_cache_file_with_temporary_astropy_cache(catalog, spice_server, tmp_path):
    row = catalog.find_files(level="L2").iloc[-1]
    release = Release("5.0", base_url=spice_server.base_url)
    with set_temp_cache(tmp_path):
        path = FileMetadata(row).cache_file(release=release)
        assert Path(path).exists()
        assert Path(path).read_bytes() == spice_server.data.fits_bytes(row.FILENAME)


def test_soar_fallback_url_shape_is_served(catalog, spice_server):
    # sospice's SOAR fallback has a hard-coded host; check that our SOAR endpoint
    # understands the exact query it builds.
    row = catalog.iloc[5]
    url = FileMetadata(row).get_file_url()
    assert url.startswith("http://soar.esac.esa.int/soar-sl-tap/data?")
    local = url.replace("http://soar.esac.esa.int/soar-sl-tap/data", spice_server.soar_url)
    answer = requests.get(local, timeout=30)
    assert answer.status_code == 200
    assert row.FILENAME in answer.headers["Content-Disposition"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert answer.content == spice_server.data.fits_bytes(row.FILENAME)
