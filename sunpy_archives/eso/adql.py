"""
Building the ADQL the ESO client sends to ``tap_obs``.

Pure functions, no network. Every user value enters a query either as a
number that was checked to be finite, or as a string literal made by
`quote`, which doubles single quotes and refuses control characters, so
no value can end the literal and change the query (no ADQL injection).

Two queries per search (see `files_query` and `deprecated_query`):

* the files of products listed in ``phase3v2.product_files``, joined to
  ``ivoa.ObsCore`` for the product-level constraints;
* the ObsCore products with no row in ``product_files`` (deprecated products),
  whose files are then listed through DataLink.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.errors import BadInputError
from ._attrs import ARCHIVE

__all__ = ["FILE_COLUMNS", "PRODUCT_COLUMNS", "deprecated_query", "files_query", "number", "quote"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

#: Columns asked of the join, in order (``pf`` = product_files, ``o`` = ObsCore).
FILE_COLUMNS: tuple[str, ...] = (
    "pf.product_id",
    "pf.archive_id",
    "pf.eso_category",
    "pf.extension",
    "pf.original_filename",
    "pf.access_estsize",
    "pf.access_url",
    "o.instrument_name",
    "o.obs_collection",
    "o.t_min",
    "o.t_max",
)

#: Columns asked of ObsCore for deprecated products.
PRODUCT_COLUMNS: tuple[str, ...] = (
    "o.dp_id",
    "o.instrument_name",
    "o.obs_collection",
    "o.t_min",
    "o.t_max",
    "o.access_url",
    "o.access_format",
)


def quote(value: Any) -> str:
    """An ADQL string literal holding ``value`` exactly.

    Examples
    --------
    >>> quote("O'Brien")
    "'O''Brien'"
    """
    text = str(value)
    if _CONTROL.search(text) or "\n" in text or "\r" in text:
        raise BadInputError(
            f"{text!r} contains control characters, which no ESO value has", archive=ARCHIVE
        )
    return "'" + text.replace("'", "''") + "'"


def number(value: Any) -> str:
    """A finite number as ADQL text.

    Examples
    --------
    >>> number(60376.5)
    '60376.5'
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{value!r} is not a number", archive=ARCHIVE) from None
    if not math.isfinite(x):
        raise BadInputError(f"{value!r} is not a finite number", archive=ARCHIVE)
    return repr(x)


def _in_list(column: str, values: Sequence[str]) -> str:
    if len(values) == 1:
        return f"{column} = {quote(values[0])}"
    return f"{column} IN ({', '.join(quote(v) for v in values)})"


def _product_conditions(params: Mapping[str, Sequence], *, product_column: str) -> list[str]:
    where = []
    for value in params.get("product_id", []):
        where.append(f"{product_column} = {quote(value)}")
    for value in params.get("collection", []):
        where.append(f"o.obs_collection = {quote(value)}")
    for value in params.get("instrument", []):
        where.append(f"o.instrument_name = {quote(value)}")
    for start, end in params.get("time", []):
        # The observation interval [t_min, t_max] overlaps [start, end]; both ends included.
        where.append(f"o.t_min <= {number(end)} AND o.t_max >= {number(start)}")
    for ra, dec, radius in params.get("cone", []):
        where.append(
            f"INTERSECTS(o.s_region, CIRCLE('ICRS', {number(ra)}, {number(dec)}, "
            f"{number(radius)})) = 1"
        )
    return where


def files_query(params: Mapping[str, Sequence]) -> str:
    """The query listing one row per file of the products in ``product_files``.

    Parameters
    ----------
    params : mapping
        One parameter block of the client's walker: lists under
        ``product_id``, ``collection``, ``instrument``, ``category``,
        ``extension``, ``time`` (pairs of MJD), ``cone`` (ra, dec, radius in deg).

    Examples
    --------
    >>> print(files_query({"collection": ["MUSE"], "category": ["ANCILLARY.PREVIEW"]}))
    ... # doctest: +NORMALIZE_WHITESPACE
    SELECT pf.product_id, pf.archive_id, pf.eso_category, pf.extension, pf.original_filename,
    pf.access_estsize, pf.access_url, o.instrument_name, o.obs_collection, o.t_min, o.t_max
    FROM phase3v2.product_files AS pf JOIN ivoa.ObsCore AS o ON o.dp_id = pf.product_id
    WHERE o.obs_collection = 'MUSE' AND (pf.eso_category = 'ANCILLARY.PREVIEW'
    OR pf.eso_category LIKE 'ANCILLARY.PREVIEW.%') ORDER BY pf.product_id, pf.archive_id
    """
    where = _product_conditions(params, product_column="pf.product_id")
    for category in params.get("category", []):
        # A category or a prefix of whole tokens; '_' in a category would be a LIKE
        # wildcard, so the client also checks every returned category exactly.
        where.append(
            f"(pf.eso_category = {quote(category)} OR pf.eso_category LIKE {quote(category + '.%')})"
        )
    for extension in params.get("extension", []):
        where.append(f"pf.extension = {quote(extension)}")
    lines = [
        "SELECT " + ", ".join(FILE_COLUMNS[:5]) + ",\n" + ", ".join(FILE_COLUMNS[5:]),
        "FROM phase3v2.product_files AS pf JOIN ivoa.ObsCore AS o ON o.dp_id = pf.product_id",
    ]
    if where:
        lines.append("WHERE " + " AND ".join(where))
    lines.append("ORDER BY pf.product_id, pf.archive_id")
    return "\n".join(lines)


def deprecated_query(params: Mapping[str, Sequence]) -> str:
    """The query listing the matching ObsCore products that ``product_files`` lacks.

    File-level constraints (category, extension) are applied by the client to
    the DataLink answers of these products.

    Examples
    --------
    >>> print(deprecated_query({"instrument": ["HARPS"]}))  # doctest: +NORMALIZE_WHITESPACE
    SELECT o.dp_id, o.instrument_name, o.obs_collection, o.t_min, o.t_max, o.access_url, o.access_format
    FROM ivoa.ObsCore AS o LEFT OUTER JOIN phase3v2.product_files AS pf ON pf.product_id = o.dp_id
    WHERE pf.product_id IS NULL AND o.instrument_name = 'HARPS' ORDER BY o.dp_id
    """
    where = ["pf.product_id IS NULL", *_product_conditions(params, product_column="o.dp_id")]
    return "\n".join(
        [
            "SELECT " + ", ".join(PRODUCT_COLUMNS),
            "FROM ivoa.ObsCore AS o LEFT OUTER JOIN phase3v2.product_files AS pf ON pf.product_id = o.dp_id",
            "WHERE " + " AND ".join(where),
            "ORDER BY o.dp_id",
        ]
    )
