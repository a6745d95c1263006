"""
Fault injection shared by every local archive server.

One aiohttp *server* middleware (`fault_middleware`) and one helper that sends
static bytes (`send_bytes`) implement everything a test needs to make a local
archive misbehave the way real archives do:

* failed requests (5xx, or 429 with ``Retry-After``), either at random with a
  fixed rate or deterministically for the first N requests of each path;
* latency added before answering;
* limited bandwidth per response (the body is streamed in chunks with sleeps);
* responses cut in the middle of the body (full ``Content-Length`` announced,
  half of the body sent, then the connection is closed);
* slow responses (half of the body sent, then a stall of `FaultConfig.slow_delay`
  seconds, then the rest);
* over-long announcements (a ``Content-Length`` larger than the body: the whole
  body is sent, then the connection is closed short of the announced length).

``Retry-After`` can be attached to any of the injected statuses
(`FaultConfig.retry_after_statuses`), and the failure rate can differ per
endpoint class (`FaultConfig.class_fail_rates`).

The behaviour is driven by a `FaultConfig`. The configuration is a plain
mutable object: a test can change it while the server is running (the next
request sees the change) and call `FaultConfig.reset` when done. Random
decisions come from a ``random.Random`` seeded with `FaultConfig.seed`, so a
given sequence of requests always meets the same faults.

Each application passes a *classifier*, a function mapping a request to one of
the endpoint classes ``"search"``, ``"staging"`` or ``"data"`` (or ``None`` for
requests that must never be faulted); faults only apply to the classes listed
in `FaultConfig.classes`.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields

from aiohttp import web

__all__ = [
    "ENDPOINT_CLASSES",
    "FaultConfig",
    "FaultPlan",
    "fault_middleware",
    "default_classifier",
    "send_bytes",
]

#: The endpoint classes a classifier may return.
ENDPOINT_CLASSES: frozenset[str] = frozenset({"search", "staging", "data"})

#: Reason phrases used in the body of injected error responses.
_REASONS = {
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

#: Size of the chunks written when streaming a body.
_CHUNK = 16 * 1024

Classifier = Callable[[web.BaseRequest], "str | None"]


def default_classifier(request: web.BaseRequest) -> str | None:
    """Classify every request as ``"data"``.

    Parameters
    ----------
    request : aiohttp.web.BaseRequest
        The incoming request.

    Returns
    -------
    str
        Always ``"data"``.
    """
    return "data"


# The configuration fields, with their defaults; `reset` restores them.
_CONFIG_DEFAULTS: dict[str, object] = {
    "seed": 0,
    "fail_rate": 0.0,
    "statuses": (500, 502, 503),
    "retry_after": None,
    "fail_first": 0,
    "cut_rate": 0.0,
    "latency": 0.0,
    "bandwidth": None,
    "classes": ENDPOINT_CLASSES,
    "retry_after_statuses": (429, 503),
    "class_fail_rates": {},
    "slow_rate": 0.0,
    "slow_delay": 1.0,
    "overlong_rate": 0.0,
    "overlong_extra": 1024,
}


@dataclass(eq=False)
class FaultConfig:
    """What the fault middleware does to requests, plus what it has seen.

    All fields can be changed at run time (also while a server is running in
    another thread); the next request uses the new values. Setting `seed`
    re-seeds the random generator.

    Parameters
    ----------
    seed : int
        Seed of the random generator used for every random decision.
    fail_rate : float
        Fraction (0 to 1) of requests answered with an error status.
    statuses : tuple of int
        Status codes an injected failure picks from (uniformly).
    retry_after : float or None
        If set, a ``Retry-After`` header with this number of seconds is added
        to injected answers whose status is in `retry_after_statuses`. Whole numbers are written as integers
        (``"2"``); fractions are written as decimals (``"0.5"``), which real
        servers never send but keeps tests fast.
    fail_first : int
        Fail the first ``fail_first`` requests of each distinct path (path
        plus query string) with an error status, then let them through.
        Deterministic; independent of `fail_rate`.
    cut_rate : float
        Fraction (0 to 1) of successful responses with a body that are cut:
        the full ``Content-Length`` is announced, half of the body is sent and
        the connection is closed.
    latency : float
        Seconds to wait before answering each request.
    bandwidth : float or None
        Bytes per second for each response body; ``None`` for no limit.
    classes : set of str
        The endpoint classes (``"search"``, ``"staging"``, ``"data"``) the
        faults apply to. Requests of other classes are only counted.
    retry_after_statuses : tuple of int
        The injected statuses that carry ``Retry-After`` when `retry_after`
        is set (default 429 and 503; add 500/502 to test a server that sends
        it on every error).
    class_fail_rates : mapping of str to float
        Failure rate per endpoint class, overriding `fail_rate` for the
        classes it names (e.g. ``{"data": 0.2, "search": 0.0}``).
    slow_rate : float
        Fraction (0 to 1) of successful responses with a body that stall
        `slow_delay` seconds after sending half of the body.
    slow_delay : float
        Seconds a slow response stalls.
    overlong_rate : float
        Fraction (0 to 1) of successful responses with a body that announce
        a ``Content-Length`` `overlong_extra` bytes larger than the body, send
        the whole body and close the connection.
    overlong_extra : int
        Bytes announced beyond the real body by an over-long response.

    Examples
    --------
    >>> faults = FaultConfig(seed=3, class_fail_rates={"data": 0.2}, statuses=(500, 502, 503, 429))
    >>> faults.active
    True

    Attributes
    ----------
    requests_seen : int
        Number of requests that reached the middleware.
    faults_injected : int
        Number of failed or cut responses produced.
    failures_injected : int
        Number of error statuses injected.
    cuts_injected : int
        Number of responses cut mid-body.
    slows_injected : int
        Number of responses that stalled mid-body.
    overlongs_injected : int
        Number of responses that announced more bytes than they sent.
    statuses_injected : collections.Counter
        Injected error statuses, by status code.
    hits : collections.Counter
        Requests per path (path plus query string), every method.
    get_hits : collections.Counter
        GET requests per path.
    bytes_sent : collections.Counter
        Body bytes written by `send_bytes` (or by the middleware when it
        streams a body) per path; lets a test assert a file was not
        downloaded twice even when the client splits it into ranges.
    """

    seed: int = 0
    fail_rate: float = 0.0
    statuses: tuple[int, ...] = (500, 502, 503)
    retry_after: float | None = None
    fail_first: int = 0
    cut_rate: float = 0.0
    latency: float = 0.0
    bandwidth: float | None = None
    classes: frozenset[str] = ENDPOINT_CLASSES
    retry_after_statuses: tuple[int, ...] = (429, 503)
    class_fail_rates: dict = field(default_factory=dict)
    slow_rate: float = 0.0
    slow_delay: float = 1.0
    overlong_rate: float = 0.0
    overlong_extra: int = 1024

    requests_seen: int = field(default=0, init=False, repr=False)
    faults_injected: int = field(default=0, init=False, repr=False)
    failures_injected: int = field(default=0, init=False, repr=False)
    cuts_injected: int = field(default=0, init=False, repr=False)
    slows_injected: int = field(default=0, init=False, repr=False)
    overlongs_injected: int = field(default=0, init=False, repr=False)
    statuses_injected: Counter = field(default_factory=Counter, init=False, repr=False)
    hits: Counter = field(default_factory=Counter, init=False, repr=False)
    get_hits: Counter = field(default_factory=Counter, init=False, repr=False)
    bytes_sent: Counter = field(default_factory=Counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self._faultable_hits: Counter = Counter()
        self._rng = random.Random(self.seed)

    def __setattr__(self, name: str, value: object) -> None:
        if name in _CONFIG_DEFAULTS:
            value = self._validate(name, value)
        super().__setattr__(name, value)
        if name == "seed" and "_rng" in self.__dict__:
            self._rng = random.Random(value)

    @staticmethod
    def _validate(name: str, value: object) -> object:
        if name in ("fail_rate", "cut_rate", "slow_rate", "overlong_rate"):
            value = float(value)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be between 0 and 1, not {value}")
        elif name in ("statuses", "retry_after_statuses"):
            value = tuple(int(v) for v in value)
            if not value and name == "statuses":
                raise ValueError("FaultConfig.statuses needs at least one status code")
            for status in value:
                if not 400 <= status <= 599:
                    raise ValueError(f"FaultConfig.statuses: {status} is not an error status")
        elif name in ("retry_after", "bandwidth"):
            if value is not None:
                value = float(value)
                if value < 0 or (name == "bandwidth" and value == 0):
                    raise ValueError(f"FaultConfig.{name} must be positive, not {value}")
        elif name in ("fail_first", "overlong_extra"):
            value = int(value)
            if value < 0 or (name == "overlong_extra" and value == 0):
                raise ValueError(f"FaultConfig.{name} must be positive, not {value}")
        elif name in ("latency", "slow_delay"):
            value = float(value)
            if value < 0:
                raise ValueError(f"FaultConfig.{name} cannot be negative")
        elif name == "class_fail_rates":
            rates = {}
            for key, rate in dict(value).items():
                if key not in ENDPOINT_CLASSES:
                    raise ValueError(
                        f"FaultConfig.class_fail_rates: unknown endpoint class {key!r}; "
                        f"use some of {sorted(ENDPOINT_CLASSES)}")
                rate = float(rate)
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(
                        f"FaultConfig.class_fail_rates[{key!r}] must be between 0 and 1, not {rate}")
                rates[key] = rate
            value = rates
        elif name == "classes":
            if isinstance(value, str):
                value = (value,)
            value = frozenset(value)
            unknown = value - ENDPOINT_CLASSES
            if unknown:
                raise ValueError(
                    f"FaultConfig.classes: unknown endpoint classes {sorted(unknown)}; "
                    f"use some of {sorted(ENDPOINT_CLASSES)}"
                )
        elif name == "seed":
            value = int(value)
        return value

    # ------------------------------------------------------------------ control

    def configure(self, **settings: object) -> FaultConfig:
        """Set several fields at once.

        Parameters
        ----------
        **settings
            Field names and values, e.g. ``fail_rate=0.5, latency=0.1``.

        Returns
        -------
        FaultConfig
            This object, so calls can be chained.
        """
        for name in settings:
            if name not in _CONFIG_DEFAULTS:
                raise TypeError(f"FaultConfig has no setting {name!r}")
        for name, value in settings.items():
            setattr(self, name, value)
        return self

    def reset(self) -> None:
        """Restore every setting to its default, clear the counters and re-seed."""
        for name, value in _CONFIG_DEFAULTS.items():
            setattr(self, name, value)
        self.clear_counters()

    def clear_counters(self) -> None:
        """Zero the counters (and the `fail_first` bookkeeping), keep the settings."""
        self.requests_seen = 0
        self.faults_injected = 0
        self.failures_injected = 0
        self.cuts_injected = 0
        self.slows_injected = 0
        self.overlongs_injected = 0
        self.statuses_injected = Counter()
        self.hits = Counter()
        self.get_hits = Counter()
        self.bytes_sent = Counter()
        self._faultable_hits = Counter()
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        """Whether any fault is configured."""
        return bool(
            self.fail_rate
            or self.fail_first
            or self.cut_rate
            or any(self.class_fail_rates.values())
            or self.slow_rate
            or self.overlong_rate
            or self.latency
            or self.bandwidth is not None
        )

    def settings(self) -> dict[str, object]:
        """Return the current settings (not the counters) as a dictionary."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    # -------------------------------------------------------------- decisions

    def _count(self, key: str, method: str) -> None:
        self.requests_seen += 1
        self.hits[key] += 1
        if method == "GET":
            self.get_hits[key] += 1

    def _failure_status(self, key: str, endpoint_class: str | None = None) -> int | None:
        """Decide whether this faultable request fails; return the status or None."""
        self._faultable_hits[key] += 1
        fail = self._faultable_hits[key] <= self.fail_first
        rate = self.class_fail_rates.get(endpoint_class, self.fail_rate)
        if not fail and rate > 0:
            fail = self._rng.random() < rate
        if not fail:
            return None
        self.failures_injected += 1
        self.faults_injected += 1
        status = self._rng.choice(self.statuses)
        self.statuses_injected[status] += 1
        return status

    def _plan(self, key: str) -> FaultPlan:
        # Draw only for the modes that are on, so a given seed meets the same
        # faults as before a mode existed.
        cut = self.cut_rate > 0 and self._rng.random() < self.cut_rate
        overlong = (not cut and self.overlong_rate > 0
                    and self._rng.random() < self.overlong_rate)
        slow = self.slow_rate > 0 and self._rng.random() < self.slow_rate
        return FaultPlan(key=key, cut=cut, bandwidth=self.bandwidth, faults=self,
                         slow=self.slow_delay if slow else 0.0,
                         overlong=self.overlong_extra if overlong else 0)


