"""
Building the `~sunpy.net.base_client.QueryResponseTable` every search returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["make_table"]


def make_table(columns: Mapping[str, Any], client, *, hide_keys: Sequence[str] = (),
               size_column: str | None = None, meta: Mapping[str, Any] | None = None):
    """A `~sunpy.net.base_client.QueryResponseTable` from column data.

    Parameters
    ----------
    columns : mapping
        Column name (human readable, e.g. ``"Start Time"``) to values: lists,
        numpy arrays, `~astropy.time.Time` or `~astropy.units.Quantity`.
    client : sunpy.net.base_client.BaseClient
        The client that made the search (used by Fido to fetch the rows).
    hide_keys : sequence of str
        Columns kept for fetching and ``path=`` but not shown.
    size_column : str, optional
        A column of exact sizes as a Quantity in bytes, so Fido can print totals.
    meta : mapping, optional
        Extra table metadata (e.g. the query that made it).
    """
    from sunpy.net.base_client import QueryResponseTable

    table = QueryResponseTable(dict(columns), client=client)
    table.hide_keys = list(hide_keys)
    if size_column is not None:
        table.size_column = size_column
    if meta:
        table.meta.update(meta)
    return table


def empty_columns(names: Iterable[str]) -> dict[str, list]:
    """Column dict with no rows, so an empty result still has its columns."""
    return {name: [] for name in names}
