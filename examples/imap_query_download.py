"""
========================================================
Searching and downloading IMAP Science Data Center files
========================================================

How to find IMAP files with `~sunpy.net.Fido` (instrument, level, time,
descriptor, version), download them in parallel into the SDC's own folder
layout, and use the same operations without Fido, as the official
``imap-data-access`` functions do.

This example runs offline against the local SDC server bundled in
`sunpy_archives.testing`; with the real SDC, simply leave
``IMAP_DATA_ACCESS_URL`` unset.
"""
import os
import tempfile
from pathlib import Path

from sunpy.net import Fido
from sunpy.net import attrs as a

import sunpy_archives.imap as imap  # registers a.imap with Fido
from sunpy_archives.testing.imap import ImapArchiveData, start_imap_server

###############################################################################
# Start the local SDC server and point the client at it. Every new client
# reads ``IMAP_DATA_ACCESS_URL`` (and ``IMAP_API_KEY``, ``IMAP_DATA_DIR``).
server = start_imap_server(ImapArchiveData.small())
os.environ["IMAP_DATA_ACCESS_URL"] = server.url
data_dir = Path(tempfile.mkdtemp()) / "imap-data"
os.environ["IMAP_DATA_DIR"] = str(data_dir)

###############################################################################
# The registered values list what the attrs accept.
print(a.imap.Table)

###############################################################################
# The latest version of each MAG level 2 file that starts between 3 and 5
# January 2025 (both days included, as the SDC defines its dates).
result = Fido.search(
    a.Instrument("mag"),
    a.Level("l2"),
    a.imap.Version("latest"),
    a.Time("2025-01-03", "2025-01-05"),
)
print(result)

###############################################################################
# ``{sdc_dir}`` in the path reproduces the SDC layout
# (``imap/<instrument>/<level>/<YYYY>/<MM>``), so the files land where the
# official client would put them. Files already complete are not fetched again.
files = Fido.fetch(result, path=f"{data_dir}/{{sdc_dir}}/{{file}}", progress=False)
for name in files:
    print(Path(name).relative_to(data_dir))

###############################################################################
# SPICE kernels are in the same archive: give a kernel type.
kernels = Fido.search(a.imap.KernelType("attitude_history"), a.Time("2025-01-02", "2025-01-03"))
print(kernels)

###############################################################################
# Without Fido: ``query`` takes the official client's keywords and returns its
# records; ``download`` fetches names or records in parallel into
# ``IMAP_DATA_DIR`` in the SDC layout.
records = imap.query(instrument="swe", data_level="l1b", start_date="20250106",
                     end_date="20250108", version="latest")
paths = imap.download(records, progress=False)
for path in paths:
    print(path.relative_to(data_dir), path.stat().st_size, "bytes")

###############################################################################
# Uploads need an API key (``IMAP_API_KEY``); the name is checked against the
# IMAP convention before anything is sent, and the key is never shown.
os.environ["IMAP_API_KEY"] = server.api_key
new_file = data_dir / "imap_swe_l1b_sci_20250108_v002.0001.cdf"
new_file.write_bytes(b"my reprocessed file")
print(imap.upload(new_file))
print(imap.IMAPClient().api)

server.stop()
