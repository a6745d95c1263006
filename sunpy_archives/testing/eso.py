"""
A local, faithful ESO Science Archive: TAP (``/tap_obs``), DataLink and file download.

`EsoArchiveData` generates a deterministic archive of Phase 3 products for
several collections (MUSE, ESPRESSO, HARPS, VVV), each product with one
science file and 0..N ancillary files of the real ``eso_category`` values.
Some products are *deprecated*: they are in ``ivoa.ObsCore`` but their files
are not in ``phase3v2.product_files``; only DataLink lists them.

`make_eso_app` serves it over the wire protocol of the real archive
(``PROTOCOLS.md`` section 4):

* ``/tap_obs/sync`` (GET or form-encoded POST: ``REQUEST``, ``LANG``,
  ``QUERY``, ``MAXREC``, ``FORMAT``/``RESPONSEFORMAT``) runs the ADQL on an
  SQLite database holding ``ivoa.ObsCore``, ``phase3v2.product_files`` and
  ``TAP_SCHEMA``, and answers a VOTable with ``QUERY_STATUS`` ``OK``, an
  ``OVERFLOW`` INFO after the table when the row limit cut the result, or an
  ``ERROR`` document (HTTP 400) for a query it cannot run;
* ``/tap_obs/capabilities``, ``/tap_obs/availability``, ``/tap_obs/tables``
  (VOSI, as pyvo reads them);
* ``/datalink/links?ID=ivo://eso.org/ID?<id>`` (the 11-column ESO DataLink table);
* ``/dataPortal/file/<archive_id>`` (bytes with ``Content-Disposition``;
  ``HEAD`` and ``Range`` supported).

Every route goes through the shared fault-injection middleware.

The ADQL subset understood is what ADQL clients send in practice: ``SELECT
[DISTINCT] [TOP n] ... FROM ... [AS x] [[INNER|LEFT OUTER] JOIN ... ON ...]
WHERE ... ORDER BY ...`` with comparisons, ``BETWEEN``, ``LIKE``
(case-sensitive, as ADQL says), ``IN``, sub-queries, ``IS NULL``, ``COUNT``,
``SUM``..., string functions (``UPPER``, ``LOWER``, ``||``), the math
functions of ADQL and the geometry ``POINT``, ``CIRCLE``, ``CONTAINS``,
``INTERSECTS`` (against ``s_region`` polygons) and ``DISTANCE``. ``LIMIT`` is
refused, as on a real ADQL service (use ``TOP``). Queries run read-only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import random
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from .faults import FaultConfig, fault_middleware, send_bytes
from .server import LocalServer

__all__ = [
    "OBSCORE_COLUMNS",
    "PRODUCT_FILES_COLUMNS",
    "AdqlError",
    "EsoArchiveData",
    "EsoFile",
    "EsoProduct",
    "EsoServer",
    "adql_to_sqlite",
    "eso_classifier",
    "make_eso_app",
    "start_eso_server",
]

VOTABLE_TYPE = "application/x-votable+xml"
DATALINK_FORMAT = "application/x-votable+xml;content=datalink"
_MJD0 = _dt.datetime(1858, 11, 17)
_NULL_LONG = -9223372036854775808

# --- schema -----------------------------------------------------------------------------------

# name -> (VOTable datatype, unit, ucd, utype, description)
OBSCORE_COLUMNS: dict[str, tuple[str, str, str, str, str]] = {
    "abmaglim": ("double", "mag", "phot.mag;stat.max", "", "5-sigma limiting AB magnitude"),
    "access_estsize": (
        "long",
        "kbyte",
        "phys.size;meta.file",
        "obscore:Access.Size",
        "Estimated size of the product, kB",
    ),
    "access_format": (
        "char",
        "",
        "meta.code.mime",
        "obscore:Access.Format",
        "Format of access_url",
    ),
    "access_url": (
        "char",
        "",
        "meta.ref.url",
        "obscore:Access.Reference",
        "DataLink URL of the product",
    ),
    "bib_reference": ("char", "", "meta.bib.bibcode", "obscore:Curation.Reference", ""),
    "calib_level": ("int", "", "meta.code;obs.calib", "obscore:ObsDataset.calibLevel", ""),
    "dataproduct_subtype": ("char", "", "meta.code.class", "", ""),
    "dataproduct_type": ("char", "", "meta.code.class", "obscore:ObsDataset.dataProductType", ""),
    "dp_id": ("char", "", "meta.id", "", "ESO product identifier"),
    "em_max": (
        "double",
        "m",
        "em.wl;stat.max",
        "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLim",
        "",
    ),
    "em_min": (
        "double",
        "m",
        "em.wl;stat.min",
        "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLim",
        "",
    ),
    "em_res_power": (
        "double",
        "",
        "spect.resolution",
        "obscore:Char.SpectralAxis.Resolution.ResolPower.refVal",
        "",
    ),
    "em_xel": ("long", "", "meta.number", "obscore:Char.SpectralAxis.numBins", ""),
    "facility_name": (
        "char",
        "",
        "meta.id;instr.tel",
        "obscore:Provenance.ObsConfig.Facility.name",
        "",
    ),
    "filter": ("char", "", "meta.id;instr.filter", "", ""),
    "gal_lat": ("double", "deg", "pos.galactic.lat", "", ""),
    "gal_lon": ("double", "deg", "pos.galactic.lon", "", ""),
    "instrument_name": (
        "char",
        "",
        "meta.id;instr",
        "obscore:Provenance.ObsConfig.Instrument.name",
        "",
    ),
    "last_mod_date": ("char", "", "time.processing", "", ""),
    "multi_ob": ("char", "", "meta.code", "", "S for single OB, M for multiple OBs"),
    "n_obs": ("long", "", "meta.number", "", ""),
    "o_calib_status": ("char", "", "meta.code.qual", "obscore:Char.ObservableAxis.calibStatus", ""),
    "o_ucd": ("char", "", "meta.ucd", "obscore:Char.ObservableAxis.ucd", ""),
    "obs_collection": ("char", "", "meta.id", "obscore:DataID.Collection", "Collection name"),
    "obs_creator_did": ("char", "", "meta.id", "obscore:DataID.CreatorDID", ""),
    "obs_creator_name": ("char", "", "meta.id", "obscore:DataID.Creator", ""),
    "obs_id": ("char", "", "meta.id", "obscore:DataID.observationID", ""),
    "obs_publisher_did": (
        "char",
        "",
        "meta.ref.uri;meta.curation",
        "obscore:Curation.PublisherDID",
        "",
    ),
    "obs_release_date": ("char", "", "time.release", "obscore:Curation.releaseDate", ""),
    "obs_title": ("char", "", "meta.title;obs", "obscore:DataID.title", ""),
    "obstech": ("char", "", "meta.code;instr.setup", "", ""),
    "p3orig": ("char", "", "meta.code", "", "EDP or IDP"),
    "pol_states": (
        "char",
        "",
        "meta.code;phys.polarization",
        "obscore:Char.PolarizationAxis.stateList",
        "",
    ),
    "pol_xel": ("long", "", "meta.number", "obscore:Char.PolarizationAxis.numBins", ""),
    "preview_html": ("char", "", "meta.ref.url", "", ""),
    "proposal_id": (
        "char",
        "",
        "meta.id;obs.proposal",
        "obscore:Provenance.Proposal.identifier",
        "",
    ),
    "publication_date": ("char", "", "time.release", "", ""),
    "release_description": ("char", "", "meta.ref.url", "", ""),
    "s_dec": (
        "double",
        "deg",
        "pos.eq.dec",
        "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
        "",
    ),
    "s_fov": (
        "double",
        "deg",
        "phys.angSize;instr.fov",
        "obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
        "",
    ),
    "s_pixel_scale": ("double", "arcsec", "phys.angSize;instr.pixel", "", ""),
    "s_ra": (
        "double",
        "deg",
        "pos.eq.ra",
        "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
        "",
    ),
    "s_region": (
        "char",
        "",
        "pos.outline;obs.field",
        "obscore:Char.SpatialAxis.Coverage.Support.Area",
        "",
    ),
    "s_resolution": (
        "double",
        "arcsec",
        "pos.angResolution",
        "obscore:Char.SpatialAxis.Resolution.refval.value",
        "",
    ),
    "s_xel1": ("long", "", "meta.number", "obscore:Char.SpatialAxis.numBins1", ""),
    "s_xel2": ("long", "", "meta.number", "obscore:Char.SpatialAxis.numBins2", ""),
    "snr": ("double", "", "stat.snr", "", ""),
    "strehl": ("double", "", "stat.value", "", ""),
    "t_exptime": (
        "double",
        "s",
        "time.duration;obs.exposure",
        "obscore:Char.TimeAxis.Coverage.Support.Extent",
        "",
    ),
    "t_max": (
        "double",
        "d",
        "time.end;obs.exposure",
        "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
        "",
    ),
    "t_min": (
        "double",
        "d",
        "time.start;obs.exposure",
        "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
        "",
    ),
    "t_resolution": (
        "double",
        "s",
        "time.resolution",
        "obscore:Char.TimeAxis.Resolution.refval.value",
        "",
    ),
    "t_xel": ("long", "", "meta.number", "obscore:Char.TimeAxis.numBins", ""),
    "target_name": ("char", "", "meta.id;src", "obscore:Target.Name", ""),
}

PRODUCT_FILES_COLUMNS: dict[str, tuple[str, str, str, str, str]] = {
    "product_id": ("char", "", "meta.id", "", "Product identifier (ivoa.ObsCore.dp_id)"),
    "archive_id": ("char", "", "meta.id;meta.file", "", "Identifier of this file"),
    "eso_category": ("char", "", "meta.code.class", "", "SCIENCE.* or ANCILLARY.* category"),
    "original_filename": (
        "char",
        "",
        "meta.id;meta.file",
        "",
        "File name before ingestion (not unique)",
    ),
    "extension": ("char", "", "meta.code.mime", "", "Upper-case file type"),
    "access_url": ("char", "", "meta.ref.url", "", "Direct download URL"),
    "access_estsize": ("long", "kbyte", "phys.size;meta.file", "", "Estimated file size, kB"),
    "internal_file_id": ("long", "", "meta.id", "", "Internal number (phase3v2.provenance)"),
}

DATALINK_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    # name, datatype, unit, ucd
    ("ID", "char", "", "meta.id;meta.main"),
    ("access_url", "char", "", "meta.ref.url"),
    ("service_def", "char", "", "meta.ref"),
    ("error_message", "char", "", "meta.code.error"),
    ("semantics", "char", "", "meta.code"),
    ("description", "char", "", "meta.note"),
    ("content_type", "char", "", "meta.code.mime"),
    ("content_length", "long", "byte", "phys.size;meta.file"),
    ("eso_origfile", "char", "", "meta.id;meta.file"),
    ("eso_category", "char", "", "meta.code.class"),
    ("eso_datalink", "char", "", "meta.ref.url"),
)

_TABLES = {
    "ivoa.ObsCore": (
        "ivoa",
        "ObsCore",
        OBSCORE_COLUMNS,
        "Reduced Phase 3 products in the IVOA ObsCore model",
    ),
    "phase3v2.product_files": (
        "phase3v2",
        "product_files",
        PRODUCT_FILES_COLUMNS,
        "All files (science and ancillary) of each Phase 3 product",
    ),
}

# --- generated archive ------------------------------------------------------------------------


@dataclass
class EsoFile:
    """One file of a product.

    Parameters
    ----------
    archive_id : str
        The file's id (equals the product id for the science file).
    category : str
        ``eso_category``, e.g. ``"ANCILLARY.PREVIEW"``.
    original_filename : str
        Name before ingestion (not unique across products).
    extension : str
        Upper-case file type (``FITS``, ``PNG``, ``TAR``, ``FZ``...).
    size : int
        Exact size in bytes of what ``/dataPortal/file`` serves.
    content_type : str
        MIME type.
    internal_file_id : int
        Internal number.
    """

    archive_id: str
    category: str
    original_filename: str
    extension: str
    size: int
    content_type: str
    internal_file_id: int

    @property
    def estsize_kb(self) -> int:
        """The archive's size estimate in kB (deliberately not exact)."""
        return math.ceil(self.size * 1.07 / 1000.0) + 1

    @property
    def portal_name(self) -> str:
        """The name the portal gives in Content-Disposition: ``<archive_id>.<ext>``."""
        return f"{self.archive_id}.{_suffix(self.original_filename, self.extension)}"


