"""Hypothesis over every flag of ``sunpy-archives search <archive>``.

Any value either works (exit 0) or ends in one line on stderr and exit 2 — the
suite's own error or argparse's refusal — never a traceback.
"""

import argparse
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sunpy_archives.cli import build_parser, main

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
VALUES = st.one_of(
    st.sampled_from(["", " ", "..", "../../etc/passwd", "/abs", "a b", "'", "a' OR '1'='1", "-1", "0",
                     "1e400", "NaN", "latest", "2024-13-45", "x" * 200, "é", "*", "%"]),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.:/ ", max_size=20))
# A minimal valid query per archive, so each fuzzed flag is tried inside a routable query.
BASE = {"spice": [], "imap": ["--instrument", "mag"],
        "jsoc": ["--series", "hmi.m_720s", "--start", "2024-01-01T00:00", "--end", "2024-01-01T01:00"],
        "eso": ["--collection", "MUSE"]}
SKIP = {"--format", "--debug", "--help", "-h", "--no-progress"}


def _flags(archive: str) -> list[str]:
    parser = build_parser()
    search = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = search.choices["search"]
    archives = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(opt for action in archives.choices[archive]._actions
                  for opt in action.option_strings if opt.startswith("--") and opt not in SKIP)


def _without(argv: list[str], flag: str) -> list[str]:
    """``argv`` minus ``flag`` and its value, so the fuzzed value is the only one given."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        else:
            out.append(item)
    return out


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


CASES = [(archive, flag) for archive in BASE for flag in _flags(archive)]


@pytest.mark.parametrize("archive, flag", CASES, ids=[f"{a}{f}" for a, f in CASES])
def test_every_search_flag_fails_cleanly_or_works(archive, flag, request, capsys, monkeypatch,
                                                  reliability_stats):
    request.getfixturevalue(f"{archive}_env")
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    base = _without(BASE[archive], flag)

    @SETTINGS
    @given(value=VALUES)
    def check(value):
        reliability_stats["inputs_tried"] += 1
        argv = ["search", archive, *base, f"{flag}={value}", "--format", "json"]
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing a typed value
            code = exc.code
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, (argv, captured.err)
        assert code in (0, 2), (argv, code, captured.err)
        if code == 2:
            reliability_stats["inputs_refused"] += 1
            errors = [line for line in captured.err.splitlines() if "error" in line]
            assert len(errors) == 1, (argv, captured.err)
            # The line says which value (any case) or which flag/attr is wrong.
            line = _norm(errors[0])
            assert not _norm(value[:15]) or _norm(value[:15]) in line or _norm(flag) in line, (
                argv, errors[0])
        else:
            reliability_stats["inputs_accepted"] += 1

    check()
