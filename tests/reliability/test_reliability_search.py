"""Searches retry transient failures a bounded number of times, then fail clearly.

For each archive and each transient status (500, 502, 503, 429), a search
against a server whose search endpoints always fail makes exactly
``retries + 1`` attempts, then raises `SearchError` whose message names the
archive and the HTTP status. A search that meets fewer failures than the
retry budget succeeds.
"""

from __future__ import annotations

import pytest
import sunpy.net.attrs as a

import sunpy_archives.eso  # noqa: F401
import sunpy_archives.imap  # noqa: F401
import sunpy_archives.jsoc  # noqa: F401
import sunpy_archives.spice  # noqa: F401
from sunpy_archives.core.errors import SearchError
from sunpy_archives.eso import ESOClient
from sunpy_archives.imap import IMAPClient
from sunpy_archives.jsoc import DRMSClient
from sunpy_archives.spice import SPICEClient

RETRIES = 2


def _spice():
    from sunpy_archives.spice.catalog import clear_memory_cache

    clear_memory_cache()
    return SPICEClient().search(a.spice.Release("latest"), a.Level(2))


SEARCHES = {
    "spice": (_spice, "SPICE"),
    "imap": (lambda: IMAPClient().search(a.Instrument("mag"), a.imap.Descriptor("raw")), "IMAP"),
    "jsoc": (lambda: DRMSClient().search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"),
                                         a.drms.Series("hmi.m_720s")), "JSOC"),
    "eso": (lambda: ESOClient().search(a.eso.Collection("HARPS")), "ESO"),
}


@pytest.fixture
def env(request, monkeypatch, tmp_path):
    name = request.param
    server = request.getfixturevalue(f"{name}_env")
    faults = request.getfixturevalue(f"{name}_faults")
    monkeypatch.setenv("SUNPY_ARCHIVES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", str(RETRIES))
    return name, server, faults


@pytest.mark.parametrize("status", [500, 502, 503, 429])
@pytest.mark.parametrize("env", list(SEARCHES), indirect=True)
def test_search_fails_after_bounded_retries_naming_archive_and_status(env, status,
                                                                      reliability_stats):
    name, server, faults = env
    search, label = SEARCHES[name]
    faults.configure(fail_rate=1.0, statuses=(status,), retry_after=0,
                     retry_after_statuses=(429, 503), classes={"search"})
    with pytest.raises(SearchError) as info:
        search()
    message = str(info.value)
    assert label.lower() in message.lower(), message
    assert str(status) in message, message
    assert faults.failures_injected == RETRIES + 1, "retries are bounded"
    reliability_stats["faults_injected"] += faults.failures_injected


@pytest.mark.parametrize("env", list(SEARCHES), indirect=True)
def test_search_survives_failures_within_the_retry_budget(env, reliability_stats):
    name, server, faults = env
    search, _ = SEARCHES[name]
    faults.configure(fail_first=RETRIES, statuses=(502, 503), retry_after=0,
                     retry_after_statuses=(502, 503), classes={"search"})
    table = search()
    assert len(table) > 0
    assert faults.failures_injected >= RETRIES
    reliability_stats["faults_injected"] += faults.failures_injected
