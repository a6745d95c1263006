"""
===========================================================
ESO products and their ancillary files (previews, CCFs ...)
===========================================================

How to find the files of ESO Science Archive products with `~sunpy.net.Fido`:
every file of one product, the ancillary files of an instrument, the previews
of a collection; how products missing from the file table (deprecated ones)
are reached through DataLink; and how to download files under unique names.

This example runs offline against the local ESO archive bundled in
`sunpy_archives.testing`; with the real archive, simply leave
``SUNPY_ARCHIVES_ESO_URL`` unset.
"""

import gc
import os
import tempfile
from pathlib import Path

from astropy.io import fits
from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives.eso  # noqa: F401  (registers a.eso with Fido)
from sunpy_archives.testing.eso import EsoArchiveData, start_eso_server

###############################################################################
# Start the local archive (TAP at ``/tap_obs``, DataLink, data portal) and
# point the client at it. Fido makes a new client for every search, which
# reads ``SUNPY_ARCHIVES_ESO_URL``.
server = start_eso_server(EsoArchiveData.small())
os.environ["SUNPY_ARCHIVES_ESO_URL"] = server.url

###############################################################################
# The registered file categories (``a.eso.Category``); a prefix such as
# ``"ANCILLARY"`` selects every category under it.
print(a.eso.Category)

###############################################################################
# All ancillary files of ESPRESSO products, in one call. The search joins
# ``phase3v2.product_files`` to ``ivoa.ObsCore`` and returns one row per file.
# "Estimated Size" is the archive's estimate, so Fido prints no total.
espresso = Fido.search(a.Instrument("ESPRESSO"), a.eso.Category("ANCILLARY"))
print(espresso)

###############################################################################
# All previews of the MUSE collection. One of the MUSE products is
# deprecated: it is in ObsCore but not in ``product_files``; its preview is
# found through DataLink (column "Listed By", hidden in the display).
previews = Fido.search(a.eso.Collection("MUSE"), a.eso.Category("ANCILLARY.PREVIEW"))
table = previews[0]
print(table["Product ID", "Archive ID", "Original Filename"])
print([str(v) for v in table["Listed By"]])

###############################################################################
# All files of one product.
product_id = table[0]["Product ID"]
one = Fido.search(a.eso.ProductID(product_id))
print(one[0]["Archive ID", "Category", "Extension", "Estimated Size"])

###############################################################################
# Original file names repeat across products (two MUSE exposures of one
# template share a preview name). The default name is therefore the archive
# id with the original extension; ``{original_filename}`` under a folder per
# product keeps the original names without collisions.
target = Path(tempfile.mkdtemp())
files = Fido.fetch(previews, path=target, progress=False)
# parfive leaves an event loop behind after each download; collecting it here,
# in the main thread, keeps it from being collected in the server's thread.
gc.collect()
print(sorted(Path(f).name for f in files))
kept = Fido.fetch(
    previews, path=str(target / "{product_id}" / "{original_filename}"), progress=False
)
gc.collect()
for name in sorted(kept):
    print(Path(name).relative_to(target))

###############################################################################
# Science files are FITS files.
science = Fido.fetch(one[0][one[0]["Category"] == "SCIENCE.CUBE.IFS"], path=target, progress=False)
gc.collect()
with fits.open(science[0]) as hdul:
    print(hdul[0].header["ARCFILE"], hdul[0].header["PRODCATG"])

###############################################################################
# Stop the local server.
server.stop()
