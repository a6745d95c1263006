"""The local SPICE release tree and SOAR data endpoint: wire format and generated data."""

from __future__ import annotations

import http.client
import io
import re
import time
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import requests

from sunpy_archives.testing import SpiceArchiveData, start_spice_server
from sunpy_archives.testing.spice import data_item_id

fits = pytest.importorskip("astropy.io.fits")

FILENAME_RE = re.compile(
    r"^solo_(?P<level>L[12])_spice-(?P<slit>[nw])-(?P<type>ras|sit|exp)(?:-db)?_"
    r"(?P<stamp>\d{8}T\d{6})_V(?P<version>\d{2})_(?P<spiobsid>\d+)-(?P<raster>\d{3})\.fits$")
REQUIRED = {
    "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4", "OBT_BEG", "LEVEL", "FILENAME", "DATE-BEG",
    "SPIOBSID", "RASTERNO", "STUDY", "STUDYTYP", "MISOSTUD", "XPOSURE", "CRVAL1", "CDELT1",
    "CTYPE1", "CUNIT1", "CRVAL2", "CDELT2", "CTYPE2", "CUNIT2", "STP", "DSUN_AU", "CROTA",
    "OBS_ID", "SOOPNAME", "SOOPTYPE", "NWIN", "DARKMAP", "COMPLETE", "SLIT_WID", "DATE",
    "PARENT", "HGLT_OBS", "HGLN_OBS", "PRSTEP1", "PRPROC1", "PRPVER1", "PRPARA1", "TELAPSE",
}


def get(url, **kwargs):
    return requests.get(url, timeout=30, **kwargs)


def read_catalog(server, tag):
    answer = get(f"{server.base_url}release-{tag}/catalog.csv")
    assert answer.status_code == 200
    return pd.read_csv(io.BytesIO(answer.content))


# ------------------------------------------------------------------ tree


def test_latest_release_txt(spice_server):
    answer = get(spice_server.base_url + "metadata/latest-release.txt")
    assert answer.status_code == 200
    assert answer.text == "5.0\n"
    assert answer.headers["Content-Type"].startswith("text/plain")


def test_base_urls(spice_server):
    assert spice_server.base_url == f"http://127.0.0.1:{spice_server.port}/spice-data/"
    assert spice_server.soar_url == f"http://127.0.0.1:{spice_server.port}/soar-sl-tap/data"


def test_release_listings(spice_server):
    for tag in spice_server.data.releases:
        answer = get(f"{spice_server.base_url}release-{tag}/")
        assert answer.status_code == 200
        assert "catalog.csv" in answer.text
        assert 'href="level2/"' in answer.text
        assert ('href="level1/"' in answer.text) is (tag != "1.0")
    assert get(f"{spice_server.base_url}release-9.9/").status_code == 404
    assert get(f"{spice_server.base_url}release-9.9/catalog.csv").status_code == 404
    root = get(spice_server.base_url)
    assert root.status_code == 200 and "release-5.0/" in root.text
    # Directory without slash: redirected like a static server does.
    answer = get(f"{spice_server.base_url}release-5.0", allow_redirects=False)
    assert answer.status_code == 301
    assert get(f"{spice_server.base_url}release-5.0").status_code == 200


def test_date_directory_listing(spice_server):
    data = spice_server.data
    file_path, filename = next(iter(data.files("5.0")))
    answer = get(f"{spice_server.base_url}release-5.0/{file_path}/")
    assert answer.status_code == 200
    assert f'href="{filename}"' in answer.text
    year = file_path.split("/")[1]
    answer = get(f"{spice_server.base_url}release-5.0/{file_path.split('/')[0]}/")
    assert f'href="{year}/"' in answer.text
    assert get(f"{spice_server.base_url}release-5.0/level2/1999/").status_code == 404


def test_catalog_is_served_as_csv(spice_server):
    data = spice_server.data
    answer = get(f"{spice_server.base_url}release-5.0/catalog.csv")
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert answer.content == data.catalog_csv("5.0")
    frame = pd.read_csv(io.BytesIO(answer.content))
    pd.testing.assert_frame_equal(frame, data.catalog("5.0"))


# ------------------------------------------------------------ catalog data


