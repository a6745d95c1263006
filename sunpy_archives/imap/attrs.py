"""
Public search attributes of the IMAP client (``a.imap.*`` once
`sunpy_archives.imap` is imported).
"""

from ._attrs import (
    Descriptor,
    Extension,
    Filename,
    IngestionTime,
    KernelType,
    MajorVersion,
    MinorVersion,
    Repointing,
    Table,
    Version,
)

__all__ = ["Table", "Descriptor", "Version", "MajorVersion", "MinorVersion", "Repointing",
           "Extension", "IngestionTime", "Filename", "KernelType"]

# Show the public location in reprs and the API docs.
for _cls in (Table, Descriptor, Version, MajorVersion, MinorVersion, Repointing, Extension,
             IngestionTime, Filename, KernelType):
    _cls.__module__ = __name__
del _cls
