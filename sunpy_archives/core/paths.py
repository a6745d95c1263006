"""
Turning archive-supplied values into file names that stay inside the folder
the user chose.

Archives (or hostile servers) hand us names: catalog columns, query records,
export file lists. Every such value is sanitised before it becomes part of a
path, and every rendered destination is checked to lie inside the folder
the user chose, whatever the values were.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import BadInputError, UnsafePathError

__all__ = ["RelPath", "safe_name", "safe_relpath", "template_root", "render_path"]

# Control characters (NUL included) and both separators never appear in a name.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]" + (r"|[:*?\"<>|]" if os.name == "nt" else ""))
_MAX_NAME = 200


def safe_name(value: Any) -> str:
    """One path component from an arbitrary value.

    Separators, NUL and control characters become ``_``; ``.``, ``..`` and
    the empty string become ``_``; very long names are shortened.

    Examples
    --------
    >>> safe_name("../../etc/passwd")
    '.._.._etc_passwd'
    >>> safe_name("..")
    '_'
    """
    text = _UNSAFE.sub("_", str(value)).strip()
    if text in {"", ".", ".."}:
        return "_"
    if len(text) > _MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        text = (stem[: _MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else text[:_MAX_NAME]
    return text


def safe_relpath(value: Any) -> str:
    """A relative folder path (``level2/2022/04/02``) from an arbitrary value.

    Leading slashes, empty components and ``.`` are dropped, ``..`` becomes
    ``_`` and each remaining component goes through `safe_name`, so the result
    never climbs out of the folder it is joined to.

    Examples
    --------
    >>> safe_relpath("/level2/../../tmp")
    'level2/_/_/tmp'
    """
    parts = [p for p in re.split(r"[/\\]+", str(value).replace("\x00", "_")) if p not in {"", "."}]
    return "/".join(safe_name(p) for p in parts) or "_"


class RelPath(str):
    """Marks a template value that is a relative folder path: its ``/`` are kept."""


class _SafeFormatter(string.Formatter):
    """str.format whose every substituted field is made safe."""

    def format_field(self, value: Any, format_spec: str) -> str:
        from astropy.time import Time

        if isinstance(value, Time):
            text = value.strftime(format_spec) if format_spec else value.isot
        else:
            text = super().format_field(value, format_spec)
        return safe_relpath(text) if isinstance(value, RelPath) else safe_name(text)


def template_root(template: str | os.PathLike) -> Path:
    """The folder a path template writes into: the part before its first field."""
    text = str(template)
    literal = text.split("{", 1)[0]
    if "{" not in text:
        return Path(text).expanduser().parent
    if literal.endswith(("/", os.sep)):
        return Path(literal).expanduser()
    return Path(literal).expanduser().parent


def render_path(template: str | os.PathLike, values: Mapping[str, Any]) -> Path:
    """Fill a ``path=`` template with sanitised values; refuse to leave its root.

    Parameters
    ----------
    template : str or path-like
        E.g. ``"~/data/{file_path}/{file}"``.
    values : mapping
        Field values; wrap relative folder paths in `RelPath`.

    Returns
    -------
    pathlib.Path
        An absolute path inside `template_root` of the template.

    Raises
    ------
    BadInputError
        The template names a field no row has.
    UnsafePathError
        The rendered path would leave the root (cannot happen with sanitised
        values unless the template itself climbs out, e.g. ``{file}/../..``).
    """
    text = str(template)
    try:
        rendered = _SafeFormatter().vformat(text, (), values)
    except KeyError as exc:
        known = ", ".join(sorted(values))
        raise BadInputError(f"path template {text!r} uses {{{exc.args[0]}}}, which this result "
                            f"does not have; use one of: {known}") from None
    except (ValueError, IndexError, AttributeError) as exc:
        raise BadInputError(f"path template {text!r} cannot be filled: {exc}") from None
    root = template_root(text).resolve()
    dest = Path(os.path.abspath(Path(rendered).expanduser()))
    if not dest.resolve().is_relative_to(root) or dest.resolve() == root:
        raise UnsafePathError(f"refusing to write {rendered!r}: it is outside {str(root)!r}")
    return dest
