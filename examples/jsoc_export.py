"""
===========================================================
Searching JSOC and fetching exactly the records you picked
===========================================================

How to search JSOC's DRMS series with `~sunpy.net.Fido` through the
``a.drms`` attrs, look at the records' keywords before anything is staged,
and export and download only a subset of the rows: JSOC stages the export,
the client polls it for you (short first interval, growing, inside a time
budget) and downloads the files with record-based names.

This example runs offline against the local JSOC server bundled in
`sunpy_archives.testing`; with the real JSOC, leave ``SUNPY_ARCHIVES_JSOC_URL``
unset and give your own registered address to ``a.drms.Notify``.
"""
import os
import tempfile
from pathlib import Path

import astropy.units as u
from astropy.io import fits
from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives.jsoc  # noqa: F401  (registers a.drms with Fido)
from sunpy_archives.testing.jsoc import start_jsoc_server

###############################################################################
# Start the local JSOC server and point the client at it. Fido makes a new
# client for every search, which reads ``SUNPY_ARCHIVES_JSOC_URL``.
server = start_jsoc_server()
os.environ["SUNPY_ARCHIVES_JSOC_URL"] = server.root

###############################################################################
# Search one hour of AIA 171 images. ``a.drms.Notify`` is checked with JSOC
# now, so an unregistered address fails before anything is staged. The
# search only lists keywords; nothing is exported yet.
result = Fido.search(a.Time("2024-01-01T00:00", "2024-01-01T01:00"),
                     a.drms.Series("aia.lev1_euv_12s"), a.Wavelength(171 * u.AA),
                     a.drms.Segment("image"), a.jsoc.Keyword("QUALITY") == 0,
                     a.drms.Notify("user@example.com"))
table = result[0]
print(table[:5])
print(f"{len(table)} records; T_REC is in the {table['T_REC'].scale.upper()} scale")

###############################################################################
# Keep one image every two minutes: a slice of the table. Fetch exports
# exactly these rows (compacted into a short record-set specification with a
# cadence), polls JSOC until the export is ready and downloads the files.
every_two_minutes = table[::10]
folder = Path(tempfile.mkdtemp())
files = Fido.fetch(every_two_minutes, path=folder, progress=False)
print(f"downloaded {len(files)} files, e.g. {Path(files[0]).name}")
print("JSOC was asked for:", server.state.requests[-1]["ds"])

###############################################################################
# FITS exports carry the record's keywords in the header.
header = fits.getheader(files[0])
print(header["T_REC"], header["WAVELNTH"], header["EXPTIME"])

###############################################################################
# An export that takes longer than ``export_timeout`` is not lost: the warning
# names its ID, and ``a.drms.ExportID`` lists (and fetches) its files later
# without a new export request.
export_id = next(iter(server.state.exports))
later = Fido.search(a.drms.ExportID(export_id))
print(later[0][:3])

server.stop()
