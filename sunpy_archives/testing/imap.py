"""
A local, faithful IMAP Science Data Center (SDC) API server.

`ImapArchiveData` generates a deterministic catalogue of science, ancillary
and SPICE files across the real instruments, levels, descriptors and version
forms (legacy ``vXXX`` and ``vMMM.mmmm``); every name passes the official
client's filename validation. File bodies are made on request from the name.

`make_imap_app` serves it over the SDC API of PROTOCOLS.md section 2:

* ``GET /query``, ``GET /spice-query`` (JSON records), ``POST /reprocess``,
  ``GET /release``;
* ``GET /download/<path>``: 302 to a presigned "S3" URL on this server
  (``/sds-data/<path>?X-Amz-...``), which serves the bytes with ``Range``;
* ``GET /upload/<name>``: a JSON string holding a presigned URL that accepts
  ``PUT``; 409 when the file exists, 400 for an invalid name;

each also under ``/api-key/`` (header ``x-api-key`` checked) and
``/authorized/`` (``Authorization: Bearer`` checked). Every route goes
through the shared fault middleware.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

from aiohttp import web

from ..imap.filenames import (
    ANCILLARY_EXTENSIONS,
    INSTRUMENTS,
    LEVELS,
    SCIENCE_EXTENSIONS,
    format_version,
    is_valid_date,
    parse_filename,
    version_key,
)
from ..core.errors import BadInputError
from .faults import FaultConfig, fault_middleware, send_bytes
from .server import LocalServer

__all__ = ["ImapArchiveData", "ImapServer", "make_imap_app", "imap_classifier", "start_imap_server",
           "DEFAULT_API_KEY", "DEFAULT_ACCESS_TOKEN"]

DEFAULT_API_KEY = "local-test-key-0123456789abcdef"
DEFAULT_ACCESS_TOKEN = "local-test-token-fedcba9876543210"
_SIGNING_SECRET = b"sunpy-archives-local-imap"
PREFIXES = ("", "/api-key", "/authorized")

#: (instrument, level, descriptor, extension) of the generated science datasets.
SCIENCE_DATASETS: tuple[tuple[str, str, str, str], ...] = (
    ("mag", "l0", "raw", "pkts"), ("mag", "l1a", "norm-mago", "cdf"),
    ("mag", "l1a", "burst-magi", "cdf"), ("mag", "l1b", "norm-mago", "cdf"),
    ("mag", "l1c", "norm-mago", "cdf"), ("mag", "l2", "norm-rtn", "cdf"),
    ("mag", "l2", "burst-gse", "cdf"),
    ("swe", "l0", "raw", "pkts"), ("swe", "l1a", "sci", "cdf"), ("swe", "l1b", "sci", "cdf"),
    ("swe", "l2", "sci", "cdf"),
    ("swapi", "l1", "sci", "cdf"), ("swapi", "l2", "sci", "cdf"), ("swapi", "l3a", "proton-sw", "cdf"),
    ("codice", "l1a", "lo-counters-aggregated", "cdf"), ("codice", "l2", "hi-omni", "cdf"),
    ("hit", "l1a", "count-rates", "cdf"), ("hit", "l2", "macropixel-intensity", "cdf"),
    ("idex", "l1a", "sci-1week", "cdf"), ("idex", "l2a", "sci-1week", "cdf"),
    ("glows", "l1a", "hist", "cdf"), ("glows", "l3e", "survival-probability-hi-45", "cdf"),
    ("hi", "l1a", "45sensor-de", "cdf"), ("hi", "l1b", "90sensor-de", "cdf"),
    ("lo", "l1a", "de", "cdf"), ("lo", "l1b", "histrates", "cdf"),
    ("ultra", "l1a", "45sensor-de", "cdf"), ("ultra", "l1b", "90sensor-de", "cdf"),
)
REPOINTED = {("glows", "l3e"), ("hi", "l1a"), ("hi", "l1b"), ("lo", "l1a"), ("lo", "l1b"),
             ("ultra", "l1a"), ("ultra", "l1b")}
ANCILLARY_DATASETS = (("mag", "calibration", "cdf"), ("swe", "lookup", "csv"),
                      ("hi", "esa-energies", "csv"), ("codice", "l2-lo-efficiency", "csv"),
                      ("glows", "map-of-extra-helio-bckgrd", "dat"), ("ultra", "params", "json"))

SCIENCE_PARAMS = ("table", "instrument", "data_level", "descriptor", "start_date", "end_date",
                  "ingestion_start_date", "ingestion_end_date", "repointing", "version", "latest",
                  "major_version", "minor_version", "extension")
SPICE_PARAMS = ("type", "start_date", "end_date", "start_ingest_date", "end_ingest_date",
                "version", "latest", "file_name")


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps(message), content_type="application/json")


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


class ImapArchiveData:
    """A deterministic SDC catalogue and the bytes of its files.

    Parameters
    ----------
    start : str
        First day (``YYYY-MM-DD``) of science files.
    days : int
        Number of days of science files.
    datasets : int, optional
        Use only the first ``datasets`` science datasets (all by default).
    seed : int
        Seed of every random choice.
    min_size, max_size : int
        Range of generated file sizes in bytes.
    api_keys, access_tokens : iterable of str
        Credentials accepted on ``/api-key/`` and ``/authorized/``.

    Attributes
    ----------
    science, ancillary, spice : list of dict
        Records exactly as ``/query`` and ``/spice-query`` return them.
    uploads : dict
        Relative path -> bytes of every file uploaded through the PUT route.
    """

    def __init__(self, start: str = "2025-01-01", days: int = 20, datasets: int | None = None,
                 seed: int = 0, min_size: int = 2_000, max_size: int = 12_000,
                 api_keys: Iterable[str] = (DEFAULT_API_KEY,),
                 access_tokens: Iterable[str] = (DEFAULT_ACCESS_TOKEN,)):
        self.start = date.fromisoformat(start)
        self.days = int(days)
        self.seed = int(seed)
        self.min_size, self.max_size = int(min_size), int(max_size)
        self.api_keys = set(api_keys)
        self.access_tokens = set(access_tokens)
        self.uploads: dict[str, bytes] = {}
        self.reprocess_requests: list[dict] = []
        self.releases: list[dict] = []
        self._lock = threading.Lock()
        self.science = self._make_science(SCIENCE_DATASETS[:datasets] if datasets else SCIENCE_DATASETS)
        self.ancillary = self._make_ancillary()
        self.spice = self._make_spice()
        self._index()

    @classmethod
    def small(cls, seed: int = 0, **kwargs) -> ImapArchiveData:
        """About 1,500 files over 20 days: fast enough for every test."""
        return cls(seed=seed, **kwargs)

    @classmethod
    def large(cls, seed: int = 0, **kwargs) -> ImapArchiveData:
        """About 100,000 files over two years, for benchmarks."""
        kwargs.setdefault("min_size", 20_000)
        kwargs.setdefault("max_size", 60_000)
        return cls(start="2025-01-01", days=2200, seed=seed, **kwargs)

    def __repr__(self) -> str:
        return (f"<ImapArchiveData {len(self.science)} science, {len(self.ancillary)} ancillary, "
                f"{len(self.spice)} SPICE files from {self.start}>")

    def __len__(self) -> int:
        return len(self.science) + len(self.ancillary) + len(self.spice)

    # -- generation ---------------------------------------------------------------------

    def _ingested(self, rng: random.Random, day: date) -> str:
        moment = datetime(day.year, day.month, day.day) + timedelta(
            days=rng.randint(1, 6), seconds=rng.randint(0, 86399))
        return moment.strftime("%Y-%m-%d %H:%M:%S")

    def _make_science(self, datasets) -> list[dict]:
        records = []
        legacy_until = self.start + timedelta(days=self.days // 4)
        for instrument, level, descriptor, extension in datasets:
            rng = random.Random(f"{self.seed}-{instrument}-{level}-{descriptor}")
            repointed = (instrument, level) in REPOINTED
            for offset in range(self.days):
                day = self.start + timedelta(days=offset)
                repointing = offset + 1 if repointed else None
                if day < legacy_until:
                    versions = [(None, m) for m in range(1, rng.randint(1, 2) + 1)]
                else:
                    versions = [(1, m) for m in range(1, rng.randint(1, 2) + 1)]
                    if rng.random() < 0.15:
                        versions.append((2, 1))
                for major, minor in versions:
                    version = format_version(major, minor)
                    interval = f"-repoint{repointing:05d}" if repointing is not None else ""
                    name = (f"imap_{instrument}_{level}_{descriptor}_{_ymd(day)}{interval}_"
                            f"{version}.{extension}")
                    records.append({
                        "file_path": f"imap/{instrument}/{level}/{day:%Y}/{day:%m}/{name}",
                        "instrument": instrument, "data_level": level, "descriptor": descriptor,
                        "start_date": _ymd(day), "repointing": repointing, "cr": None,
                        "version": version, "major_version": major, "minor_version": minor,
                        "extension": extension, "ingestion_date": self._ingested(rng, day),
                    })
        return records

    def _make_ancillary(self) -> list[dict]:
        records = []
        rng = random.Random(f"{self.seed}-ancillary")
        step = max(1, self.days // 4)
        for instrument, descriptor, extension in ANCILLARY_DATASETS:
            for i, offset in enumerate(range(0, self.days, step)):
                day = self.start + timedelta(days=offset)
                end = day + timedelta(days=step - 1) if i % 2 else None
                for minor in (1, 2) if i == 0 else (1,):
                    version = format_version(None, minor)
                    middle = f"{_ymd(day)}_{_ymd(end)}" if end else _ymd(day)
                    name = f"imap_{instrument}_{descriptor}_{middle}_{version}.{extension}"
                    records.append({
                        "file_path": f"imap/ancillary/{instrument}/{name}",
                        "instrument": instrument, "descriptor": descriptor,
                        "start_date": _ymd(day), "end_date": _ymd(end) if end else None,
                        "version": version, "extension": extension,
                        "ingestion_date": self._ingested(rng, day),
                    })
        return records

    def _make_spice(self) -> list[dict]:
        rng = random.Random(f"{self.seed}-spice")
        records = []

        def add(name: str, first: date, last: date, version: int):
            parsed = parse_filename(name)
            records.append({
                "file_name": name, "file_path": parsed.relative_path,
                "kernel_type": parsed.kernel_type, "version": version,
                "min_date_datetime": f"{first:%Y-%m-%d} 00:00:00",
                "max_date_datetime": f"{last:%Y-%m-%d} 00:00:00",
                "ingestion_date": self._ingested(rng, first),
            })

        for offset in range(0, min(self.days, 40)):
            day = self.start + timedelta(days=offset)
            nxt = day + timedelta(days=1)
            for version in (1, 2) if offset % 5 == 0 else (1,):
                add(f"imap_{day:%Y_%j}_{nxt:%Y_%j}_{version:02d}.ah.bc", day, nxt, version)
        for offset in range(0, self.days, 14):
            day = self.start + timedelta(days=offset)
            end = day + timedelta(days=42)
            add(f"imap_pred_od{offset // 14 + 1:03d}_{_ymd(day)}_{_ymd(end)}_v01.bsp", day, end, 1)
            add(f"imap_{day:%Y_%j}_{day:%Y_%j}_01.spin.csv", day, day + timedelta(days=14), 1)
        far = self.start + timedelta(days=3650)
        add("naif0012.tls", date(1972, 1, 1), far, 12)
        add("imap_sclk_0001.tsc", self.start, far, 1)
        add("imap_001.tf", self.start, far, 1)
        add("imap_science_001.tf", self.start, far, 1)
        add("de440.bsp", date(1950, 1, 1), far, 440)
        add("pck00011.tpc", date(1950, 1, 1), far, 11)
        return records

    def _index(self) -> None:
        self._by_path: dict[str, dict] = {}
        self._science_by_instrument: dict[str, list[dict]] = defaultdict(list)
        for record in self.science:
            self._by_path[record["file_path"]] = record
            self._science_by_instrument[record["instrument"]].append(record)
        for record in self.ancillary + self.spice:
            self._by_path[record["file_path"]] = record

    # -- access ---------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """Whether a relative path is in the catalogue or was uploaded."""
        return path in self._by_path or path in self.uploads

    def file_bytes(self, path: str) -> bytes:
        """The body of the file at a relative path (KeyError if there is none)."""
        if path in self.uploads:
            return self.uploads[path]
        if path not in self._by_path:
            raise KeyError(path)
        return _generated_bytes(path, self.seed, self.min_size, self.max_size)

    def size(self, path: str) -> int:
        """The size in bytes of the file at a relative path."""
        return len(self.file_bytes(path))

    def add_upload(self, path: str, content: bytes) -> None:
        """Store an uploaded file and index it like the SDC would (science/ancillary)."""
        with self._lock:
            self.uploads[path] = bytes(content)
            name = path.rsplit("/", 1)[-1]
            try:
                parsed = parse_filename(name)
            except BadInputError:
                return
            if parsed.kind == "science" and path not in self._by_path:
                record = {"file_path": path, "instrument": parsed.instrument,
                          "data_level": parsed.level, "descriptor": parsed.descriptor,
                          "start_date": parsed.start_date, "repointing": parsed.repointing,
                          "cr": parsed.cr, "version": parsed.version,
                          "major_version": parsed.major_version,
                          "minor_version": parsed.minor_version, "extension": parsed.extension,
                          "ingestion_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
                self.science.append(record)
                self._by_path[path] = record
                self._science_by_instrument[parsed.instrument].append(record)

    def clear_uploads(self) -> None:
        """Forget every uploaded file (and its catalogue record)."""
        with self._lock:
            for path in list(self.uploads):
                record = self._by_path.get(path)
                if record is not None and record in self.science:
                    self.science.remove(record)
                    self._science_by_instrument[record["instrument"]].remove(record)
                    del self._by_path[path]
            self.uploads.clear()

    # -- queries ----------------------------------------------------------------------------

    def query(self, params: dict[str, str]) -> list[dict]:
        """Answer ``/query`` (raises ValueError with the server's 400 message)."""
        for key in params:
            if key not in SCIENCE_PARAMS:
                raise ValueError(f"{key} is not a valid query parameter. "
                                 f"Valid query parameters are: {list(SCIENCE_PARAMS)}")
        table = params.get("table", "science")
        if table == "spice":
            spice_keys = ("start_date", "end_date", "version")
            spice_params = {k: v for k, v in params.items() if k in spice_keys}
            return self.spice_query(spice_params)
        if table not in ("science", "ancillary"):
            raise ValueError(f"{table} is not a valid table. Valid tables are: science, "
                             "ancillary, spice")
        for key in ("start_date", "end_date", "ingestion_start_date", "ingestion_end_date"):
            if key in params and not is_valid_date(params[key]):
                raise ValueError(f"{key} must be a date in YYYYMMDD format, got {params[key]}")
        if "instrument" in params and params["instrument"] not in INSTRUMENTS:
            raise ValueError(f"{params['instrument']} is not a valid instrument")
        if "data_level" in params and params["data_level"] not in LEVELS:
            raise ValueError(f"{params['data_level']} is not a valid data level")
        ints = {}
        for key in ("repointing", "major_version", "minor_version"):
            if key in params:
                try:
                    ints[key] = int(params[key])
                except ValueError:
                    raise ValueError(f"{key} must be an integer, got {params[key]}") from None
        if "extension" in params:
            allowed = SCIENCE_EXTENSIONS if table == "science" else ANCILLARY_EXTENSIONS
            if params["extension"] not in allowed:
                raise ValueError(f"{params['extension']} is not a valid extension for {table}")
        if table == "science":
            pool = (self._science_by_instrument.get(params["instrument"], [])
                    if "instrument" in params else self.science)
        else:
            pool = self.ancillary
        out = []
        ingest_start = params.get("ingestion_start_date")
        ingest_end = params.get("ingestion_end_date")
        for record in pool:
            if "instrument" in params and record["instrument"] != params["instrument"]:
                continue
            if "data_level" in params and record.get("data_level") != params["data_level"]:
                continue
            if "descriptor" in params and record["descriptor"] != params["descriptor"]:
                continue
            if "start_date" in params and record["start_date"] < params["start_date"]:
                continue
            if "end_date" in params and record["start_date"] > params["end_date"]:
                continue
            ingested = record["ingestion_date"][:10].replace("-", "")
            if ingest_start and ingested < ingest_start:
                continue
            if ingest_end and ingested > ingest_end:
                continue
            if "repointing" in ints and record.get("repointing") != ints["repointing"]:
                continue
            if "version" in params and record["version"] != params["version"]:
                continue
            if "major_version" in ints and record.get("major_version") != ints["major_version"]:
                continue
            if "minor_version" in ints and record.get("minor_version") != ints["minor_version"]:
                continue
            if "extension" in params and record["extension"] != params["extension"]:
                continue
            out.append(record)
        if table == "science" and "major_version" not in params and "version" not in params:
            out = _latest_major(out)
        if table == "science" and params.get("latest", "").lower() == "true":
            out = _latest(out)
        return [dict(r) for r in out]

    def spice_query(self, params: dict[str, str]) -> list[dict]:
        """Answer ``/spice-query`` (raises ValueError with the server's 400 message)."""
        for key in params:
            if key not in SPICE_PARAMS:
                raise ValueError(f"{key} is not a valid query parameter. "
                                 f"Valid query parameters are: {list(SPICE_PARAMS)}")
        for key in ("start_date", "end_date", "start_ingest_date", "end_ingest_date"):
            if key in params and not is_valid_date(params[key]):
                raise ValueError(f"{key} must be a date in YYYYMMDD format, got {params[key]}")
        version = None
        if "version" in params:
            text = params["version"]
            if not (len(text) >= 2 and text[0] == "v" and text[1:].isdigit()):
                raise ValueError(f"version must look like vXXX, got {text}")
            version = int(text[1:])
        out = []
        for record in self.spice:
            if "type" in params and record["kernel_type"] != params["type"]:
                continue
            if "file_name" in params and record["file_name"] != params["file_name"]:
                continue
            first = record["min_date_datetime"][:10].replace("-", "")
            last = record["max_date_datetime"][:10].replace("-", "")
            if "start_date" in params and last < params["start_date"]:
                continue
            if "end_date" in params and first > params["end_date"]:
                continue
            ingested = record["ingestion_date"][:10].replace("-", "")
            if "start_ingest_date" in params and ingested < params["start_ingest_date"]:
                continue
            if "end_ingest_date" in params and ingested > params["end_ingest_date"]:
                continue
            if version is not None and record["version"] != version:
                continue
            out.append(record)
        if params.get("latest", "").lower() == "true":
            best: dict = {}
            for record in out:
                key = (record["kernel_type"], record["min_date_datetime"])
                if key not in best or record["version"] > best[key]["version"]:
                    best[key] = record
            out = list(best.values())
        return [dict(r) for r in out]


def _dataset_day(record: dict) -> tuple:
    return (record["instrument"], record.get("data_level"), record["descriptor"],
            record["start_date"], record.get("repointing"))


def _latest(records: list[dict]) -> list[dict]:
    best: dict = {}
    for record in records:
        key = _dataset_day(record)
        rank = version_key(record.get("major_version"), record["minor_version"])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, record)
    return [record for _, record in best.values()]


