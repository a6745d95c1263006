"""
Public search attributes of the SPICE client (``a.spice.*`` once
`sunpy_archives` is imported).
"""

from ._attrs import SOOP, Closest, Query, Release

__all__ = ["Release", "SOOP", "Query", "Closest"]

# Show the public location in reprs and the API docs.
for _cls in (Release, SOOP, Query, Closest):
    _cls.__module__ = __name__
del _cls