@pytest.mark.parametrize("tag", ["1.0", "2.0", "3.0", "4.0", "5.0"])
def test_catalog_columns_and_values(spice_server, tag):
    frame = read_catalog(spice_server, tag)
    assert 100 <= len(frame) <= 1000
    assert REQUIRED <= set(frame.columns)
    assert {"DATE", "TIMAQUTC", "FILE_PATH", "DATE-END", "NBIN3", "STUDYDES",
            "proc_steps"} <= set(frame.columns)
    assert ("WAVECOV" in frame.columns) is (float(tag) >= 3.0)
    assert frame.FILENAME.is_unique
    parts = frame.FILENAME.str.extract(FILENAME_RE)
    assert parts.notna().all().all(), frame.FILENAME[parts.level.isna()].tolist()
    assert (parts.level == frame.LEVEL).all()
    assert (parts.spiobsid.astype(int) == frame.SPIOBSID).all()
    assert (parts.raster.astype(int) == frame.RASTERNO).all()
    begin = pd.to_datetime(frame["DATE-BEG"], format="ISO8601")
    assert (parts.stamp == begin.dt.strftime("%Y%m%dT%H%M%S")).all()
    # FILE_PATH: levelN/YYYY/MM/DD of DATE-BEG, no leading or trailing slash.
    expected_path = ("level" + frame.LEVEL.str[1] + "/" + begin.dt.strftime("%Y/%m/%d"))
    assert (frame.FILE_PATH == expected_path).all()
    assert set(frame.LEVEL) == ({"L2"} if tag == "1.0" else {"L1", "L2"})
    assert (frame.TIMAQUTC == "MISSING").any()
    assert begin.min() >= pd.Timestamp("2021-01-01")
    assert begin.max() <= pd.Timestamp("2025-01-01")
    # Processing date after acquisition; end after beginning.
    assert (pd.to_datetime(frame.DATE) > begin).all()
    assert (pd.to_datetime(frame["DATE-END"], format="ISO8601") > begin).all()
    # sospice's closest_to_date needs sorted, unique DATE-BEG within a level.
    l2 = begin[frame.LEVEL == "L2"]
    assert l2.is_monotonic_increasing and l2.is_unique
    assert frame.proc_steps.str.startswith("[{").all()
    assert frame.CRVAL1.between(-1001, 1001).all() and frame.CRVAL2.between(-1001, 1001).all()
    assert frame.NAXIS1.between(1, 320).all()
    assert set(frame.STUDYTYP) <= {"Raster", "Sit-and-stare", "Single Exposure"}
    assert set(frame.CTYPE1) == {"HPLN-TAN"} and set(frame.CUNIT2) == {"arcsec"}


def test_catalog_realism_latest(spice_server):
    frame = spice_server.data.catalog("5.0")
    begin = pd.to_datetime(frame["DATE-BEG"], format="ISO8601")
    assert set(begin.dt.year) == {2021, 2022, 2023, 2024}
    assert frame.SOOPNAME.nunique() >= 10
    assert "L_BOTH_HRES_HCAD_Major-Flare" in set(frame.SOOPNAME)
    per_obs = frame[frame.LEVEL == "L2"].groupby("SPIOBSID").RASTERNO.agg(["count", "max"])
    assert (per_obs["count"] == per_obs["max"] + 1).all()  # rasters 0..k
    assert (per_obs["count"] > 1).any()
    assert frame.CRVAL1.min() < -500 and frame.CRVAL1.max() > 500
    wavecov = frame.WAVECOV.str.split(", ")
    assert wavecov.map(lambda ranges: all(re.fullmatch(r"\d+\.\d\d-\d+\.\d\d", r)
                                          for r in ranges)).all()
    assert (wavecov.map(len) == frame.NWIN).all()


def test_releases_grow_and_versions_increase(spice_server):
    data = spice_server.data
    frames = {tag: data.catalog(tag) for tag in data.releases}
    sizes = [len(frames[tag]) for tag in data.releases]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    ends = [frames[tag]["DATE-BEG"].max() for tag in data.releases]
    assert ends == sorted(ends)
    for older, newer in zip(data.releases, data.releases[1:]):
        old = frames[older][frames[older].LEVEL == "L2"]
        new = frames[newer].set_index(frames[newer].FILENAME.map(data_item_id))
        assert set(old.FILENAME.map(data_item_id)) <= set(new.index)
        old_version = old.FILENAME.str.extract(r"_V(\d\d)_")[0].astype(int).to_numpy()
        new_names = new.loc[old.FILENAME.map(data_item_id), "FILENAME"]
        new_version = new_names.str.extract(r"_V(\d\d)_")[0].astype(int).to_numpy()
        assert (new_version > old_version).all()


