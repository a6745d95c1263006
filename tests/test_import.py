"""``import sunpy_archives`` registers the clients, opens no socket and defers heavy imports."""

import subprocess
import sys

CHILD = r"""
import socket, sys
def refuse(*args, **kwargs):
    raise AssertionError("network access during import")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import sunpy.net
before = set(sys.modules)
import sunpy_archives
from sunpy.net import Fido, attrs as a
from sunpy_archives.spice import SPICEClient
assert SPICEClient in Fido.registry, "SPICE client registered with Fido"
assert hasattr(a, "spice") and hasattr(a.spice, "Release")
# What importing sunpy_archives adds on top of sunpy.net (which itself imports drms).
heavy = [m for m in ("pyvo", "drms", "pyarrow", "pandas", "sunpy_archives.testing", "aiohttp.web")
         if m in sys.modules and m not in before]
print("heavy:", ",".join(heavy))
"""


def test_import_is_offline_and_light():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "heavy:", done.stdout