@dataclass
class FaultPlan:
    """What to do to the body of one response (decided by the middleware).

    Parameters
    ----------
    key : str
        The path (plus query string) the counters use.
    cut : bool
        Whether to cut the body in the middle and close the connection.
    bandwidth : float or None
        Bytes per second, or ``None`` for no limit.
    faults : FaultConfig or None
        Where to count bytes sent and cuts.
    slow : float
        Seconds to stall after half of the body (0: no stall).
    overlong : int
        Bytes announced beyond the body (0: the exact length is announced).
    """

    key: str = ""
    cut: bool = False
    bandwidth: float | None = None
    faults: FaultConfig | None = None
    slow: float = 0.0
    overlong: int = 0


_PLAN_KEY = web.RequestKey("sunpy_archives_fault_plan", FaultPlan)


def _retry_after_value(seconds: float) -> str:
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"


def _fault_response(status: int, retry_after: float | None,
                    retry_after_statuses: tuple[int, ...] = (429, 503)) -> web.Response:
    reason = _REASONS.get(status, "Error")
    headers = {"X-Fault-Injected": "1"}
    if retry_after is not None and status in retry_after_statuses:
        headers["Retry-After"] = _retry_after_value(retry_after)
    return web.Response(
        status=status,
        text=f"{status} {reason} (fault injected by the local test server)\n",
        headers=headers,
    )


