"""
Rows to parfive jobs: the one download path every client uses.

A client turns the rows it is asked to fetch into `DownloadJob` objects (a
URL, the archive's name for the file, the row's values for ``path=``, and the
exact size when the archive states one). `fetch` does the rest the same way
for every archive:

* renders each destination from the ``path=`` template with sanitised values
  and refuses anything outside the chosen folder;
* refuses two different files that would land on one name, before queueing;
* passes parfive an explicit file name (parfive would otherwise trust the
  server's Content-Disposition);
* attaches `~sunpy_archives.core.http.RetryMiddleware` to every request, so
  429/5xx and dropped connections are retried with backoff;
* keeps an *in-flight marker* beside each file being written. parfive writes
  straight to the final name, so a killed process can leave a full-length
  file with holes; a file whose marker is still there is not trusted and is
  fetched again. The marker is removed only once the file is complete (and,
  where the archive states a size, of that size).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import get_int_setting
from .errors import ArchiveWarning, BadInputError, DownloadError
from .http import RetryMiddleware, user_agent
from .paths import RelPath, render_path, safe_name

__all__ = ["DownloadJob", "marker_for", "is_complete", "plan", "enqueue", "fetch", "default_template"]

log = logging.getLogger("sunpy_archives")

MARKER_SUFFIX = ".sunpy-archives-partial"


@dataclass(frozen=True)
class DownloadJob:
    """One file to fetch.

    Parameters
    ----------
    url : str
        Where the bytes are.
    filename : str
        The archive's name for the file (sanitised before use).
    values : mapping
        Values available to the ``path=`` template (normally the row's
        ``response_block_map``). Wrap relative folder paths in `RelPath`.
    size : int, optional
        The exact size in bytes, when the archive states it; checked after download.
    max_splits : int, optional
        Parallel range requests for this file (JSOC asks for 1).
    """

    url: str
    filename: str
    values: Mapping[str, Any] = field(default_factory=dict)
    size: int | None = None
    max_splits: int | None = None


def marker_for(dest: Path) -> Path:
    """The in-flight marker that stands beside ``dest`` while it is being written."""
    return dest.with_name(f".{dest.name}{MARKER_SUFFIX}")


def is_complete(dest: Path, size: int | None = None) -> bool:
    """True if ``dest`` exists, is not in flight, and has the expected size (if known)."""
    if not dest.is_file() or marker_for(dest).exists():
        return False
    return size is None or dest.stat().st_size == size


def default_template() -> str:
    """sunpy's download folder with ``{file}``, as Fido uses when no path is given."""
    from sunpy import config

    return str(Path(config.get("downloads", "download_dir")).expanduser() / "{file}")


def normalise_template(path: str | os.PathLike | None) -> str:
    """Accept a folder or a template; always return a template ending in a file name field."""
    if path is None:
        return default_template()
    text = os.path.expanduser(os.fspath(path))
    return text if "{file}" in text else os.path.join(text, "{file}")


@dataclass
class _Planned:
    job: DownloadJob
    dest: Path
    overwrite: bool | None
    in_flight: bool


def plan(jobs: Iterable[DownloadJob], template: str) -> list[_Planned]:
    """Render destinations, check they are safe and distinct, decide what to re-fetch.

    Raises
    ------
    BadInputError
        Two different files would be written to the same destination.
    UnsafePathError
        A destination would leave the folder of the template.
    """
    planned: list[_Planned] = []
    seen: dict[Path, DownloadJob] = {}
    for job in jobs:
        values = dict(job.values)
        values["file"] = safe_name(job.filename)
        dest = render_path(template, values)
        other = seen.get(dest)
        if other is not None:
            if other.url == job.url:
                continue  # the same file asked for twice: fetch it once
            raise BadInputError(
                f"two different files would both be saved as {str(dest)!r} "
                f"({other.url} and {job.url}); put a field that tells them apart in path= "
                f"(see the result's path_format_keys()) or fetch them separately")
        seen[dest] = job
        marker = marker_for(dest)
        in_flight = marker.exists()
        stale = dest.exists() and (in_flight or (job.size is not None and dest.stat().st_size != job.size))
        if stale:
            log.info("%s is incomplete; fetching it again", dest)
        planned.append(_Planned(job, dest, True if stale else None, in_flight))
    return planned


class _Destination:
    """The ``filename=`` we give parfive: a callable returning the destination.

    parfive keeps this object in ``Results.errors`` and hands it back to itself
    when ``Fido.fetch(results)`` retries, on a downloader none of our trackers
    watch. So before any write to a file that is not there yet, it marks the
    file in flight; a later fetch then trusts the file only once it has been
    verified (the marker costs at most one redundant download, never a
    truncated file taken for complete).
    """

    def __init__(self, dest: Path):
        self.dest = dest

    def __call__(self, *_ignored) -> Path:
        if not self.dest.exists():
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            marker_for(self.dest).touch()
        return self.dest

    def __fspath__(self) -> str:
        return str(self.dest)

    def __repr__(self) -> str:
        return f"<destination {self.dest}>"