@dataclass
class EsoProduct:
    """One Phase 3 product: ObsCore values and its files (science first)."""

    dp_id: str
    collection: str
    instrument: str
    facility: str
    dataproduct_type: str
    target: str
    ra: float
    dec: float
    fov: float
    t_min: float
    t_max: float
    em_min: float
    em_max: float
    proposal_id: str
    files: list[EsoFile] = field(default_factory=list)
    deprecated: bool = False

    @property
    def science(self) -> EsoFile:
        return self.files[0]


def _suffix(original: str, extension: str) -> str:
    name = original.rsplit("/", 1)[-1]
    if "." in name:
        parts = name.split(".")
        if len(parts) >= 3 and parts[-2].lower() == "fits":
            return ".".join(parts[-2:])
        return parts[-1]
    return extension.lower()


# collection -> (instrument, facility, type, science (category, ext, pattern, mime),
#                ancillaries [(category, ext, pattern, mime)], (em_min, em_max), proposal, targets,
#                how many ancillaries product i gets: "all" or a modulus)
_COLLECTIONS: dict[str, tuple] = {
    "MUSE": (
        "MUSE",
        "ESO-VLT-U4",
        "cube",
        ("SCIENCE.CUBE.IFS", "FITS", "MU_SCBY_{n}_{date}_WFM-NOAO-N_SKY.fits", "application/fits"),
        [
            ("ANCILLARY.PREVIEW", "PNG", "r.MUSE.{tpl}_tpl.png", "image/png"),
            (
                "ANCILLARY.IMAGE.WHITELIGHT",
                "FITS",
                "r.MUSE.{tpl}_IMAGE_FOV_0001.fits",
                "application/fits",
            ),
        ],
        (4.7e-07, 9.35e-07),
        "112.25YB.001",
        ["NGC 4289", "NGC 1365", "Abell 370", "HDFS"],
        "all",
    ),
    "ESPRESSO": (
        "ESPRESSO",
        "ESO-VLT-U1",
        "spectrum",
        ("SCIENCE.SPECTRUM", "FITS", "r.ESPRE.{date}_S1D_A.fits", "application/fits"),
        [
            ("ANCILLARY.CCF", "FITS", "r.ESPRE.{date}_CCF_A.fits", "application/fits"),
            ("ANCILLARY.SPECTRUM", "FITS", "r.ESPRE.{date}_S2D_A.fits", "application/fits"),
            ("ANCILLARY.README", "TXT", "README.txt", "text/plain"),
        ],
        (3.78e-07, 7.88e-07),
        "1102.C-0744(C)",
        ["HD 10700", "Proxima Cen", "TOI-178"],
        4,
    ),
    "HARPS": (
        "HARPS",
        "ESO-3.6",
        "spectrum",
        ("SCIENCE.SPECTRUM", "FITS", "ADP_HARPS_{date}_s1d_A.fits", "application/fits"),
        [("ANCILLARY.HARPSTAR", "TAR", "HARPS.{date}.tar", "application/x-tar")],
        (3.78e-07, 6.91e-07),
        "072.C-0488(E)",
        ["HD 85512", "alf Cen B", "GJ 581"],
        2,
    ),
    "VVV": (
        "VIRCAM",
        "ESO-VISTA",
        "image",
        ("SCIENCE.IMAGE", "FZ", "v{day}_{n:05d}_st_tl.fits.fz", "application/x-fits-hcompress"),
        [
            (
                "ANCILLARY.WEIGHTMAP",
                "FZ",
                "v{day}_{n:05d}_st_tl_conf.fits.fz",
                "application/x-fits-hcompress",
            )
        ],
        (1.0e-06, 2.5e-06),
        "179.B-2002(A)",
        ["b201", "b305", "d018"],
        "all",
    ),
}

