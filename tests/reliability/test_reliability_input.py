"""Bad input, property-based: every attr of ours and every ``sunpy-archives imap`` flag.

Any value either works or raises one of the suite's own errors that subclass
`ValueError` (`BadInputError` and its subclasses), with a message that names
the value. Syntax is checked before the network: when a search refuses a
value for its syntax, the archive's local server has seen no request; when it
refuses a value that does not exist (`UnknownValueError`), at most a few
metadata requests were made.
"""

from __future__ import annotations

import argparse
import string

import pytest
import sunpy.net.attrs as a
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sunpy_archives.eso.attrs as ea
import sunpy_archives.imap.attrs as ia
import sunpy_archives.jsoc.attrs as ja
import sunpy_archives.spice.attrs as sa
from sunpy_archives.core.errors import ArchiveError, BadInputError, SearchError, UnknownValueError
from sunpy_archives.eso import ESOClient
from sunpy_archives.imap import IMAPClient
from sunpy_archives.imap.cli import add_commands
from sunpy_archives.jsoc import DRMSClient
from sunpy_archives.spice import SPICEClient

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

NASTY = ["", " ", "..", "../../etc/passwd", "/abs/path", "a\x00b", "a/b\\c", "latest", "*",
         "%", "'", "a' OR '1'='1", "\n", "\u202e", "é", "9" * 40, "-1", "0", "1e400", "NaN",
         "[", "]", "{", "}", "T_REC", "2024-13-45", "x" * 300]

texts = st.one_of(st.sampled_from(NASTY),
                  st.text(alphabet=string.printable, max_size=20),
                  st.text(max_size=12))
anything = st.one_of(texts, st.integers(min_value=-10**20, max_value=10**20),
                     st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
                     st.binary(max_size=6), st.lists(st.text(max_size=4), max_size=3))


def _names_value(value, message: str) -> bool:
    """Whether ``message`` names ``value`` (whole, its start for long values, or the last
    part of a path). A value with nothing to show (None, empty, blank) needs no naming:
    the message then says what is missing."""
    if value is None or (isinstance(value, (str, bytes, list, tuple)) and not str(value).strip()):
        return True
    if isinstance(value, (list, tuple)) and not any(str(v).strip() for v in value):
        return True
    text = str(value)
    base = text.rsplit("/", 1)[-1]
    candidates = {text, repr(value), text.strip(), repr(text), base, repr(base)}
    for text in candidates:
        if text and (text in message or (len(text) > 40 and text[:30] in message)):
            return True
    return False


def _registered(client_cls):
    values = []
    for attr_values in client_cls.register_values().values():
        values += [v for v, _ in attr_values[:6]]
    return values


# --- the attrs, with the search each is tried in ----------------------------------------------

TIME = a.Time("2014-01-01T00:00", "2014-01-01T01:00")

