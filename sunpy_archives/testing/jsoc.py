"""
A local, faithful JSOC (DRMS) server.

`make_jsoc_app` answers the CGI programs the ``drms`` library and sunpy's
``JSOCClient`` call (``cgi-bin/ajax/jsoc_info``, ``jsoc_fetch``,
``checkAddress.sh``, ``show_series``, ``showextseries``) and serves stored and
exported files under ``/SUM...`` paths, as described in ``PROTOCOLS.md``
section 3.

Records are *generated from the query*, never stored: a record set such as
``aia.lev1_euv_12s[2024.01.01_TAI/1d@12s][171]`` is turned into slot numbers
and prime-key values with numpy, and every keyword value is a deterministic
function of the record number. A day of 12 s data therefore costs nothing to
hold.

Series served: ``aia.lev1_euv_12s`` (T_REC, WAVELNTH; 12 s), ``hmi.M_720s``
and ``hmi.V_45s`` (T_REC, CAMERA) and ``hmi.sharp_720s`` (HARPNUM, T_REC).

Exports (`JsocState` holds their settings, changeable while the server runs):
``url_quick``/``as-is`` exports finish at once; every other export stays
pending for `JsocState.pending_polls` status polls; a user (notify address)
with a pending export is refused a second one (status 7); an export larger
than `JsocState.max_export_mb` is refused (status 3); `JsocState.fail_next`
makes the next export fail with that message.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import unquote_plus

import numpy as np
from aiohttp import web

from .faults import FaultConfig, fault_middleware, send_bytes
from .server import LocalServer

__all__ = [
    "JsocState",
    "JsocServer",
    "SeriesDef",
    "SERIES",
    "make_jsoc_app",
    "start_jsoc_server",
    "jsoc_classifier",
    "parse_recordset",
    "RecordSetError",
]

#: A notify address the local JSOC server knows as registered.
REGISTERED_EMAIL = "user@example.com"

# --------------------------------------------------------------------------- time

_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
# (UTC instant from which it applies, TAI - UTC in seconds)
_LEAP = [
    ("1999-01-01", 32), ("2006-01-01", 33), ("2009-01-01", 34),
    ("2012-07-01", 35), ("2015-07-01", 36), ("2017-01-01", 37),
]
_LEAP_UTC = [(int((np.datetime64(d, "s") - _EPOCH).astype(int)), off) for d, off in _LEAP]


def tai_minus_utc(utc_seconds: float) -> int:
    """TAI - UTC (s) at a UTC instant given as seconds since 1970 (from 1999 on)."""
    offset = 32
    for start, value in _LEAP_UTC:
        if utc_seconds >= start:
            offset = value
    return offset


def utc_to_tai(seconds: float) -> float:
    return seconds + tai_minus_utc(seconds)


def tai_to_utc(seconds: float) -> float:
    guess = seconds - tai_minus_utc(seconds)
    return seconds - tai_minus_utc(guess)


_TIME_TOKEN = (r"\d{4}[.-]\d{1,2}[.-]\d{1,2}(?:[_T ]\d{1,2}(?::\d{1,2}(?::\d{1,2}(?:\.\d*)?)?)?)?"
               r"(?:_?(?:TAI|UTC|UT|Z))?")
_TIME_RE = re.compile(r"^(\d{4})[.-](\d{1,2})[.-](\d{1,2})(?:[_T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?)?"
                      r"_?(TAI|UTC|UT|Z)?$")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d*)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RecordSetError(ValueError):
    """A record-set specification the server cannot parse."""


def parse_time(text: str, scale: str) -> float:
    """Seconds since 1970 in the series' ``scale`` ("TAI" or "UTC") of a DRMS or ISO time."""
    match = _TIME_RE.match(text.strip())
    if not match:
        raise RecordSetError(f"cannot parse time {text!r}")
    y, mo, d, h, mi, s, zone = match.groups()
    try:
        base = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), tzinfo=timezone.utc)
    except ValueError as exc:
        raise RecordSetError(f"cannot parse time {text!r}: {exc}") from None
    seconds = base.timestamp() + float(s or 0)
    zone = "UTC" if zone in ("Z", "UT", "UTC") else ("TAI" if zone == "TAI" else scale)
    if zone != scale:
        seconds = utc_to_tai(seconds) if scale == "TAI" else tai_to_utc(seconds)
    return seconds


