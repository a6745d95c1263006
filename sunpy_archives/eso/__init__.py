"""
The ESO Science Archive: Phase 3 products and their ancillary files.

`ESOClient` is the Fido client (attrs under ``a.eso``). It searches the
archive's TAP service (``phase3v2.product_files`` joined to ``ivoa.ObsCore``),
reaches deprecated products through DataLink, and downloads files from the
data portal. `sunpy_archives.eso.adql` builds the queries; `sunpy_archives.eso.datalink`
reads DataLink answers.
"""

from .client import ESOClient

__all__ = ["ESOClient"]
