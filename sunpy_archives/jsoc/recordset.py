"""
DRMS record-set specifications: building them from a query, compacting rows into them.

A record-set specification (``ds``) names a series, one bracket per prime key
in the series' order, an optional ``[? filter ?]`` and a ``{segment,...}``
list (PROTOCOLS.md section 3.2)::

    aia.lev1_euv_12s[2024.01.01_00:00:00_TAI-2024.01.01_00:10:00_TAI@24s][171]{image}

`query_spec` builds one from search constraints. `compact` goes the other
way round for export: it turns an arbitrary set of rows (any slice or list,
e.g. every second row of a day) into as few specifications as possible, with
time runs written as ranges with a cadence and the other prime keys as lists,
and splits them where a request would grow too long. Everything here is pure
and works offline.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from ..core.errors import BadInputError
from ._attrs import ARCHIVE

__all__ = ["TIME_KEYS", "drms_time", "parse_times", "to_tai_seconds", "tai_string", "query_spec",
           "compact", "MAX_SPEC_LENGTH", "record_keys"]

#: Prime keys sunpy treats as the time key of a series.
TIME_KEYS = ("T_REC", "T_OBS", "T_START", "MidTime", "OBS_DATE", "DATE_OBS", "starttime", "stoptime",
             "UTC_StartTime", "obsdate")

#: Longest ``ds`` sent in one request (the URL stays well under common limits).
MAX_SPEC_LENGTH = 3000

_TAI_RE = re.compile(r"^(\d{4})\.(\d\d)\.(\d\d)_(\d\d):(\d\d):(\d\d(?:\.\d+)?)_TAI$")


def drms_time(time) -> str:
    """An astropy Time as a DRMS TAI string.

    Examples
    --------
    >>> from astropy.time import Time
    >>> drms_time(Time("2014-01-01T00:00:00", scale="utc"))
    '2014.01.01_00:00:35_TAI'
    """
    return time.tai.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def parse_times(values: Sequence[str]):
    """T_REC strings (DRMS ``..._TAI`` or ISO ``...Z``) as an astropy Time, in their own scale.

    A series' values are all of one form; TAI values give a ``tai`` Time, others ``utc``.
    Unparsable values (``MISSING``) become masked.

    Examples
    --------
    >>> parse_times(["2014.01.01_00:00:45_TAI"]).scale
    'tai'
    >>> str(parse_times(["2014-01-01T00:00:12Z"]).isot[0])
    '2014-01-01T00:00:12.000'
    """
    import pandas as pd
    from astropy.time import Time

    dtype = string_dtype()
    texts = pd.Series(values, dtype=dtype) if not isinstance(values, pd.Series) else values.astype(dtype)
    if texts.empty:
        return Time([], format="isot", scale="utc")
    tai = str(texts.iloc[0]).endswith("_TAI")
    iso = texts.str.replace(r"^(\d{4})\.(\d\d)\.(\d\d)_([\d:.]+)(?:_TAI|_UTC|_UT|Z)?$", r"\1-\2-\3T\4",
                            regex=True)
    iso = iso.str.replace(r"Z$", "", regex=True)
    good = iso.str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d*)?)?$").fillna(False).to_numpy(dtype=bool)
    if not good.all():
        iso[~good] = "2000-01-01T00:00:00"
    # via whole days and day fractions: astropy's own string parsing is ~100x slower
    ms = iso.to_numpy(dtype=object).astype("datetime64[ms]").astype(np.int64)
    days, rest = np.divmod(ms, 86_400_000)
    time = Time(2440587.5 + days.astype(float), rest / 86_400_000.0, format="jd",
                scale="tai" if tai else "utc")
    time.format = "isot"
    if not good.all():
        time[np.nonzero(~good)[0]] = np.ma.masked
    return time


def string_dtype() -> str:
    """pandas' Arrow-backed strings when pyarrow is installed (vectorised regexes), else plain."""
    import importlib.util

    return "string[pyarrow]" if importlib.util.find_spec("pyarrow") else "string[python]"


def to_tai_seconds(time) -> np.ndarray:
    """Seconds of TAI since 1970 (rounded to the millisecond), for arithmetic on slots."""
    from astropy.time import Time

    epoch = Time("1970-01-01T00:00:00", scale="tai")
    return np.round((time.tai - epoch).sec, 3)


def tai_string(seconds: float) -> str:
    """Inverse of `to_tai_seconds` for one value, as a DRMS TAI string."""
    whole = int(np.floor(seconds + 1e-6))
    stamp = str(np.datetime64(whole, "s")).replace("-", ".").replace("T", "_")
    frac = seconds - whole
    if frac > 1e-3:
        stamp += f"{frac:.3f}"[1:]
    return f"{stamp}_TAI"


