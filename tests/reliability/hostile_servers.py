"""Small hostile servers for the reliability tests (not a test module).

Each speaks just enough of one archive's protocol to be queried, and answers
with what a broken or malicious server could send: path fields with ``..``,
absolute paths, NUL bytes and separators, bodies that are not JSON or are
cut JSON, a VOTable that is not well formed.
"""

from __future__ import annotations

import json

from aiohttp import web

from sunpy_archives.testing import FaultConfig, LocalServer, fault_middleware, send_bytes

HOSTILE_PATHS = [
    "../../../../outside/imap_mag_l2_norm-mago_20250101_v001.cdf",
    "/abs/imap/mag/l2/2025/01/imap_mag_l2_norm-mago_20250102_v001.cdf",
    "imap/mag/l2/2025/01/nul\x00dir/imap_mag_l2_norm-mago_20250103_v001.cdf",
    "imap/mag/l2/2025/01/../../../../../../outside/imap_mag_l2_norm-mago_20250105_v001.cdf",
]
#: A path whose last part is not an IMAP file name (backslash separators).
BAD_NAME_PATH = "imap\\..\\..\\..\\outside\\imap_mag_l2_norm-mago_20250104_v001.cdf"

BODY = b"hostile server body\n" * 10


def _record(path: str, day: int) -> dict:
    return {"file_path": path, "instrument": "mag", "data_level": "l2",
            "descriptor": "norm-mago", "start_date": f"202501{day:02d}", "repointing": None,
            "version": "v001", "extension": "cdf", "ingestion_date": "2025-01-07 16:24:56"}


def imap_app(mode: str, faults: FaultConfig) -> web.Application:
    """``mode``: ``paths`` (hostile file_path values), ``badname``, ``notjson``, ``cutjson``, ``notlist``."""

    async def query(request):
        if mode == "notjson":
            return web.Response(text="<html>Gateway error</html>", content_type="text/html")
        if mode == "cutjson":
            text = json.dumps([_record(p, i + 1) for i, p in enumerate(HOSTILE_PATHS)])
            return web.Response(text=text[: len(text) // 2], content_type="application/json")
        if mode == "notlist":
            return web.json_response({"unexpected": True})
        if mode == "badname":
            return web.json_response([_record(BAD_NAME_PATH, 4)])
        return web.json_response([_record(p, i + 1) for i, p in enumerate(HOSTILE_PATHS)])

    async def download(request):
        return await send_bytes(request, BODY, headers={
            "Content-Disposition": 'attachment; filename="../../../evil.cdf"'})

    app = web.Application(middlewares=[fault_middleware(faults)])
    app.router.add_get("/query", query)
    app.router.add_get("/download/{path:.*}", download)
    app.router.add_get("/sds-data/{path:.*}", download)
    return app


def jsoc_app(mode: str, faults: FaultConfig) -> web.Application:
    """``mode``: ``notjson`` or ``cutjson`` answers to every CGI program."""

    async def cgi(request):
        if mode == "notjson":
            return web.Response(text="<html>500 Internal</html>", content_type="text/html")
        text = json.dumps({"status": 0, "count": 2, "keywords": [
            {"name": "T_REC", "values": ["2014.01.01_00:00:00_TAI", "2014.01.01_00:12:00_TAI"]}]})
        return web.Response(text=text[:40], content_type="application/json")

    app = web.Application(middlewares=[fault_middleware(faults)])
    app.router.add_route("*", "/cgi-bin/ajax/{program}", cgi)
    app.router.add_route("*", "/cgi-bin/{program}", cgi)
    return app


MALFORMED_VOTABLES = {
    "notxml": "this is not XML at all",
    "cut": ('<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
            '<RESOURCE type="results"><INFO name="QUERY_STATUS" value="OK"/><TABLE>'
            '<FIELD name="dp_id" datatype="char" arraysize="*"/><DATA><TABLEDATA><TR><TD>ADP.1'),
    "html": "<html><body><h1>Service temporarily down</h1></body></html>",
}


def eso_app(mode: str, faults: FaultConfig) -> web.Application:
    """Answers every TAP request with a malformed VOTable (``mode`` picks which)."""

    async def tap(request):
        return web.Response(text=MALFORMED_VOTABLES[mode], content_type="application/x-votable+xml")

    app = web.Application(middlewares=[fault_middleware(faults)])
    app.router.add_route("*", "/tap_obs/{rest:.*}", tap)
    return app


def serve(app: web.Application) -> LocalServer:
    """Start ``app`` on a free port."""
    return LocalServer(app).start()
