"""Fetching SPICE files: layout, skip-existing, retries, kills, hostile catalogs."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlparse

import parfive
import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives  # noqa: F401
from sunpy_archives.core.download import marker_for
from sunpy_archives.spice import Catalog, FileMetadata, Release, SPICEClient


def _search(n=3, **extra):
    res = Fido.search(a.spice.Release("latest"), a.Level(2), a.spice.Query("RASTERNO == 0"), **extra)
    return res[0][:n]


def _get_count(server, filename):
    return sum(count for key, count in server.faults.get_hits.items() if filename in key)


def test_fetch_reproduces_release_tree(spice_env, tmp_path):
    table = _search(3)
    files = Fido.fetch(table, path=str(tmp_path / "{file_path}" / "{file}"), progress=False)
    assert not files.errors and len(files) == 3
    for row in table:
        dest = tmp_path / row["File Path"] / row["Filename"]
        assert str(dest) in files
        assert dest.read_bytes() == spice_env.data.fits_bytes(row["Filename"])
        assert not marker_for(dest).exists()


def test_folder_path_and_default_name(spice_env, tmp_path):
    table = _search(2)
    files = Fido.fetch(table, path=tmp_path, progress=False)
    assert sorted(Path(f).name for f in files) == sorted(table["Filename"])
    assert all(Path(f).parent == tmp_path for f in files)


def test_client_fetch_without_downloader_and_single_row(spice_env, tmp_path):
    table = _search(2)
    client = SPICEClient()
    results = client.fetch(table, path=tmp_path, progress=False)
    assert isinstance(results, parfive.Results) and len(results) == 2
    one = client.fetch(table[0], path=tmp_path / "one", progress=False)
    assert [Path(p).name for p in one] == [table[0]["Filename"]]


def test_second_fetch_downloads_nothing(spice_env, tmp_path):
    table = _search(3)
    template = str(tmp_path / "{file_path}" / "{file}")
    first = Fido.fetch(table, path=template, progress=False)
    stamps = {p: os.stat(p).st_mtime_ns for p in first}
    gets = {name: _get_count(spice_env, name) for name in table["Filename"]}
    second = Fido.fetch(table, path=template, progress=False)
    assert sorted(second) == sorted(first) and not second.errors
    assert {p: os.stat(p).st_mtime_ns for p in second} == stamps
    # parfive may send a HEAD to confirm the name; no file body is asked for again.
    assert {name: _get_count(spice_env, name) for name in table["Filename"]} == gets


def test_transient_5xx_is_retried(spice_env, spice_faults, tmp_path):
    table = _search(3)
    spice_faults.configure(fail_first=2, statuses=(503,), classes=frozenset({"data"}))
    files = Fido.fetch(table, path=tmp_path, progress=False)
    assert not files.errors and len(files) == 3
    assert spice_faults.failures_injected >= 3
    for row in table:
        assert (tmp_path / row["Filename"]).read_bytes() == spice_env.data.fits_bytes(row["Filename"])


def test_429_with_retry_after_is_honoured(spice_env, spice_faults, tmp_path):
    table = _search(1)
    spice_faults.configure(fail_first=1, statuses=(429,), retry_after=1, classes=frozenset({"data"}))
    started = time.monotonic()
    files = Fido.fetch(table, path=tmp_path, progress=False)
    assert not files.errors
    assert time.monotonic() - started >= 0.9


def test_persistent_failure_is_reported_then_completed(spice_env, spice_faults, tmp_path, monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "1")
    table = _search(3)
    spice_faults.configure(fail_rate=1.0, statuses=(500,), classes=frozenset({"data"}))
    files = Fido.fetch(table, path=str(tmp_path / "{file_path}" / "{file}"), progress=False)
    assert len(files.errors) == 3 and len(files) == 0
    for error in files.errors:
        assert urlparse(error.url).path.endswith(".fits")  # the real data URL
    assert not list(tmp_path.rglob("*.fits")), "no partial file left behind"
    spice_faults.reset()
    again = Fido.fetch(files)
    assert not again.errors and len(again) == 3
    for row in table:
        dest = tmp_path / row["File Path"] / row["Filename"]
        assert dest.read_bytes() == spice_env.data.fits_bytes(row["Filename"])


def test_cut_body_is_not_left_as_complete(spice_env, spice_faults, tmp_path, monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    table = _search(2)
    spice_faults.configure(cut_rate=1.0, classes=frozenset({"data"}))
    files = Fido.fetch(table, path=tmp_path, progress=False)
    assert len(files.errors) == 2
    for row in table:
        dest = tmp_path / row["Filename"]
        assert not dest.exists() or dest.read_bytes() != spice_env.data.fits_bytes(row["Filename"])
    spice_faults.reset()
    table2 = _search(2)
    done = Fido.fetch(table2, path=tmp_path, progress=False)
    assert not done.errors
    for row in table:
        assert (tmp_path / row["Filename"]).read_bytes() == spice_env.data.fits_bytes(row["Filename"])


KILLED_FETCH = textwrap.dedent("""
    import sys
    import sunpy_archives
    from sunpy.net import Fido, attrs as a
    res = Fido.search(a.spice.Release("latest"), a.Level(2), a.spice.Query("RASTERNO == 0"))
    print("searched", flush=True)
    Fido.fetch(res[0][:4], path=sys.argv[1] + "/{file_path}/{file}", progress=False, max_conn=4)
    print("finished", flush=True)
