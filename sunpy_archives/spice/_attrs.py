"""
Search attributes of the SPICE client, shown to users as ``a.spice.*``.

Values are checked for syntax when an attr is built (before any network
call); whether a release or SOOP exists is checked during the search.
"""

from __future__ import annotations

from astropy.time import Time
from sunpy.net.attr import SimpleAttr

from ..core.errors import BadInputError
from .release import ARCHIVE, normalise_tag

__all__ = ["Release", "SOOP", "Query", "Closest"]


class Release(SimpleAttr):
    """
    The SPICE data release to search, e.g. ``a.spice.Release("2.0")``.

    Without this attr the latest release is searched. ``"latest"`` may be
    given explicitly.

    Parameters
    ----------
    value : str or int
        A release tag such as ``"2.0"`` (``2`` means ``"2.0"``) or ``"latest"``.
    """

    def __init__(self, value):
        tag = normalise_tag(value)
        super().__init__(tag if tag is not None else "latest")


class SOOP(SimpleAttr):
    """
    Solar Orbiter Observing Plan (SOOP) name, e.g. ``a.spice.SOOP("L_BOTH_HRES_HCAD_Major-Flare")``.

    Matches files whose SOOPNAME is, or lists, this name (case-insensitive).
    """

    def __init__(self, value):
        text = str(value).strip()
        if not text or any(c in text for c in ",\x00\n"):
            raise BadInputError(f"{value!r} is not a SOOP name; give one name such as "
                                "'L_BOTH_HRES_HCAD_Major-Flare'", archive=ARCHIVE)
        super().__init__(text)


class Query(SimpleAttr):
    """
    A filter expression on catalog columns, e.g.
    ``a.spice.Query("NAXIS1 < 100 & 600 < CRVAL1 < 700")``.

    The grammar is that of `sunpy_archives.spice.query`: comparisons,
    chained comparisons, ``in`` lists, ``&``/``|``/``~`` (or ``and``/``or``/
    ``not``) and parentheses; hyphenated columns go in backticks
    (```DATE-BEG```). The expression is parsed here and its columns checked
    against the catalog before any file is listed; it is never evaluated as
    Python.
    """

    def __init__(self, value):
        from .query import parse

        text = str(value)
        self.node = parse(text)
        super().__init__(text)


class Closest(SimpleAttr):
    """
    Keep only the file whose start (DATE-BEG) is nearest this time (one per level).

    ``a.spice.Closest("2022-04-02T12:00")`` is shorthand for sunpy's
    ``a.Time(start, end, near=...)``, which works too (and limits the
    candidates to [start, end]).
    """

    def __init__(self, value):
        try:
            time = value if isinstance(value, Time) else Time(value)
        except (ValueError, TypeError):
            raise BadInputError(f"{value!r} is not a time; use e.g. '2022-04-02T12:00'",
                                archive=ARCHIVE) from None
        if not time.isscalar:
            raise BadInputError("a.spice.Closest takes one time", archive=ARCHIVE)
        super().__init__(time)
