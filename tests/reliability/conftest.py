"""Figures of the reliability suite, collected while it runs.

Every test adds what it did to the session-wide `reliability_stats` counter
(faults injected by the local servers, files fetched and checked byte for
byte, files lost, bad inputs tried). At the end of the session the figures
are written to ``tests/reliability/.last_run.json`` (not tracked by git) so
they can be quoted.
"""

import json
import time
from collections import Counter
from pathlib import Path

import pytest

_STATS: Counter = Counter()
_STARTED = time.time()


@pytest.fixture(scope="session")
def reliability_stats() -> Counter:
    """Session-wide counters: ``faults_injected``, ``files_fetched``, ``files_lost``, ``inputs_tried``."""
    return _STATS


def pytest_sessionfinish(session, exitstatus):
    if not _STATS:
        return
    figures = dict(sorted(_STATS.items()))
    figures["seconds"] = round(time.time() - _STARTED, 1)
    figures["exit_status"] = int(exitstatus)
    out = Path(__file__).with_name(".last_run.json")
    out.write_text(json.dumps(figures, indent=2) + "\n")