def test_same_seed_same_bytes_other_seed_differs():
    first, second = SpiceArchiveData.small(seed=3), SpiceArchiveData.small(seed=3)
    other = SpiceArchiveData.small(seed=4)
    for tag in ("1.0", "5.0"):
        assert first.catalog_csv(tag) == second.catalog_csv(tag)
        assert first.catalog_csv(tag) != other.catalog_csv(tag)
    name = first.catalog("5.0").FILENAME.iloc[10]
    assert first.fits_bytes(name) == second.fits_bytes(name)


def test_large_archive_size_and_generation_time():
    data = SpiceArchiveData.large()
    started = time.perf_counter()
    csv = data.catalog_csv(data.latest)
    elapsed = time.perf_counter() - started
    rows = csv.count(b"\n") - 1
    print(f"\nlarge SPICE catalog: {rows} rows, {len(csv) / 1e6:.0f} MB, "
          f"generated in {elapsed:.1f} s")
    assert 190_000 <= rows <= 210_000
    assert data.catalog_csv(data.latest) is csv  # built once, kept
    assert elapsed < 120
    name = csv[csv.index(b"\n") + 1:].split(b",", 2)[1].decode()
    assert data.fits_bytes(name)[:6] == b"SIMPLE"


# ------------------------------------------------------------------ files


def test_fits_download_matches_catalog_row(spice_server):
    data = spice_server.data
    frame = data.catalog("5.0")
    sizes = []
    for position in (0, 1, len(frame) // 2, len(frame) - 1):
        row = frame.iloc[position]
        url = f"{spice_server.base_url}release-5.0/{row.FILE_PATH}/{row.FILENAME}"
        answer = get(url)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/fits"
        assert int(answer.headers["Content-Length"]) == len(answer.content)
        assert len(answer.content) % 2880 == 0
        sizes.append(len(answer.content))
        with fits.open(io.BytesIO(answer.content)) as hdul:
            hdul.verify("exception")
            header = hdul[0].header
            assert header["FILENAME"] == row.FILENAME
            assert header["LEVEL"] == row.LEVEL
            assert header["DATE-BEG"] == row["DATE-BEG"]
            assert header["SPIOBSID"] == row.SPIOBSID
            assert header["RASTERNO"] == row.RASTERNO
            assert header["SOOPNAME"] == row.SOOPNAME
            assert header["STUDY"] == row.STUDY
            assert np.isfinite(hdul[0].data).all()
    all_sizes = [len(data.fits_bytes(name)) for _, name in list(data.files("5.0"))[:60]]
    assert 9_000 < min(all_sizes) and max(all_sizes) < 65_000
    assert len(set(all_sizes)) > 5


def test_fits_head_and_range(spice_server):
    path, name = list(spice_server.data.files("4.0"))[7]
    url = f"{spice_server.base_url}release-4.0/{path}/{name}"
    content = spice_server.data.fits_bytes(name, "4.0")
    head = requests.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(content))
    assert head.headers["Accept-Ranges"] == "bytes"
    part = get(url, headers={"Range": "bytes=2880-5759"})
    assert part.status_code == 206
    assert part.content == content[2880:5760]
    assert part.headers["Content-Range"] == f"bytes 2880-5759/{len(content)}"


def test_unknown_or_misplaced_files_are_404(spice_server):
    path, name = next(iter(spice_server.data.files("5.0")))
    base = spice_server.base_url
    assert get(f"{base}release-5.0/{path}/nothing.fits").status_code == 404
    assert get(f"{base}release-5.0/level2/1999/01/01/{name}").status_code == 404
    assert get(f"{base}release-1.0/{path}/{name}").status_code == 404  # other release
    assert get(f"{spice_server.url}/elsewhere/{name}").status_code == 404


# ------------------------------------------------------------------- SOAR


def test_soar_last_product_by_data_item_id(spice_server):
    data = spice_server.data
    name = data.catalog("5.0").FILENAME.iloc[3]
    item = data_item_id(name)
    assert re.fullmatch(r"solo_L[12]_spice-[nw]-\w+(-db)?_\d{8}T\d{6}", item)
    answer = get(spice_server.soar_url, params={
        "retrieval_type": "LAST_PRODUCT", "product_type": "SCIENCE", "data_item_id": item})
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert answer.content == data.fits_bytes(name)
    # Parameter names are case-insensitive.
    answer = get(spice_server.soar_url, params={
        "RETRIEVAL_TYPE": "PRODUCT", "Product_Type": "SCIENCE", "DATA_ITEM_ID": item})
    assert answer.status_code == 200 and answer.content == data.fits_bytes(name)