def _duration(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def query_spec(series: str, primekeys: Sequence[str], constraints: dict[str, str], *,
               filters: Sequence[str] = (), segments: Sequence[str] = ()) -> str:
    """A record-set specification from per-prime-key bracket contents.

    Parameters
    ----------
    series : str
    primekeys : sequence of str
        The series' prime keys, in order.
    constraints : dict
        Prime key -> bracket contents (``"2014.01.01_TAI/1d@1h"``, ``"171,193"``).
    filters : sequence of str
        Conditions joined with ``AND`` into ``[? ... ?]``.
    segments : sequence of str

    Examples
    --------
    >>> query_spec("hmi.m_720s", ["T_REC", "CAMERA"], {"T_REC": "2014.01.01_TAI/1d"},
    ...            filters=["QUALITY = 0"], segments=["magnetogram"])
    'hmi.m_720s[2014.01.01_TAI/1d][? QUALITY = 0 ?]{magnetogram}'
    """
    unknown = [k for k in constraints if k not in primekeys]
    if unknown:
        raise BadInputError(f"{unknown[0]!r} is not a prime key of {series}; its prime keys are "
                            f"{', '.join(primekeys)}", archive=ARCHIVE)
    brackets = [constraints.get(k, "") for k in primekeys]
    while brackets and not brackets[-1]:
        brackets.pop()
    spec = series + "".join(f"[{b}]" for b in brackets)
    if filters:
        spec += "[? " + " AND ".join(filters) + " ?]"
    if segments:
        spec += "{" + ",".join(segments) + "}"
    return spec


def _time_items(seconds: np.ndarray, step: float) -> list[str]:
    """Bracket items covering exactly these slot times: runs as ranges with a cadence."""
    times = np.unique(np.asarray(seconds, dtype=float))
    items: list[str] = []
    i, n = 0, len(times)
    while i < n:
        if i + 2 < n:
            d = times[i + 1] - times[i]
            j = i + 1
            while j + 1 < n and abs((times[j + 1] - times[j]) - d) < 1e-3:
                j += 1
            if j - i >= 2:
                item = f"{tai_string(times[i])}-{tai_string(times[j])}"
                if abs(d - step) > 1e-3:
                    item += f"@{_duration(d)}"
                items.append(item)
                i = j + 1
                continue
        items.append(tai_string(times[i]))
        i += 1
    return items


def record_keys(record: str) -> tuple[str, list[str], str | None]:
    """Series, prime-key values and segment of a record name such as ``hmi.M_720s[..][3]{seg}``."""
    m = re.match(r"^\s*([\w.]+)((?:\[[^\]]*\])*)(?:\{([^}]*)\})?\s*$", record or "")
    if not m:
        return "", [], None
    return m.group(1), re.findall(r"\[([^\]]*)\]", m.group(2)), m.group(3)


def compact(series: str, primekeys: Sequence[str], rows: Iterable[Sequence], *, step: float | None,
            segments: Sequence[str] = (), max_length: int = MAX_SPEC_LENGTH) -> list[str]:
    """Record-set specifications selecting exactly ``rows``, as few and as short as possible.

    Parameters
    ----------
    series : str
    primekeys : sequence of str
        In series order.
    rows : iterable of sequences
        Prime-key values of each record, in ``primekeys`` order; time values as
        TAI seconds (`to_tai_seconds`), other values as strings.
    step : float or None
        The series' slot cadence in seconds (a run with this spacing needs no ``@``).
    segments : sequence of str
        Appended as ``{...}`` to every specification.
    max_length : int
        Longest specification; more records go into further ones. Several
        record sets of the series are joined with commas while they fit.

    Returns
    -------
    list of str

    Examples
    --------
    >>> t0 = 1388534435.0  # 2014-01-01 00:00:35 TAI
    >>> rows = [(t0 + 24 * i, "171") for i in range(100)]
    >>> compact("aia.lev1_euv_12s", ["T_REC", "WAVELNTH"], rows, step=12, segments=["image"])
    ['aia.lev1_euv_12s[2014.01.01_00:00:35_TAI-2014.01.01_00:40:11_TAI@24s][171]{image}']
    """
    time_index = next((i for i, k in enumerate(primekeys) if k in TIME_KEYS), None)
    groups: OrderedDict[tuple, list] = OrderedDict()
    for row in rows:
        others = tuple(str(v) for i, v in enumerate(row) if i != time_index)
        groups.setdefault(others, []).append(row[time_index] if time_index is not None else None)
    seg = "{" + ",".join(segments) + "}" if segments else ""
    # (time item tuple) -> list of "other" tuples sharing it
    by_times: OrderedDict[tuple, list] = OrderedDict()
    for others, times in groups.items():
        if time_index is None:
            items: tuple = ()
        else:
            items = tuple(_time_items(np.array(times, dtype=float), step or 0))
        by_times.setdefault(items, []).append(others)
    specs: list[str] = []
    for items, others_list in by_times.items():
        n_other = len(primekeys) - (1 if time_index is not None else 0)
        # Merge the other keys into one list bracket when only one of them varies.
        if n_other == 1:
            merged = [(",".join(dict.fromkeys(o[0] for o in others_list)),)]
        else:
            merged = others_list
        for others in merged:
            chunks = _chunk(items, series, max_length) if items else [()]
            for chunk in chunks:
                brackets = list(others)
                if time_index is not None:
                    brackets.insert(time_index, ",".join(chunk))
                specs.append(series + "".join(f"[{b}]" for b in brackets) + seg)
    return _join(specs, max_length)


def _chunk(items: Sequence[str], series: str, max_length: int) -> list[tuple]:
    chunks, current, length = [], [], len(series) + 64
    for item in items:
        if current and length + len(item) + 1 > max_length:
            chunks.append(tuple(current))
            current, length = [], len(series) + 64
        current.append(item)
        length += len(item) + 1
    if current:
        chunks.append(tuple(current))
    return chunks


def _join(specs: list[str], max_length: int) -> list[str]:
    joined: list[str] = []
    for spec in specs:
        if joined and len(joined[-1]) + 1 + len(spec) <= max_length:
            joined[-1] += "," + spec
        else:
            joined.append(spec)
    return joined
