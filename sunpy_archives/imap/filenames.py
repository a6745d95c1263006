"""
The IMAP file-name convention and the SDC's relative paths (PROTOCOLS 2.4).

Every file the Science Data Center holds has a name that says where it lives:
science, quicklook and dependency files under
``imap/[quicklook/|dependency/]<instrument>/<level>/<YYYY>/<MM>/``, ancillary
files under ``imap/ancillary/<instrument>/``, release manifests under
``imap/release/<instrument>/`` and SPICE kernels under
``imap/spice/<subdir>/``. `parse_filename` reads a name, `relative_path`
gives the path the SDC serves it from (and the path below ``IMAP_DATA_DIR``
where the official client stores it).

Examples
--------
>>> relative_path("imap_swe_l1b_sci_20240510_v012.cdf")
'imap/swe/l1b/2024/05/imap_swe_l1b_sci_20240510_v012.cdf'
>>> parse_filename("imap_mag_l2_norm-rtn_20260115_v001.0003.cdf").version
'v001.0003'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath

from ..core.errors import BadInputError

__all__ = [
    "ARCHIVE",
    "INSTRUMENTS",
    "LEVELS",
    "TABLES",
    "SCIENCE_EXTENSIONS",
    "ANCILLARY_EXTENSIONS",
    "KERNEL_TYPES",
    "ImapFilename",
    "parse_filename",
    "relative_path",
    "sdc_dir",
    "parse_version",
    "format_version",
    "is_valid_date",
]

ARCHIVE = "IMAP"

#: Instruments (and data sources) the SDC knows.
INSTRUMENTS: tuple[str, ...] = ("codice", "glows", "hi", "hit", "ialirt", "idex", "l1const", "lo",
                                "mag", "spacecraft", "swapi", "swe", "ultra")
#: Data levels the SDC knows.
LEVELS: tuple[str, ...] = ("l0", "l1", "l1a", "l1b", "l1c", "l1ca", "l1cb", "l1d", "l2", "l2a",
                           "l2b", "l2c", "l3", "l3a", "l3b", "l3c", "l3d", "l3e")
#: Tables of the SDC database.
TABLES: tuple[str, ...] = ("science", "ancillary", "spice")
SCIENCE_EXTENSIONS: tuple[str, ...] = ("cdf", "pkts")
QUICKLOOK_EXTENSIONS: tuple[str, ...] = ("jpg", "pdf", "png")
DEPENDENCY_EXTENSIONS: tuple[str, ...] = ("json",)
ANCILLARY_EXTENSIONS: tuple[str, ...] = ("cdf", "csv", "dat", "json", "zip", "tsv", "pgm", "xlsx")
#: Instruments whose products are organised by repointing.
REPOINT_INSTRUMENTS: tuple[str, ...] = ("glows", "hi", "lo", "ultra")

#: SPICE kernel type -> folder below ``imap/spice/``.
KERNEL_TYPES: dict[str, str] = {
    "attitude_history": "ck", "attitude_predict": "ck", "pointing_attitude": "ck",
    "lo_pivot_attitude": "ck", "spin": "spin", "repoint": "repoint",
    "ephemeris_reconstructed": "spk", "ephemeris_nominal": "spk", "ephemeris_predicted": "spk",
    "ephemeris_90days": "spk", "ephemeris_long": "spk", "ephemeris_launch": "spk",
    "planetary_ephemeris": "spk", "lagrange_point": "spk", "planetary_constants": "pck",
    "earth_attitude": "pck", "leapseconds": "lsk", "spacecraft_clock": "sclk",
    "imap_frames": "fk", "science_frames": "fk", "metakernel": "mk", "thruster": "activities",
}

_MAX_MAJOR, _MAX_MINOR_WITH_MAJOR, _MAX_MINOR_LEGACY = 999, 9999, 999
_VERSION = r"v\d{3}\.\d{4}|v\d{3}"
_SCIENCE_RE = re.compile(
    r"^imap_(?P<instrument>[^_]+)_(?P<level>[^_]+)_(?P<descriptor>[^_]+)_(?P<start>\d{8})"
    r"(?:-(?P<interval>repoint|cr)(?P<number>\d{5}))?_(?P<version>" + _VERSION + r")"
    r"\.(?P<extension>[^.]+)$")
_ANCILLARY_RE = re.compile(
    r"^imap_(?P<instrument>[^_]+)_(?P<descriptor>[^_]+)_(?P<start>\d{8})"
    r"(?:_(?P<end>\d{8})|-repoint(?P<number>\d{5}))?_(?P<version>v\d{3})"
    r"\.(?P<extension>[A-Za-z0-9]+)$")

# SPICE kernels: (regex, how to name the type). Each regex names the parts it has.
_DOY = r"\d{4}_\d{3}"
_SPICE_PATTERNS: tuple[tuple[re.Pattern, str | dict[str, str]], ...] = (
    (re.compile(rf"^imap_(?P<start_doy>{_DOY})_(?P<end_doy>{_DOY})_(?P<version>\d+)"
                r"\.(?P<suffix>ah\.bc|ap\.bc|spin\.csv|spin)$", re.I),
     {"ah.bc": "attitude_history", "ap.bc": "attitude_predict", "spin.csv": "spin", "spin": "spin"}),
    (re.compile(rf"^imap_dps_(?P<start_doy>{_DOY})_(?P<end_doy>{_DOY})_(?P<version>\d+)\.ah\.bc$",
                re.I), "pointing_attitude"),
    (re.compile(rf"^imap_lopivot-repoint(?P<repointing>\d{{5}})_(?P<start_doy>{_DOY})_"
                rf"(?P<end_doy>{_DOY})_(?P<version>\d+)\.bc$", re.I), "lo_pivot_attitude"),
    (re.compile(rf"^imap_(?P<end_doy>{_DOY})_(?P<version>\d+)\.(?P<suffix>repoint\.csv|repoint)$",
                re.I), "repoint"),
    (re.compile(r"^imap_(?P<kind>recon|nom|pred|90days|long|launch)_(?:od\d{3}_)?"
                r"(?P<start>\d{8})_(?P<end>\d{8})(?:_v(?P<version>\d*))?\.bsp$", re.I),
     {"recon": "ephemeris_reconstructed", "nom": "ephemeris_nominal",
      "pred": "ephemeris_predicted", "90days": "ephemeris_90days", "long": "ephemeris_long",
      "launch": "ephemeris_launch"}),
    (re.compile(r"^(?P<kind>L1_de|de|pck|naif|imap_sclk_)(?P<version>\d+)\.(?:tls|tpc|bsp|tsc)$",
                re.I),
     {"l1_de": "lagrange_point", "de": "planetary_ephemeris", "pck": "planetary_constants",
      "naif": "leapseconds", "imap_sclk_": "spacecraft_clock"}),
    (re.compile(r"^imap_science_(?P<version>\d+)\.tf$", re.I), "science_frames"),
    (re.compile(r"^imap_(?P<version>\d+)\.tf$", re.I), "imap_frames"),
    (re.compile(rf"^imap_(?P<start_doy>{_DOY})_(?P<end_doy>{_DOY})_[A-Za-z0-9\-_]+_"
                r"(?P<version>\d{2})\.sff$", re.I), "thruster"),
    (re.compile(r"^imap_sdc_metakernel_(?P<year>\d{4})_v(?P<version>\d{3})\.tm$"), "metakernel"),
    (re.compile(rf"^imap_(?P<start_doy>{_DOY})_a(?P<version>\d{{2}})\.spice\.mk$", re.I),
     "metakernel"),
    (re.compile(rf"^IMAP_(?P<start_doy>{_DOY})_e(?P<version>\d{{2}})\.mk$", re.I), "metakernel"),
    (re.compile(r"^earth_(?P<start6>\d{6})_(?P<end6>\d{6})_\d{6}\.bpc$", re.I), "earth_attitude"),
)


def is_valid_date(text: str) -> bool:
    """True if ``text`` is a real date written ``YYYYMMDD``.

    Examples
    --------
    >>> is_valid_date("20250230")
    False
    """
    if not isinstance(text, str) or not re.fullmatch(r"\d{8}", text):
        return False
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


def parse_version(text: str) -> tuple[int | None, int]:
    """``"v001.0002"`` -> ``(1, 2)``; the legacy ``"v012"`` -> ``(None, 12)``.

    Raises
    ------
    BadInputError
        ``text`` is not ``vMMM.mmmm`` nor ``vXXX``.

    Examples
    --------
    >>> parse_version("v002.0010")
    (2, 10)
    """
    match = re.fullmatch(r"v(\d{3})\.(\d{4})|v(\d{3})", str(text).strip())
    if match is None:
        raise BadInputError(f"{text!r} is not an IMAP version; use 'vMMM.mmmm' (e.g. 'v001.0002'), "
                            "the legacy 'vXXX' (e.g. 'v003') or 'latest'", archive=ARCHIVE)
    if match.group(3) is not None:
        return None, int(match.group(3))
    return int(match.group(1)), int(match.group(2))


def format_version(major: int | None, minor: int) -> str:
    """The canonical version string: ``vMMM.mmmm``, or ``vXXX`` without a major part.

    Examples
    --------
    >>> format_version(1, 2), format_version(None, 7)
    ('v001.0002', 'v007')
    """
    if major is None:
        return f"v{int(minor):03d}"
    return f"v{int(major):03d}.{int(minor):04d}"


def version_key(major: int | None, minor: int) -> tuple[int, int, int]:
    """Sort key: every legacy (minor-only) version sorts before every ``vMMM.mmmm``."""
    return (0, 0, minor) if major is None else (1, major, minor)


@dataclass(frozen=True)
class ImapFilename:
    """What an IMAP file name says.

    Attributes
    ----------
    kind : str
        ``"science"``, ``"quicklook"``, ``"dependency"``, ``"ancillary"``,
        ``"release"`` or ``"spice"``.
    name : str
        The file name itself.
    instrument, level, descriptor : str or None
    start_date, end_date : str or None
        ``YYYYMMDD``.
    repointing, cr : int or None
    version : str or None
        As written in the name (kernels: the digits of their own version field).
    major_version, minor_version : int or None
    extension : str
    kernel_type : str or None
        SPICE kernels only (e.g. ``"leapseconds"``).
    """

    kind: str
    name: str
    instrument: str | None = None
    level: str | None = None
    descriptor: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    repointing: int | None = None
    cr: int | None = None
    version: str | None = None
    major_version: int | None = None
    minor_version: int | None = None
    extension: str = ""
    kernel_type: str | None = None

    @property
    def sdc_dir(self) -> str:
        """The folder of this file on the SDC (and below ``IMAP_DATA_DIR``)."""
        if self.kind in ("science", "quicklook", "dependency"):
            prefix = "imap" if self.kind == "science" else f"imap/{self.kind}"
            return f"{prefix}/{self.instrument}/{self.level}/{self.start_date[:4]}/{self.start_date[4:6]}"
        if self.kind in ("ancillary", "release"):
            return f"imap/{self.kind}/{self.instrument}"
        return f"imap/spice/{KERNEL_TYPES[self.kernel_type]}"

    @property
    def relative_path(self) -> str:
        """``sdc_dir/name``: the path after ``/download/``."""
        return f"{self.sdc_dir}/{self.name}"


def _problem(name: str, why: str) -> BadInputError:
    return BadInputError(
        f"{name!r} is not a valid IMAP file name: {why}. Science names look like "
        "imap_<instrument>_<level>_<descriptor>_<YYYYMMDD>[-repoint<NNNNN>]_<vMMM.mmmm>.<ext>, "
        "ancillary names like imap_<instrument>_<descriptor>_<YYYYMMDD>[_<YYYYMMDD>]_<vXXX>.<ext>",
        archive=ARCHIVE)


def _science(name: str) -> ImapFilename | str:
    match = _SCIENCE_RE.match(name)
    if match is None:
        return "it does not follow the science pattern"
    parts = match.groupdict()
    ext = parts["extension"]
    if ext in SCIENCE_EXTENSIONS:
        kind = "science"
    elif ext in QUICKLOOK_EXTENSIONS:
        kind = "quicklook"
    elif ext in DEPENDENCY_EXTENSIONS:
        kind = "dependency"
    else:
        return f"extension {ext!r} is not one of {', '.join(SCIENCE_EXTENSIONS)}"
    if parts["instrument"] not in INSTRUMENTS:
        return f"instrument {parts['instrument']!r} is not one of {', '.join(INSTRUMENTS)}"
    if parts["level"] not in LEVELS:
        return f"data level {parts['level']!r} is not one of {', '.join(LEVELS)}"
    if not is_valid_date(parts["start"]):
        return f"{parts['start']} is not a date (YYYYMMDD)"
    major, minor = parse_version(parts["version"])
    number = int(parts["number"]) if parts["number"] else None
    return ImapFilename(
        kind=kind, name=name, instrument=parts["instrument"], level=parts["level"],
        descriptor=parts["descriptor"], start_date=parts["start"],
        repointing=number if parts["interval"] == "repoint" else None,
        cr=number if parts["interval"] == "cr" else None, version=parts["version"],
        major_version=major, minor_version=minor, extension=ext)


def _ancillary(name: str) -> ImapFilename | str:
    match = _ANCILLARY_RE.match(name)
    if match is None:
        return "it does not follow the ancillary pattern"
    parts = match.groupdict()
    ext = parts["extension"]
    kind = "release" if ext == "txt" else "ancillary"
    if kind == "ancillary" and ext not in ANCILLARY_EXTENSIONS:
        return f"extension {ext!r} is not one of {', '.join(ANCILLARY_EXTENSIONS)}"
    if parts["instrument"] not in INSTRUMENTS:
        return f"instrument {parts['instrument']!r} is not one of {', '.join(INSTRUMENTS)}"
    for date in (parts["start"], parts["end"]):
        if date is not None and not is_valid_date(date):
            return f"{date} is not a date (YYYYMMDD)"
    _, minor = parse_version(parts["version"])
    return ImapFilename(
        kind=kind, name=name, instrument=parts["instrument"], descriptor=parts["descriptor"],
        start_date=parts["start"], end_date=parts["end"],
        repointing=int(parts["number"]) if parts["number"] else None, version=parts["version"],
        minor_version=minor, extension=ext)


def _doy(text: str) -> str:
    return datetime.strptime(text, "%Y_%j").strftime("%Y%m%d")


def _spice(name: str) -> ImapFilename | str:
    for pattern, kind in _SPICE_PATTERNS:
        match = pattern.match(name)
        if match is None:
            continue
        parts = match.groupdict()
        if isinstance(kind, dict):
            key = (parts.get("suffix") or parts.get("kind") or "").lower()
            kernel_type = kind[key]
        else:
            kernel_type = kind
        try:
            start = _doy(parts["start_doy"]) if parts.get("start_doy") else parts.get("start")
            end = _doy(parts["end_doy"]) if parts.get("end_doy") else parts.get("end")
            if parts.get("start6"):
                start = datetime.strptime(parts["start6"], "%y%m%d").strftime("%Y%m%d")
                end = datetime.strptime(parts["end6"], "%y%m%d").strftime("%Y%m%d")
            if parts.get("year"):
                start = f"{parts['year']}0101"
        except ValueError:
            return "its dates do not exist"
        for date in (start, end):
            if date is not None and not is_valid_date(date):
                return f"{date} is not a date"
        return ImapFilename(
            kind="spice", name=name, start_date=start, end_date=end,
            repointing=int(parts["repointing"]) if parts.get("repointing") else None,
            version=parts.get("version") or None, extension=PurePath(name).suffix[1:],
            kernel_type=kernel_type)
    return "it matches no SPICE kernel pattern"


def parse_filename(name: str | PurePath) -> ImapFilename:
    """Parse an IMAP file name (a path is accepted; only its last part is read).

    Raises
    ------
    BadInputError
        The name follows none of the SDC conventions (the message says why).

    Examples
    --------
    >>> f = parse_filename("imap/glows/l3e/2025/01/"
    ...                    "imap_glows_l3e_survival-probability-hi-45_20250101-repoint00002_v001.0002.cdf")
    >>> f.instrument, f.level, f.repointing, f.major_version, f.minor_version
    ('glows', 'l3e', 2, 1, 2)
    >>> parse_filename("naif0012.tls").kernel_type
    'leapseconds'
    """
    text = PurePath(str(name)).name
    if not text or text != text.strip() or any(ord(c) < 32 for c in text):
        raise _problem(str(name), "it is empty or holds control characters or spaces")
    reasons = []
    for parser in (_science, _ancillary, _spice):
        try:
            result = parser(text)
        except BadInputError as exc:  # a malformed version inside a matching name
            result = str(exc)
        if isinstance(result, ImapFilename):
            return result
        reasons.append(result)
    # The most specific reason: one that is not "does not follow ... pattern".
    specific = [r for r in reasons if "pattern" not in r]
    raise _problem(text, specific[0] if specific else "it follows no IMAP naming pattern")


def relative_path(name: str | PurePath) -> str:
    """The SDC path of a file (``imap/<instrument>/<level>/<YYYY>/<MM>/<name>``...).

    Examples
    --------
    >>> relative_path("imap_mag_calibration_20240229_v001.cdf")
    'imap/ancillary/mag/imap_mag_calibration_20240229_v001.cdf'
    >>> relative_path("imap_2026_062_2026_063_01.ah.bc")
    'imap/spice/ck/imap_2026_062_2026_063_01.ah.bc'
    """
    return parse_filename(name).relative_path


def sdc_dir(name: str | PurePath) -> str:
    """The SDC folder of a file: `relative_path` without the name.

    Examples
    --------
    >>> sdc_dir("imap_swe_l1b_sci_20240510_v012.cdf")
    'imap/swe/l1b/2024/05'
    """
    return parse_filename(name).sdc_dir
