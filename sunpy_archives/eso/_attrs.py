"""
Search attributes of the ESO client, shown to users as ``a.eso.*``.

Every value is checked for syntax when the attr is built, before any network
call. Values that reach ADQL are also escaped by `sunpy_archives.eso.adql`,
so no value can change the structure of the query.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib import resources

from sunpy.net.attr import DataAttr, SimpleAttr

from ..core.errors import BadInputError

__all__ = [
    "ARCHIVE",
    "Category",
    "Collection",
    "Cone",
    "Extension",
    "MaxRecords",
    "ProductID",
    "known_values",
]

ARCHIVE = "ESO"

_CATEGORY = re.compile(r"^(SCIENCE|ANCILLARY)(\.[A-Z0-9_]+)*$")
_PRODUCT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(\.[A-Za-z0-9:_+-]+)+$")
_EXTENSION = re.compile(r"^[A-Z0-9]{1,10}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@lru_cache(maxsize=1)
def _registered() -> dict:
    text = resources.files("sunpy_archives.eso").joinpath("data/attrs.json").read_text()
    return json.loads(text)


def known_values(kind: str) -> list[str]:
    """Registered names of one kind (``collections``, ``instruments``, ``categories``, ``extensions``)."""
    return [name for name, _ in _registered()[kind]]


def registered_pairs(kind: str) -> list[tuple[str, str]]:
    """(name, description) pairs of one kind, as Fido's registry wants them."""
    return [(name, desc) for name, desc in _registered()[kind]]


def _text(value, what: str, example: str) -> str:
    text = str(value).strip()
    if not text or _CONTROL.search(text):
        raise BadInputError(
            f"{value!r} is not a valid {what}; give e.g. {example!r}", archive=ARCHIVE
        )
    return text


class Collection(SimpleAttr):
    """
    Phase 3 collection (``ivoa.ObsCore.obs_collection``), e.g. ``a.eso.Collection("MUSE")``.

    Names are matched exactly; a name that differs from a registered collection
    only in case is corrected to it (``"muse"`` means ``"MUSE"``).

    Examples
    --------
    >>> import sunpy_archives.eso.attrs as eso
    >>> eso.Collection("muse").value
    'MUSE'
    """

    def __init__(self, value):
        text = _text(value, "collection name", "MUSE")
        by_case = {name.upper(): name for name in known_values("collections")}
        super().__init__(by_case.get(text.upper(), text))


class Category(SimpleAttr):
    """
    File category (``phase3v2.product_files.eso_category``) or a prefix of one.

    ``a.eso.Category("ANCILLARY")`` selects every ancillary file,
    ``a.eso.Category("ANCILLARY.PREVIEW")`` only previews, ``"SCIENCE"`` only
    science files. A prefix matches whole dot-separated tokens
    (``"ANCILLARY.IMAGE"`` matches ``ANCILLARY.IMAGE.WHITELIGHT``, ``"ANCILLARY.IM"`` does not).

    Examples
    --------
    >>> import sunpy_archives.eso.attrs as eso
    >>> eso.Category("ancillary.preview").value
    'ANCILLARY.PREVIEW'
    """

    def __init__(self, value):
        text = _text(value, "category", "ANCILLARY.PREVIEW").upper()
        if not _CATEGORY.match(text):
            raise BadInputError(
                f"{value!r} is not an ESO file category; use SCIENCE or ANCILLARY, optionally "
                "followed by dot-separated tokens, e.g. 'ANCILLARY.PREVIEW' (see print(a.eso.Category))",
                archive=ARCHIVE,
            )
        super().__init__(text)

    def matches(self, category: str) -> bool:
        """Whether a file's ``eso_category`` is this category or lies under it."""
        category = str(category).upper()
        return category == self.value or category.startswith(self.value + ".")


