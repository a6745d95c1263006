"""
sunpy-archives: Fido clients for the Solar Orbiter SPICE data releases, the
IMAP Science Data Center, JSOC (through drms) and the ESO Science Archive.

Importing the package registers its clients with `sunpy.net.Fido` (and their
attrs, e.g. ``a.spice``). Nothing here touches the network.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sunpy-archives")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0.0.0"

# Importing a client registers it (and its attrs) with Fido. None of these
# imports touches the network or imports pyvo.
from .eso import ESOClient  # noqa: E402
from .imap import IMAPClient  # noqa: E402
from .jsoc import DRMSClient  # noqa: E402
from .spice import SPICEClient  # noqa: E402

__all__ = ["__version__", "SPICEClient", "IMAPClient", "DRMSClient", "ESOClient"]