def _latest_major(records: list[dict]) -> list[dict]:
    top: dict = {}
    for record in records:
        key = _dataset_day(record)
        major = record.get("major_version") or 0
        top[key] = max(top.get(key, 0), major)
    return [r for r in records if (r.get("major_version") or 0) == top[_dataset_day(r)]]


@lru_cache(maxsize=256)
def _generated_bytes(path: str, seed: int, min_size: int, max_size: int) -> bytes:
    crc = zlib.crc32(f"{seed}:{path}".encode())
    size = min_size + crc % max(1, max_size - min_size + 1)
    header = f"IMAP local test file {path}\n".encode()
    body = random.Random(crc).randbytes(max(0, size - len(header)))
    return header + body


# --- the application ----------------------------------------------------------------------------

IMAP_DATA_KEY = web.AppKey("imap_data", ImapArchiveData)
IMAP_FAULTS_KEY = web.AppKey("imap_faults", FaultConfig)
IMAP_SEEN_KEY = web.AppKey("imap_seen", list)


def imap_classifier(request: web.BaseRequest) -> str | None:
    """Endpoint class: ``/query``-like routes are ``"search"``, downloads and storage ``"data"``."""
    path = request.path
    for prefix in ("/api-key", "/authorized"):
        if path.startswith(prefix + "/"):
            path = path[len(prefix):]
    if path.startswith(("/download/", "/sds-data/")):
        return "data"
    if path.startswith("/upload/"):
        return "staging"
    return "search"


