"""
JSOC's DRMS data series in Fido, on top of the ``drms`` library.

Importing this package registers `DRMSClient` with Fido and its attrs as ``a.drms``.
"""

from . import attrs
from .client import DRMSClient, server_config
from .export import ExportFile, ExportResult, ExportState, Stager
from .recordset import compact, drms_time, parse_times, query_spec

__all__ = ["DRMSClient", "attrs", "server_config", "ExportState", "ExportFile", "ExportResult", "Stager",
           "compact", "query_spec", "drms_time", "parse_times"]
