"""
Search attributes of the DRMS client, shown to users as ``a.drms.*``.

Values are checked for syntax when an attr is built (before any network
call); whether a series, prime key or segment exists is checked in the search.
"""

from __future__ import annotations

import re

from sunpy.net.attr import DataAttr, SimpleAttr

from ..core.errors import BadInputError

__all__ = ["Series", "Segment", "PrimeKey", "Keys", "Notify", "Protocol", "Method", "ExportID"]

ARCHIVE = "JSOC"
PROTOCOLS = ("as-is", "fits")
METHODS = ("url_quick", "url", "url-tar")
EXPORT_ID_RE = re.compile(r"^JSOC_\d{8}_\d+(?:_X)?(?:_IN)?$")
_SERIES_RE = re.compile(r"^[A-Za-z]\w*\.\w+$")
_NAME_RE = re.compile(r"^[A-Za-z_*][\w*]*$")


class Series(SimpleAttr):
    """
    The DRMS data series, e.g. ``a.drms.Series("aia.lev1_euv_12s")`` (case-insensitive).

    A query holding this attr goes to `~sunpy_archives.jsoc.DRMSClient`; sunpy's
    ``JSOCClient`` keeps queries holding ``a.jsoc.Series``.
    """

    def __init__(self, value):
        text = str(value).strip()
        if not _SERIES_RE.match(text):
            raise BadInputError(f"{value!r} is not a DRMS series name; use '<namespace>.<name>' such as "
                                "'hmi.m_720s'", archive=ARCHIVE)
        super().__init__(text)


class Segment(SimpleAttr):
    """
    A segment (file) of each record to export, e.g. ``a.drms.Segment("image")``.

    Combine several with ``&``; without one, every segment of the series is exported.
    """

    def __init__(self, value):
        text = str(value).strip()
        if not _NAME_RE.match(text):
            raise BadInputError(f"{value!r} is not a segment name", archive=ARCHIVE)
        super().__init__(text)

    def collides(self, other):
        return False


class PrimeKey(DataAttr):
    """
    A value (or DRMS range/list syntax) for one prime key, e.g. ``a.drms.PrimeKey("HARPNUM", 4864)``.

    Parameters
    ----------
    key : str
        Prime key name (checked against the series in the search).
    value : str or int
        What goes in the key's bracket: ``4864``, ``"4864,4865"``, ``"171"``...
    """

    def __init__(self, key, value):
        super().__init__()
        key = str(key).strip()
        text = str(value).strip()
        if not _NAME_RE.match(key):
            raise BadInputError(f"{key!r} is not a prime key name", archive=ARCHIVE)
        if not text or any(c in text for c in "[]{}"):
            raise BadInputError(f"prime key value {value!r} must be non-empty and hold no brackets",
                                archive=ARCHIVE)
        self.label = key
        self.value = text

    def __repr__(self):
        return f"<sunpy_archives.jsoc.attrs.PrimeKey({self.label!r}, {self.value!r})>"

    def collides(self, other):
        return False


class Keys(SimpleAttr):
    """
    Keywords to return in the search, e.g. ``a.drms.Keys("T_OBS, EXPTIME")`` or ``Keys("**ALL**")``.

    The prime keys are always returned. By default a few informative keywords are added.
    """

    def __init__(self, value):
        if isinstance(value, str):
            names = [v for v in re.split(r"[\s,]+", value) if v]
        else:
            try:
                names = [str(v).strip() for v in value]
            except TypeError:  # not iterable (None, a number...)
                names = []
        if not names or not all(_NAME_RE.match(n) for n in names):
            raise BadInputError(f"{value!r} is not a list of keyword names", archive=ARCHIVE)
        super().__init__(tuple(names))


class Notify(SimpleAttr):
    """
    The e-mail address registered with JSOC for exports, e.g. ``a.drms.Notify("me@example.org")``.

    Checked with JSOC (drms's address check) during the search, before anything is staged.
    """

    def __init__(self, value):
        text = str(value).strip() if value is not None else ""
        if "@" not in text or " " in text:
            raise BadInputError(f"{value!r} is not an e-mail address; register one at JSOC and "
                                "give it here", archive=ARCHIVE)
        super().__init__(text)


class Protocol(SimpleAttr):
    """
    Export protocol: ``"fits"`` (keywords in the FITS headers, the default) or ``"as-is"``.
    """

    def __init__(self, value):
        text = str(value).strip().lower()
        if text not in PROTOCOLS:
            raise BadInputError(f"protocol {value!r} is not supported; use one of {PROTOCOLS}",
                                archive=ARCHIVE)
        super().__init__(text)


class Method(SimpleAttr):
    """
    Export method: ``"url"`` (the default), ``"url_quick"`` (as-is only; no staging when
    the data are online) or ``"url-tar"`` (one tar file).
    """

    def __init__(self, value):
        text = str(value).strip().lower()
        if text not in METHODS:
            raise BadInputError(f"method {value!r} is not supported; use one of {METHODS}",
                                archive=ARCHIVE)
        super().__init__(text)


class ExportID(SimpleAttr):
    """
    An existing export, e.g. ``a.drms.ExportID("JSOC_20240315_1042")``.

    The search lists the export's files; fetch downloads them without a new request.
    """

    def __init__(self, value):
        text = str(value).strip()
        if not EXPORT_ID_RE.match(text):
            raise BadInputError(f"{value!r} is not a JSOC export ID (JSOC_YYYYMMDD_N)", archive=ARCHIVE)
        super().__init__(text)