def parse_duration(text: str) -> float:
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise RecordSetError(f"cannot parse duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_times(seconds: np.ndarray, style: str) -> list[str]:
    """Format slot times (seconds in the series' own scale)."""
    stamps = np.datetime_as_string(_EPOCH + np.asarray(seconds, dtype="int64").astype("timedelta64[s]"),
                                   unit="s")
    if style == "iso":
        return [f"{s}Z" for s in stamps]
    return [f"{s[:4]}.{s[5:7]}.{s[8:10]}_{s[11:]}_TAI" for s in stamps]


# --------------------------------------------------------------------------- series

@dataclass(frozen=True)
class Keyword:
    name: str
    type: str
    units: str = "none"
    note: str = ""
    defval: str = ""


@dataclass(frozen=True)
class SeriesDef:
    """One generated series.

    Parameters
    ----------
    name : str
        Canonical name (the lookup is case-insensitive).
    primekeys : tuple of str
        Prime keys in order; the time key is ``T_REC``.
    step : int
        Slot cadence of T_REC in seconds.
    scale : str
        ``"UTC"`` (values in ISO form) or ``"TAI"`` (DRMS form).
    variants : tuple of int
        Values of the non-time prime key (WAVELNTH or CAMERA); empty for SHARPs.
    keywords : tuple of Keyword
    segments : tuple of str
    file_mb : int
        Nominal size of one segment file, for export sizes.
    note : str
    """

    name: str
    number: int
    primekeys: tuple[str, ...]
    step: int
    scale: str
    variants: tuple[int, ...]
    keywords: tuple[Keyword, ...]
    segments: tuple[str, ...]
    file_mb: int
    note: str

    @property
    def variant_key(self) -> str | None:
        others = [k for k in self.primekeys if k not in ("T_REC", "HARPNUM")]
        return others[0] if others else None

    @property
    def time_style(self) -> str:
        return "iso" if self.scale == "UTC" else "drms"


_FIRST = "2010-05-01T00:00:00"
_LAST = "2026-01-01T00:00:00"
FIRST_SECONDS = int((np.datetime64(_FIRST, "s") - _EPOCH).astype(int))
LAST_SECONDS = int((np.datetime64(_LAST, "s") - _EPOCH).astype(int))

_AIA_KEYS = (
    Keyword("T_REC", "time", "UTC", "[T_REC] Slot time", "1977.01.01_00:00:00_TAI"),
    Keyword("WAVELNTH", "int", "angstrom", "[WAVELNTH] Wavelength"),
    Keyword("T_OBS", "time", "UTC", "Observation time"),
    Keyword("EXPTIME", "float", "s", "Exposure duration"),
    Keyword("QUALITY", "int", "none", "Level 1 quality word"),
    Keyword("FSN", "int", "none", "Filtergram sequence number"),
    Keyword("DATAMEAN", "float", "DN", "Mean of the image"),
    Keyword("INSTRUME", "string", "none", "Instrument name"),
    Keyword("TELESCOP", "string", "none", "Telescope"),
)
_HMI_KEYS = (
    Keyword("T_REC", "time", "TAI", "[T_REC] Slot time", "-4712.01.01_11:59:28_TAI"),
    Keyword("CAMERA", "int", "none", "[CAMERA] Camera used"),
    Keyword("T_OBS", "time", "TAI", "Observation time"),
    Keyword("QUALITY", "int", "none", "Quality word"),
    Keyword("DATAMEAN", "double", "none", "Mean of the image"),
    Keyword("CRLN_OBS", "float", "degree", "Carrington longitude of the observer"),
    Keyword("WAVELNTH", "float", "Angstrom", "Wavelength"),
    Keyword("INSTRUME", "string", "none", "Instrument name"),
    Keyword("TELESCOP", "string", "none", "Telescope"),
)
_SHARP_KEYS = (
    Keyword("HARPNUM", "int", "none", "[HARPNUM] HARP number"),
    Keyword("T_REC", "time", "TAI", "[T_REC] Slot time", "-4712.01.01_11:59:28_TAI"),
    Keyword("NOAA_AR", "int", "none", "NOAA active region number"),
    Keyword("QUALITY", "int", "none", "Quality word"),
    Keyword("USFLUX", "double", "Mx", "Total unsigned flux"),
    Keyword("LAT_FWT", "float", "degree", "Flux-weighted latitude"),
    Keyword("INSTRUME", "string", "none", "Instrument name"),
    Keyword("TELESCOP", "string", "none", "Telescope"),
)

SERIES: dict[str, SeriesDef] = {s.name.lower(): s for s in [
    SeriesDef("aia.lev1_euv_12s", 1, ("T_REC", "WAVELNTH"), 12, "UTC",
              (94, 131, 171, 193, 211, 304, 335), _AIA_KEYS, ("image", "spikes"), 64,
              "AIA Level 1, 12 second cadence"),
    SeriesDef("hmi.M_720s", 2, ("T_REC", "CAMERA"), 720, "TAI", (3,), _HMI_KEYS,
              ("magnetogram",), 32, "Line-of-sight magnetograms with a cadence of 720 seconds."),
    SeriesDef("hmi.V_45s", 3, ("T_REC", "CAMERA"), 45, "TAI", (2,), _HMI_KEYS,
              ("Dopplergram",), 32, "Dopplergrams with a cadence of 45 seconds."),
    SeriesDef("hmi.sharp_720s", 4, ("HARPNUM", "T_REC"), 720, "TAI", (), _SHARP_KEYS,
              ("magnetogram", "bitmap", "continuum"), 2,
              "Spaceweather HMI Active Region Patches (SHARPs), 720 s cadence."),
]}

#: HARP windows: HARP ``7000 + k`` lives for 10 days from 2018-01-01 + 3k days.
HARP_FIRST = 7000
HARP_COUNT = 4000
HARP_DAYS = 10
_HARP_EPOCH = int((np.datetime64("2018-01-01T00:00:00", "s") - _EPOCH).astype(int))


def harp_window(harpnum: int) -> tuple[int, int]:
    """[first, last] slot seconds (TAI) during which a HARP exists."""
    k = harpnum - HARP_FIRST
    start = _HARP_EPOCH + k * 3 * 86400
    return start, start + HARP_DAYS * 86400 - 720


def series_def(name: str) -> SeriesDef | None:
    return SERIES.get(name.strip().lower())


# --------------------------------------------------------------------------- record sets

@dataclass
class Bracket:
    items: list[tuple]  # ("value", v) | ("range", lo, hi, step) | ("first",) | ("last",)


@dataclass
class RecordSet:
    series: SeriesDef
    brackets: list[Bracket]
    filter: str | None
    segments: list[str] | None


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside brackets and braces."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


_RS_RE = re.compile(r"^\s*([\w.]+)\s*((?:\[[^\]]*\]\s*)*)(\{[^}]*\})?\s*$")


def parse_recordset(text: str) -> list[RecordSet]:
    """Parse a (comma-separated list of) record-set specification(s).

    Raises
    ------
    RecordSetError
        Unknown series (message starts with "series"), or a bad specification.
    """
    result = []
    for part in split_top(text):
        filt = None
        fm = re.search(r"\[([?!])(.*?)\1\]", part, re.S)
        if fm:
            filt = fm.group(2).strip()
            part = part[:fm.start()] + part[fm.end():]
        m = _RS_RE.match(part)
        if not m:
            raise RecordSetError(f"Bad record-set subset specification '{text}'")
        name, brackets_text, segs = m.groups()
        series = series_def(name)
        if series is None:
            raise RecordSetError(f"series {name} not found", )
        raw = re.findall(r"\[([^\]]*)\]", brackets_text or "")
        if len(raw) > len(series.primekeys):
            raise RecordSetError(f"Bad record-set subset specification '{text}': {series.name} has "
                                 f"{len(series.primekeys)} prime keys")
        brackets = [_parse_bracket(series, series.primekeys[i], raw[i]) for i in range(len(raw))]
        segments = None
        if segs is not None:
            segments = [s.strip() for s in segs[1:-1].split(",") if s.strip()]
        result.append(RecordSet(series, brackets, filt, segments))
    return result


def _parse_bracket(series: SeriesDef, key: str, text: str) -> Bracket:
    text = text.strip()
    if not text:
        return Bracket([])
    items = []
    for item in text.split(","):
        item = item.strip()
        if item == "^":
            items.append(("first",))
            continue
        if item == "$":
            items.append(("last",))
            continue
        if item.startswith("#"):
            raise RecordSetError(f"record numbers are not supported: {item!r}")
        step = None
        if "@" in item:
            item, step_text = item.split("@", 1)
            step = parse_duration(step_text)
        if key == "T_REC":
            m = re.match(rf"^({_TIME_TOKEN})(?:(-)({_TIME_TOKEN})|/(\S+))?$", item)
            if not m:
                raise RecordSetError(f"Bad record-set subset specification: cannot parse {key} "
                                     f"value {item!r}")
            start = parse_time(m.group(1), series.scale)
            if m.group(2):
                end = parse_time(m.group(3), series.scale)
                items.append(("range", start, end, step))
            elif m.group(4):
                end = start + parse_duration(m.group(4)) - 1e-6
                items.append(("range", start, end, step))
            else:
                items.append(("value", start) if step is None else ("range", start, start, step))
        else:
            m = re.match(r"^(-?\d+(?:\.\d*)?)(?:-(-?\d+(?:\.\d*)?))?$", item)
            if not m:
                raise RecordSetError(f"Bad record-set subset specification: cannot parse {key} "
                                     f"value {item!r}")
            if m.group(2):
                items.append(("range", float(m.group(1)), float(m.group(2)), step))
            else:
                items.append(("value", float(m.group(1))))
    return Bracket(items)


def _time_slots(series: SeriesDef, bracket: Bracket | None, lo: int = FIRST_SECONDS,
                hi: int = LAST_SECONDS, limit: int = 5_000_000) -> np.ndarray:
    """Slot times (seconds, series scale) selected by a T_REC bracket, within [lo, hi]."""
    step = series.step
    first = lo + (-lo) % step
    if bracket is None or not bracket.items:
        count = (hi - first) // step + 1
        if count > limit:
            raise RecordSetError(f"the record set of {series.name} is too large ({count} slots); "
                                 "constrain T_REC")
        return np.arange(first, hi + 1, step, dtype=np.int64)
    pieces = []
    for item in bracket.items:
        if item[0] == "first":
            pieces.append(np.array([first], dtype=np.int64))
        elif item[0] == "last":
            pieces.append(np.array([hi - hi % step], dtype=np.int64))
        elif item[0] == "value":
            t = item[1]
            slot = int(round(t / step)) * step
            if abs(slot - t) < step / 2 and lo <= slot <= hi:
                pieces.append(np.array([slot], dtype=np.int64))
        else:
            _, start, end, cadence = item
            start_slot = int(np.ceil(max(start, lo) / step - 1e-9)) * step
            end_slot = int(np.floor(min(end, hi) / step + 1e-9)) * step
            if end_slot < start_slot:
                continue
            if (end_slot - start_slot) // step > limit:
                raise RecordSetError(f"the record set of {series.name} is too large; constrain T_REC")
            slots = np.arange(start_slot, end_slot + 1, step, dtype=np.int64)
            if cadence:
                if cadence <= step:
                    pass
                else:
                    # first record at or after each multiple of the cadence from start
                    stride = cadence
                    targets = np.arange(start, end + 1e-6, stride)
                    idx = np.searchsorted(slots, targets - 1e-6)
                    idx = idx[idx < len(slots)]
                    slots = np.unique(slots[idx])
            pieces.append(slots)
    if not pieces:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(pieces))