def test_soar_last_product_gives_latest_version(spice_server):
    data = spice_server.data
    old_name = data.catalog("1.0").FILENAME.iloc[0]
    newest = data.catalog("5.0").FILENAME
    newest = newest[newest.map(data_item_id) == data_item_id(old_name)].iloc[0]
    assert newest != old_name
    answer = get(spice_server.soar_url, params={
        "retrieval_type": "LAST_PRODUCT", "product_type": "SCIENCE",
        "data_item_id": data_item_id(old_name)})
    assert newest in answer.headers["Content-Disposition"]


def test_soar_all_products_query_form(spice_server):
    data = spice_server.data
    name = data.catalog("2.0").FILENAME.iloc[5]  # an older version
    query = ("SELECT+filepath,filename+FROM+soar.v_sc_repository_file"
             f"+WHERE+filename='{name}'")
    answer = get(f"{spice_server.soar_url}?retrieval_type=ALL_PRODUCTS&QUERY={query}")
    assert answer.status_code == 200
    assert answer.content == data.fits_bytes(name, "2.0")
    assert name in answer.headers["Content-Disposition"]
    with fits.open(io.BytesIO(answer.content)) as hdul:
        assert hdul[0].header["FILENAME"] == name


def test_soar_errors(spice_server):
    url = spice_server.soar_url
    assert get(url, params={"retrieval_type": "LAST_PRODUCT", "product_type": "SCIENCE",
                            "data_item_id": "solo_L2_spice-n-ras_19990101T000000"}
               ).status_code == 404
    assert get(url, params={"retrieval_type": "ALL_PRODUCTS",
                            "QUERY": "SELECT filepath,filename FROM soar.v_sc_repository_file "
                                     "WHERE filename='nothing.fits'"}).status_code == 404
    assert get(url, params={"retrieval_type": "LAST_PRODUCT"}).status_code == 400
    assert get(url, params={"retrieval_type": "WHATEVER"}).status_code == 400


# ------------------------------------------------------------- faults


def test_faults_apply_to_spice_routes(spice_server, spice_faults):
    base = spice_server.base_url
    path, name = next(iter(spice_server.data.files("5.0")))
    spice_faults.configure(fail_rate=1.0, classes={"data"}, statuses=(503,), retry_after=1)
    assert get(base + "metadata/latest-release.txt").status_code == 200  # search class
    assert get(f"{base}release-5.0/").status_code == 200
    answer = get(f"{base}release-5.0/{path}/{name}")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    soar = get(spice_server.soar_url, params={
        "retrieval_type": "LAST_PRODUCT", "product_type": "SCIENCE",
        "data_item_id": data_item_id(name)})
    assert soar.status_code == 503
    spice_faults.classes = {"search"}
    assert get(base + "metadata/latest-release.txt").status_code == 503
    assert get(f"{base}release-5.0/catalog.csv").status_code == 503
    assert get(f"{base}release-5.0/{path}/{name}").status_code == 200


def test_cut_catalog_is_detected_by_requests(spice_server, spice_faults):
    spice_faults.cut_rate = 1.0
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(f"{spice_server.base_url}release-3.0/catalog.csv")


# ------------------------------------------------------------ hostile rows


@pytest.fixture
def hostile_server():
    server = start_spice_server(SpiceArchiveData.small(n_files=120))
    yield server
    server.stop()