Middleware = Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Awaitable[web.StreamResponse],
]


def fault_middleware(faults: FaultConfig, classify: Classifier | None = None) -> Middleware:
    """Build the fault-injection middleware for one application.

    Parameters
    ----------
    faults : FaultConfig
        The configuration to follow (read at every request, so it can change
        while the server runs) and where the counters go.
    classify : callable, optional
        ``classify(request) -> "search" | "staging" | "data" | None``. Requests
        classified ``None`` are counted but never faulted. By default every
        request is ``"data"``.

    Returns
    -------
    callable
        An aiohttp middleware, for ``web.Application(middlewares=[...])``.
    """
    classify = classify or default_classifier

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        key = request.path_qs
        faults._count(key, request.method)
        endpoint_class = classify(request)
        if endpoint_class is None or endpoint_class not in faults.classes:
            return await handler(request)
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        status = faults._failure_status(key, endpoint_class)
        if status is not None:
            return _fault_response(status, faults.retry_after, faults.retry_after_statuses)
        plan = faults._plan(key)
        request[_PLAN_KEY] = plan
        response = await handler(request)
        if response.prepared or not (plan.cut or plan.bandwidth is not None or plan.slow
                                     or plan.overlong):
            return response
        if not isinstance(response, web.Response) or not 200 <= response.status < 300:
            return response
        body = response.body
        if not isinstance(body, (bytes, bytearray)) or request.method == "HEAD":
            return response
        # A body built in memory by the handler: stream it ourselves so the
        # bandwidth limit and the cut apply to it as well.
        headers = {
            k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)
        }
        streamed = web.StreamResponse(status=response.status, reason=response.reason,
                                      headers=headers)
        streamed.content_length = len(body) + plan.overlong
        await streamed.prepare(request)
        await _write_body(request, streamed, memoryview(bytes(body)), plan)
        return streamed

    return middleware


