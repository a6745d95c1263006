"""JSOC exports under trouble.

Already proved in ``tests/jsoc/test_jsoc_fetch.py`` (not repeated here):

* an export that errors: ``test_failed_export_warns_with_jsoc_message_and_others_proceed``;
* an export that never becomes ready, the warning giving the export ID, and a
  later fetch by ``a.drms.ExportID`` completing it without a new request:
  ``test_timeout_warns_with_id_then_export_id_fetches_without_new_request``;
* the pending-export refusal (status 7) waited out:
  ``test_pending_export_of_same_user_is_waited_for``;
* transient staging errors: ``test_transient_staging_errors_are_retried``.

Here: the server restarts (goes away, comes back on the same port with its
exports kept) while the client polls an export, and staging endpoints that
keep failing end in a clear error naming JSOC and the status, not a hang.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sunpy.net.attrs as a
from sunpy.net import Fido

import sunpy_archives.jsoc  # noqa: F401
from sunpy_archives.jsoc import DRMSClient
from sunpy_archives.testing.faults import FaultConfig
from sunpy_archives.testing.jsoc import JsocState, start_jsoc_server


@pytest.fixture
def own_jsoc(monkeypatch):
    state, faults = JsocState(), FaultConfig()
    state.image_shape = (8, 8)
    server = start_jsoc_server(faults, state)
    for key, value in server.environment().items():
        monkeypatch.setenv(key, value)
    holder = {"server": server}
    yield holder
    holder["server"].stop()


def test_server_restart_during_polling(own_jsoc, tmp_path, reliability_stats):
    server = own_jsoc["server"]
    state, faults, port = server.state, server.faults, server.port
    table = Fido.search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"),
                        a.drms.Series("hmi.m_720s"))[0][:3]
    state.pending_polls = 10_000
    outcome = {}

    def run():
        try:
            outcome["files"] = DRMSClient(poll_first=0.05, poll_factor=1.0).fetch(
                table, path=tmp_path, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while state.status_polls < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.status_polls >= 2, "the client never polled"
    server.stop()
    time.sleep(0.4)  # polls meet a closed port meanwhile
    restarted = start_jsoc_server(faults, state, port=port)
    own_jsoc["server"] = restarted
    for export in state.exports.values():
        export.polls_needed = 0  # JSOC finished it while it was down
    worker.join(60)
    assert not worker.is_alive()
    assert "error" not in outcome, outcome.get("error")
    files = outcome["files"]
    assert len(files) == 3 and not files.errors
    assert len(state.exports) == 1, "the export was polled again, not submitted twice"
    for f in files:
        assert Path(f).stat().st_size > 0
    reliability_stats["server_restarts"] += 1
    reliability_stats["files_fetched"] += 3
    reliability_stats["files_fetched_jsoc"] += 3


def test_staging_that_keeps_failing_ends_in_a_clear_error(own_jsoc, tmp_path, monkeypatch,
                                                         reliability_stats):
    from sunpy_archives.core.errors import ExportError

    server = own_jsoc["server"]
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "1")
    table = Fido.search(a.Time("2014-01-01T00:00", "2014-01-01T01:00"),
                        a.drms.Series("hmi.m_720s"))[0][:2]
    server.faults.configure(fail_rate=1.0, statuses=(503,), classes={"staging"})
    with pytest.raises(ExportError, match=r"(?s)JSOC.*503"):
        Fido.fetch(table, path=tmp_path, progress=False, poll_first=0.05)
    assert server.faults.failures_injected == 2, "one try and one retry, then the error"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing written"
    reliability_stats["faults_injected"] += server.faults.faults_injected
