"""
Solar Orbiter SPICE data releases.

`SPICEClient` is the Fido client (attrs under ``a.spice``); `Release`,
`Catalog` and `FileMetadata` are the same building blocks for use without
Fido, with the search helpers sospice users know.
"""

from .catalog import Catalog
from .client import SPICEClient
from .files import FileMetadata
from .release import Release

__all__ = ["SPICEClient", "Release", "Catalog", "FileMetadata"]