def _signature(path: str, expires: str, method: str) -> str:
    return hmac.new(_SIGNING_SECRET, f"{method}\n{path}\n{expires}".encode(),
                    hashlib.sha256).hexdigest()


def presign(base: str, path: str, method: str = "GET", lifetime: int = 3600) -> str:
    """A fake presigned storage URL for ``path`` on the server at ``base``."""
    expires = str(int(time.time()) + lifetime)
    query = (f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=LOCALTEST%2F20250101%2Fus-west-2"
             f"%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires={lifetime}"
             f"&X-Amz-SignedHeaders=host&X-Amz-Expiry={expires}"
             f"&X-Amz-Signature={_signature(path, expires, method)}")
    return f"{base}/sds-data/{quote(path)}?{query}"


def make_imap_app(data: ImapArchiveData, faults: FaultConfig | None = None) -> web.Application:
    """Build the aiohttp application serving the SDC API for ``data``.

    Parameters
    ----------
    data : ImapArchiveData
        The catalogue to serve.
    faults : FaultConfig, optional
        Fault configuration; a fresh (inactive) one by default.

    Returns
    -------
    aiohttp.web.Application
        ``app[IMAP_SEEN_KEY]`` lists ``(method, path, credential)`` for every
        request (``credential`` is ``"x-api-key"``, ``"bearer"`` or ``None``),
        so tests can check where credentials were sent.
    """
    faults = faults if faults is not None else FaultConfig()
    seen: list = []

    @web.middleware
    async def record(request: web.Request, handler):
        credential = ("x-api-key" if "x-api-key" in request.headers
                      else "bearer" if request.headers.get("Authorization", "").startswith("Bearer ")
                      else None)
        seen.append((request.method, request.path, credential))
        return await handler(request)

    app = web.Application(middlewares=[record, fault_middleware(faults, imap_classifier)],
                          client_max_size=64 * 1024 * 1024)
    app[IMAP_DATA_KEY] = data
    app[IMAP_FAULTS_KEY] = faults
    app[IMAP_SEEN_KEY] = seen

    def base_of(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def check_auth(request: web.Request, prefix: str, *, required: bool = False) -> web.Response | None:
        if prefix == "/api-key":
            key = request.headers.get("x-api-key")
            if key is None:
                return _json_error(401, "Unauthorized: this route needs an x-api-key header")
            if key not in data.api_keys:
                return _json_error(403, "Forbidden: invalid API key")
        elif prefix == "/authorized":
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return _json_error(401, "Unauthorized: this route needs a Bearer token")
            if auth[len("Bearer "):] not in data.access_tokens:
                return _json_error(403, "Forbidden: invalid access token")
        elif required:
            return _json_error(401, "Unauthorized: uploads need an API key (use /api-key/upload)")
        return None

    def routes(prefix: str):
        async def query(request: web.Request) -> web.StreamResponse:
            if (denied := check_auth(request, prefix)) is not None:
                return denied
            params = dict(request.query)
            try:
                records = await _in_thread(data.query, params)
            except ValueError as exc:
                return _json_error(400, str(exc))
            return web.json_response(records)

        async def spice_query(request: web.Request) -> web.StreamResponse:
            if (denied := check_auth(request, prefix)) is not None:
                return denied
            try:
                records = await _in_thread(data.spice_query, dict(request.query))
            except ValueError as exc:
                return _json_error(400, str(exc))
            return web.json_response(records)

        async def download(request: web.Request) -> web.StreamResponse:
            if (denied := check_auth(request, prefix)) is not None:
                return denied
            path = request.match_info["path"].strip("/")
            if not path:
                return _json_error(400, "No file requested for download. Please provide a "
                                        "filename in the path. E.g. /download/path/to/file/"
                                        "filename.pkts")
            if not data.exists(path):
                return _json_error(404, "File not found, make sure you include the full path to "
                                        "the file in the request, e.g. "
                                        "'imap/swe/l0/2024/01/imap_swe_l0_sci_20240105_v001.pkts'")
            raise web.HTTPFound(presign(base_of(request), path))

        async def upload(request: web.Request) -> web.StreamResponse:
            if (denied := check_auth(request, prefix, required=True)) is not None:
                return denied
            name = request.match_info["name"]
            try:
                parsed = parse_filename(name)
            except BadInputError as exc:
                return _json_error(400, f"Invalid filename {name}: {exc}")
            if parsed.kind == "science" and parsed.major_version is None:
                return _json_error(400, f"Invalid science filename {name}: uploads need a "
                                        "vMMM.mmmm version")
            path = parsed.relative_path
            if data.exists(path):
                return _json_error(409, f"{path} already exists.")
            return web.json_response(presign(base_of(request), path, method="PUT"))

        async def reprocess(request: web.Request) -> web.StreamResponse:
            if (denied := check_auth(request, prefix)) is not None:
                return denied
            params = dict(request.query)
            if "start_date" not in params or "end_date" not in params:
                return _json_error(400, "start_date and end_date are required")
            data.reprocess_requests.append(params)
            return web.json_response({"message": "Reprocessing triggered", "params": params})

        async def release(request: web.Request) -> web.StreamResponse:
            if (denied := check_auth(request, prefix)) is not None:
                return denied
            params = dict(request.query)
            data.releases.append(params)
            return web.json_response({"message": "Release submitted", "params": params})

        return [
            web.get(f"{prefix}/query", query),
            web.get(f"{prefix}/spice-query", spice_query),
            web.get(f"{prefix}/download/{{path:.*}}", download),
            web.get(f"{prefix}/upload/{{name}}", upload),
            web.post(f"{prefix}/reprocess", reprocess),
            web.get(f"{prefix}/release", release),
        ]

    def check_signature(request: web.Request, path: str, method: str) -> web.Response | None:
        expires = request.query.get("X-Amz-Expiry", "")
        given = request.query.get("X-Amz-Signature", "")
        if not expires.isdigit() or not hmac.compare_digest(given, _signature(path, expires, method)):
            return web.Response(status=403, content_type="application/xml",
                                text="<Error><Code>SignatureDoesNotMatch</Code></Error>")
        if int(expires) < time.time():
            return web.Response(status=403, content_type="application/xml",
                                text="<Error><Code>AccessDenied</Code><Message>Request has "
                                     "expired</Message></Error>")
        return None

    async def storage_get(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if (denied := check_signature(request, path, "GET")) is not None:
            return denied
        try:
            content = await _in_thread(data.file_bytes, path)
        except KeyError:
            return web.Response(status=404, content_type="application/xml",
                                text="<Error><Code>NoSuchKey</Code></Error>")
        return await send_bytes(request, content, faults=faults)

    async def storage_put(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if (denied := check_signature(request, path, "PUT")) is not None:
            return denied
        body = await request.read()
        data.add_upload(path, body)
        return web.Response(status=200, text="")

    for prefix in PREFIXES:
        app.router.add_routes(routes(prefix))
    app.router.add_get("/sds-data/{path:.*}", storage_get)  # HEAD too
    app.router.add_route("PUT", "/sds-data/{path:.*}", storage_put)
    return app


async def _in_thread(function, *args):
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


class ImapServer(LocalServer):
    """A `LocalServer` serving an `ImapArchiveData`.

    Attributes
    ----------
    data : ImapArchiveData
    faults : FaultConfig
    seen : list
        ``(method, path, credential)`` of every request received.
    """

    def __init__(self, data: ImapArchiveData | None = None, faults: FaultConfig | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.data = data if data is not None else ImapArchiveData.small()
        self.faults = faults if faults is not None else FaultConfig()
        app = make_imap_app(self.data, self.faults)
        self.seen = app[IMAP_SEEN_KEY]
        super().__init__(app, host=host, port=port)

    def environment(self) -> dict[str, str]:
        """The environment variables that point the IMAP client (ours or the official one) here."""
        return {"IMAP_DATA_ACCESS_URL": self.url}

    @property
    def api_key(self) -> str:
        """A key the server accepts."""
        return sorted(self.data.api_keys)[0]


def start_imap_server(data: ImapArchiveData | None = None, faults: FaultConfig | None = None, *,
                      host: str = "127.0.0.1", port: int = 0) -> ImapServer:
    """Start an IMAP SDC server in a background thread.

    Examples
    --------
    >>> server = start_imap_server()  # doctest: +SKIP
    >>> server.url  # doctest: +SKIP
    'http://127.0.0.1:54321'
    >>> server.stop()  # doctest: +SKIP
    """
    return ImapServer(data, faults, host=host, port=port).start()