ATTRS = {
    "spice.Release": (sa.Release, lambda v: SPICEClient().search(v, a.Level(2))),
    "spice.SOOP": (sa.SOOP, lambda v: SPICEClient().search(sa.Release("latest"), v)),
    "spice.Query": (sa.Query, lambda v: SPICEClient().search(sa.Release("latest"), v)),
    "spice.Closest": (sa.Closest, lambda v: SPICEClient().search(sa.Release("latest"), v)),
    "imap.Table": (ia.Table, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.Descriptor": (ia.Descriptor, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.Version": (ia.Version, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.MajorVersion": (ia.MajorVersion, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.MinorVersion": (ia.MinorVersion, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.Repointing": (ia.Repointing, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.Extension": (ia.Extension, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.IngestionTime": (ia.IngestionTime, lambda v: IMAPClient().search(a.Instrument("mag"), v)),
    "imap.Filename": (ia.Filename, lambda v: IMAPClient().search(v)),
    "imap.KernelType": (ia.KernelType, lambda v: IMAPClient().search(v)),
    "drms.Series": (ja.Series, lambda v: DRMSClient().search(TIME, v)),
    "drms.Segment": (ja.Segment, lambda v: DRMSClient().search(TIME, ja.Series("hmi.m_720s"), v)),
    "drms.Keys": (ja.Keys, lambda v: DRMSClient().search(TIME, ja.Series("hmi.m_720s"), v)),
    "drms.Notify": (ja.Notify, lambda v: DRMSClient().search(TIME, ja.Series("hmi.m_720s"), v)),
    "drms.Protocol": (ja.Protocol, lambda v: DRMSClient().search(TIME, ja.Series("hmi.m_720s"), v)),
    "drms.Method": (ja.Method, lambda v: DRMSClient().search(TIME, ja.Series("hmi.m_720s"), v)),
    "drms.ExportID": (ja.ExportID, lambda v: DRMSClient().search(v)),
    "eso.Collection": (ea.Collection, lambda v: ESOClient().search(v)),
    "eso.Category": (ea.Category, lambda v: ESOClient().search(ea.Collection("HARPS"), v)),
    "eso.ProductID": (ea.ProductID, lambda v: ESOClient().search(v)),
    "eso.Extension": (ea.Extension, lambda v: ESOClient().search(ea.Collection("HARPS"), v)),
    "eso.MaxRecords": (ea.MaxRecords, lambda v: ESOClient().search(ea.Collection("HARPS"), v)),
}
TWO_ARGS = {
    "drms.PrimeKey": (ja.PrimeKey, lambda v: DRMSClient().search(TIME, ja.Series("hmi.sharp_720s"), v)),
    "eso.Cone": (ea.Cone, lambda v: ESOClient().search(ea.Collection("HARPS"), v)),
    "imap.IngestionTime(2)": (ia.IngestionTime,
                              lambda v: IMAPClient().search(a.Instrument("mag"), v)),
}
SERVER_OF = {"spice": "spice_env", "imap": "imap_env", "drms": "jsoc_env", "eso": "eso_env"}
REGISTERED = {"spice": SPICEClient, "imap": IMAPClient, "drms": DRMSClient, "eso": ESOClient}


@pytest.fixture
def live(request, monkeypatch, tmp_path):
    """Every archive's local server, environment set, retries off."""
    servers = {name: request.getfixturevalue(fixture) for name, fixture in SERVER_OF.items()}
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")
    monkeypatch.setenv("IMAP_DATA_DIR", str(tmp_path))
    return servers


def _try(name, make, search, args, servers, stats):
    """Construct the attr and search with it; check the outcome. Returns the outcome kind."""
    stats["inputs_tried"] += 1
    value = args[0] if len(args) == 1 else args
    try:
        attr = make(*args)
    except BadInputError as exc:
        assert _names_value(value, str(exc)) or any(_names_value(v, str(exc)) for v in args), (
            f"{name}: message does not name {value!r}: {exc}")
        stats["inputs_refused"] += 1
        return "refused-at-construction"
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{name}({value!r}) raised {type(exc).__name__}: {exc}")
    server = servers[name.split(".")[0]]
    before = server.faults.requests_seen
    try:
        search(attr)
    except UnknownValueError as exc:
        assert server.faults.requests_seen - before <= 3, f"{name}: existence needed many requests"
        stats["inputs_refused"] += 1
        return "unknown"
    except BadInputError as exc:
        made = server.faults.requests_seen - before
        # Syntax is refused before any request; existence (a series' segments or
        # prime keys) after at most a few metadata requests.
        assert made <= 3, f"{name}({value!r}): refused after {made} request(s): {exc}"
        stats["inputs_refused_after_metadata" if made else "inputs_refused_before_network"] += 1
        assert any(_names_value(v, str(exc)) for v in args) or _names_value(value, str(exc)), (
            f"{name}: message does not name {value!r}: {exc}")
        stats["inputs_refused"] += 1
        return "refused"
    except SearchError as exc:
        # The server itself refused a value that passed our checks (e.g. an ADQL or
        # DRMS error): still one of ours, and it says which archive.
        stats["inputs_server_refused"] += 1
        return "server"
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{name}({value!r}) search raised {type(exc).__name__}: {exc}")
    stats["inputs_accepted"] += 1
    return "ok"


@pytest.mark.parametrize("name", list(ATTRS))
def test_any_value_works_or_is_refused_clearly(name, live, reliability_stats):
    make, search = ATTRS[name]
    registered = _registered(REGISTERED[name.split(".")[0]])

    @SETTINGS
    @given(value=st.one_of(anything, st.sampled_from(registered or ["x"])))
    def check(value):
        _try(name, make, search, (value,), live, reliability_stats)

    check()


@pytest.mark.parametrize("name", list(TWO_ARGS))
def test_two_argument_attrs(name, live, reliability_stats):
    make, search = TWO_ARGS[name]

    @SETTINGS
    @given(first=anything, second=anything)
    def check(first, second):
        _try(name, make, search, (first, second), live, reliability_stats)

    check()


# --- the CLI ---------------------------------------------------------------------------------

QUERY_FLAGS = ["--data-level", "--descriptor", "--start-date", "--end-date",
               "--ingestion-start-date", "--ingestion-end-date", "--repointing", "--version",
               "--major-version", "--minor-version", "--extension", "--filename", "--type"]
CHOICE_FLAGS = ["--instrument", "--table", "--output-format"]


def _cli(argv):
    parser = argparse.ArgumentParser(prog="sunpy-archives")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["imap", *argv])
    return args.func(args)


def _cli_try(argv, value, server, stats, capsys, flag=None):
    stats["inputs_tried"] += 1
    before = len(server.seen)
    try:
        code = _cli(argv)
    except SystemExit as exc:  # argparse refusing a value (choices, int flags)
        err = capsys.readouterr().err
        assert exc.code == 2 and "invalid" in err and repr(value)[1:-1][:20] in err, err
        assert len(server.seen) == before
        stats["inputs_refused"] += 1
        return
    except BadInputError as exc:
        assert len(server.seen) == before, f"{argv}: syntax refused after a request: {exc}"
        # The message names the value, or the flag when the flag is what is wrong;
        # a secret is never named.
        if flag == "--api-key":
            assert len(value.strip()) < 4 or value not in str(exc)
            assert "API key" in str(exc)
            stats["inputs_refused"] += 1
            return
        assert _names_value(value, str(exc)) or (flag and flag in str(exc)), (
            f"{argv}: message does not name {value!r}: {exc}")
        stats["inputs_refused"] += 1
        return
    except ArchiveError:
        stats["inputs_server_refused"] += 1
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"sunpy-archives imap {argv} raised {type(exc).__name__}: {exc}")
    finally:
        capsys.readouterr()
    assert code == 0
    stats["inputs_accepted"] += 1


cli_texts = st.one_of(st.sampled_from([v for v in NASTY if "\x00" not in v]),
                      st.text(alphabet=string.ascii_letters + string.digits + "-_./:", max_size=15))


@pytest.mark.parametrize("flag", QUERY_FLAGS + CHOICE_FLAGS)
def test_cli_query_flags(flag, imap_env, reliability_stats, capsys, monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")

    @SETTINGS
    @given(value=cli_texts)
    def check(value):
        # --flag=value: a value starting with "-" is then a value, not an option
        argv = ["query", f"{flag}={value}"]
        if flag not in ("--instrument", "--filename"):
            argv = ["query", "--instrument", "mag", f"{flag}={value}"]
        _cli_try(argv, value, imap_env, reliability_stats, capsys, flag)

    check()


@pytest.mark.parametrize("flag", ["--data-dir", "--url", "--api-key", "download", "--max-conn"])
def test_cli_global_flags_and_download_names(flag, imap_env, reliability_stats, capsys, tmp_path,
                                             monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_RETRIES", "0")

    @SETTINGS
    @given(value=cli_texts)
    def check(value):
        if flag == "download":
            argv = ["--data-dir", str(tmp_path), "download", "--no-progress", "--", value]
        elif flag == "--max-conn":
            argv = ["--data-dir", str(tmp_path), "download", "--no-progress", f"--max-conn={value}",
                    "imap_mag_l0_raw_20250101_v001.pkts"]
        else:
            argv = [f"{flag}={value}", "query", "--instrument", "mag", "--descriptor", "raw"]
        _cli_try(argv, value, imap_env, reliability_stats, capsys, flag)

    check()


# --- regressions found by the properties above ------------------------------------------------

@pytest.mark.parametrize("make, value", [
    (sa.Release, False),   # bool is an int: int("False") raised a bare ValueError
    (sa.Release, True),
    (ja.Keys, None),       # not iterable: raised TypeError
    (ja.Keys, 3),
])
def test_found_bad_values_raise_our_error(make, value):
    with pytest.raises(BadInputError, match=repr(value)):
        make(value)


@pytest.mark.parametrize("key", ["\u202esecret-key-1234", "secret\nkey-5678", " secret-key-9012"])
def test_unsendable_api_key_is_our_error_and_not_shown(key, imap_env, monkeypatch):
    # Before the fix a non-latin-1 key raised UnicodeEncodeError from the HTTP layer.
    monkeypatch.setenv("IMAP_API_KEY", key)
    before = len(imap_env.seen)
    with pytest.raises(BadInputError, match="API key") as info:
        IMAPClient().search(a.Instrument("mag"), ia.Descriptor("raw"))
    assert key.strip() not in str(info.value)
    assert len(imap_env.seen) == before
