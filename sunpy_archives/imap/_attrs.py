"""
Search attributes of the IMAP client, shown to users as ``a.imap.*``.

Values are checked in `~sunpy_archives.imap.IMAPClient.search`, before any
request, so that a bad value gives this suite's clear error rather than
Fido's "no client can handle this query".
"""

from __future__ import annotations

from astropy.time import Time
from sunpy.net.attr import Range, SimpleAttr

from ..core.errors import BadInputError
from .filenames import ARCHIVE

__all__ = ["Table", "Descriptor", "Version", "MajorVersion", "MinorVersion", "Repointing",
           "Extension", "IngestionTime", "Filename", "KernelType"]


class Table(SimpleAttr):
    """
    The SDC table to search: ``"science"`` (the default), ``"ancillary"`` or
    ``"spice"`` (SPICE kernels; give a `KernelType` too).
    """


class Descriptor(SimpleAttr):
    """
    The data product descriptor, e.g. ``a.imap.Descriptor("norm-rtn")`` (never holds ``_``).
    """


class Version(SimpleAttr):
    """
    A file version: ``"v001.0002"`` (major.minor), the legacy ``"v003"``, or
    ``"latest"`` (the newest version of each dataset and day).
    """


class MajorVersion(SimpleAttr):
    """
    Science major version (an integer). Without it the SDC returns the latest major version.
    """


class MinorVersion(SimpleAttr):
    """
    Science minor version (an integer).
    """


class Repointing(SimpleAttr):
    """
    Repointing number: ``12`` or ``"repoint00012"``.
    """


class Extension(SimpleAttr):
    """
    File extension: science ``cdf``/``pkts``; ancillary ``cdf csv dat json zip tsv pgm xlsx``.
    """


class IngestionTime(Range):
    """
    When the SDC ingested the file: days ``start`` to ``end``, both included.

    Parameters
    ----------
    start, end : time-like
        Anything `astropy.time.Time` reads; only the day (UTC) is used. ``end``
        defaults to ``start`` (one day).

    Examples
    --------
    >>> import sunpy_archives.imap.attrs as ia
    >>> ia.IngestionTime("2025-01-02", "2025-01-05").start.isot[:10]
    '2025-01-02'
    """

    def __init__(self, start, end=None):
        try:
            first = start if isinstance(start, Time) else Time(start)
            last = first if end is None else (end if isinstance(end, Time) else Time(end))
        except (ValueError, TypeError):
            raise BadInputError(f"IngestionTime({start!r}, {end!r}): not times; use e.g. "
                                "'2025-01-02'", archive=ARCHIVE) from None
        if last < first:
            raise BadInputError("IngestionTime: the end is before the start", archive=ARCHIVE)
        super().__init__(first, last)

    @property
    def start(self) -> Time:
        """First day."""
        return self.min

    @property
    def end(self) -> Time:
        """Last day (included)."""
        return self.max

    def __hash__(self):
        return hash((self.min.isot, self.max.isot))

    def __repr__(self):
        return f"<sunpy_archives.imap.attrs.IngestionTime({self.start.iso}, {self.end.iso})>"


class Filename(SimpleAttr):
    """
    One file by name, e.g. ``a.imap.Filename("imap_mag_l2_norm-rtn_20250105_v001.0001.cdf")``:
    the search asks the SDC for exactly this file, as the official ``--filename`` does.
    """


class KernelType(SimpleAttr):
    """
    SPICE kernel type, e.g. ``"leapseconds"`` or ``"ephemeris_predicted"``; implies the SPICE table.
    """
