"""
One exception hierarchy for every archive.

Every error the suite raises on purpose is an `ArchiveError`. Errors caused by
what the user asked for (a bad attr value, an unknown release, a malformed
query) also subclass `ValueError`, so code that already catches ``ValueError``
around sunpy's own clients keeps working. Messages name the archive, the URL
where one is involved, and what to change.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "ArchiveWarning",
    "BadInputError",
    "QuerySyntaxError",
    "UnknownValueError",
    "SearchError",
    "DownloadError",
    "UnsafePathError",
    "ExportError",
]


class ArchiveError(Exception):
    """Base class of every error raised by sunpy-archives.

    Parameters
    ----------
    message : str
        What went wrong and what to change.
    archive : str, optional
        The archive involved ("SPICE", "IMAP", "JSOC", "ESO").
    url : str, optional
        The URL involved, if any. Never holds credentials: callers pass URLs
        without query strings that could carry keys.
    """

    def __init__(self, message: str, *, archive: str | None = None, url: str | None = None):
        self.archive = archive
        self.url = url
        prefix = f"{archive}: " if archive else ""
        suffix = f" (URL: {url})" if url else ""
        super().__init__(f"{prefix}{message}{suffix}")


class ArchiveWarning(UserWarning):
    """Warnings about partial results, truncation, skipped files or staging trouble."""


class BadInputError(ArchiveError, ValueError):
    """The user's input cannot be turned into a request. Raised before any network call."""


class QuerySyntaxError(BadInputError):
    """A query expression is malformed or names an unknown column."""

    def __init__(self, message: str, *, expression: str | None = None, position: int | None = None,
                 archive: str | None = None):
        self.expression = expression
        self.position = position
        if expression is not None and position is not None:
            pointer = " " * position + "^"
            message = f"{message}\n    {expression}\n    {pointer}"
        super().__init__(message, archive=archive)


class UnknownValueError(BadInputError):
    """A value is well formed but the archive does not know it (a release tag, a series...)."""


class SearchError(ArchiveError):
    """The archive could not answer a search (HTTP failure after retries, bad answer)."""


class DownloadError(ArchiveError):
    """A file could not be downloaded, or failed verification after download."""


class UnsafePathError(DownloadError, ValueError):
    """A value that becomes part of a path would leave the download folder."""


class ExportError(ArchiveError):
    """An export (JSOC staging) failed or did not finish in time."""