#: Collection -> first MJD of its generated products (one product a day after that).
_START_MJD = {"MUSE": 60376.0, "ESPRESSO": 59215.0, "HARPS": 55197.0, "VVV": 56000.0}


def _mjd_to_datetime(mjd: float) -> _dt.datetime:
    return _MJD0 + _dt.timedelta(days=mjd)


def _stamp(when: _dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


class EsoArchiveData:
    """A deterministic generated ESO archive.

    Parameters
    ----------
    products : sequence of EsoProduct
        The products (use `generate` or `small` to make them).
    default_maxrec : int
        Rows returned when a query gives no ``MAXREC`` (the service's default limit).
    hard_maxrec : int
        The largest ``MAXREC`` honoured.

    Attributes
    ----------
    content_disposition : dict
        ``archive_id -> file name`` overrides for Content-Disposition (to test
        that clients do not trust it).

    Examples
    --------
    >>> data = EsoArchiveData.small()
    >>> sorted({p.collection for p in data.products})
    ['ESPRESSO', 'HARPS', 'MUSE', 'VVV']
    """

    def __init__(
        self,
        products: Sequence[EsoProduct],
        *,
        default_maxrec: int = 1000,
        hard_maxrec: int = 100_000,
    ):
        self.products: list[EsoProduct] = list(products)
        self.default_maxrec = default_maxrec
        self.hard_maxrec = hard_maxrec
        self.content_disposition: dict[str, str] = {}
        self._bytes: dict[str, bytes] = {}
        self._version = 0
        self._reindex()

    def _reindex(self) -> None:
        self._files: dict[str, tuple[EsoProduct, EsoFile]] = {}
        for product in self.products:
            for f in product.files:
                self._files[f.archive_id] = (product, f)
        self._products = {p.dp_id: p for p in self.products}
        self._version += 1

    @property
    def version(self) -> int:
        """Changes whenever products are added (the SQL database is rebuilt)."""
        return self._version

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        counts: dict[str, int],
        *,
        file_size: int | None = None,
        deprecated: Iterable[tuple[str, int]] = (),
        **kwargs,
    ) -> EsoArchiveData:
        """Generate products.

        Parameters
        ----------
        counts : dict
            Collection name (``MUSE``, ``ESPRESSO``, ``HARPS``, ``VVV``) to number of products.
        file_size : int, optional
            Size in bytes of every file; by default science files are ~20-30 kB and
            ancillary files ~3-8 kB.
        deprecated : iterable of (collection, index)
            Products whose files are left out of ``phase3v2.product_files``.
        **kwargs
            Passed to the constructor (``default_maxrec``, ``hard_maxrec``).
        """
        deprecated = set(deprecated)
        products = []
        file_counter = 81_000_000
        for collection, count in counts.items():
            (
                instrument,
                facility,
                dptype,
                science,
                ancillaries,
                (em_min, em_max),
                proposal,
                targets,
                how_many,
            ) = _COLLECTIONS[collection]
            rng = random.Random(f"eso-{collection}")
            for i in range(count):
                t_min = _START_MJD[collection] + i + 0.31 + 0.01 * (i % 7)
                exptime = 600.0 + 60.0 * (i % 5)
                t_max = t_min + exptime / 86400.0
                start = _mjd_to_datetime(t_min)
                # Two consecutive MUSE exposures share one template: their previews
                # have the same original name (original names are not unique).
                tpl = _mjd_to_datetime(_START_MJD[collection] + (i // 2) * 2 + 0.30)
                ingest = start + _dt.timedelta(days=12, hours=i % 24, milliseconds=407)
                dp_id = f"ADP.{_stamp(ingest)}"
                values = {
                    "n": 3442284 + i,
                    "date": _stamp(start),
                    "tpl": _stamp(tpl),
                    "day": start.strftime("%Y%m%d"),
                }
                n_anc = len(ancillaries) if how_many == "all" else i % how_many
                files = []
                for k, (category, ext, pattern, mime) in enumerate([science, *ancillaries[:n_anc]]):
                    archive_id = (
                        dp_id
                        if k == 0
                        else f"ADP.{_stamp(ingest + _dt.timedelta(milliseconds=2 + k))}"
                    )
                    if file_size is not None:
                        size = file_size
                    elif k == 0:
                        size = 20_000 + rng.randrange(10_000)
                    else:
                        size = 3_000 + rng.randrange(5_000)
                    if ext == "FITS":  # whole FITS blocks: header + data, no padding needed
                        size = 2880 * max(2, math.ceil(size / 2880))
                    file_counter += 1
                    files.append(
                        EsoFile(
                            archive_id,
                            category,
                            pattern.format(**values),
                            ext,
                            size,
                            mime,
                            file_counter,
                        )
                    )
                ra = (15.0 * (3 + 2 * len(products)) + 0.37 * i) % 360.0
                dec = -60.0 + 7.5 * (len(products) % 16)
                products.append(
                    EsoProduct(
                        dp_id=dp_id,
                        collection=collection,
                        instrument=instrument,
                        facility=facility,
                        dataproduct_type=dptype,
                        target=targets[i % len(targets)],
                        ra=ra,
                        dec=dec,
                        fov=0.0287 if dptype == "cube" else (1.5 if dptype == "image" else 0.0003),
                        t_min=t_min,
                        t_max=t_max,
                        em_min=em_min,
                        em_max=em_max,
                        proposal_id=proposal,
                        files=files,
                        deprecated=(collection, i) in deprecated,
                    )
                )
        return cls(products, **kwargs)

    @classmethod
    def small(cls, **kwargs) -> EsoArchiveData:
        """The archive used by the tests: 18 products (2 deprecated), about 40 files."""
        return cls.generate(
            {"MUSE": 5, "ESPRESSO": 5, "HARPS": 4, "VVV": 4},
            deprecated=[("MUSE", 2), ("HARPS", 1)],
            **kwargs,
        )

    def add_product(self, product: EsoProduct) -> None:
        """Add a product (e.g. with hostile names); the database is rebuilt on the next query."""
        self.products.append(product)
        self._reindex()

    # -- look-ups -------------------------------------------------------------------------

    def product(self, dp_id: str) -> EsoProduct:
        return self._products[dp_id]

    def find_file(self, archive_id: str) -> tuple[EsoProduct, EsoFile] | None:
        return self._files.get(archive_id)

    def listed_files(self) -> list[tuple[EsoProduct, EsoFile]]:
        """Every (product, file) in ``phase3v2.product_files`` (deprecated products left out)."""
        return [(p, f) for p in self.products if not p.deprecated for f in p.files]

    def file_bytes(self, archive_id: str) -> bytes:
        """The bytes served for a file (a small valid FITS file for ``.fits``)."""
        cached = self._bytes.get(archive_id)
        if cached is not None:
            return cached
        product, f = self._files[archive_id]
        seed = hashlib.sha256(archive_id.encode()).digest()
        rng = random.Random(seed)
        if f.extension == "FITS":
            cards = [
                _card("SIMPLE", True),
                _card("BITPIX", 8),
                _card("NAXIS", 1),
                _card("NAXIS1", f.size - 2880),
                _card("EXTEND", True),
                _card("ORIGIN", "ESO-PARANAL"),
                _card("ARCFILE", archive_id),
                _card("INSTRUME", product.instrument),
                _card("PRODCATG", f.category),
            ]
            header = ("".join(cards) + "END".ljust(80)).ljust(2880).encode("ascii")
            body = header + rng.randbytes(f.size - 2880)
        else:
            body = rng.randbytes(f.size)
        self._bytes[archive_id] = body
        return body

    # -- SQL ------------------------------------------------------------------------------

    def obscore_row(self, product: EsoProduct, origin: str) -> dict:
        half = product.fov / 2.0
        cosd = max(math.cos(math.radians(product.dec)), 1e-6)
        corners = [
            (product.ra - half / cosd, product.dec - half),
            (product.ra + half / cosd, product.dec - half),
            (product.ra + half / cosd, product.dec + half),
            (product.ra - half / cosd, product.dec + half),
        ]
        region = "POLYGON J2000 " + " ".join(f"{ra % 360.0:.6f} {dec:.6f}" for ra, dec in corners)
        release = _mjd_to_datetime(product.t_max + 12)
        total_kb = sum(f.estsize_kb for f in product.files[:1])
        return {
            "abmaglim": 24.1 if product.dataproduct_type != "spectrum" else None,
            "access_estsize": total_kb,
            "access_format": DATALINK_FORMAT,
            "access_url": f"{origin}/datalink/links?ID=ivo://eso.org/ID?{product.dp_id}",
            "bib_reference": None,
            "calib_level": 3 if product.collection == "VVV" else 2,
            "dataproduct_subtype": "tile" if product.dataproduct_type == "image" else None,
            "dataproduct_type": product.dataproduct_type,
            "dp_id": product.dp_id,
            "em_max": product.em_max,
            "em_min": product.em_min,
            "em_res_power": 2989.0 if product.dataproduct_type == "cube" else 115000.0,
            "em_xel": 3681,
            "facility_name": product.facility,
            "filter": "Ks" if product.collection == "VVV" else None,
            "gal_lat": None,
            "gal_lon": None,
            "instrument_name": product.instrument,
            "last_mod_date": release.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "multi_ob": "S",
            "n_obs": 1,
            "o_calib_status": "absolute",
            "o_ucd": "phot.flux.density;em.wl",
            "obs_collection": product.collection,
            "obs_creator_did": f"ivo://eso.org/origfile?{product.science.original_filename}",
            "obs_creator_name": "ESO",
            "obs_id": str(2000000 + (zlib.crc32(product.dp_id.encode()) & 0xFFFFF)),
            "obs_publisher_did": f"ivo://eso.org/ID?{product.dp_id}",
            "obs_release_date": release.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "obs_title": f"{product.collection} {product.target}",
            "obstech": "IFU"
            if product.dataproduct_type == "cube"
            else "ECHELLE"
            if product.dataproduct_type == "spectrum"
            else "IMAGE",
            "p3orig": "IDP" if product.collection in ("MUSE", "ESPRESSO", "HARPS") else "EDP",
            "pol_states": None,
            "pol_xel": None,
            "preview_html": None,
            "proposal_id": product.proposal_id,
            "publication_date": release.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "release_description": f"http://www.eso.org/rm/api/v1/public/releaseDescriptions/{product.collection}",
            "s_dec": product.dec,
            "s_fov": product.fov,
            "s_pixel_scale": 0.2,
            "s_ra": product.ra,
            "s_region": region,
            "s_resolution": 0.8,
            "s_xel1": 320,
            "s_xel2": 320,
            "snr": 35.0,
            "strehl": None,
            "t_exptime": round((product.t_max - product.t_min) * 86400.0, 3),
            "t_max": product.t_max,
            "t_min": product.t_min,
            "t_resolution": None,
            "t_xel": 1,
            "target_name": product.target,
        }

    def build_database(self, origin: str) -> sqlite3.Connection:
        """An SQLite database with ``ivoa``, ``phase3v2`` and ``TAP_SCHEMA`` attached.

        URLs in the tables start with ``origin`` (``http://127.0.0.1:PORT``).
        """
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        for schema in ("ivoa", "phase3v2", "TAP_SCHEMA"):
            conn.execute(f"ATTACH DATABASE ':memory:' AS {schema}")
        _create(conn, "ivoa.ObsCore", OBSCORE_COLUMNS)
        _create(conn, "phase3v2.product_files", PRODUCT_FILES_COLUMNS)
        names = list(OBSCORE_COLUMNS)
        conn.executemany(
            f"INSERT INTO ivoa.ObsCore ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [tuple(self.obscore_row(p, origin)[n] for n in names) for p in self.products],
        )
        rows = [
            (
                p.dp_id,
                f.archive_id,
                f.category,
                f.original_filename,
                f.extension,
                f"{origin}/dataPortal/file/{f.archive_id}",
                f.estsize_kb,
                f.internal_file_id,
            )
            for p, f in self.listed_files()
        ]
        conn.executemany("INSERT INTO phase3v2.product_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("CREATE INDEX phase3v2.pf_product ON product_files (product_id)")
        conn.execute("CREATE INDEX ivoa.oc_dp ON ObsCore (dp_id)")
        # TAP_SCHEMA: the reliable way to discover columns on the real service.
        conn.execute("CREATE TABLE TAP_SCHEMA.schemas (schema_name TEXT, description TEXT)")
        conn.execute(
            "CREATE TABLE TAP_SCHEMA.tables (schema_name TEXT, table_name TEXT, "
            "table_type TEXT, description TEXT)"
        )
        conn.execute(
            "CREATE TABLE TAP_SCHEMA.columns (table_name TEXT, column_name TEXT, datatype TEXT, "
            "unit TEXT, ucd TEXT, utype TEXT, description TEXT, indexed INTEGER, "
            "principal INTEGER, std INTEGER)"
        )
        conn.execute(
            "CREATE TABLE TAP_SCHEMA.keys (key_id TEXT, from_table TEXT, target_table TEXT)"
        )
        conn.execute(
            "CREATE TABLE TAP_SCHEMA.key_columns (key_id TEXT, from_column TEXT, target_column TEXT)"
        )
        for qualified, (schema, _, columns, description) in _TABLES.items():
            conn.execute(
                "INSERT INTO TAP_SCHEMA.schemas VALUES (?, ?)", (schema, f"{schema} schema")
            )
            conn.execute(
                "INSERT INTO TAP_SCHEMA.tables VALUES (?, ?, 'table', ?)",
                (schema, qualified, description),
            )
            conn.executemany(
                "INSERT INTO TAP_SCHEMA.columns VALUES (?, ?, ?, ?, ?, ?, ?, 0, 1, 0)",
                [
                    (qualified, name, dt, unit, ucd, utype, desc)
                    for name, (dt, unit, ucd, utype, desc) in columns.items()
                ],
            )
        conn.execute(
            "INSERT INTO TAP_SCHEMA.keys VALUES ('pf_obscore', 'phase3v2.product_files', 'ivoa.ObsCore')"
        )
        conn.execute(
            "INSERT INTO TAP_SCHEMA.key_columns VALUES ('pf_obscore', 'product_id', 'dp_id')"
        )
        conn.commit()
        _install_functions(conn)
        conn.execute("PRAGMA case_sensitive_like = ON")
        conn.set_authorizer(_read_only)
        return conn


def _card(key: str, value) -> str:
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{value:>20}"
    else:
        text = "'" + str(value).replace("'", "''").ljust(8) + "'"
    return f"{key:<8}= {text}".ljust(80)[:80]


def _create(conn: sqlite3.Connection, qualified: str, columns: dict) -> None:
    sql_types = {"char": "TEXT", "double": "REAL", "long": "INTEGER", "int": "INTEGER"}
    cols = ", ".join(f"{name} {sql_types[spec[0]]}" for name, spec in columns.items())
    conn.execute(f"CREATE TABLE {qualified} ({cols})")


_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    getattr(sqlite3, "SQLITE_RECURSIVE", 33),
}


def _read_only(action, arg1, arg2, dbname, source):
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


# --- ADQL -> SQLite -----------------------------------------------------------------------------


class AdqlError(ValueError):
    """The query is not ADQL this service can run."""


_TOKEN = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(--[^\n]*)|([^'"-]+|-)""", re.DOTALL)
_TOP = re.compile(r"^(\s*SELECT\s+(?:(?:ALL|DISTINCT)\s+)?)TOP\s+(\d+)\s+", re.IGNORECASE)


def adql_to_sqlite(adql: str) -> tuple[str, int | None]:
    """Translate an ADQL query into SQLite; return the SQL and the ``TOP`` value (or None).

    String literals and quoted identifiers pass unchanged; ``TOP n`` becomes a
    limit applied by the caller; ``LIMIT``, several statements and statements
    other than ``SELECT`` are refused.

    Examples
    --------
    >>> adql_to_sqlite("SELECT TOP 3 dp_id FROM ivoa.ObsCore WHERE target_name = 'TOP 1'")
    ("SELECT dp_id FROM ivoa.ObsCore WHERE target_name = 'TOP 1'", 3)
    """
    text = adql.strip().rstrip(";").strip()
    if not text:
        raise AdqlError("empty query")
    pieces: list[tuple[bool, str]] = []  # (is_code, text)
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() != pos:
            raise AdqlError(f"unterminated string or identifier at character {pos}")
        literal, ident, comment, code = match.groups()
        if comment is not None:
            pieces.append((True, " "))
        elif code is not None:
            pieces.append((True, code))
        else:
            pieces.append((False, literal or ident))
        pos = match.end()
    if pos != len(text):
        raise AdqlError(f"unterminated string or identifier at character {pos}")
    code_only = " ".join(p for is_code, p in pieces if is_code)
    if ";" in code_only:
        raise AdqlError("only one statement per query")
    if re.search(r"\bLIMIT\b", code_only, re.IGNORECASE):
        raise AdqlError("LIMIT is not ADQL; use SELECT TOP n")
    if not re.match(r"\s*SELECT\b", code_only, re.IGNORECASE):
        raise AdqlError("only SELECT queries are allowed")
    top = None
    first_code = next(i for i, (is_code, _) in enumerate(pieces) if is_code)
    match = _TOP.match(pieces[first_code][1])
    if match:
        top = int(match.group(2))
        pieces[first_code] = (True, match.group(1) + pieces[first_code][1][match.end() :])
    elif re.search(r"\bTOP\b", pieces[first_code][1][:60], re.IGNORECASE):
        raise AdqlError("TOP must be followed by a whole number")
    sql = "".join(p for _, p in pieces)
    return sql, top


def _parse_shape(value):
    if value is None:
        return None
    parts = str(value).split()
    kind = parts[0].upper()
    if kind in ("POLYGON", "CIRCLE", "POINT", "BOX") and len(parts) > 1:
        try:
            float(parts[1])
        except ValueError:
            parts = [parts[0]] + parts[2:]  # drop the frame (J2000, ICRS...)
    try:
        numbers = [float(x) for x in parts[1:]]
    except ValueError:
        raise sqlite3.DataError(f"cannot read region {value!r}") from None
    return kind, numbers


def _sep(ra1, dec1, ra2, dec2) -> float:
    """Angular distance in degrees (haversine)."""
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = (
        math.sin((dec2 - dec1) / 2) ** 2
        + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2
    )
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def _point_in_polygon(ra, dec, vertices) -> bool:
    # Planar test in a tangent-ish frame around the point (fine for small fields).
    cosd = max(math.cos(math.radians(dec)), 1e-6)
    pts = [(((v_ra - ra + 180.0) % 360.0 - 180.0) * cosd, v_dec - dec) for v_ra, v_dec in vertices]
    inside = False
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        if (y1 > 0) != (y2 > 0) and 0 < x1 + (0 - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _shape_hits_circle(shape, ra, dec, radius) -> bool:
    kind, n = shape
    if kind == "POINT":
        return _sep(n[0], n[1], ra, dec) <= radius
    if kind == "CIRCLE":
        return _sep(n[0], n[1], ra, dec) <= radius + n[2]
    if kind == "POLYGON":
        vertices = list(zip(n[0::2], n[1::2]))
        if _point_in_polygon(ra, dec, vertices):
            return True
        if any(_sep(v_ra, v_dec, ra, dec) <= radius for v_ra, v_dec in vertices):
            return True
        # Edge closer than the radius (planar approximation around the centre).
        cosd = max(math.cos(math.radians(dec)), 1e-6)
        pts = [
            (((v_ra - ra + 180.0) % 360.0 - 180.0) * cosd, v_dec - dec) for v_ra, v_dec in vertices
        ]
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
            dx, dy = x2 - x1, y2 - y1
            length = dx * dx + dy * dy
            t = 0.0 if length == 0 else max(0.0, min(1.0, -(x1 * dx + y1 * dy) / length))
            if math.hypot(x1 + t * dx, y1 + t * dy) <= radius:
                return True
        return False
    raise sqlite3.DataError(f"unsupported region {kind}")


def _geometry_contains(a, b):
    inner, outer = _parse_shape(a), _parse_shape(b)
    if inner is None or outer is None:
        return None
    if outer[0] != "CIRCLE":
        raise sqlite3.DataError("CONTAINS supports a CIRCLE as its second argument")
    ra, dec, radius = outer[1]
    if inner[0] == "POINT":
        return int(_sep(inner[1][0], inner[1][1], ra, dec) <= radius)
    if inner[0] == "CIRCLE":
        return int(_sep(inner[1][0], inner[1][1], ra, dec) + inner[1][2] <= radius)
    if inner[0] == "POLYGON":
        vertices = list(zip(inner[1][0::2], inner[1][1::2]))
        return int(all(_sep(v_ra, v_dec, ra, dec) <= radius for v_ra, v_dec in vertices))
    raise sqlite3.DataError(f"unsupported region {inner[0]}")


def _geometry_intersects(a, b):
    first, second = _parse_shape(a), _parse_shape(b)
    if first is None or second is None:
        return None
    if second[0] == "CIRCLE":
        return int(_shape_hits_circle(first, *second[1]))
    if first[0] == "CIRCLE":
        return int(_shape_hits_circle(second, *first[1]))
    if second[0] == "POINT":
        return int(_shape_hits_circle(first, second[1][0], second[1][1], 0.0))
    raise sqlite3.DataError("INTERSECTS needs a CIRCLE or POINT on one side")


def _install_functions(conn: sqlite3.Connection) -> None:
    def point(frame, ra, dec=None):
        if dec is None:  # POINT(ra, dec) without a frame (ADQL 2.1)
            frame, ra, dec = "", frame, ra
        if ra is None or dec is None:
            return None
        return f"POINT {float(ra)!r} {float(dec)!r}"

    def circle(frame, ra, dec, radius=None):
        if radius is None:
            frame, ra, dec, radius = "", frame, ra, dec
        return f"CIRCLE {float(ra)!r} {float(dec)!r} {float(radius)!r}"

    def distance(p1, p2):
        a, b = _parse_shape(p1), _parse_shape(p2)
        if a is None or b is None:
            return None
        return _sep(a[1][0], a[1][1], b[1][0], b[1][1])

    def coord(index):
        def get(p):
            shape = _parse_shape(p)
            return None if shape is None else shape[1][index]

        return get

    conn.create_function("POINT", 3, point, deterministic=True)
    conn.create_function("POINT", 2, point, deterministic=True)
    conn.create_function("CIRCLE", 4, circle, deterministic=True)
    conn.create_function("CIRCLE", 3, circle, deterministic=True)
    conn.create_function("CONTAINS", 2, _geometry_contains, deterministic=True)
    conn.create_function("INTERSECTS", 2, _geometry_intersects, deterministic=True)
    conn.create_function("DISTANCE", 2, distance, deterministic=True)
    conn.create_function("COORD1", 1, coord(0), deterministic=True)
    conn.create_function("COORD2", 1, coord(1), deterministic=True)
    for name, fn in {
        "SQRT": math.sqrt,
        "LOG10": math.log10,
        "LOG": math.log,
        "EXP": math.exp,
        "SIN": math.sin,
        "COS": math.cos,
        "TAN": math.tan,
        "ASIN": math.asin,
        "ACOS": math.acos,
        "ATAN": math.atan,
        "RADIANS": math.radians,
        "DEGREES": math.degrees,
        "FLOOR": math.floor,
        "CEILING": math.ceil,
    }.items():
        conn.create_function(
            name, 1, lambda x, fn=fn: None if x is None else fn(x), deterministic=True
        )
    conn.create_function(
        "POWER", 2, lambda x, y: None if x is None or y is None else x**y, deterministic=True
    )
    conn.create_function(
        "MOD",
        2,
        lambda x, y: None if x is None or y is None else math.fmod(x, y),
        deterministic=True,
    )
    conn.create_function(
        "ATAN2",
        2,
        lambda y, x: None if x is None or y is None else math.atan2(y, x),
        deterministic=True,
    )
    conn.create_function(
        "TRUNCATE",
        2,
        lambda x, n: None if x is None else math.trunc(x * 10**n) / 10**n,
        deterministic=True,
    )
    conn.create_function("PI", 0, lambda: math.pi, deterministic=True)


# --- VOTable writing ----------------------------------------------------------------------------

_ALL_COLUMNS = {**OBSCORE_COLUMNS, **PRODUCT_FILES_COLUMNS}


def _field_spec(name: str, values: list) -> tuple[str, str, str, str, str]:
    spec = _ALL_COLUMNS.get(name.lower())
    if spec is not None:
        return spec
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, (bool, int)):
        return ("long", "", "", "", "")
    if isinstance(sample, float):
        return ("double", "", "", "", "")
    return ("char", "", "", "", "")


def _field_xml(name: str, spec) -> str:
    datatype, unit, ucd, utype, description = spec
    attrs = [f"name={quoteattr(name)}", f'datatype="{datatype}"']
    if datatype == "char":
        attrs.append('arraysize="*"')
    for key, value in (("unit", unit), ("ucd", ucd), ("utype", utype)):
        if value:
            attrs.append(f"{key}={quoteattr(value)}")
    inner = f"<DESCRIPTION>{escape(description)}</DESCRIPTION>" if description else ""
    if datatype in ("long", "int"):
        null = -2147483648 if datatype == "int" else _NULL_LONG
        inner += f'<VALUES null="{null}"/>'
    return f"   <FIELD {' '.join(attrs)}>{inner}</FIELD>\n"


def _cell(value, datatype: str) -> str:
    if value is None:
        if datatype == "long":
            return f"<TD>{_NULL_LONG}</TD>"
        if datatype == "int":
            return "<TD>-2147483648</TD>"
        return "<TD/>"
    if datatype == "double":
        return f"<TD>{float(value)!r}</TD>"
    if datatype in ("long", "int"):
        return f"<TD>{int(value)}</TD>"
    return f"<TD>{escape(str(value))}</TD>"


_XML_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
)


def votable(
    names: Sequence[str],
    rows: Sequence[Sequence],
    *,
    specs: Sequence | None = None,
    infos_before: Sequence[tuple[str, str, str]] = (("QUERY_STATUS", "OK", ""),),
    infos_after: Sequence[tuple[str, str, str]] = (),
    extra_resources: str = "",
) -> bytes:
    """A VOTable document with one ``RESOURCE type="results"``."""
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    specs = (
        list(specs)
        if specs is not None
        else [_field_spec(n, list(c)) for n, c in zip(names, columns)]
    )
    out = [_XML_HEAD, ' <RESOURCE type="results">\n']
    for name, value, content in infos_before:
        out.append(
            f"  <INFO name={quoteattr(name)} value={quoteattr(value)}>{escape(content)}</INFO>\n"
        )
    out.append("  <TABLE>\n")
    out.extend(_field_xml(n, s) for n, s in zip(names, specs))
    out.append("   <DATA><TABLEDATA>\n")
    types = [s[0] for s in specs]
    for row in rows:
        out.append("    <TR>" + "".join(_cell(v, t) for v, t in zip(row, types)) + "</TR>\n")
    out.append("   </TABLEDATA></DATA>\n  </TABLE>\n")
    for name, value, content in infos_after:
        out.append(
            f"  <INFO name={quoteattr(name)} value={quoteattr(value)}>{escape(content)}</INFO>\n"
        )
    out.append(" </RESOURCE>\n")
    out.append(extra_resources)
    out.append("</VOTABLE>\n")
    return "".join(out).encode("utf-8")


def error_votable(message: str) -> bytes:
    """A TAP error document: ``INFO QUERY_STATUS="ERROR"`` with the message."""
    return (
        _XML_HEAD + ' <RESOURCE type="results">\n'
        f'  <INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>\n'
        " </RESOURCE>\n</VOTABLE>\n"
    ).encode("utf-8")


# --- the application ----------------------------------------------------------------------------

ESO_DATA_KEY = web.AppKey("eso_data", EsoArchiveData)
ESO_FAULTS_KEY = web.AppKey("eso_faults", FaultConfig)


def eso_classifier(request: web.BaseRequest) -> str | None:
    """``/dataPortal/file`` is ``"data"``; TAP and DataLink are ``"search"``."""
    if request.path.startswith(("/dataPortal/", "/dataportal_new/")):
        return "data"
    return "search"


class _Databases:
    """One SQLite database per origin the server is reached through, rebuilt when data change."""

    def __init__(self, data: EsoArchiveData):
        self.data = data
        self._lock = threading.Lock()
        self._dbs: dict[str, tuple[int, sqlite3.Connection]] = {}

    def get(self, origin: str) -> sqlite3.Connection:
        with self._lock:
            entry = self._dbs.get(origin)
            if entry is None or entry[0] != self.data.version:
                entry = (self.data.version, self.data.build_database(origin))
                self._dbs[origin] = entry
            return entry[1]


def _origin(request: web.BaseRequest) -> str:
    return f"{request.scheme}://{request.host}"


async def _params(request: web.Request) -> dict[str, str]:
    params = {k.upper(): v for k, v in request.query.items()}
    if request.method == "POST":
        form = await request.post()
        params.update({k.upper(): v for k, v in form.items() if isinstance(v, str)})
    return params


def _votable_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=VOTABLE_TYPE, charset="utf-8")


def run_query(
    conn: sqlite3.Connection, adql: str, limit: int
) -> tuple[list[str], list[tuple], bool]:
    """Run ADQL; return (column names, rows, overflowed)."""
    sql, top = adql_to_sqlite(adql)
    wanted = limit if top is None else min(top, limit)
    try:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchmany(wanted + 1) if wanted >= 0 else []
    except sqlite3.Error as exc:
        raise AdqlError(str(exc)) from None
    overflow = len(rows) > wanted and (top is None or top > limit)
    return names, rows[:wanted], overflow


def make_eso_app(data: EsoArchiveData, faults: FaultConfig | None = None) -> web.Application:
    """Build the aiohttp application serving an ESO archive.

    Parameters
    ----------
    data : EsoArchiveData
        What to serve.
    faults : FaultConfig, optional
        Fault configuration; a fresh (inactive) one by default.

    Returns
    -------
    aiohttp.web.Application
    """
    faults = faults if faults is not None else FaultConfig()
    app = web.Application(middlewares=[fault_middleware(faults, eso_classifier)])
    app[ESO_DATA_KEY] = data
    app[ESO_FAULTS_KEY] = faults
    databases = _Databases(data)

    async def sync(request: web.Request) -> web.StreamResponse:
        params = await _params(request)
        request_kind = params.get("REQUEST", "doQuery")
        if request_kind.lower() != "doquery":
            return _votable_response(
                error_votable(f"unsupported REQUEST {request_kind!r}; use doQuery"), 400
            )
        lang = params.get("LANG", "ADQL")
        if not lang.upper().startswith("ADQL"):
            return _votable_response(error_votable(f"unsupported LANG {lang!r}; use ADQL"), 400)
        fmt = (params.get("RESPONSEFORMAT") or params.get("FORMAT") or "votable").lower()
        if fmt not in (
            "votable",
            VOTABLE_TYPE,
            "application/x-votable+xml;serialization=tabledata",
            "text/xml",
            "application/xml",
        ):
            return _votable_response(
                error_votable(f"unsupported RESPONSEFORMAT {fmt!r}; this service answers votable"),
                400,
            )
        query = params.get("QUERY")
        if not query:
            return _votable_response(error_votable("missing QUERY parameter"), 400)
        limit = data.default_maxrec
        if "MAXREC" in params:
            try:
                limit = int(params["MAXREC"])
            except ValueError:
                return _votable_response(
                    error_votable(f"MAXREC must be an integer, got {params['MAXREC']!r}"), 400
                )
            if limit < 0:
                return _votable_response(error_votable("MAXREC must not be negative"), 400)
        limit = min(limit, data.hard_maxrec)
        conn = databases.get(_origin(request))
        try:
            names, rows, overflow = run_query(conn, query, limit)
        except AdqlError as exc:
            return _votable_response(error_votable(f"Cannot execute query: {exc}"), 400)
        after = [("QUERY_STATUS", "OVERFLOW", "")] if overflow else []
        body = votable(
            names,
            rows,
            infos_before=[("QUERY_STATUS", "OK", ""), ("QUERY", query, "")],
            infos_after=after,
        )
        return _votable_response(body)

    async def capabilities(request: web.Request) -> web.Response:
        base = _origin(request) + "/tap_obs"
        xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
    xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">
 <capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">
  <interface xsi:type="vs:ParamHTTP" role="std"><accessURL use="base">{escape(base)}</accessURL></interface>
  <dataModel ivo-id="ivo://ivoa.net/std/ObsCore#core-1.1">ObsCore-1.1</dataModel>
  <language><name>ADQL</name><version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>
   <description>ADQL 2.0</description></language>
  <outputFormat><mime>application/x-votable+xml</mime><alias>votable</alias></outputFormat>
  <outputLimit><default unit="row">{data.default_maxrec}</default><hard unit="row">{data.hard_maxrec}</hard></outputLimit>
 </capability>
 <capability standardID="ivo://ivoa.net/std/VOSI#capabilities">
  <interface xsi:type="vs:ParamHTTP"><accessURL use="full">{escape(base)}/capabilities</accessURL></interface>
 </capability>
 <capability standardID="ivo://ivoa.net/std/VOSI#availability">
  <interface xsi:type="vs:ParamHTTP"><accessURL use="full">{escape(base)}/availability</accessURL></interface>
 </capability>
 <capability standardID="ivo://ivoa.net/std/VOSI#tables">
  <interface xsi:type="vs:ParamHTTP"><accessURL use="full">{escape(base)}/tables</accessURL></interface>
 </capability>
</vosi:capabilities>
"""
        return web.Response(text=xml, content_type="text/xml")

    async def availability(request: web.Request) -> web.Response:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
            "<vosi:available>true</vosi:available>"
            "<vosi:note>service is accepting queries</vosi:note></vosi:availability>\n"
        )
        return web.Response(text=xml, content_type="text/xml")

    async def tables(request: web.Request) -> web.Response:
        out = [
            (
                '<?xml version="1.0" encoding="UTF-8"?>\n<vosi:tableset '
                'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
                'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            )
        ]
        for qualified, (schema, _, columns, description) in _TABLES.items():
            out.append(
                f" <schema><name>{schema}</name>\n  <table><name>{qualified}</name>"
                f"<description>{escape(description)}</description>\n"
            )
            for name, (datatype, unit, ucd, utype, desc) in columns.items():
                out.append(
                    f"   <column><name>{name}</name>"
                    + (f"<description>{escape(desc)}</description>" if desc else "")
                    + (f"<unit>{escape(unit)}</unit>" if unit else "")
                    + (f"<ucd>{escape(ucd)}</ucd>" if ucd else "")
                    + (f"<utype>{escape(utype)}</utype>" if utype else "")
                    + '<dataType xsi:type="vs:VOTableType"'
                    + (' arraysize="*"' if datatype == "char" else "")
                    + f">{datatype}</dataType></column>\n"
                )
            out.append("  </table>\n </schema>\n")
        out.append("</vosi:tableset>\n")
        return web.Response(text="".join(out), content_type="text/xml")

    async def datalink(request: web.Request) -> web.Response:
        # pyvo sends the ID unencoded (it contains a second "?"): take everything
        # after "ID=" up to the next "&".
        raw = request.rel_url.raw_query_string
        match = re.search(r"(?:^|&)ID=([^&]*)", raw, re.IGNORECASE)
        if match is None:
            return _votable_response(error_votable("missing ID parameter"), 400)
        ident = unquote(match.group(1).replace("+", " "))
        origin = _origin(request)
        dp_id = ident.split("?", 1)[1] if ident.lower().startswith("ivo://eso.org/id?") else ident
        names = [f[0] for f in DATALINK_FIELDS]
        specs = [(dt, unit, ucd, "", "") for _, dt, unit, ucd in DATALINK_FIELDS]
        found = data.find_file(dp_id)
        extra = ""
        if found is None:
            rows = [
                (
                    ident,
                    None,
                    None,
                    f"NotFoundFault: {ident} not found",
                    "#this",
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            ]
        else:
            product, target = found
            files = product.files if target is product.science else [target]
            rows = []
            for f in files:
                semantics = "#this" if f is target else "#auxiliary"
                description = (
                    "Requested file"
                    if f is target
                    else "Ancillary file associated to the requested file"
                )
                rows.append(
                    (
                        ident,
                        f"{origin}/dataPortal/file/{f.archive_id}",
                        None,
                        None,
                        semantics,
                        description,
                        f.content_type,
                        f.size,
                        f.original_filename,
                        f.category,
                        f"{origin}/datalink/links?ID=ivo://eso.org/ID?{f.archive_id}",
                    )
                )
            if target is product.science:
                rows.append(
                    (
                        ident,
                        f"{origin}/dataset/{product.dp_id}",
                        None,
                        None,
                        "http://archive.eso.org/rdf/datalink/eso#data_documentation",
                        "Release description of the collection",
                        "text/html",
                        None,
                        None,
                        "Data documentation",
                        None,
                    )
                )
                if product.dataproduct_type in ("cube", "image"):
                    service_id = f"{product.dp_id}_soda"
                    rows.append(
                        (
                            ident,
                            None,
                            service_id,
                            None,
                            "#cutout",
                            "Cutout of #this (SODA-sync)",
                            "application/fits",
                            None,
                            None,
                            None,
                            None,
                        )
                    )
                    extra = (
                        f' <RESOURCE type="meta" utype="adhoc:service" ID={quoteattr(service_id)}>\n'
                        f'  <PARAM name="accessURL" datatype="char" arraysize="*" '
                        f"value={quoteattr(origin + '/dataPortal/soda/sync')}/>\n"
                        '  <PARAM name="standardID" datatype="char" arraysize="*" '
                        'value="ivo://ivoa.net/std/SODA#sync-1.0"/>\n'
                        '  <GROUP name="inputParams">\n'
                        '   <PARAM name="ID" datatype="char" arraysize="*" '
                        f"value={quoteattr('ivo://eso.org/ID?' + product.dp_id)}/>\n"
                        "  </GROUP>\n </RESOURCE>\n"
                    )
        return _votable_response(
            votable(names, rows, specs=specs, infos_before=(), extra_resources=extra)
        )

    async def portal_file(request: web.Request) -> web.StreamResponse:
        archive_id = request.match_info["archive_id"]
        found = data.find_file(archive_id)
        if found is None:
            return web.Response(status=404, text=f"404 Not Found: no file {archive_id}\n")
        _, f = found
        name = data.content_disposition.get(archive_id, f.portal_name)
        return await send_bytes(
            request,
            data.file_bytes(archive_id),
            content_type=f.content_type,
            headers={"Content-Disposition": f"attachment; filename={name}"},
            faults=faults,
        )

    app.router.add_route("GET", "/tap_obs/sync", sync)
    app.router.add_route("POST", "/tap_obs/sync", sync)
    app.router.add_get("/tap_obs/capabilities", capabilities)
    app.router.add_get("/tap_obs/availability", availability)
    app.router.add_get("/tap_obs/tables", tables)
    app.router.add_get("/datalink/links", datalink)
    app.router.add_get("/dataPortal/file/{archive_id}", portal_file)
    app.router.add_get("/dataportal_new/file/{archive_id}", portal_file)
    return app


class EsoServer(LocalServer):
    """A `LocalServer` serving an `EsoArchiveData`.

    Parameters
    ----------
    data : EsoArchiveData, optional
        What to serve; `EsoArchiveData.small` by default.
    faults : FaultConfig, optional
        Fault configuration; a fresh (inactive) one by default.
    host, port
        Where to listen (``port=0`` picks a free port).
    """

    def __init__(
        self,
        data: EsoArchiveData | None = None,
        faults: FaultConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.data = data if data is not None else EsoArchiveData.small()
        self.faults = faults if faults is not None else FaultConfig()
        super().__init__(make_eso_app(self.data, self.faults), host=host, port=port)

    def environment(self) -> dict[str, str]:
        """The environment variables that point the ESO client at this server."""
        return {"SUNPY_ARCHIVES_ESO_URL": self.url}

    @property
    def tap_url(self) -> str:
        """The TAP service, ``http://127.0.0.1:PORT/tap_obs``."""
        return f"{self.url}/tap_obs"

    def file_url(self, archive_id: str) -> str:
        """``/dataPortal/file/<archive_id>`` on this server."""
        return f"{self.url}/dataPortal/file/{archive_id}"

    def datalink_url(self, dp_id: str) -> str:
        """The DataLink URL of a product or file on this server."""
        return f"{self.url}/datalink/links?ID=ivo://eso.org/ID?{dp_id}"


def start_eso_server(
    data: EsoArchiveData | None = None,
    faults: FaultConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
) -> EsoServer:
    """Start an ESO archive server in a background thread.

    Returns
    -------
    EsoServer
        The running server (``.url``, ``.tap_url``, ``.faults``, ``.data``); call ``.stop()``.

    Examples
    --------
    >>> server = start_eso_server()  # doctest: +SKIP
    >>> import pyvo  # doctest: +SKIP
    >>> pyvo.dal.TAPService(server.tap_url).search("SELECT TOP 1 dp_id FROM ivoa.ObsCore")  # doctest: +SKIP
    """
    return EsoServer(data, faults, host=host, port=port).start()