""")


def test_fetch_killed_mid_transfer_then_repeated(spice_env, spice_faults, tmp_path):
    table = _search(4)
    # Slow enough that the child is surely mid-transfer when it is killed.
    spice_faults.configure(bandwidth=4000, classes=frozenset({"data"}))
    env = dict(os.environ)
    child = subprocess.Popen([sys.executable, "-c", KILLED_FETCH, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "searched"
        deadline = time.monotonic() + 30
        partial = []
        while time.monotonic() < deadline and not partial:
            partial = [p for p in tmp_path.rglob("*.fits") if p.stat().st_size > 0]
            time.sleep(0.1)
        assert partial, "the child never started writing"
        time.sleep(0.5)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    spice_faults.reset()
    dests = [tmp_path / row["File Path"] / row["Filename"] for row in table]
    started = [d for d in dests if d.exists()]
    assert started and all(marker_for(d).exists() for d in started), "in-flight files are marked"
    files = Fido.fetch(table, path=str(tmp_path / "{file_path}" / "{file}"), progress=False)
    assert not files.errors and len(files) == 4
    for row, dest in zip(table, dests):
        assert dest.read_bytes() == spice_env.data.fits_bytes(row["Filename"])
        assert not marker_for(dest).exists()


@pytest.fixture
def hostile(spice_env):
    latest = spice_env.data.latest
    spice_env.data.add_rows(latest, [
        {"FILENAME": "../../evil.fits", "FILE_PATH": "/etc", "SOOPNAME": "HOSTILE"},
        {"FILENAME": "/abs/evil2.fits", "FILE_PATH": "level2/../../../../tmp", "SOOPNAME": "HOSTILE"},
        {"FILENAME": "evil3.fits", "FILE_PATH": "..", "SOOPNAME": "HOSTILE"},
    ])
    yield spice_env
    spice_env.data.clear_added_rows()


def test_hostile_filename_and_file_path_stay_inside(hostile, tmp_path):
    res = Fido.search(a.spice.Release("latest"), a.spice.SOOP("HOSTILE"))
    table = res[0]
    assert len(table) == 3
    target = tmp_path / "inside"
    files = Fido.fetch(table, path=str(target / "{file_path}" / "{file}"), progress=False)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written, "the hostile rows are still fetched, under safe names"
    for path in written:
        assert path.resolve().is_relative_to(target.resolve()), path
    assert not (tmp_path / "evil.fits").exists()
    assert len(files) + len(files.errors) == 3


def test_soar_provider_fetches_same_bytes(spice_env, tmp_path):
    res = Fido.search(a.spice.Release("latest"), a.Provider("SOAR"), a.Level(2),
                      a.spice.Query("RASTERNO == 0"))
    table = res[0][:2]
    files = Fido.fetch(table, path=tmp_path, progress=False)
    assert not files.errors
    for row in table:
        assert (tmp_path / row["Filename"]).read_bytes() == spice_env.data.fits_bytes(row["Filename"])


# --- the non-Fido API ----------------------------------------------------------------------------

def test_release_api(spice_env):
    data = spice_env.data
    latest = Release()
    assert latest.tag == data.latest and latest.is_latest
    old = Release(data.releases[0])
    assert not old.is_latest and old.latest == data.latest and old.exists
    assert old.url == f"{spice_env.base_url}release-{data.releases[0]}/"
    assert old.catalog_url == old.url + "catalog.csv"
    assert Release.list_releases() == list(data.releases)
    assert not Release("9.0").exists


def test_catalog_from_release_is_cached(spice_env):
    from sunpy_archives.spice.catalog import clear_memory_cache

    data = spice_env.data
    tag = data.releases[1]
    key = f"/spice-data/release-{tag}/catalog.csv"
    before = spice_env.faults.get_hits.get(key, 0)
    catalog = Catalog(tag)
    assert len(catalog) == len(data.catalog(tag))
    assert str(catalog["DATE-BEG"].dtype).startswith("datetime64")
    after_first = spice_env.faults.get_hits.get(key, 0)
    assert after_first <= before + 1
    Catalog(tag)  # memory
    clear_memory_cache()
    Catalog(tag)  # parquet on disk
    assert spice_env.faults.get_hits.get(key, 0) == after_first, "the CSV was not downloaded again"


def test_catalog_from_local_file_handles_missing(spice_env, tmp_path):
    data = spice_env.data
    path = tmp_path / "catalog.csv"
    path.write_bytes(data.catalog_csv(data.latest))
    catalog = Catalog(filename=path)
    raw = data.catalog(data.latest)
    assert len(catalog) == len(raw)
    assert catalog["TIMAQUTC"].isna().sum() == (raw["TIMAQUTC"] == "MISSING").sum() > 0
    assert "MISSING" not in set(catalog["TIMAQUTC"].astype(str))


def test_find_files_like_sospice(spice_env):
    catalog = Catalog()
    frame = catalog.frame
    soop = frame["SOOPNAME"].value_counts().index[0]
    found = catalog.find_files(soopname=soop, date_min="2022-01-01", date_max="2023-06-30")
    assert set(found["LEVEL"]) == {"L2"}, "level defaults to L2 as in sospice"
    expected = frame[(frame.SOOPNAME == soop) & (frame.LEVEL == "L2")
                     & (frame["DATE-BEG"] >= "2022-01-01") & (frame["DATE-BEG"] <= "2023-06-30")]
    assert len(found) == len(expected) > 0
    every_level = catalog.find_files(soopname=soop, level=None)
    assert set(every_level["LEVEL"]) == {"L1", "L2"}
    queried = catalog.find_files(query="NAXIS1 < 100 & 600 < CRVAL1 < 700", level=None)
    assert ((queried.NAXIS1 < 100) & (queried.CRVAL1 > 600) & (queried.CRVAL1 < 700)).all()
    closest = catalog.find_files(closest_to_date="2023-03-01T12:00")
    assert len(closest) == 1 and closest["LEVEL"].iloc[0] == "L2"
    l2 = frame[frame.LEVEL == "L2"]
    best = (l2["DATE-BEG"] - __import__("pandas").Timestamp("2023-03-01T12:00")).abs().idxmin()
    assert closest["FILENAME"].iloc[0] == l2.loc[best, "FILENAME"]


def test_find_files_unknown_keyword_is_clear(spice_env):
    with pytest.raises(ValueError, match="unknown column 'SOOP'.*SOOPNAME"):
        Catalog().find_files(soop="x")


def test_file_metadata_sources(spice_env, tmp_path):
    catalog = Catalog()
    meta = catalog.file_metadata(5)
    name = meta.metadata["FILENAME"]
    expected = spice_env.data.fits_bytes(name)
    from_release = meta.download_file(tmp_path / "r")
    assert from_release == tmp_path / "r" / meta.metadata["FILE_PATH"] / name
    assert from_release.read_bytes() == expected
    tree = f"{spice_env.base_url}release-{catalog.release.tag}/"
    flat = meta.download_file(tmp_path / "t", base_url=tree, keep_tree=False)
    assert flat == tmp_path / "t" / name and flat.read_bytes() == expected
    assert FileMetadata(meta.metadata).get_file_url().startswith(spice_env.soar_url)
    soar = FileMetadata(meta.metadata).download_file(tmp_path / "s")
    assert soar.read_bytes() == expected
    # Already complete: kept, not fetched again.
    stamp = from_release.stat().st_mtime_ns
    assert meta.download_file(tmp_path / "r") == from_release
    assert from_release.stat().st_mtime_ns == stamp


def test_catalog_with_an_unparseable_date_still_loads(spice_env):
    from sunpy_archives.spice.catalog import clear_memory_cache

    data = spice_env.data
    data.add_rows(data.latest, [{"DATE-BEG": "not-a-date", "SOOPNAME": "ODD"}])
    try:
        clear_memory_cache()
        catalog = Catalog(data.latest)
        assert len(catalog) == len(data.catalog(data.latest))
        odd = catalog.frame[catalog.frame["SOOPNAME"] == "ODD"]
        assert len(odd) == 1 and odd["DATE-BEG"].isna().all()
        assert str(catalog["DATE-BEG"].dtype).startswith("datetime64")
    finally:
        data.clear_added_rows()
        clear_memory_cache()
