"""
Public search attributes of the ESO client (``a.eso.*`` once the client is imported).
"""

from ._attrs import Category, Collection, Cone, Extension, MaxRecords, ProductID

__all__ = ["Category", "Collection", "Cone", "Extension", "MaxRecords", "ProductID"]

# Show the public location in reprs and the API docs.
for _cls in (Collection, Category, ProductID, Extension, MaxRecords, Cone):
    _cls.__module__ = __name__
del _cls
