"""
HTTP for metadata requests (``requests``) and for downloads (an aiohttp
middleware that parfive's requests pass through).

Both retry the same transient failures, the same bounded number of times:
HTTP 429 and 5xx, and connections that fail or drop. ``Retry-After`` is
honoured (capped, so a hostile server cannot park a client for hours), and
otherwise the wait grows exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .config import get_int_setting
from .errors import SearchError

__all__ = [
    "RETRY_STATUSES",
    "user_agent",
    "make_session",
    "request",
    "retry_delay",
    "RetryMiddleware",
    "head",
]

log = logging.getLogger("sunpy_archives")

#: HTTP statuses worth asking again for.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The longest Retry-After we obey, in seconds.
MAX_RETRY_AFTER = 60.0
#: First backoff interval, in seconds; doubles each attempt.
BACKOFF_BASE = 0.25
BACKOFF_CAP = 20.0


def user_agent() -> str:
    """The User-Agent every request carries."""
    from sunpy_archives import __version__

    return f"sunpy-archives/{__version__}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def retry_delay(attempt: int, retry_after: str | None = None, *, rng: random.Random | None = None) -> float:
    """How long to wait before retry number ``attempt`` (0-based).

    Parameters
    ----------
    attempt : int
        How many retries were made already.
    retry_after : str, optional
        The server's Retry-After header, which wins when present.
    rng : random.Random, optional
        Source of jitter (tests pass a seeded one).
    """
    server = parse_retry_after(retry_after)
    if server is not None:
        return server
    rng = rng or random
    return min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (0.5 + rng.random() / 2)


class _TimeoutSession(requests.Session):
    """A session that never waits forever: every request gets a timeout."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, **kwargs):  # noqa: D102 - same as requests.Session
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


def make_session(*, retries: int | None = None, timeout: float | None = None) -> requests.Session:
    """A `requests.Session` with timeouts, bounded retries and our User-Agent.

    Parameters
    ----------
    retries : int, optional
        Retries of a transient failure (default: setting ``retries``).
    timeout : float, optional
        Seconds before a request is abandoned (default: setting ``timeout``).
    """
    retries = get_int_setting("retries", retries)
    timeout = float(get_int_setting("timeout", None if timeout is None else int(timeout), minimum=1))
    session = _TimeoutSession(timeout)
    policy = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=BACKOFF_BASE,
        backoff_max=BACKOFF_CAP,
        backoff_jitter=BACKOFF_BASE,
        status_forcelist=sorted(RETRY_STATUSES),
        # Every method: our POSTs (TAP queries) are reads, safe to repeat. (A set rather
        # than None: urllib3's None check costs a slow first-time ABC lookup.)
        allowed_methods=frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=policy, pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent()
    return session


def _describe(url: str) -> str:
    # Only scheme, host and path: query strings never reach messages.
    return url.split("?", 1)[0]


def request(session: requests.Session, method: str, url: str, *, archive: str,
            setting_hint: str | None = None, ok: Iterable[int] = (), **kwargs) -> requests.Response:
    """Make one metadata request; turn every failure into a `SearchError`.

    Parameters
    ----------
    session : requests.Session
        From `make_session` (which already retried transient failures).
    method, url : str
        What to ask.
    archive : str
        Named in error messages.
    setting_hint : str, optional
        The environment variable that points the client at this server, named
        when the server cannot be reached.
    ok : iterable of int
        Non-2xx statuses the caller handles itself (e.g. 404 for "no such release").
    **kwargs
        Passed to `requests.Session.request`.
    """
    where = _describe(url)
    try:
        response = session.request(method, url, **kwargs)
    except requests.exceptions.RetryError as exc:
        raise SearchError(f"the server kept failing after retries ({exc.__class__.__name__})",
                          archive=archive, url=where) from None
    except requests.exceptions.Timeout:
        raise SearchError("the server did not answer in time; try again later or raise "
                          "SUNPY_ARCHIVES_TIMEOUT", archive=archive, url=where) from None
    except requests.exceptions.ConnectionError as exc:
        hint = f"; check {setting_hint}" if setting_hint else ""
        raise SearchError(f"could not connect ({_short(exc)}){hint}", archive=archive, url=where) from None
    except requests.exceptions.RequestException as exc:
        raise SearchError(f"request failed ({_short(exc)})", archive=archive, url=where) from None
    if response.status_code >= 400 and response.status_code not in set(ok):
        raise SearchError(f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                          + _server_message(response), archive=archive, url=where)
    return response


def head(session: requests.Session, url: str, *, archive: str, setting_hint: str | None = None):
    """HEAD ``url`` through the session's connection pool and retry policy; return (status, headers).

    A cheaper path than `request` for the one request a cached search makes:
    requests' per-request preparation costs tens of milliseconds the first
    time in a process (a typing-Protocol check), more than the request itself.
    """
    import urllib3

    adapter = session.get_adapter(url)
    pool = adapter.poolmanager.connection_from_url(url)
    headers = dict(session.headers)
    timeout = getattr(session, "default_timeout", None)
    try:
        response = pool.urlopen("HEAD", url, headers=headers, retries=adapter.max_retries,
                                timeout=urllib3.Timeout(total=timeout), redirect=True,
                                preload_content=True)
    except urllib3.exceptions.MaxRetryError as exc:
        hint = f"; check {setting_hint}" if setting_hint else ""
        raise SearchError(f"could not reach the server ({_short(exc.reason or exc)}){hint}",
                          archive=archive, url=_describe(url)) from None
    except urllib3.exceptions.HTTPError as exc:
        raise SearchError(f"request failed ({_short(exc)})", archive=archive, url=_describe(url)) from None
    return response.status, response.headers


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


def _server_message(response: requests.Response) -> str:
    text = (response.text or "").strip()
    if not text or text.lstrip().startswith("<"):
        return ""
    return f": {_short(text)}"


class RetryMiddleware:
    """An aiohttp client middleware that retries transient failures of one request.

    parfive has no retry count of its own; passing ``middlewares=(RetryMiddleware(),)``
    through ``Downloader.enqueue_file`` makes every request parfive sends for
    that file (the HEAD, the GET and each range part) retry 429/5xx and failed
    connections, waiting as `retry_delay` says. What still fails after the
    last retry is returned (or raised) to parfive, which reports it in
    ``Results.errors``.

    Parameters
    ----------
    retries : int, optional
        How many times to ask again (default: setting ``retries``).
    """

    def __init__(self, retries: int | None = None):
        self.retries = get_int_setting("retries", retries)

    async def __call__(self, request, handler):
        import aiohttp

        attempt = 0
        while True:
            try:
                response = await handler(request)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                if attempt >= self.retries:
                    raise
                delay = retry_delay(attempt)
                log.debug("retrying %s after %s (%.2fs)", _describe(str(request.url)),
                          exc.__class__.__name__, delay)
            else:
                if response.status not in RETRY_STATUSES or attempt >= self.retries:
                    return response
                delay = retry_delay(attempt, response.headers.get("Retry-After"))
                log.debug("retrying %s after HTTP %s (%.2fs)", _describe(str(request.url)),
                          response.status, delay)
                response.release()
            attempt += 1
            await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return f"RetryMiddleware(retries={self.retries})"