def raw_get(server, target):
    """GET with the request target sent verbatim (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", target)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_hostile_rows_are_listed_and_served(hostile_server):
    data = hostile_server.data
    original = data.catalog_csv("5.0")
    added = data.add_rows("5.0", [
        {"FILENAME": "../../evil.fits"},
        {"FILE_PATH": "/etc"},
        {"FILE_PATH": "level2/../../../tmp"},
        {"FILENAME": "nul\x00byte.fits"},
        {"SOOPNAME": "x,\"quoted\"\nnewline"},
    ])
    assert len(added) == 5
    frame = pd.read_csv(io.BytesIO(get(f"{hostile_server.base_url}release-5.0/catalog.csv")
                                   .content))
    assert len(frame) == len(data.catalog("5.0")) == len(pd.read_csv(io.BytesIO(original))) + 5
    tail = frame.iloc[-5:]
    assert tail.FILENAME.iloc[0] == "../../evil.fits"
    assert tail.FILE_PATH.iloc[1] == "/etc"
    assert tail.FILE_PATH.iloc[2] == "level2/../../../tmp"
    assert tail.FILENAME.iloc[3] == "nul\x00byte.fits"
    assert tail.SOOPNAME.iloc[4] == "x,\"quoted\"\nnewline"
    # Filled-in defaults: later dates, a valid normal-looking row otherwise.
    assert tail["DATE-BEG"].is_monotonic_increasing
    assert tail["DATE-BEG"].iloc[0] > frame["DATE-BEG"].iloc[-6]
    assert FILENAME_RE.match(tail.FILENAME.iloc[1])

    # Raw (unnormalised) paths built by string concatenation get bytes back.
    release = "/spice-data/release-5.0/"
    status, body = raw_get(hostile_server, f"{release}{tail.FILE_PATH.iloc[0]}/../../evil.fits")
    assert status == 200 and body[:6] == b"SIMPLE"
    status, body = raw_get(hostile_server, f"{release}/etc/{tail.FILENAME.iloc[1]}")
    assert status == 200 and body[:6] == b"SIMPLE"
    status, body = raw_get(hostile_server,
                           f"{release}level2/../../../tmp/{tail.FILENAME.iloc[2]}")
    assert status == 200 and body[:6] == b"SIMPLE"
    nul_name = quote("nul\x00byte.fits")
    status, body = raw_get(hostile_server, f"{release}{tail.FILE_PATH.iloc[3]}/{nul_name}")
    assert status == 200 and body[:6] == b"SIMPLE"
    # Paths normalised by the client (outside the release tree) still get bytes.
    status, body = raw_get(hostile_server, f"/tmp/{tail.FILENAME.iloc[2]}")
    assert status == 200
    answer = get(hostile_server.base_url + "release-5.0/level2/2024/evil.fits")
    assert answer.status_code == 200
    # FITS headers of hostile rows stay valid FITS.
    with fits.open(io.BytesIO(data.fits_bytes("nul\x00byte.fits"))) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["FILENAME"] == "nul?byte.fits"
    # SOAR answers with the hostile name, for clients to sanitise.
    soar = get(hostile_server.soar_url, params={
        "retrieval_type": "ALL_PRODUCTS",
        "QUERY": "SELECT filepath,filename FROM soar.v_sc_repository_file "
                 "WHERE filename='../../evil.fits'"})
    assert soar.status_code == 200
    assert soar.headers["Content-Disposition"] == 'attachment; filename="../../evil.fits"'

    data.clear_added_rows()
    assert data.catalog_csv("5.0") == original
    assert raw_get(hostile_server, f"/tmp/{tail.FILENAME.iloc[2]}")[0] == 404


def test_added_rows_with_new_column(hostile_server):
    data = hostile_server.data
    data.add_rows("3.0", [{"EXTRA_KEY": "value", "NAXIS1": "not-a-number"}])
    frame = pd.read_csv(io.BytesIO(data.catalog_csv("3.0")))
    assert "EXTRA_KEY" in frame.columns
    assert frame.EXTRA_KEY.iloc[-1] == "value"
    assert frame.NAXIS1.iloc[-1] == "not-a-number"
    data.clear_added_rows("3.0")
    assert "EXTRA_KEY" not in pd.read_csv(io.BytesIO(data.catalog_csv("3.0"))).columns


# ---------------------------------------------------------------- fixtures


def test_spice_env_points_clients_at_the_server(spice_env):
    import os

    assert os.environ["SUNPY_ARCHIVES_SPICE_URL"] == spice_env.base_url
    assert os.environ["SUNPY_ARCHIVES_SOAR_URL"] == spice_env.soar_url
    assert get(os.environ["SUNPY_ARCHIVES_SPICE_URL"] + "metadata/latest-release.txt").ok


def test_spice_faults_fixture_starts_clean(spice_faults):
    assert not spice_faults.active
    assert spice_faults.settings() == type(spice_faults)().settings()
    spice_faults.fail_rate = 1.0  # reset by the fixture afterwards
