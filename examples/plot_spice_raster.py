"""
=====================================================
Plotting a downloaded SPICE raster with matplotlib
=====================================================

How to go from a search to a picture: find one SPICE level 2 raster,
download it, read it with `astropy.io.fits` and draw it in helioprojective
coordinates (arcsec) with the axis extents taken from the FITS header.

This example runs offline against the local SPICE server bundled in
`sunpy_archives.testing`, whose files hold generated data; with the real
release tree, leave ``SUNPY_ARCHIVES_SPICE_URL`` unset.
"""
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits
from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives.spice  # noqa: F401  (registers a.spice with Fido)
from sunpy_archives.testing import SpiceArchiveData, start_spice_server

###############################################################################
# Start the local release-tree server and point the client at it.
server = start_spice_server(SpiceArchiveData.small())
os.environ.update(server.environment())

###############################################################################
# The level 2 raster (not a sit-and-stare) that started nearest noon on
# 24 May 2023: ``a.spice.Query`` filters the catalog, ``a.spice.Closest``
# then keeps the nearest file.
result = Fido.search(a.spice.Release("5.0"), a.Level(2),
                     a.spice.Query("STUDYTYP == 'Raster'"),
                     a.spice.Closest("2023-05-24T12:00"))
print(result[0]["Start Time", "Study", "Filename"])

###############################################################################
# Download it.
target = Path(tempfile.mkdtemp())
files = Fido.fetch(result, path=target / "{file}", progress=False)
print(Path(files[0]).name)

###############################################################################
# Read the image and its header. The header's WCS keywords give the
# position of the first pixel (``CRVAL - (CRPIX - 1) * CDELT``) and the pixel
# size, in arcsec, along the raster (x, axis 1) and along the slit (y, axis 2).
with fits.open(files[0]) as hdul:
    data = hdul[0].data.astype(float)
    header = hdul[0].header


def extent(axis: int, size: int) -> tuple[float, float]:
    first = header[f"CRVAL{axis}"] - (header[f"CRPIX{axis}"] - 1) * header[f"CDELT{axis}"]
    return first - header[f"CDELT{axis}"] / 2, first + (size - 0.5) * header[f"CDELT{axis}"]


x0, x1 = extent(1, data.shape[1])
y0, y1 = extent(2, data.shape[0])

###############################################################################
# Draw the raster, and below it its mean over the slit as a function of X.
fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), height_ratios=(3, 1), sharex=True,
                                  layout="constrained")
low, high = np.nanpercentile(data, [1, 99])
image = top.imshow(data, origin="lower", extent=(x0, x1, y0, y1), aspect="auto",
                   vmin=low, vmax=high, cmap="inferno")
top.set_ylabel("Solar Y (arcsec)")
top.set_title(f"{header['STUDY']}  {header['DATE-BEG'][:19]}", fontsize=9)
fig.colorbar(image, ax=top, label=header.get("BUNIT", ""))

x = np.linspace(x0 + header["CDELT1"] / 2, x1 - header["CDELT1"] / 2, data.shape[1])
bottom.plot(x, np.nanmean(data, axis=0), drawstyle="steps-mid")
bottom.set_xlabel("Solar X (arcsec)")
bottom.set_ylabel("mean over the slit")
plt.show()

###############################################################################
# Stop the local server.
server.stop()
