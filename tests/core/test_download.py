"""The shared download path, against a small local file server."""

import hashlib
import os

import pytest
from aiohttp import web

from sunpy_archives.core.download import DownloadJob, enqueue, fetch, make_downloader, marker_for
from sunpy_archives.core.errors import BadInputError
from sunpy_archives.core.paths import RelPath
from sunpy_archives.testing import FaultConfig, LocalServer
from sunpy_archives.testing.faults import fault_middleware, send_bytes


def _content(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest() * (500 + len(name) * 37)


@pytest.fixture(scope="module")
def files_server():
    faults = FaultConfig()
    app = web.Application(middlewares=[fault_middleware(faults)])

    async def serve(request):
        name = request.match_info["name"]
        # A hostile Content-Disposition: parfive would trust it without an explicit filename.
        headers = {"Content-Disposition": 'attachment; filename="../../escaped.bin"'}
        return await send_bytes(request, _content(name), headers=headers, faults=faults)

    app.router.add_get("/files/{name}", serve)
    with LocalServer(app) as server:
        server.faults = faults
        yield server


def _job(server, name, **kw):
    return DownloadJob(f"{server.url}/files/{name}", name, **kw)


def test_explicit_names_beat_content_disposition(files_server, tmp_path):
    results = fetch([_job(files_server, "a.bin")], path=tmp_path / "dl", progress=False)
    assert not results.errors
    assert (tmp_path / "dl" / "a.bin").read_bytes() == _content("a.bin")
    assert not (tmp_path / "escaped.bin").exists()
    assert not any(p.name == "escaped.bin" for p in tmp_path.rglob("*"))


def test_exact_size_is_checked(files_server, tmp_path):
    good = _job(files_server, "good.bin", size=len(_content("good.bin")))
    bad = _job(files_server, "bad.bin", size=len(_content("bad.bin")) + 1)
    with pytest.warns(UserWarning, match="failed to download"):
        results = fetch([good, bad], path=tmp_path, progress=False, archive="TEST")
    assert [os.path.basename(p) for p in results] == ["good.bin"]
    assert len(results.errors) == 1 and "bad.bin" in results.errors[0].url
    assert "archive said" in str(results.errors[0].exception)
    assert not (tmp_path / "bad.bin").exists(), "a short file never stays behind"
    assert not marker_for(tmp_path / "bad.bin").exists()
    assert not marker_for(tmp_path / "good.bin").exists()


def test_existing_file_of_wrong_size_is_fetched_again(files_server, tmp_path):
    dest = tmp_path / "c.bin"
    dest.write_bytes(b"stale")
    results = fetch([_job(files_server, "c.bin", size=len(_content("c.bin")))], path=tmp_path, progress=False)
    assert not results.errors
    assert dest.read_bytes() == _content("c.bin")


def test_marked_file_is_fetched_again_and_unmarked_is_kept(files_server, tmp_path):
    marked, kept = tmp_path / "m.bin", tmp_path / "k.bin"
    marked.write_bytes(b"x" * len(_content("m.bin")))  # full length, wrong bytes (holes)
    marker_for(marked).touch()
    kept.write_bytes(b"mine")
    results = fetch([_job(files_server, "m.bin"), _job(files_server, "k.bin")], path=tmp_path,
                    progress=False)
    assert not results.errors and len(results) == 2
    assert marked.read_bytes() == _content("m.bin") and not marker_for(marked).exists()
    assert kept.read_bytes() == b"mine", "a complete file (no marker, no stated size) is kept"


def test_two_files_one_destination_is_refused_before_queueing(files_server, tmp_path):
    downloader = make_downloader(progress=False)
    jobs = [_job(files_server, "x.bin", values={"level": "L2"}),
            DownloadJob(f"{files_server.url}/files/y.bin", "x.bin", values={"level": "L2"})]
    with pytest.raises(BadInputError, match="both be saved as"):
        enqueue(downloader, jobs, tmp_path / "{level}" / "{file}")
    assert downloader.queued_downloads == 0
    assert not any(tmp_path.iterdir())


def test_same_file_twice_is_fetched_once(files_server, tmp_path):
    job = _job(files_server, "once.bin")
    downloader = make_downloader(progress=False)
    enqueue(downloader, [job, job], tmp_path)
    assert downloader.queued_downloads == 1


def test_relpath_values_keep_folders_but_not_escapes(files_server, tmp_path):
    job = _job(files_server, "t.bin", values={"dir": RelPath("a/b/../../../c")})
    results = fetch([job], path=tmp_path / "{dir}" / "{file}", progress=False)
    assert results[0] == str(tmp_path / "a" / "b" / "_" / "_" / "_" / "c" / "t.bin")


def test_fetch_without_wait_returns_the_downloader(files_server, tmp_path):
    downloader = fetch([_job(files_server, "w.bin")], path=tmp_path, wait=False, progress=False)
    assert downloader.queued_downloads == 1
    results = downloader.download()
    assert (tmp_path / "w.bin").read_bytes() == _content("w.bin") and not results.errors


def test_retries_are_bounded(files_server, tmp_path, monkeypatch):
    files_server.faults.configure(fail_rate=1.0, statuses=(502,))
    try:
        with pytest.warns(UserWarning):
            results = fetch([_job(files_server, "r.bin")], path=tmp_path, progress=False, retries=2)
        assert len(results.errors) == 1
        # 1 try + 2 retries, for the HEAD parfive sends first and then the GET.
        assert files_server.faults.failures_injected == 6
    finally:
        files_server.faults.reset()


def test_one_connection_per_file_by_default(files_server, tmp_path, monkeypatch):
    files_server.faults.clear_counters()
    results = fetch([_job(files_server, "s.bin")], path=tmp_path, progress=False)
    assert not results.errors
    gets = sum(n for key, n in files_server.faults.get_hits.items() if "s.bin" in key)
    assert gets == 1, "no range splits unless asked for"
    monkeypatch.setenv("SUNPY_ARCHIVES_MAX_SPLITS", "3")
    results = fetch([_job(files_server, "s3.bin")], path=tmp_path, progress=False)
    gets = sum(n for key, n in files_server.faults.get_hits.items() if "s3.bin" in key)
    assert gets >= 3 and (tmp_path / "s3.bin").read_bytes() == _content("s3.bin")


def test_fido_style_retry_marks_files_before_writing(files_server, tmp_path):
    """Fido.fetch(results) hands Results.errors straight to parfive's retry (none of our
    trackers watch it): the files it writes are marked in flight, so a later fetch
    verifies them instead of trusting them."""
    import parfive

    files_server.faults.configure(fail_rate=1.0, statuses=(500,))
    try:
        with pytest.warns(UserWarning):
            failed = fetch([_job(files_server, "late.bin")], path=tmp_path, progress=False, retries=0)
    finally:
        files_server.faults.reset()
    assert len(failed.errors) == 1 and not (tmp_path / "late.bin").exists()
    assert os.fspath(failed.errors[0].filepath_partial) == str(tmp_path / "late.bin")
    retried = parfive.Downloader(progress=False).retry(failed)
    assert not retried.errors
    dest = tmp_path / "late.bin"
    assert dest.read_bytes() == _content("late.bin")
    assert marker_for(dest).exists(), "written outside our trackers: not yet trusted"
    again = fetch([_job(files_server, "late.bin")], path=tmp_path, progress=False)
    assert not again.errors and not marker_for(dest).exists()
    assert dest.read_bytes() == _content("late.bin")
