"""
Public search attributes of the DRMS client (``a.drms.*`` once
`sunpy_archives.jsoc` is imported).
"""

from ._attrs import ExportID, Keys, Method, Notify, PrimeKey, Protocol, Segment, Series

__all__ = ["Series", "Segment", "PrimeKey", "Keys", "Notify", "Protocol", "Method", "ExportID"]

# Show the public location in reprs and the API docs.
for _cls in (Series, Segment, PrimeKey, Keys, Notify, Protocol, Method, ExportID):
    _cls.__module__ = __name__
del _cls
