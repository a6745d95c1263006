"""
The IMAP Science Data Center API (PROTOCOLS.md section 2): query, SPICE query,
download URLs, upload, with credentials that never leak.

Credentials: an API key (``IMAP_API_KEY``) goes with every API request as the
``x-api-key`` header and moves the base URL to ``<url>/api-key``; without a
key, an access token (``IMAP_ACCESS_TOKEN``) goes as ``Authorization: Bearer``
under ``<url>/authorized``. Both are held in a `Secret`, which prints as
``'***'``; every message built from a server answer is scrubbed of them; the
presigned storage URLs the API hands out never receive them.

Examples
--------
>>> build_query_params(instrument="mag", start_date="20250101", version="latest")
{'table': 'science', 'instrument': 'mag', 'start_date': '20250101', 'latest': 'true'}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ..core.config import get_setting
from ..core.errors import ArchiveError, BadInputError, SearchError, UnknownValueError
from ..core.http import make_session
from .filenames import (
    ANCILLARY_EXTENSIONS,
    ARCHIVE,
    INSTRUMENTS,
    KERNEL_TYPES,
    LEVELS,
    SCIENCE_EXTENSIONS,
    TABLES,
    is_valid_date,
    parse_version,
    version_key,
)

__all__ = [
    "Secret",
    "SDCApi",
    "AuthenticationError",
    "UploadError",
    "UploadConflictError",
    "ApiCredentialMiddleware",
    "build_query_params",
    "build_spice_params",
    "latest_per_dataset",
]

log = logging.getLogger("sunpy_archives")

URL_VARIABLE = "IMAP_DATA_ACCESS_URL"
KEY_VARIABLE = "IMAP_API_KEY"
TOKEN_VARIABLE = "IMAP_ACCESS_TOKEN"
DATA_DIR_VARIABLE = "IMAP_DATA_DIR"


class AuthenticationError(ArchiveError):
    """The SDC refused the credentials (HTTP 401/403), or a route needs one and none was set."""


class UploadError(ArchiveError):
    """An upload was refused or failed."""


class UploadConflictError(UploadError):
    """The SDC already holds a file with this name (HTTP 409)."""


class Secret:
    """A credential that never shows itself in a repr, a str or a log line.

    Examples
    --------
    >>> key = Secret("abc123")
    >>> key, str(key), key.reveal()
    (Secret('***'), '***', 'abc123')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = str(value)

    def reveal(self) -> str:
        """The value itself (only for the header that carries it)."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the value replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self  # immutable; copying result tables must not copy the value around

    def __reduce__(self):
        raise TypeError("an IMAP credential (Secret) is never pickled: it would be written out "
                        "in clear; build a new client after unpickling")


def _version_param(value: str, *, table: str) -> str:
    if value == "latest":
        return value
    major, _ = parse_version(value)
    if table == "ancillary" and major is not None:
        raise BadInputError(f"ancillary files have 'vXXX' versions, not {value!r}", archive=ARCHIVE)
    return value


def _date_param(name: str, value: Any) -> str:
    text = str(value)
    if not is_valid_date(text):
        raise BadInputError(f"{name}={value!r} is not a date in YYYYMMDD format (e.g. '20250115')",
                            archive=ARCHIVE)
    return text


def _int_param(name: str, value: Any) -> int:
    text = str(value).strip()
    if name == "repointing" and text.startswith("repoint"):
        text = text[len("repoint"):]
        if len(text) != 5:
            raise BadInputError(f"repointing {value!r} must be 'repoint' and 5 digits, e.g. "
                                "'repoint00012', or a whole number", archive=ARCHIVE)
    if not text.isdigit():
        raise BadInputError(f"{name}={value!r} is not a whole number", archive=ARCHIVE)
    return int(text)


def _choice(name: str, value: Any, allowed, what: str) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise UnknownValueError(f"{value!r} is not {what}; use one of {', '.join(allowed)}",
                                archive=ARCHIVE)
    return text


def build_query_params(*, table: str | None = "science", instrument: str | None = None,
                       data_level: str | None = None, descriptor: str | None = None,
                       start_date: str | None = None, end_date: str | None = None,
                       ingestion_start_date: str | None = None,
                       ingestion_end_date: str | None = None, repointing: str | int | None = None,
                       version: str | None = None, major_version: str | int | None = None,
                       minor_version: str | int | None = None,
                       extension: str | None = None) -> dict[str, Any]:
    """Check ``/query`` parameters and return them as the SDC wants them.

    Same rules as the official client: at least one parameter besides
    ``table``; ``version="latest"`` becomes ``latest=true`` for the science
    table (other tables keep a ``version="latest"`` marker that `SDCApi.query`
    resolves after the answer); ``repointing`` accepts ``"repoint00012"``.

    Raises
    ------
    BadInputError
        A value is malformed or unknown (nothing is sent).
    """
    table = _choice("table", table or "science", TABLES, "an SDC table")
    params: dict[str, Any] = {"table": table}
    if instrument is not None:
        params["instrument"] = _choice("instrument", instrument, INSTRUMENTS, "an IMAP instrument")
    if data_level is not None:
        params["data_level"] = _choice("data_level", data_level, LEVELS, "an IMAP data level")
    if descriptor is not None:
        text = str(descriptor).strip()
        if not text or "_" in text:
            raise BadInputError(f"descriptor {descriptor!r} must be non-empty and hold no '_'",
                                archive=ARCHIVE)
        params["descriptor"] = text
    for name, value in (("start_date", start_date), ("end_date", end_date),
                        ("ingestion_start_date", ingestion_start_date),
                        ("ingestion_end_date", ingestion_end_date)):
        if value is not None:
            params[name] = _date_param(name, value)
    if repointing is not None:
        params["repointing"] = _int_param("repointing", repointing)
    if version is not None:
        params["version"] = _version_param(str(version).strip(), table=table)
    for name, value in (("major_version", major_version), ("minor_version", minor_version)):
        if value is not None:
            params[name] = _int_param(name, value)
    if extension is not None:
        allowed = SCIENCE_EXTENSIONS if table == "science" else ANCILLARY_EXTENSIONS
        if table == "spice":
            raise BadInputError("extension applies to the science and ancillary tables only",
                                archive=ARCHIVE)
        params["extension"] = _choice("extension", extension, allowed, f"a {table} file extension")
    if len(params) == 1:
        raise BadInputError("give at least one query parameter besides the table (instrument, "
                            "dates, descriptor...)", archive=ARCHIVE)
    if params.get("version") == "latest":
        if len(params) == 2:
            raise BadInputError("version='latest' needs one other parameter", archive=ARCHIVE)
        if table == "science":
            del params["version"]
            params["latest"] = "true"
    return params


def build_spice_params(*, type: str | None = None, start_date: str | None = None,
                       end_date: str | None = None, ingestion_start_date: str | None = None,
                       ingestion_end_date: str | None = None,
                       version: str | None = None) -> dict[str, Any]:
    """Check ``/spice-query`` parameters; ``type`` (the kernel type) is required.

    Examples
    --------
    >>> build_spice_params(type="leapseconds", version="latest")
    {'type': 'leapseconds', 'latest': 'true'}
    """
    if type is None:
        raise BadInputError("a SPICE query needs a kernel type (a.imap.KernelType, --type); one of "
                            + ", ".join(KERNEL_TYPES), archive=ARCHIVE)
    params: dict[str, Any] = {"type": _choice("type", type, tuple(KERNEL_TYPES), "a kernel type")}
    for name, wire, value in (("start_date", "start_date", start_date),
                              ("end_date", "end_date", end_date),
                              ("ingestion_start_date", "start_ingest_date", ingestion_start_date),
                              ("ingestion_end_date", "end_ingest_date", ingestion_end_date)):
        if value is not None:
            params[wire] = _date_param(name, value)
    if version is not None:
        text = str(version).strip()
        if text == "latest":
            params["latest"] = "true"
        else:
            major, _ = parse_version(text)
            if major is not None:
                raise BadInputError(f"SPICE versions look like 'vXXX', not {version!r}",
                                    archive=ARCHIVE)
            params["version"] = text
    return params


def latest_per_dataset(records: list[dict]) -> list[dict]:
    """Keep the highest version per instrument, descriptor, level, start date and repointing."""
    best: dict = {}
    for record in records:
        key = (record.get("instrument"), record.get("descriptor"), record.get("data_level"),
               record.get("start_date"), record.get("repointing"))
        if "minor_version" in record and record.get("minor_version") is not None:
            rank = version_key(record.get("major_version"), record["minor_version"])
        else:
            try:
                rank = version_key(*parse_version(str(record.get("version"))))
            except BadInputError:
                rank = (0, 0, 0)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, record)
    return [record for _, record in best.values()]


class ApiCredentialMiddleware:
    """aiohttp client middleware for SDC downloads through parfive.

    * Credentials go on requests to the API only (URLs under the API base),
      so the presigned storage URL the API redirects to never sees them; and
      the header is removed from the request again once the response is in,
      so parfive's debug log (which prints ``response.request_info.headers``,
      a live view of the request's headers) and any error carrying
      ``request_info`` show no credential.
    * ``/download/`` answers a redirect to a presigned storage URL. parfive
      probes each file with a HEAD (which aiohttp does not redirect) and, on
      a 3xx, with a full GET before the real GET. Instead, the redirect of
      the probe is followed here (HEAD to storage) and remembered, and the
      transfer then goes straight to storage: one API request per file, as
      with the official client, and no body fetched twice. An expired or
      refused storage URL (401/403) is asked for again from the API.

    Parameters
    ----------
    prefix : str
        The API base, with a trailing slash.
    name : str, optional
        Header that carries the credential.
    value : Secret, optional
        The credential.
    """

    #: Seconds a remembered storage URL is reused (presigned URLs live longer).
    LIFETIME = 600.0
    _FORWARD = ("range", "user-agent", "accept-encoding", "want-repr-digest", "want-content-digest")

    def __init__(self, prefix: str, name: str | None = None, value: Secret | None = None):
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._name = name
        self._value = value
        self._locations: dict[str, tuple[str, float]] = {}

    async def _to_api(self, request, handler):
        if self._name is None or self._value is None:
            return await handler(request)
        request.headers[self._name] = self._value.reveal()
        try:
            return await handler(request)
        finally:
            request.headers.popall(self._name, None)

    async def _to_storage(self, request, location: str):
        headers = {k: v for k, v in request.headers.items() if k.lower() in self._FORWARD}
        return await request.session.request(request.method, location, headers=headers,
                                             allow_redirects=False, middlewares=())

    async def __call__(self, request, handler):
        import time
        from urllib.parse import urljoin

        url = str(request.url)
        if not url.startswith(self.prefix):
            return await handler(request)
        download = url.startswith(self.prefix + "download/") and request.method in ("GET", "HEAD")
        if download:
            cached = self._locations.get(url)
            if cached is not None and time.monotonic() - cached[1] < self.LIFETIME:
                response = await self._to_storage(request, cached[0])
                if response.status not in (401, 403):
                    return response
                response.release()
                self._locations.pop(url, None)
        response = await self._to_api(request, handler)
        if download and response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
            location = urljoin(url, response.headers["Location"])
            self._locations[url] = (location, time.monotonic())
            response.release()
            return await self._to_storage(request, location)
        return response

    def __repr__(self) -> str:
        credential = f"{self._name!r}, ***" if self._name else "no credential"
        return f"ApiCredentialMiddleware({self.prefix!r}, {credential})"


class SDCApi:
    """One IMAP SDC API endpoint with its credentials.

    Parameters
    ----------
    url : str, optional
        API root; default ``IMAP_DATA_ACCESS_URL``, then sunpyrc ``imap_url``,
        then ``https://api.imap-mission.com``.
    api_key : str, optional
        Default ``IMAP_API_KEY``.
    access_token : str, optional
        Used only without an API key; default ``IMAP_ACCESS_TOKEN``.
    session : requests.Session, optional
        Default: `sunpy_archives.core.http.make_session` (timeouts, retries).

    Examples
    --------
    >>> api = SDCApi("http://127.0.0.1:8000", api_key="abc")
    >>> api.base_url, api
    ('http://127.0.0.1:8000/api-key', SDCApi(url='http://127.0.0.1:8000', credential='x-api-key ***'))
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 access_token: str | None = None, session=None):
        self.url = get_setting("imap_url", url).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise BadInputError(f"{URL_VARIABLE} must be an http(s) URL, got {self.url!r}",
                                archive=ARCHIVE)
        key = api_key if api_key is not None else os.environ.get(KEY_VARIABLE)
        token = access_token if access_token is not None else os.environ.get(TOKEN_VARIABLE)
        for value, where in ((key, f"the API key ({KEY_VARIABLE} / --api-key)"),
                             (token, f"the access token ({TOKEN_VARIABLE})")):
            # Sent in an HTTP header: refuse what a header cannot carry here, with our
            # error, never showing the value (it is a secret).
            if value and not (value.isascii() and value.isprintable() and value == value.strip()):
                raise BadInputError(f"{where} has characters an HTTP header cannot carry "
                                    "(non-ASCII, control characters or surrounding spaces); "
                                    "the value is not shown", archive=ARCHIVE)
        self._key = Secret(key) if key else None
        self._token = Secret(token) if token and not key else None
        self._session = session

    @property
    def session(self):
        if self._session is None:
            self._session = make_session()
        return self._session

    @property
    def has_key(self) -> bool:
        """Whether an API key is configured."""
        return self._key is not None

    @property
    def base_url(self) -> str:
        """The URL requests go to: ``<url>/api-key`` with a key, ``<url>/authorized`` with a token."""
        url = self.url
        for suffix in ("/api-key", "/authorized"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        if self._key is not None:
            return f"{url}/api-key"
        if self._token is not None:
            return f"{url}/authorized"
        return url

    def __repr__(self) -> str:
        credential = ("x-api-key ***" if self._key else "bearer ***" if self._token else None)
        return f"SDCApi(url={self.url!r}, credential={credential!r})"

    def _headers(self) -> dict[str, str]:
        if self._key is not None:
            return {"x-api-key": self._key.reveal()}
        if self._token is not None:
            return {"Authorization": f"Bearer {self._token.reveal()}"}
        return {}

    def scrub(self, text: str) -> str:
        """``text`` without any configured credential."""
        for secret in (self._key, self._token):
            if secret is not None:
                text = secret.scrub(text)
        return text

    def middleware(self) -> ApiCredentialMiddleware:
        """The download middleware: credential to the API only, storage URL resolved once."""
        if self._key is not None:
            return ApiCredentialMiddleware(self.base_url + "/", "x-api-key", self._key)
        if self._token is not None:
            return ApiCredentialMiddleware(self.base_url + "/", "Authorization",
                                           Secret(f"Bearer {self._token.reveal()}"))
        return ApiCredentialMiddleware(self.base_url + "/")

    # -- requests ----------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, credentials: bool = True, error=SearchError,
              **kwargs):
        import requests

        where = url.split("?", 1)[0]
        headers = dict(kwargs.pop("headers", {}) or {})
        if credentials:
            headers.update(self._headers())
        try:
            response = self.session.request(method, url, headers=headers, **kwargs)
        except requests.exceptions.Timeout:
            raise error("the SDC did not answer in time; try again later or raise "
                        "SUNPY_ARCHIVES_TIMEOUT", archive=ARCHIVE, url=where) from None
        except requests.exceptions.ConnectionError as exc:
            raise error(self.scrub(f"could not connect ({exc.__class__.__name__}); check "
                                   f"{URL_VARIABLE}"), archive=ARCHIVE, url=where) from None
        except requests.exceptions.RequestException as exc:
            raise error(self.scrub(f"request failed ({exc.__class__.__name__})"),
                        archive=ARCHIVE, url=where) from None
        if response.status_code >= 400:
            self._raise_for(response, where, error)
        return response

    def _raise_for(self, response, where: str, error) -> None:
        body = _server_text(response)
        message = self.scrub(f"HTTP {response.status_code} {response.reason or ''}".rstrip()
                             + (f": {body}" if body else ""))
        if response.status_code in (401, 403):
            hint = ("the API key was refused; check IMAP_API_KEY / --api-key" if self._key else
                    "the access token was refused; check IMAP_ACCESS_TOKEN" if self._token else
                    "this needs an API key; set IMAP_API_KEY or pass --api-key")
            raise AuthenticationError(f"{message} ({hint})", archive=ARCHIVE, url=where)
        raise error(message, archive=ARCHIVE, url=where)

    def _json(self, response, where: str):
        try:
            return response.json()
        except ValueError:
            raise SearchError("the SDC answered with something that is not JSON",
                              archive=ARCHIVE, url=where) from None

    def query(self, **kwargs) -> list[dict]:
        """``GET /query``: the records of the matching files (see `build_query_params`).

        Examples
        --------
        >>> SDCApi().query(instrument="mag", data_level="l2", start_date="20250101")  # doctest: +SKIP
        """
        params = build_query_params(**kwargs)
        resolve_latest = params.get("version") == "latest"
        if resolve_latest:
            params.pop("version")
        url = f"{self.base_url}/query"
        log.debug("IMAP query %s with %s", url, params)
        response = self._send("GET", url, params=params)
        records = self._json(response, url)
        if not isinstance(records, list):
            raise SearchError("the SDC answered a query with something that is not a list",
                              archive=ARCHIVE, url=url)
        return latest_per_dataset(records) if resolve_latest else records

    def spice_query(self, **kwargs) -> list[dict]:
        """``GET /spice-query``: SPICE kernel records (see `build_spice_params`)."""
        params = build_spice_params(**kwargs)
        url = f"{self.base_url}/spice-query"
        log.debug("IMAP SPICE query %s with %s", url, params)
        records = self._json(self._send("GET", url, params=params), url)
        if not isinstance(records, list):
            raise SearchError("the SDC answered a SPICE query with something that is not a list",
                              archive=ARCHIVE, url=url)
        return records

    def download_url(self, relative_path: str) -> str:
        """``<base>/download/<relative path>``: answers a redirect to the presigned storage URL."""
        return f"{self.base_url}/download/{relative_path.lstrip('/')}"

    def upload_url(self, filename: str) -> str:
        """``GET /upload/<name>``: the presigned URL to PUT the file to."""
        url = f"{self.base_url}/upload/{filename}"
        try:
            response = self._send("GET", url, error=UploadError)
        except UploadError as exc:
            if "HTTP 409" in str(exc):
                raise UploadConflictError(
                    f"the SDC already holds {filename}; uploads never replace a file: raise the "
                    "version in the file name", archive=ARCHIVE, url=url) from None
            raise
        target = self._json(response, url)
        if not isinstance(target, str) or not target.startswith(("http://", "https://")):
            raise UploadError("the SDC did not answer the upload request with a URL",
                              archive=ARCHIVE, url=url)
        return target

    def put(self, target: str, content: bytes) -> None:
        """PUT ``content`` to a presigned URL (no credentials: the URL is the authorisation)."""
        self._send("PUT", target, credentials=False, error=UploadError, data=content,
                   headers={"Content-Type": ""})

    def request_json(self, method: str, endpoint: str, params: Mapping[str, Any]) -> Any:
        """Any other endpoint (``reprocess``, ``release``), JSON answer."""
        url = f"{self.base_url}/{endpoint.lstrip('/')}"
        return self._json(self._send(method, url, params=dict(params)), url)


def _server_text(response) -> str:
    text = (response.text or "").strip()
    if not text or text.startswith("<"):
        return ""
    try:
        import json

        value = json.loads(text)
        if isinstance(value, str):
            text = value
        elif isinstance(value, dict) and "message" in value:
            text = str(value["message"])
    except ValueError:
        pass
    return text if len(text) <= 300 else text[:297] + "..."


def storage_splits() -> int:
    """Range requests per file (setting ``imap_max_splits``).

    They are sent to the storage URL the SDC redirects to (S3, built for
    parallel ranged reads); the SDC API itself still sees one request per file.
    """
    from ..core.config import get_int_setting

    return get_int_setting("imap_max_splits", minimum=1)
