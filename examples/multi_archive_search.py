"""
===============================================
Searching several archives in one Fido.search
===============================================

How to ask SPICE, IMAP, JSOC and ESO in a single `~sunpy.net.Fido` call,
read the one-table-per-archive result, and fetch from all of them with one
``Fido.fetch``.

Each archive's attrs go to its own client only, so they cannot share one
``&`` query (no client understands ``a.spice.Release & a.eso.Collection``).
Instead each archive gets its own branch, and ``|`` joins the branches:
Fido sends each branch to the client that understands it and returns one
table per branch.

This example runs offline against the four local servers bundled in
`sunpy_archives.testing`; with the real archives, leave the environment
variables unset.
"""
import gc
import os
import tempfile
from pathlib import Path

import astropy.units as u
from sunpy.net import Fido
from sunpy.net import attrs as a
from sunpy.net.fido_factory import UnifiedResponse

import sunpy_archives  # noqa: F401  (registers every client with Fido)
from sunpy_archives.testing.registry import ARCHIVES, start_server

###############################################################################
# Start one local server per archive; ``environment()`` gives the variables
# that point each client at its server.
servers = [start_server(archive) for archive in ARCHIVES]
for server in servers:
    os.environ.update(server.environment())
print(", ".join(ARCHIVES), "served locally")

###############################################################################
# One branch per archive. JSOC and ESO share a time window: the AIA 171
# images taken while a MUSE exposure was running (ESO keeps products whose
# observation overlaps the window; JSOC keeps records whose T_REC is in it).
window = a.Time("2024-03-07T07:30", "2024-03-07T07:31")
spice = a.spice.Release("5.0") & a.Level(2) & a.Time("2023-03-01", "2023-03-15")
imap = (a.Instrument("mag") & a.Level("l2") & a.imap.Version("latest")
        & a.Time("2025-01-03", "2025-01-03"))
jsoc = (a.drms.Series("aia.lev1_euv_12s") & a.Wavelength(171 * u.AA) & a.drms.Segment("image")
        & window)
eso = a.eso.Collection("MUSE") & a.eso.Category("ANCILLARY.PREVIEW") & window

result = Fido.search(spice | imap | jsoc | eso)
print(result)

###############################################################################
# The result holds one table per branch, in order, each from its client.
for table in result:
    print(f"{type(table.client).__name__:12s} {len(table):3d} rows")

###############################################################################
# ``Fido.fetch`` takes the whole result (or any selection of rows) and hands
# each table to its client: here the first two rows of each. The path
# template uses ``{file}``, which every client defines.
first_rows = UnifiedResponse(*[table[:2] for table in result])
target = Path(tempfile.mkdtemp())
files = Fido.fetch(first_rows, path=str(target / "{file}"), progress=False)
gc.collect()  # see the ESO example: collect parfive's loop in this thread
for name in sorted(files):
    print(Path(name).name)
print(f"{len(files)} files, {len(files.errors)} errors")

###############################################################################
# Stop the servers.
for server in servers:
    server.stop()