class ProductID(SimpleAttr):
    """
    A product identifier (``ivoa.ObsCore.dp_id``), e.g. ``a.eso.ProductID("ADP.2024-03-19T05:58:04.407")``.

    The publisher DID form ``ivo://eso.org/ID?ADP...`` is accepted too.
    Combine several with ``|``.
    """

    def __init__(self, value):
        text = _text(value, "product id", "ADP.2024-03-19T05:58:04.407")
        if text.lower().startswith("ivo://eso.org/id?"):
            text = text.split("?", 1)[1]
        if not _PRODUCT_ID.match(text):
            raise BadInputError(
                f"{value!r} is not an ESO product id; give e.g. 'ADP.2024-03-19T05:58:04.407'",
                archive=ARCHIVE,
            )
        super().__init__(text)


class Extension(SimpleAttr):
    """
    File type (``phase3v2.product_files.extension``), e.g. ``a.eso.Extension("FITS")``.

    Case-insensitive; a leading dot is ignored (``".png"`` means ``"PNG"``).
    """

    def __init__(self, value):
        text = _text(value, "file extension", "FITS").upper().lstrip(".")
        if not _EXTENSION.match(text):
            raise BadInputError(
                f"{value!r} is not a file extension; give e.g. 'FITS', 'PNG' or 'TAR'",
                archive=ARCHIVE,
            )
        super().__init__(text)


class MaxRecords(SimpleAttr):
    """
    The most rows (files) to return, e.g. ``a.eso.MaxRecords(5000)``.

    Without it the archive applies its default limit, and the client warns
    when that limit cut the result. A limit given here is not warned about
    (the archive's hard limit still applies, and is warned about).
    """

    def __init__(self, value):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < 1 or (isinstance(value, float) and not value.is_integer()):
            raise BadInputError(
                f"a.eso.MaxRecords needs a whole number of rows >= 1, got {value!r}",
                archive=ARCHIVE,
            )
        super().__init__(number)


class Cone(DataAttr):
    """
    Products whose footprint (``s_region``) meets a circle on the sky.

    Parameters
    ----------
    center : astropy.coordinates.SkyCoord or str
        The centre (any frame; converted to ICRS), or a string SkyCoord can
        read such as ``"10h00m28.6s +02d12m21s"``.
    radius : astropy.units.Quantity
        An angle, e.g. ``2 * u.arcmin``.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> import sunpy_archives.eso.attrs as eso
    >>> eso.Cone(SkyCoord(185.22 * u.deg, 3.71 * u.deg), 1 * u.arcmin)
    <sunpy.net.attrs.eso.Cone(ra=185.22 deg, dec=3.71 deg, radius=0.0166667 deg)>
    """

    def __init__(self, center, radius):
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        super().__init__()
        try:
            coord = center if isinstance(center, SkyCoord) else SkyCoord(center)
            coord = coord.icrs
        except Exception as exc:  # noqa: BLE001 - SkyCoord raises many kinds
            raise BadInputError(
                f"cannot read {center!r} as a sky position ({exc}); give a SkyCoord "
                "or a string such as '10h00m28.6s +02d12m21s'",
                archive=ARCHIVE,
            ) from None
        if not coord.isscalar:
            raise BadInputError("a.eso.Cone takes one position", archive=ARCHIVE)
        if (
            not isinstance(radius, u.Quantity)
            or not radius.unit.is_equivalent(u.deg)
            or not radius.isscalar
        ):
            raise BadInputError(
                f"the radius of a.eso.Cone must be an angle such as 2 * u.arcmin, got {radius!r}",
                archive=ARCHIVE,
            )
        degrees = float(radius.to_value(u.deg))
        if not math.isfinite(degrees) or not 0 < degrees <= 180:
            raise BadInputError(
                f"the radius of a.eso.Cone must be between 0 and 180 deg, got {radius!r}",
                archive=ARCHIVE,
            )
        self.ra = float(coord.ra.deg)
        self.dec = float(coord.dec.deg)
        self.radius = degrees

    def collides(self, other) -> bool:
        return isinstance(other, self.__class__)

    def __repr__(self) -> str:
        return (
            f"<sunpy.net.attrs.eso.Cone(ra={self.ra:g} deg, dec={self.dec:g} deg, "
            f"radius={self.radius:g} deg)>"
        )