async def _write_body(
    request: web.BaseRequest, response: web.StreamResponse, body: memoryview, plan: FaultPlan
) -> None:
    """Write ``body`` to a prepared response following ``plan``; cut if asked."""
    if plan.cut:
        body = body[: len(body) // 2]
    bandwidth = plan.bandwidth
    stall_at = len(body) // 2 if plan.slow > 0 else -1
    sent = 0
    started = time.monotonic()
    if bandwidth is None:
        chunk = 256 * 1024
    else:
        # Small enough chunks for a smooth rate, big enough to stay cheap.
        chunk = int(min(max(bandwidth / 20.0, 64), _CHUNK * 4))
    pieces = [(offset, min(offset + chunk, len(body))) for offset in range(0, len(body), chunk)]
    if stall_at > 0:
        # Split at the stall point so the stall happens after exactly half.
        pieces = [part for lo, hi in pieces
                  for part in (((lo, stall_at), (stall_at, hi)) if lo < stall_at < hi
                               else ((lo, hi),))]
    for lo, hi in pieces:
        if lo == stall_at and stall_at > 0:
            if plan.faults is not None:
                plan.faults.slows_injected += 1
                plan.faults.faults_injected += 1
            await asyncio.sleep(plan.slow)
        piece = body[lo:hi]
        # Count before writing: once the client has the bytes, the count is there.
        if plan.faults is not None:
            plan.faults.bytes_sent[plan.key] += len(piece)
        await response.write(piece)
        sent += len(piece)
        if bandwidth is not None:
            delay = started + sent / bandwidth - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    if plan.cut or plan.overlong:
        if plan.faults is not None:
            if plan.cut:
                plan.faults.cuts_injected += 1
            else:
                plan.faults.overlongs_injected += 1
            plan.faults.faults_injected += 1
        # Close the connection with the announced length not reached. The
        # transport flushes what was written, then closes; aiohttp then fails
        # to finish the response (ConnectionError), which it tolerates.
        protocol = request.protocol
        if protocol is not None and hasattr(protocol, "force_close"):
            protocol.force_close()
        elif request.transport is not None:
            request.transport.close()
        return
    await response.write_eof()


_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def _parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """Parse a single-range ``Range`` header.

    Returns ``(start, stop)`` (stop exclusive), ``None`` if the header should be
    ignored (syntax not understood, or several ranges), or ``False`` if the
    range cannot be satisfied.
    """
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        # Suffix range: the last N bytes.
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size
    start = int(first)
    if start >= size:
        return False
    stop = size if last == "" else min(int(last) + 1, size)
    if stop <= start:
        return None
    return start, stop


_ETAGS: "OrderedDict[int, tuple[bytes, str]]" = OrderedDict()


def _etag(data: bytes) -> str:
    """A strong ETag for ``data``, computed once per body (catalogs are large; HEADs are many)."""
    held = _ETAGS.get(id(data))
    if held is not None and held[0] is data:
        _ETAGS.move_to_end(id(data))
        return held[1]
    tag = f'"{zlib.crc32(data):08x}-{len(data):x}"'
    _ETAGS[id(data)] = (data, tag)  # keeping the body keeps its id from being reused
    while len(_ETAGS) > 64:
        _ETAGS.popitem(last=False)
    return tag


async def send_bytes(
    request: web.BaseRequest,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    faults: FaultConfig | None = None,
    status: int = 200,
) -> web.StreamResponse:
    """Send an in-memory file the way a static file server would.

    Honours ``HEAD``, single ``Range`` requests (``206`` with
    ``Content-Range``; ``416`` when unsatisfiable) and announces
    ``Accept-Ranges: bytes`` and the exact ``Content-Length``. When the fault
    middleware is installed, its decisions for this request (bandwidth, cut)
    are applied to the body.

    Parameters
    ----------
    request : aiohttp.web.BaseRequest
        The request being answered.
    data : bytes
        The whole file.
    content_type : str
        Value of the ``Content-Type`` header.
    headers : mapping, optional
        Extra headers (e.g. ``Content-Disposition``).
    faults : FaultConfig, optional
        Used only when the fault middleware did not already handle this
        request (an application without the middleware): its bandwidth and
        cut rate then apply directly.
    status : int
        Status of a full (non-range) answer.

    Returns
    -------
    aiohttp.web.StreamResponse
        The finished (or deliberately cut) response; return it from the handler.
    """
    plan = request.get(_PLAN_KEY)
    if plan is None:
        plan = faults._plan(request.path_qs) if faults is not None else FaultPlan(
            key=request.path_qs)
    size = len(data)
    start, stop = 0, size
    extra = dict(headers or {})
    range_header = request.headers.get("Range")
    if range_header and status == 200:
        parsed = _parse_range(range_header, size)
        if parsed is False:
            return web.Response(
                status=416,
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
                text="416 Range Not Satisfiable\n",
            )
        if parsed is not None:
            start, stop = parsed
            status = 206
            extra["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response = web.StreamResponse(status=status, headers=extra)
    response.content_type = content_type
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = _etag(data)
    response.content_length = stop - start + (plan.overlong if request.method != "HEAD" else 0)
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response
    await _write_body(request, response, memoryview(data)[start:stop], plan)
    return response