def _value_filter(bracket: Bracket | None, values: np.ndarray) -> np.ndarray:
    if bracket is None or not bracket.items:
        return np.ones(len(values), dtype=bool)
    keep = np.zeros(len(values), dtype=bool)
    for item in bracket.items:
        if item[0] == "value":
            keep |= values == item[1]
        elif item[0] == "range":
            keep |= (values >= item[1]) & (values <= item[2])
        elif item[0] == "first":
            keep[:1] = True
        elif item[0] == "last":
            keep[-1:] = True
    return keep


@dataclass
class Records:
    """Selected records of one series (parallel arrays)."""

    series: SeriesDef
    t_rec: np.ndarray      # slot seconds, series scale
    variant: np.ndarray    # WAVELNTH / CAMERA / HARPNUM value
    recnum: np.ndarray

    def __len__(self):
        return len(self.recnum)

    def take(self, index) -> Records:
        return Records(self.series, self.t_rec[index], self.variant[index], self.recnum[index])


def select(rs: RecordSet) -> Records:
    """The records of one parsed record set, in prime-key order, filter applied."""
    s = rs.series
    brackets = {s.primekeys[i]: b for i, b in enumerate(rs.brackets)}
    if s.name == "hmi.sharp_720s":
        harp_bracket = brackets.get("HARPNUM")
        t_bracket = brackets.get("T_REC")
        if harp_bracket is None or not harp_bracket.items:
            if t_bracket is None or not t_bracket.items:
                raise RecordSetError("the record set of hmi.sharp_720s is too large; constrain "
                                     "HARPNUM or T_REC")
            slots = _time_slots(s, t_bracket)
            if len(slots) == 0:
                harps = np.zeros(0, dtype=np.int64)
            else:
                k_lo = max(0, int((slots[0] - _HARP_EPOCH - HARP_DAYS * 86400) // (3 * 86400)))
                k_hi = min(HARP_COUNT - 1, int((slots[-1] - _HARP_EPOCH) // (3 * 86400)) + 1)
                harps = np.arange(HARP_FIRST + k_lo, HARP_FIRST + k_hi + 1)
        else:
            candidates = np.arange(HARP_FIRST, HARP_FIRST + HARP_COUNT)
            harps = candidates[_value_filter(harp_bracket, candidates.astype(float))]
        t_parts, h_parts = [], []
        for harp in harps:
            lo, hi = harp_window(int(harp))
            slots = _time_slots(s, t_bracket, lo, hi)
            t_parts.append(slots)
            h_parts.append(np.full(len(slots), harp, dtype=np.int64))
        t_rec = np.concatenate(t_parts) if t_parts else np.zeros(0, dtype=np.int64)
        variant = np.concatenate(h_parts) if h_parts else np.zeros(0, dtype=np.int64)
        recnum = (variant - HARP_FIRST) * 10_000_000 + (t_rec - FIRST_SECONDS) // s.step + 1
    else:
        slots = _time_slots(s, brackets.get("T_REC"))
        variants = np.array(s.variants, dtype=np.int64)
        vmask = _value_filter(brackets.get(s.variant_key), variants.astype(float))
        chosen = variants[vmask]
        vindex = np.nonzero(vmask)[0]
        t_rec = np.repeat(slots, len(chosen))
        variant = np.tile(chosen, len(slots))
        vidx = np.tile(vindex, len(slots))
        recnum = ((t_rec - FIRST_SECONDS) // s.step) * len(s.variants) + vidx + 1
    records = Records(s, t_rec, variant, recnum.astype(np.int64))
    if rs.filter:
        records = records.take(_evaluate_filter(rs.filter, records))
    return records


def record_from_recnum(series: SeriesDef, recnum: int) -> Records:
    if series.name == "hmi.sharp_720s":
        harp = HARP_FIRST + (recnum - 1) // 10_000_000
        slot = FIRST_SECONDS + ((recnum - 1) % 10_000_000) * series.step
    else:
        n = len(series.variants)
        slot = FIRST_SECONDS + ((recnum - 1) // n) * series.step
        harp = series.variants[(recnum - 1) % n]
    return Records(series, np.array([slot]), np.array([harp]), np.array([recnum]))


# --------------------------------------------------------------------------- keyword values

def _hash(recnum: np.ndarray, salt: int) -> np.ndarray:
    return ((recnum.astype(np.uint64) * np.uint64(2654435761) + np.uint64(salt * 97)) % np.uint64(2**32)
            ).astype(np.int64)


def keyword_values(records: Records) -> dict[str, np.ndarray]:
    """Numeric (or object) arrays of every keyword of the records."""
    s, r = records.series, records.recnum
    out: dict[str, np.ndarray] = {}
    out["T_REC"] = records.t_rec
    out["T_OBS"] = records.t_rec  # formatted with an offset below
    quality = np.where(_hash(r, 1) % 17 == 0, 1024, 0)
    out["QUALITY"] = quality
    n = len(r)
    if s.name.startswith("aia"):
        out["WAVELNTH"] = records.variant
        out["EXPTIME"] = np.round(1.9 + (_hash(r, 2) % 100) / 1000.0, 3)
        out["FSN"] = 100_000_000 + r
        out["DATAMEAN"] = np.round(50 + (_hash(r, 3) % 10_000) / 100.0, 2)
        out["INSTRUME"] = np.full(n, "AIA_3", dtype=object)
        out["TELESCOP"] = np.full(n, "SDO/AIA", dtype=object)
    elif s.name == "hmi.sharp_720s":
        out["HARPNUM"] = records.variant
        out["NOAA_AR"] = 12000 + (records.variant - HARP_FIRST) % 2000
        out["USFLUX"] = np.round(1e21 + (_hash(r, 4) % 1000) * 1e19, -17)
        out["LAT_FWT"] = np.round(((_hash(records.variant, 5) % 600) - 300) / 10.0, 2)
        out["INSTRUME"] = np.full(n, "HMI_COMBINED", dtype=object)
        out["TELESCOP"] = np.full(n, "SDO/HMI", dtype=object)
    else:
        out["CAMERA"] = records.variant
        out["DATAMEAN"] = np.round(((_hash(r, 6) % 2000) - 1000) / 100.0, 3)
        out["CRLN_OBS"] = np.round(((records.t_rec - FIRST_SECONDS) / 94_000.0) % 360, 4)
        out["WAVELNTH"] = np.full(n, 6173.0)
        out["INSTRUME"] = np.full(n, "HMI_SIDE1", dtype=object)
        out["TELESCOP"] = np.full(n, "SDO/HMI", dtype=object)
    return out


def format_keyword(series: SeriesDef, name: str, values: np.ndarray) -> list[str]:
    if name == "T_REC":
        return format_times(values, series.time_style)
    if name == "T_OBS":
        base = format_times(values, series.time_style)
        if series.time_style == "iso":
            return [b[:-1] + ".57Z" for b in base]
        return [b[:-4] + ".60_TAI" for b in base]
    if name == "QUALITY" and series.name.startswith("hmi"):
        return [f"0x{int(v):08x}" for v in values]
    kw = {k.name: k for k in series.keywords}[name]
    if kw.type in ("int", "short", "longlong"):
        return [str(int(v)) for v in values]
    if kw.type in ("float", "double"):
        return [repr(float(v)) for v in values]
    return [str(v) for v in values]


def record_names(records: Records, segment: str | None = None) -> list[str]:
    s = records.series
    times = format_times(records.t_rec, s.time_style)
    suffix = f"{{{segment}}}" if segment else ""
    if s.name == "hmi.sharp_720s":
        return [f"{s.name}[{int(v)}][{t}]{suffix}" for t, v in zip(times, records.variant)]
    return [f"{s.name}[{t}][{int(v)}]{suffix}" for t, v in zip(times, records.variant)]


_COND_RE = re.compile(r"^\s*(\w+)\s*(<=|>=|!=|<>|==|=|<|>)\s*('[^']*'|\"[^\"]*\"|[-+\w.:]+)\s*$")


def _evaluate_filter(text: str, records: Records) -> np.ndarray:
    values = keyword_values(records)
    result = np.zeros(len(records), dtype=bool)
    for alternative in re.split(r"\s+OR\s+", text, flags=re.I):
        keep = np.ones(len(records), dtype=bool)
        for condition in re.split(r"\s+AND\s+", alternative, flags=re.I):
            m = _COND_RE.match(condition.strip().strip("()"))
            if not m:
                raise RecordSetError(f"Bad record-set subset specification '[? {text} ?]'")
            key, op, raw = m.groups()
            key = key.upper()
            if key not in values or key in ("T_REC", "T_OBS"):
                raise RecordSetError(f"Bad record-set subset specification '[? {text} ?]': "
                                     f"unknown keyword {key}")
            column = values[key]
            raw = raw.strip("'\"")
            if column.dtype == object:
                other = raw
                column = column.astype(str)
            else:
                try:
                    other = float(int(raw, 16)) if raw.lower().startswith("0x") else float(raw)
                except ValueError:
                    raise RecordSetError(f"Bad record-set subset specification '[? {text} ?]'") from None
            ops = {"=": np.equal, "==": np.equal, "!=": np.not_equal, "<>": np.not_equal,
                   "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}
            keep &= ops[op](column, other)
        result |= keep
    return result


# --------------------------------------------------------------------------- files

@lru_cache(maxsize=512)
def fits_bytes(series_name: str, recnum: int, segment: str, with_header: bool, shape: tuple) -> bytes:
    """A small valid FITS file for one segment of one record (deterministic)."""
    from astropy.io import fits

    series = SERIES[series_name.lower()]
    records = record_from_recnum(series, recnum)
    rng = np.random.default_rng(recnum * 31 + len(segment))
    data = rng.integers(0, 1000, size=shape, dtype=np.int16)
    hdu = fits.PrimaryHDU(data)
    if with_header:
        values = keyword_values(records)
        for kw in series.keywords:
            text = format_keyword(series, kw.name, values[kw.name])[0]
            if kw.type in ("int", "short", "longlong"):
                value = int(text, 16) if text.startswith("0x") else int(text)
            elif kw.type in ("float", "double"):
                value = float(text)
            else:
                value = text
            hdu.header[kw.name] = value
        hdu.header["SEGMENT"] = segment
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def _sunum(series: SeriesDef, recnum: int) -> int:
    return series.number * 10**11 + int(recnum)


def storage_dir(series: SeriesDef, recnum: int) -> str:
    sunum = _sunum(series, recnum)
    return f"/SUM{1 + sunum % 97}/D{sunum}/S00000"


# --------------------------------------------------------------------------- state

@dataclass
class ExportRecord:
    requestid: str
    user: str
    key: tuple
    method: str
    protocol: str
    files: list[dict]        # {"record", "filename", "series", "recnum", "segment"}
    size_mb: int
    created: float
    polls_needed: int
    polls_seen: int = 0
    error: str | None = None
    process: str = "0"
    expired: bool = False
    dir: str = ""

    @property
    def done(self) -> bool:
        return self.polls_seen >= self.polls_needed


@dataclass(eq=False)
class JsocState:
    """Settings and bookkeeping of a JSOC server; change settings at run time.

    Parameters
    ----------
    emails : set of str
        Registered notify addresses (``checkAddress.sh`` answers 2 for them).
    pending_polls : int
        Status polls an export stays pending (queued, then processing).
    max_export_mb : int
        Exports above this size are refused with status 3.
    one_pending_per_user : bool
        Refuse (status 7) a new export while the user has one pending.
    fail_next : str or None
        The next export fails (status 4 at exp_status) with this message.
    hostile_names : bool
        Exported file names in index.json try to climb out (``../../``).
    image_shape : tuple of int
        Data shape of the FITS files served.
    """

    emails: set = field(default_factory=lambda: {REGISTERED_EMAIL, "other@example.com"})
    pending_polls: int = 2
    max_export_mb: int = 100_000
    one_pending_per_user: bool = True
    fail_next: str | None = None
    hostile_names: bool = False
    image_shape: tuple = (32, 32)

    def __post_init__(self):
        self.exports: dict[str, ExportRecord] = {}
        self.dirs: dict[str, ExportRecord] = {}
        self.requests: list[dict] = []  # every exp_request's parameters, in order
        self.status_polls: int = 0
        self.active_downloads: int = 0      # file responses being sent now
        self.max_active_downloads: int = 0  # the most at once since the last reset
        self._serial = 1000
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Restore default settings and forget every export."""
        fresh = JsocState()
        for name in ("emails", "pending_polls", "max_export_mb", "one_pending_per_user",
                     "fail_next", "hostile_names", "image_shape"):
            setattr(self, name, getattr(fresh, name))
        self.__post_init__()

    def next_id(self) -> str:
        with self._lock:
            self._serial += 1
            return f"JSOC_{datetime.now(timezone.utc):%Y%m%d}_{self._serial}"

    def pending_of(self, user: str) -> ExportRecord | None:
        for record in self.exports.values():
            if record.user == user and not record.done and record.error is None:
                return record
        return None


# --------------------------------------------------------------------------- handlers

def _json(data: dict) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")


def series_struct(series: SeriesDef) -> dict:
    last_slot = LAST_SECONDS - LAST_SECONDS % series.step
    times = format_times(np.array([FIRST_SECONDS, last_slot]), series.time_style)
    return {
        "note": series.note, "retention": 10000, "stagingretention": 60, "unitsize": 32,
        "archive": 1, "tapegroup": 4, "owner": "production",
        "primekeys": list(series.primekeys),
        "primekeysinfo": [{"name": k, "slotted": 1, "step": str(series.step)} if k == "T_REC"
                          else {"name": k, "slotted": 0} for k in series.primekeys],
        "dbindex": [f"{k}_index" if k == "T_REC" else k for k in series.primekeys],
        "keywords": [{"name": k.name, "type": k.type, "recscope": "variable", "defval": k.defval,
                      "units": k.units, "note": k.note} for k in series.keywords],
        "segments": [{"name": seg, "type": "int", "units": "none", "protocol": "fits",
                      "dims": "VARxVAR", "note": seg} for seg in series.segments],
        "links": [],
        "Interval": {"FirstRecord": f"{series.name}[{times[0]}]", "FirstRecnum": 1,
                     "LastRecord": f"{series.name}[{times[1]}]", "LastRecnum": 999999,
                     "MaxRecnum": 999999},
        "runtime": 0.01, "status": 0,
    }


def _select_all(ds: str) -> list[Records]:
    return [select(rs) for rs in parse_recordset(ds)]


def _info_error(message: str) -> web.Response:
    return _json({"status": 1, "error": message, "runtime": 0.0})


def _rs_list(params) -> dict:
    ds = params.get("ds", "")
    started = time.perf_counter()
    recordsets = parse_recordset(ds)
    if len({rs.series.name for rs in recordsets}) > 1:
        raise RecordSetError("rs_list takes record sets of one series")
    parts = [select(rs) for rs in recordsets]
    series = recordsets[0].series
    records = Records(series, *(np.concatenate([getattr(p, f) for p in parts])
                                for f in ("t_rec", "variant", "recnum")))
    n = params.get("n")
    if n:
        n = int(n)
        records = records.take(slice(None, n) if n > 0 else slice(n, None))
    count = len(records)
    if count == 0:
        return {"count": 0, "runtime": time.perf_counter() - started, "status": 0}
    out: dict = {}
    keys = [k for k in params.get("key", "").split(",") if k]
    if keys:
        values = keyword_values(records)
        names = [k.name for k in series.keywords]
        expanded = []
        for k in keys:
            expanded.extend(names if k == "**ALL**" else ([] if k == "**NONE**" else [k]))
        keywords = []
        for k in expanded:
            if k in values:
                keywords.append({"name": k, "values": format_keyword(series, k, values[k])})
            elif k == "*recnum*":
                keywords.append({"name": k, "values": [int(v) for v in records.recnum]})
            elif k == "*sunum*":
                keywords.append({"name": k, "values": [_sunum(series, v) for v in records.recnum]})
            elif k == "*size*":
                keywords.append({"name": k, "values": [series.file_mb * 2**20] * count})
            elif k == "*online*":
                keywords.append({"name": k, "values": ["Y"] * count})
            else:
                keywords.append({"name": k, "values": ["Invalid KeyLink"] * count})
        out["keywords"] = keywords
    segs = [s for s in params.get("seg", "").split(",") if s]
    if segs:
        if segs == ["**ALL**"]:
            segs = list(series.segments)
        segments = []
        for seg in segs:
            if seg in series.segments:
                vals = [f"{storage_dir(series, r)}/{seg}.fits" for r in records.recnum]
            else:
                vals = ["InvalidSegName"] * count
            segments.append({"name": seg, "values": vals, "dims": ["VARxVAR"] * count,
                             "cparms": ["compress Rice"] * count, "bzeros": ["0"] * count,
                             "bscales": ["1"] * count})
        out["segments"] = segments
    links = [s for s in params.get("link", "").split(",") if s]
    if links:
        out["links"] = [{"name": ln, "values": ["Invalid_Link"] * count} for ln in links]
    if params.get("R") == "1":
        out["recinfo"] = [{"name": name, "online": 1} for name in record_names(records)]
    out.update({"count": count, "runtime": time.perf_counter() - started, "status": 0})
    return out


def _filename(fmt: str, series: SeriesDef, records: Records, i: int, segment: str) -> str:
    values = keyword_values(records.take(slice(i, i + 1)))

    def field_value(match):
        name, spec = match.group(1), match.group(2)
        if name == "seriesname":
            return series.name
        if name == "segment":
            return segment
        if name == "recnum":
            return str(int(records.recnum[i]))
        if name in values:
            text = format_keyword(series, name, values[name][:1])[0]
            if spec == "A":
                text = text.replace(":", "") if series.time_style == "iso" else \
                    text.replace(".", "").replace(":", "")
            return text
        return "ERROR"

    return re.sub(r"\{(\w+)(?::([^}]*))?\}", field_value, fmt) + ".fits"


def _exp_request(state: JsocState, params) -> dict:
    ds = params.get("ds", "")
    notify = params.get("notify", "")
    method = params.get("method", "url_quick").lower()
    protocol = params.get("protocol", "as-is").lower()
    fmt = params.get("filenamefmt") or "{seriesname}.{recnum:%d}.{segment}"
    process = params.get("process=n", "0")
    state.requests.append(dict(params))
    if not notify:
        return {"status": 4, "error": "Email address for notification was not specfied. It is required."}
    if notify not in state.emails:
        return {"status": 4, "error": f"Cannot process your request. Email address {notify} has "
                                      "neither been validated nor registered."}
    try:
        recordsets = parse_recordset(ds)
    except RecordSetError as exc:
        text = str(exc)
        m = re.match(r"series (\S+) not found", text)
        if m:
            return {"status": 4, "error": f"Cannot export series '{m.group(1)}' - it does not exist.\n"}
        return {"status": 4, "error": f"Bad record-set subset specification '{ds}'.\n"}
    files = []
    for rs in recordsets:
        records = select(rs)
        segments = rs.segments or list(rs.series.segments)
        for seg in segments:
            if seg not in rs.series.segments:
                return {"status": 4, "error": f"Bad record-set subset specification '{ds}'.\n"}
        names = record_names(records)
        for i in range(len(records)):
            for seg in segments:
                files.append({"series": rs.series, "recnum": int(records.recnum[i]), "segment": seg,
                              "record": names[i], "records": records, "index": i})
    if not files:
        return {"status": 4, "error": "There are no files in this RecordSet"}
    size_mb = sum(f["series"].file_mb for f in files)
    rcount = len({(f["series"].name, f["recnum"]) for f in files})
    if size_mb > state.max_export_mb:
        return {"requestid": "VOID", "method": method, "protocol": protocol, "wait": 0, "status": 3,
                "count": len(files), "size": size_mb,
                "error": f"Request exceeds max byte limit of {state.max_export_mb}MB"}
    if method == "url_quick" and protocol == "as-is":
        data = [{"record": f"{f['record']}{{{f['segment']}}}",
                 "filename": f"{storage_dir(f['series'], f['recnum'])}/{f['segment']}.fits"}
                for f in files]
        return {"status": 0, "requestid": "", "method": "url_quick", "protocol": "as-is", "wait": 0,
                "rcount": rcount, "count": len(files), "size": max(1, size_mb), "dir": "", "data": data}
    key = (ds.strip(), method, protocol, fmt, process, notify)
    for existing in state.exports.values():
        if existing.key == key and existing.error is None and time.time() - existing.created < 86400:
            return {"status": 2, "requestid": existing.requestid, "method": method,
                    "protocol": protocol, "wait": 1, "rcount": rcount, "size": size_mb}
    pending = state.pending_of(notify)
    if state.one_pending_per_user and pending is not None:
        return {"status": 7, "error": f"User {notify} has 1 pending export requests "
                                      f"({pending.requestid}); please wait until at least one request "
                                      "has completed before submitting a new one."}
    requestid = state.next_id()
    serial = int(requestid.rsplit("_", 1)[1])
    out_files = []
    for f in files:
        name = _filename(fmt, f["series"], f["records"], f["index"], f["segment"])
        if state.hostile_names:
            name = "../../" + name
        record = f["record"] + (f"{{{f['segment']}}}" if protocol == "as-is" else "")
        out_files.append({"record": record, "filename": name, "series": f["series"].name,
                          "recnum": f["recnum"], "segment": f["segment"]})
    export = ExportRecord(requestid, notify, key, method, protocol, out_files, max(1, size_mb),
                          time.time(), state.pending_polls, process=process,
                          dir=f"/SUM9/D{900_000_000 + serial}/S00000")
    if state.fail_next:
        export.error = state.fail_next
        state.fail_next = None
    state.exports[requestid] = export
    state.dirs[export.dir] = export
    return {"status": 2, "requestid": requestid, "method": method, "protocol": protocol,
            "wait": max(1, state.pending_polls), "rcount": rcount, "size": max(1, size_mb)}


_ID_RE = re.compile(r"^JSOC_\d{8}_\d+(?:_X)?(?:_IN)?$")


def _exp_status(state: JsocState, params) -> dict:
    requestid = params.get("requestid", "")
    state.status_polls += 1
    if not _ID_RE.match(requestid):
        return {"status": 4, "error": f"Bad RequestID '{requestid}' provided."}
    export = state.exports.get(requestid)
    if export is None:
        return {"status": 4, "error": f"invalid export DRMS record for ID %s {requestid}",
                "contact": "jsoc_help@jsoc.stanford.edu", "wait": 999999}
    if export.expired:
        return {"status": 5, "requestid": requestid, "wait": 999999,
                "error": "Request was completed but is now deleted, 7 day limit exceeded",
                "contact": "jsoc_help@jsoc.stanford.edu"}
    if not export.done:
        export.polls_seen += 1
        remaining = export.polls_needed - export.polls_seen + 1
        status = 2 if export.polls_seen <= max(1, export.polls_needed // 2) else 1
        return {"status": status, "requestid": requestid, "method": export.method,
                "protocol": export.protocol, "wait": max(1, remaining), "rcount": 0,
                "size": export.size_mb}
    if export.error is not None:
        return {"status": 4, "requestid": requestid, "error": export.error, "wait": 999999,
                "contact": "jsoc_help@jsoc.stanford.edu"}
    answer = {"version": "1", "requestid": requestid, "method": export.method,
              "protocol": export.protocol, "count": str(len(export.files)),
              "size": str(export.size_mb),
              "exptime": f"{datetime.fromtimestamp(export.created, timezone.utc):%Y.%m.%d_%H:%M:%S}_UT",
              "dir": export.dir, "status": "0",
              "keywords": (f"{export.dir}/{requestid}.keywords.txt" if export.protocol == "as-is"
                           else "**IN FITS FILES**"),
              "data": [{"record": f["record"], "filename": f["filename"]} for f in export.files]}
    if export.protocol == "as-is":
        answer["wait"] = "0"
    if export.method == "url-tar":
        answer["tarfile"] = f"{export.dir}/{requestid}.tar"
    return answer


def jsoc_classifier(request: web.BaseRequest) -> str | None:
    """Endpoint class of a request: staging for jsoc_fetch, data for files, search otherwise."""
    path = request.path
    if path.endswith("/jsoc_fetch"):
        return "staging"
    if path.startswith("/SUM"):
        return "data"
    return "search"


def make_jsoc_app(faults: FaultConfig | None = None, state: JsocState | None = None) -> web.Application:
    """The JSOC application: CGI programs under ``/cgi-bin/ajax/`` and files under ``/SUM*``.

    Parameters
    ----------
    faults : FaultConfig, optional
        Fault injection (shared middleware); a fresh inactive one by default.
    state : JsocState, optional
        Export settings and bookkeeping; a default one otherwise.
    """
    faults = faults if faults is not None else FaultConfig()
    state = state if state is not None else JsocState()
    app = web.Application(middlewares=[fault_middleware(faults, jsoc_classifier)])

    async def jsoc_info(request):
        params = request.query
        op = params.get("op", "")
        ds = params.get("ds", "")
        try:
            if op == "series_struct":
                series = series_def(re.split(r"[\[{]", ds, 1)[0])
                if series is None:
                    return _info_error(f"series {ds} not found")
                return _json(series_struct(series))
            if op == "rs_summary":
                count = sum(len(r) for r in _select_all(ds))
                return _json({"count": count, "runtime": 0.01, "status": 0})
            if op == "rs_list":
                if not any(params.get(k) for k in ("key", "seg", "link")):
                    return _info_error("rs_list needs key, seg or link")
                return _json(_rs_list(params))
        except RecordSetError as exc:
            return _info_error(str(exc))
        return _info_error(f"unknown op {op!r}")

    async def jsoc_fetch(request):
        params = request.query
        op = params.get("op", "")
        if op == "exp_request":
            return _json(_exp_request(state, params))
        if op == "exp_status":
            return _json(_exp_status(state, params))
        return _json({"status": 4, "error": f"jsoc_fetch: unknown op {op!r}"})

    async def check_address(request):
        address = unquote_plus(request.query.get("address", ""))
        if "@" not in address:
            return _json({"status": -2, "msg": f"{address} is not a valid email address",
                          "user_id": None})
        if address in state.emails:
            return _json({"status": 2, "msg": "Email address is valid and registered.",
                          "user_id": 1000 + sorted(state.emails).index(address)})
        return _json({"status": 4, "msg": "Email address has neither been validated nor registered.",
                      "user_id": None})

    def _matching(pattern: str | None) -> list[SeriesDef]:
        series = sorted(SERIES.values(), key=lambda s: s.name.lower())
        if not pattern:
            return series
        try:
            regex = re.compile(pattern, re.I)
        except re.error:
            return []
        return [s for s in series if regex.search(s.name)]

    async def show_series(request):
        names = [{"name": s.name, "primekeys": ", ".join(s.primekeys), "note": s.note}
                 for s in _matching(request.query.get("filter"))]
        return _json({"status": 0, "names": names, "n": len(names)})

    async def showextseries(request):
        matching = _matching(request.query.get("filter"))
        if request.query.get("info"):
            items = [{s.name: {"description": s.note}} for s in matching]
        else:
            items = [s.name for s in matching]
        return _json({"errMsg": "", "seriesList": items})

    async def files(request):
        state.active_downloads += 1
        state.max_active_downloads = max(state.max_active_downloads, state.active_downloads)
        try:
            return await _files(request)
        finally:
            state.active_downloads -= 1

    async def _files(request):
        path = request.path
        directory, _, name = path.rpartition("/")
        export = state.dirs.get(directory)
        if export is not None:
            if name == f"{export.requestid}.tar":
                return await send_bytes(request, _tar_bytes(state, export),
                                        content_type="application/x-tar", faults=faults)
            if name == f"{export.requestid}.keywords.txt":
                return await send_bytes(request, b"keywords\n", content_type="text/plain", faults=faults)
            if name == "index.json":
                return await send_bytes(request, json.dumps(_exp_status(state, {
                    "requestid": export.requestid})).encode(), content_type="application/json",
                    faults=faults)
            for f in export.files:
                if f["filename"].rsplit("/", 1)[-1] == name:
                    data = fits_bytes(f["series"], f["recnum"], f["segment"], export.protocol == "fits",
                                      tuple(state.image_shape))
                    return await send_bytes(request, data, content_type="application/fits", faults=faults)
            raise web.HTTPNotFound()
        for other in list(state.dirs.values()):
            if not other.files or not other.files[0]["filename"].startswith("../"):
                continue
            for f in other.files:
                if f["filename"].rsplit("/", 1)[-1] == name:
                    data = fits_bytes(f["series"], f["recnum"], f["segment"], other.protocol == "fits",
                                      tuple(state.image_shape))
                    return await send_bytes(request, data, content_type="application/fits", faults=faults)
        m = re.match(r"^/SUM\d+/D(\d+)/S00000/(\w+)\.fits$", path)
        if m:
            sunum = int(m.group(1))
            number, recnum = divmod(sunum, 10**11)
            series = next((s for s in SERIES.values() if s.number == number), None)
            if series is not None and m.group(2) in series.segments and recnum > 0:
                data = fits_bytes(series.name, recnum, m.group(2), False, tuple(state.image_shape))
                return await send_bytes(request, data, content_type="application/fits", faults=faults)
        raise web.HTTPNotFound()

    app.router.add_get("/cgi-bin/ajax/jsoc_info", jsoc_info)
    app.router.add_get("/cgi-bin/ajax/jsoc_fetch", jsoc_fetch)
    app.router.add_get("/cgi-bin/ajax/checkAddress.sh", check_address)
    app.router.add_get("/cgi-bin/ajax/show_series", show_series)
    app.router.add_get("/cgi-bin/ajax/showextseries", showextseries)
    app.router.add_get(r"/{sum:SUM\d+}/{rest:.+}", files)
    return app


def _tar_bytes(state: JsocState, export: ExportRecord) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for f in export.files:
            data = fits_bytes(f["series"], f["recnum"], f["segment"], export.protocol == "fits",
                              tuple(state.image_shape))
            info = tarfile.TarInfo(f["filename"].rsplit("/", 1)[-1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        index = json.dumps(_exp_status(state, {"requestid": export.requestid})).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(index)
        tar.addfile(info, io.BytesIO(index))
    return buffer.getvalue()


class JsocServer(LocalServer):
    """A `LocalServer` speaking JSOC's CGI protocol.

    Attributes
    ----------
    faults : FaultConfig
    state : JsocState
    """

    def __init__(self, faults: FaultConfig | None = None, state: JsocState | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.faults = faults if faults is not None else FaultConfig()
        self.state = state if state is not None else JsocState()
        super().__init__(make_jsoc_app(self.faults, self.state), host=host, port=port)

    def environment(self) -> dict[str, str]:
        """The environment variables that point the JSOC client at this server."""
        return {"SUNPY_ARCHIVES_JSOC_URL": self.root, "SUNPY_ARCHIVES_JSOC_EMAIL": REGISTERED_EMAIL}

    @property
    def root(self) -> str:
        """Site root with a trailing slash, the value for ``SUNPY_ARCHIVES_JSOC_URL``."""
        return f"{self.url}/"

    @property
    def cgi_url(self) -> str:
        return f"{self.url}/cgi-bin/ajax/"

    def server_config(self, name: str = "LOCAL"):
        """A ``drms.ServerConfig`` pointing at this server."""
        import drms

        return drms.ServerConfig(name=name, cgi_baseurl=self.cgi_url, cgi_jsoc_info="jsoc_info",
                                 cgi_jsoc_fetch="jsoc_fetch", cgi_check_address="checkAddress.sh",
                                 cgi_show_series="show_series", http_download_baseurl=self.root)


def start_jsoc_server(faults: FaultConfig | None = None, state: JsocState | None = None, *,
                      host: str = "127.0.0.1", port: int = 0) -> JsocServer:
    """Start a JSOC server in a background thread.

    Examples
    --------
    >>> server = start_jsoc_server()  # doctest: +SKIP
    >>> import drms
    >>> drms.Client(server.server_config()).pkeys("hmi.m_720s")  # doctest: +SKIP
    ['T_REC', 'CAMERA']
    """
    return JsocServer(faults, state, host=host, port=port).start()
