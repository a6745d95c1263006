"""Fetching ESO files: unique default names, templates, hostile names, no double download."""

from pathlib import Path

import parfive
import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.eso  # noqa: F401
from sunpy_archives.core.errors import BadInputError
from sunpy_archives.eso import ESOClient
from sunpy_archives.testing.eso import EsoFile, EsoProduct


def _previews():
    return Fido.search(a.eso.Collection("MUSE"), a.eso.Category("ANCILLARY.PREVIEW"))


def _file_gets(server, archive_id):
    return sum(
        n for key, n in server.faults.get_hits.items() if key.endswith(f"/file/{archive_id}")
    )


def test_duplicate_original_names_get_unique_default_names(eso_env, tmp_path):
    res = _previews()
    table = res[0]
    originals = list(table["Original Filename"])
    assert len(set(originals)) < len(originals)  # the archive repeats original names
    files = Fido.fetch(res, path=tmp_path, progress=False)
    assert not files.errors and len(files) == len(table)
    names = sorted(Path(f).name for f in files)
    assert names == sorted(f"{aid}.png" for aid in table["Archive ID"])
    for row in table:
        assert (tmp_path / f"{row['Archive ID']}.png").read_bytes() == eso_env.data.file_bytes(
            row["Archive ID"]
        )


def test_original_filename_template_colliding_is_refused_before_download(eso_env, tmp_path):
    res = _previews()
    before = dict(eso_env.faults.get_hits)
    with pytest.raises(BadInputError, match=r"both be saved as.*\{product_id\}"):
        Fido.fetch(res, path=str(tmp_path / "{original_filename}"), progress=False)
    assert dict(eso_env.faults.get_hits) == before


def test_original_names_under_product_folders(eso_env, tmp_path):
    res = _previews()
    files = Fido.fetch(
        res, path=str(tmp_path / "{product_id}" / "{original_filename}"), progress=False
    )
    assert not files.errors
    for row in res[0]:
        dest = tmp_path / row["Product ID"] / row["Original Filename"]
        assert dest.read_bytes() == eso_env.data.file_bytes(row["Archive ID"])


def test_fits_and_fz_keep_their_extensions(eso_env, tmp_path):
    product = next(p for p in eso_env.data.products if p.collection == "VVV")
    table = ESOClient().search(a.eso.ProductID(product.dp_id))
    results = ESOClient().fetch(table, path=tmp_path, progress=False)
    assert sorted(Path(p).name for p in results) == sorted(
        f"{f.archive_id}.fits.fz" for f in product.files
    )


def test_content_disposition_is_not_trusted(eso_env, eso_faults, tmp_path):
    table = _previews()[0]
    aid = table[0]["Archive ID"]
    eso_env.data.content_disposition[aid] = "../../../escaped.sh"
    results = ESOClient().fetch(table[0], path=tmp_path / "dl", progress=False)
    assert [Path(p).name for p in results] == [f"{aid}.png"]
    assert not any(tmp_path.rglob("escaped.sh"))


def test_hostile_original_filename_stays_inside(eso_env, tmp_path):
    data = eso_env.data
    dp_id = "ADP.2030-01-01T00:00:00.001"
    if data.find_file(dp_id) is None:
        data.add_product(
            EsoProduct(
                dp_id=dp_id,
                collection="HOSTILETEST",
                instrument="MUSE",
                facility="ESO-VLT-U4",
                dataproduct_type="cube",
                target="x",
                ra=10.0,
                dec=10.0,
                fov=0.01,
                t_min=70000.0,
                t_max=70000.1,
                em_min=5e-7,
                em_max=9e-7,
                proposal_id="0",
                files=[
                    EsoFile(
                        dp_id,
                        "SCIENCE.CUBE.IFS",
                        "../../../etc/passwd",
                        "FITS",
                        5760,
                        "application/fits",
                        1,
                    ),
                    EsoFile(
                        "ADP.2030-01-01T00:00:00.003",
                        "ANCILLARY.PREVIEW",
                        "/abs/..\\x.png",
                        "PNG",
                        100,
                        "image/png",
                        2,
                    ),
                ],
            )
        )
    table = ESOClient().search(a.eso.Collection("HOSTILETEST"))
    assert len(table) == 2
    results = ESOClient().fetch(
        table, path=str(tmp_path / "in" / "{original_filename}"), progress=False
    )
    assert not results.errors and len(results) == 2
    for p in results:
        assert Path(p).resolve().is_relative_to((tmp_path / "in").resolve())
    default = ESOClient().fetch(table, path=tmp_path / "default", progress=False)
    assert sorted(Path(p).name for p in default) == [
        f"{dp_id}.fits",
        "ADP.2030-01-01T00:00:00.003.png",
    ]


def test_no_complete_file_is_downloaded_twice(eso_env, tmp_path):
    table = Fido.search(a.Instrument("ESPRESSO"), a.eso.Category("ANCILLARY"))[0]
    first = ESOClient().fetch(table, path=tmp_path, progress=False)
    assert len(first) == len(table)
    counts = {aid: _file_gets(eso_env, aid) for aid in table["Archive ID"]}
    assert all(n >= 1 for n in counts.values())
    second = ESOClient().fetch(table, path=tmp_path, progress=False)
    assert sorted(second) == sorted(first)
    assert {aid: _file_gets(eso_env, aid) for aid in table["Archive ID"]} == counts


def test_rows_asked_twice_are_fetched_once(eso_env, tmp_path):
    from astropy.table import vstack

    table = _previews()[0][:2]
    doubled = vstack([table, table], metadata_conflicts="silent")
    doubled.client = table.client
    results = ESOClient().fetch(doubled, path=tmp_path, progress=False)
    assert len(results) == 2


def test_download_failures_are_retried(eso_env, eso_faults, tmp_path):
    table = _previews()[0][:3]
    eso_faults.configure(fail_first=1, statuses=(503,), classes={"data"})
    results = ESOClient().fetch(table, path=tmp_path, progress=False)
    assert not results.errors and len(results) == 3
    assert eso_faults.failures_injected >= 3


def test_fetch_enqueues_on_a_given_downloader(eso_env, tmp_path):
    table = _previews()[0][:2]
    downloader = parfive.Downloader(progress=False)
    assert ESOClient().fetch(table, path=tmp_path, downloader=downloader, wait=False) is None
    assert downloader.queued_downloads == 2
    results = downloader.download()
    assert len(results) == 2
