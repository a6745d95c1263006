"""
=================================================
Searching a SPICE data release and fetching files
=================================================

How to find Solar Orbiter SPICE files in a data release with `~sunpy.net.Fido`,
narrow the search with SOOP, level, time and catalog keywords, pick the file
closest to a time, and download files into the release tree's own layout.

This example runs offline against the local SPICE server bundled in
`sunpy_archives.testing`; with the real release tree, simply leave
``SUNPY_ARCHIVES_SPICE_URL`` unset.
"""
# sphinx_gallery_thumbnail_number = 1
import os
import tempfile
from pathlib import Path

import astropy.units as u
from astropy.io import fits
from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives  # noqa: F401  (registers a.spice with Fido)
from sunpy_archives.testing import SpiceArchiveData, start_spice_server

###############################################################################
# Start the local release-tree server and point the client at it. Fido makes
# a new client for every search, which reads ``SUNPY_ARCHIVES_SPICE_URL``.
server = start_spice_server(SpiceArchiveData.small())
os.environ["SUNPY_ARCHIVES_SPICE_URL"] = server.base_url
os.environ["SUNPY_ARCHIVES_SOAR_URL"] = server.soar_url

###############################################################################
# The registered values list the releases and SOOPs the client knows.
print(a.spice.Release)

###############################################################################
# Search release 5.0 for level 2 files of one SOOP in the first half of 2023.
# ``a.Time`` keeps files whose DATE-BEG lies in [start, end], both ends included.
result = Fido.search(
    a.spice.Release("5.0"),
    a.spice.SOOP("L_FULL_HRES_HCAD_Coronal-Dynamics"),
    a.Level(2),
    a.Time("2023-01-01", "2023-06-30"),
)
print(result)

###############################################################################
# Any catalog column can be filtered with ``a.spice.Query``. The expression is
# parsed and checked against the catalog (never evaluated as Python);
# hyphenated column names go in backticks.
narrow = Fido.search(
    a.spice.Release("5.0"),
    a.Level(2),
    a.spice.Query("NAXIS1 < 100 & -200 < CRVAL1 < 200 & `DATE-BEG` >= '2024-01-01'"),
)
print(narrow[0]["Start Time", "SOOP Name", "Study", "Filename"])

###############################################################################
# Only files covering a wavelength: ``a.Wavelength`` matches the spectral
# windows listed in the catalog's WAVECOV column.
ne8 = Fido.search(a.spice.Release("5.0"), a.Level(2), a.Wavelength(77.04 * u.nm),
                  a.Time("2024-01-01", "2024-03-31"))
print(f"{len(ne8[0])} files cover 77.04 nm (Ne VIII) in 2024 Q1")

###############################################################################
# The file closest to a time (one per level unless ``a.Level`` is given).
closest = Fido.search(a.spice.Closest("2023-03-01T12:00"), a.Level(2))
print(closest[0]["Start Time", "Filename"])

###############################################################################
# sunpy's own way to say the same thing, ``a.Time(start, end, near=...)``,
# keeps the nearest file among those starting within [start, end]. Without
# ``a.Level`` there is one file per level. Combined with ``a.spice.SOOP``,
# it answers "the file of this SOOP nearest this time".
soop = result[0][0]["SOOP Name"]
near = Fido.search(a.spice.SOOP(soop),
                   a.Time("2023-01-01", "2023-12-31", near="2023-03-15T00:00"))
print(near[0]["Start Time", "Level", "SOOP Name", "Filename"])

###############################################################################
# Download the first three files of the first search. ``{file_path}`` is the
# release tree's ``level2/YYYY/MM/DD`` folder, so the files land in the same
# layout as on the server. A second fetch finds them complete and downloads
# nothing.
target = Path(tempfile.mkdtemp())
files = Fido.fetch(result[0][:3], path=target / "{file_path}" / "{file}", progress=False)
for name in files:
    print(Path(name).relative_to(target))

###############################################################################
# The files are ordinary FITS files.
with fits.open(files[0]) as hdul:
    header = hdul[0].header
    print(header["FILENAME"], header["SOOPNAME"], header["DATE-BEG"])

###############################################################################
# Stop the local server.
server.stop()
