"""
Staging JSOC exports: submit, poll with backoff inside a budget, list the files.

`Stager` talks to ``jsoc_fetch`` through drms's `drms.HttpJsonClient` (the
transport drms itself uses), adding what drms lacks: retries of transient
failures, named export states, a poll interval that starts short and grows
(`sunpy_archives.core.polling`), a total time budget, and the
one-pending-export-per-user rule handled by waiting for (or reusing) the
pending request. Failures raise `ExportError` subclasses that carry JSOC's
own message and the request ID.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin

from ..core.errors import ExportError
from ..core.http import retry_delay
from ..core.polling import Backoff, PollTimeout, poll
from ._attrs import ARCHIVE

__all__ = ["ExportState", "ExportFile", "ExportResult", "Stager", "ExportFailed", "ExportTooLarge",
           "ExportTimeout", "state_of"]

log = logging.getLogger("sunpy_archives")


class ExportState(enum.Enum):
    """What a JSOC export status code means."""

    DONE = 0
    PROCESSING = 1
    QUEUED = 2
    TOO_LARGE = 3
    FAILED = 4
    EXPIRED = 5
    NOT_FOUND_YET = 6
    PENDING_LIMIT = 7
    TEST_MODE = 12
    NEEDS_OPERATOR = 25
    UNKNOWN = -1

    @property
    def pending(self) -> bool:
        return self in (ExportState.PROCESSING, ExportState.QUEUED, ExportState.NOT_FOUND_YET)

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


def state_of(answer: dict) -> ExportState:
    """The named state of a ``jsoc_fetch`` answer (status may be an int or a string).

    Examples
    --------
    >>> state_of({"status": "0"})
    <ExportState.DONE: 0>
    """
    try:
        return ExportState(int(answer.get("status")))
    except (TypeError, ValueError):
        return ExportState.UNKNOWN


class ExportFailed(ExportError):
    """JSOC refused or failed an export; ``.status``, ``.requestid`` and ``.jsoc_message`` are set."""

    def __init__(self, message: str, *, status: ExportState, requestid: str | None = None,
                 url: str | None = None):
        self.status = status
        self.requestid = requestid
        self.jsoc_message = message
        where = f" (export {requestid})" if requestid else ""
        super().__init__(f"export {status.label}{where}: {message}", archive=ARCHIVE, url=url)


class ExportTooLarge(ExportFailed):
    """JSOC refused the export as too large (status 3)."""


class ExportTimeout(ExportError):
    """The export was not ready within the time budget; fetch it later by ``.requestid``."""

    def __init__(self, requestid: str, elapsed: float, state: ExportState):
        self.requestid = requestid
        self.state = state
        super().__init__(
            f"export {requestid} still {state.label} after {elapsed:.0f} s; fetch it later with "
            f"Fido.search(a.drms.ExportID({requestid!r})) and Fido.fetch", archive=ARCHIVE)


@dataclass(frozen=True)
class ExportFile:
    """One file of a finished export."""

    record: str
    filename: str
    url: str
    size: int | None = None


@dataclass
class ExportResult:
    """A finished export: its ID (empty for an immediate url_quick answer), answer and files."""

    requestid: str
    answer: dict
    files: list[ExportFile] = field(default_factory=list)

    @property
    def method(self) -> str:
        return str(self.answer.get("method", ""))

    @property
    def protocol(self) -> str:
        return str(self.answer.get("protocol", ""))


_PENDING_ID_RE = re.compile(r"\((JSOC_\d{8}_\d+(?:_X)?(?:_IN)?)\)")
_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}


def export_files(answer: dict, download_base: str) -> list[ExportFile]:
    """The downloadable files of a finished export answer (PROTOCOLS.md 3.8).

    Examples
    --------
    >>> export_files({"dir": "/SUM1/D2/S00000", "method": "url",
    ...               "data": [{"record": "r", "filename": "a.fits"}]}, "http://x/")
    [ExportFile(record='r', filename='a.fits', url='http://x/SUM1/D2/S00000/a.fits', size=None)]
    """
    directory = answer.get("dir") or ""
    tarfile = answer.get("tarfile")
    if tarfile:
        name = str(tarfile).rsplit("/", 1)[-1]
        return [ExportFile("", name, urljoin(download_base, str(tarfile).lstrip("/")))]
    files = []
    for item in answer.get("data") or []:
        filename = str(item.get("filename") or "")
        if not filename or filename == "NoDataFile":
            continue
        path = f"{directory}/{filename}" if directory else filename
        files.append(ExportFile(str(item.get("record") or ""), filename,
                                urljoin(download_base, path.lstrip("/"))))
    return files


class Stager:
    """Submit JSOC exports and wait for them.

    Parameters
    ----------
    json_client : drms.HttpJsonClient
        drms's transport, pointed at the server.
    download_base : str
        drms's ``http_download_baseurl`` (site root).
    budget : float
        Seconds one export may take to stage.
    backoff : Backoff
        Poll intervals (short first interval, growing).
    retries : int
        Retries of a transient failure (connection error, 5xx, 429, bad JSON) per call.
    progress : bool
        Show a progress line while staging.
    sleep : callable
        Injected for tests.
    """

    def __init__(self, json_client, download_base: str, *, budget: float = 600.0,
                 backoff: Backoff = Backoff(), retries: int = 5, progress: bool = True,
                 sleep: Callable[[float], None] = time.sleep):
        self.json = json_client
        self.download_base = download_base
        self.budget = float(budget)
        self.backoff = backoff
        self.retries = int(retries)
        self.progress = progress
        self.sleep = sleep
        self.submitted: dict[str, str] = {}  # request id -> ds

    # -- transport -------------------------------------------------------------------------

    def _call(self, what: str, func, *args, **kwargs) -> dict:
        attempt = 0
        while True:
            try:
                answer = func(*args, **kwargs)
                if not isinstance(answer, dict):
                    raise ValueError("answer is not a JSON object")
                return answer
            except HTTPError as exc:
                if exc.code not in _TRANSIENT_HTTP or attempt >= self.retries:
                    raise ExportError(f"{what} failed: HTTP {exc.code} {exc.reason}", archive=ARCHIVE,
                                      url=self._url()) from None
                delay = retry_delay(attempt, exc.headers.get("Retry-After") if exc.headers else None)
            except (URLError, socket.timeout, TimeoutError, ConnectionError, json.JSONDecodeError,
                    ValueError) as exc:
                if attempt >= self.retries:
                    raise ExportError(f"{what} failed after {attempt + 1} attempts: {exc}",
                                      archive=ARCHIVE, url=self._url()) from None
                delay = retry_delay(attempt)
            log.info("JSOC: %s failed, retrying in %.1f s", what, delay)
            self.sleep(delay)
            attempt += 1

    def _url(self) -> str:
        return str(getattr(self.json.server, "url_jsoc_fetch", "") or "")

    def status(self, requestid: str) -> dict:
        """One ``exp_status`` answer (transient failures retried)."""
        return self._call(f"status of export {requestid}", self.json.exp_status, requestid)

    # -- submit ----------------------------------------------------------------------------

    def submit(self, ds: str, notify: str, *, method: str = "url", protocol: str = "fits",
               filenamefmt: str | None = None, process: dict | None = None) -> dict:
        """Send ``exp_request``; wait out a pending export of the same user first if refused.

        Returns the accepted answer (status 0 or 2); raises `ExportFailed` otherwise.
        """
        for _ in range(10):
            answer = self._call("export request", self.json.exp_request, ds, notify, method=method,
                                protocol=protocol, filenamefmt=filenamefmt, process=process)
            state = state_of(answer)
            if state in (ExportState.DONE, ExportState.QUEUED, ExportState.PROCESSING):
                if answer.get("requestid"):
                    self.submitted[answer["requestid"]] = ds
                return answer
            message = str(answer.get("error") or f"JSOC answered status {answer.get('status')}").strip()
            if state is ExportState.PENDING_LIMIT:
                match = _PENDING_ID_RE.search(message)
                if match is None:
                    raise ExportFailed(message, status=state, url=self._url())
                pending = match.group(1)
                if self.submitted.get(pending) == ds:
                    log.info("JSOC: reusing pending export %s for the same records", pending)
                    return {"status": 2, "requestid": pending, "method": method, "protocol": protocol}
                log.info("JSOC: waiting for pending export %s before submitting the next", pending)
                try:
                    self.wait(pending, label=f"waiting for {pending}")
                except ExportFailed:
                    pass  # the other request failing frees the slot as well
                continue
            cls = ExportTooLarge if state is ExportState.TOO_LARGE else ExportFailed
            raise cls(message, status=state, requestid=answer.get("requestid") or None, url=self._url())
        raise ExportFailed("JSOC kept refusing the export because of other pending requests",
                           status=ExportState.PENDING_LIMIT, url=self._url())

    # -- wait ------------------------------------------------------------------------------

    def wait(self, requestid: str, *, answer: dict | None = None, label: str | None = None) -> dict:
        """Poll ``exp_status`` until the export is done; return the final answer.

        Raises
        ------
        ExportFailed
            The export failed, expired or is unknown (JSOC's message included).
        ExportTimeout
            Still pending when the budget ran out.
        """
        bar = self._bar(label or f"JSOC export {requestid}")
        calls = {"n": 0}

        def check():
            nonlocal answer
            if answer is None or calls["n"] > 0:
                answer = self.status(requestid)
            calls["n"] += 1
            state = state_of(answer)
            if bar is not None:
                bar.set_description_str(f"{label or 'JSOC export ' + requestid}: {state.label}",
                                        refresh=True)
            if state is ExportState.DONE:
                return True, answer
            if state.pending:
                return False, answer
            message = str(answer.get("error") or f"JSOC answered status {answer.get('status')}").strip()
            cls = ExportTooLarge if state is ExportState.TOO_LARGE else ExportFailed
            raise cls(message, status=state, requestid=requestid, url=self._url())

        def hint(value):
            try:
                return float(value.get("wait"))
            except (TypeError, ValueError):
                return None

        started = time.monotonic()
        try:
            return poll(check, budget=self.budget, backoff=self.backoff, hint=hint, sleep=self.sleep)
        except PollTimeout as exc:
            raise ExportTimeout(requestid, time.monotonic() - started, state_of(exc.last or {})) from None
        finally:
            if bar is not None:
                bar.close()

    def _bar(self, label: str):
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=None, desc=label, bar_format="{desc} [{elapsed}]", leave=False)

    def stage(self, ds: str, notify: str, *, method: str = "url", protocol: str = "fits",
              filenamefmt: str | None = None, process: dict | None = None) -> ExportResult:
        """Submit ``ds`` and wait for it; return the finished export and its files."""
        answer = self.submit(ds, notify, method=method, protocol=protocol, filenamefmt=filenamefmt,
                             process=process)
        requestid = str(answer.get("requestid") or "")
        if state_of(answer) is not ExportState.DONE or (requestid and not answer.get("data")):
            answer = self.wait(requestid, answer=answer if state_of(answer).pending else None)
        return ExportResult(requestid, answer, export_files(answer, self.download_base))

    def from_id(self, requestid: str, *, wait: bool = True) -> ExportResult:
        """The files of an existing export (waiting for it if still pending and ``wait``)."""
        answer = self.status(requestid)
        state = state_of(answer)
        if state.pending and wait:
            answer = self.wait(requestid, answer=answer)
        elif state is not ExportState.DONE:
            if state.pending:
                raise ExportTimeout(requestid, 0.0, state)
            message = str(answer.get("error") or f"JSOC answered status {answer.get('status')}").strip()
            raise ExportFailed(message, status=state, requestid=requestid, url=self._url())
        return ExportResult(requestid, answer, export_files(answer, self.download_base))