class _CompletionTracker:
    """parfive done-callback: verifies sizes and clears in-flight markers.

    A callback that raises makes parfive delete the file and report it as
    failed, which is how a short file becomes an entry in ``Results.errors``
    instead of a file that looks complete.
    """

    def __init__(self):
        self.expected: dict[str, tuple[int | None, Path]] = {}

    def __call__(self, filepath, url, exception):
        if filepath is None:
            return
        key = os.path.abspath(filepath)
        entry = self.expected.get(key)
        if entry is None:
            return
        size, marker = entry
        if exception is None and size is not None:
            got = Path(key).stat().st_size
            if got != size:
                # parfive catches this, deletes the file and calls us again with it.
                raise DownloadError(f"{Path(key).name} is {got} bytes, the archive said {size}",
                                    url=url.split("?", 1)[0])
        self.expected.pop(key, None)
        marker.unlink(missing_ok=True)


def _tracker(downloader) -> _CompletionTracker:
    tracker = getattr(downloader, "_sunpy_archives_tracker", None)
    if tracker is None:
        tracker = _CompletionTracker()
        session_config = downloader.config.config
        session_config.done_callbacks = (*tuple(session_config.done_callbacks or ()), tracker)
        downloader._sunpy_archives_tracker = tracker
    return tracker


def enqueue(downloader, jobs: Iterable[DownloadJob], path: str | os.PathLike | None, *,
            retries: int | None = None, max_splits: int | None = None,
            middlewares: Sequence = ()) -> list[Path]:
    """Queue ``jobs`` on ``downloader`` (a `parfive.Downloader`); do not run it.

    Parameters
    ----------
    downloader : parfive.Downloader
        Usually the one `~sunpy.net.Fido.fetch` hands in; its ``overwrite``
        setting is honoured.
    jobs : iterable of DownloadJob
    path : str or path-like or None
        A folder or a template such as ``"data/{file_path}/{file}"``.
    retries : int, optional
        Retries per request (default: setting ``retries``).
    max_splits : int, optional
        Range requests per file, unless a job says otherwise (default: setting
        ``max_splits``, 1: one connection per file keeps the archive's load at
        the downloader's ``max_conn``).
    middlewares : sequence of aiohttp client middlewares
        Run on every request of these jobs after the retry middleware, e.g. to
        attach an archive's API key (parfive's ``enqueue_file`` cannot take
        ``headers=``). A middleware sees each redirect hop, so it can keep a
        key away from a presigned storage URL.

    Returns
    -------
    list of pathlib.Path
        The destinations queued, in order.
    """
    template = normalise_template(path)
    overwrite = downloader.config.overwrite
    planned = plan(jobs, template)
    middleware = RetryMiddleware(retries)
    splits = get_int_setting("max_splits", max_splits, minimum=1)
    tracker = _tracker(downloader)
    for item in planned:
        item.dest.parent.mkdir(parents=True, exist_ok=True)
        will_write = item.overwrite or overwrite is True or not item.dest.exists()
        if will_write and overwrite != "unique":
            marker = marker_for(item.dest)
            marker.touch()
            tracker.expected[os.path.abspath(item.dest)] = (item.job.size, marker)
        kwargs: dict[str, Any] = {
            "middlewares": (middleware, *middlewares),
            "max_splits": item.job.max_splits if item.job.max_splits is not None else splits,
        }
        downloader.enqueue_file(item.job.url, filename=_Destination(item.dest),
                                overwrite=item.overwrite, **kwargs)
    return [item.dest for item in planned]


def make_downloader(*, max_conn: int | None = None, progress: bool = True,
                    overwrite: bool | str = False):
    """A parfive Downloader with our User-Agent, for fetches made outside Fido."""
    import parfive

    max_conn = get_int_setting("max_conn", max_conn, minimum=1)
    config = parfive.SessionConfig(headers={"User-Agent": user_agent()})
    return parfive.Downloader(max_conn=max_conn, progress=progress, overwrite=overwrite,
                              config=config)


def fetch(jobs: Iterable[DownloadJob], *, path=None, downloader=None, wait: bool = True,
          progress: bool = True, overwrite: bool | str = False, max_conn: int | None = None,
          max_splits: int | None = None, retries: int | None = None, archive: str | None = None,
          middlewares: Sequence = ()):
    """The body of every client's ``fetch``, with sunpy's conventions.

    With a ``downloader`` (as from Fido) the jobs are only queued and None is
    returned when ``wait`` is False. Without one, a downloader is made, run,
    and its `parfive.Results` returned; failures are then reported in a
    warning as well as in ``Results.errors``.
    """
    own = downloader is None
    if own:
        downloader = make_downloader(max_conn=max_conn, progress=progress, overwrite=overwrite)
    enqueue(downloader, jobs, path, retries=retries, max_splits=max_splits, middlewares=middlewares)
    if not wait:
        return downloader if own else None
    results = downloader.download()
    if own:
        report_failures(results, archive=archive)
    return results


def report_failures(results, *, archive: str | None = None) -> None:
    """Warn once, with a retry hint, if any file in ``results`` failed."""
    errors = list(getattr(results, "errors", []) or [])
    if not errors:
        return
    first = errors[0]
    who = f"{archive}: " if archive else ""
    warnings.warn(
        f"{who}{len(errors)} file(s) failed to download (first: {first.url.split('?', 1)[0]}: "
        f"{first.exception}); pass the returned Results to Fido.fetch to retry them",
        ArchiveWarning, stacklevel=3)


def relpath_values(values: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """Copy ``values`` with the given keys marked as relative folder paths."""
    out = dict(values)
    for key in keys:
        if key in out and out[key] is not None:
            out[key] = RelPath(str(out[key]))
    return out
