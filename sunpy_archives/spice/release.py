"""
SPICE data releases: the static tree published by the SPICE consortium.

The tree holds ``metadata/latest-release.txt`` (the latest tag on its first
line) and one ``release-<TAG>/`` folder per release, each with a
``catalog.csv`` and the FITS files under ``level1/`` and ``level2/``.
"""

from __future__ import annotations

import re
from functools import cached_property

from ..core.config import get_setting
from ..core.errors import BadInputError, UnknownValueError
from ..core.http import make_session, request

__all__ = ["Release", "normalise_tag", "spice_base_url"]

ARCHIVE = "SPICE"
_TAG = re.compile(r"^\d{1,3}(\.\d{1,3})?$")
_LISTED_TAG = re.compile(r'href="(?:\./)?release-(\d{1,3}(?:\.\d{1,3})?)/?"')


def spice_base_url(base_url: str | None = None) -> str:
    """The release-tree root from the argument, ``SUNPY_ARCHIVES_SPICE_URL``, sunpyrc or the default.

    Always ends with ``/``.
    """
    url = get_setting("spice_url", base_url)
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"the SPICE release-tree URL must start with http:// or https://, got "
                            f"{url!r}; fix SUNPY_ARCHIVES_SPICE_URL", archive=ARCHIVE)
    return url if url.endswith("/") else url + "/"


def normalise_tag(tag) -> str | None:
    """Check a release tag's syntax; None or "latest" mean the latest release.

    Examples
    --------
    >>> normalise_tag(2)
    '2.0'
    >>> normalise_tag("latest") is None
    True
    """
    if tag is None:
        return None
    text = str(tag).strip()
    if text.lower() == "latest":
        return None
    if (isinstance(tag, int) and not isinstance(tag, bool)) or re.fullmatch(r"\d{1,3}", text):
        text = f"{int(text)}.0"
    if not _TAG.match(text):
        raise BadInputError(f"{tag!r} is not a SPICE release tag; use a number such as '2.0', "
                            "or 'latest'", archive=ARCHIVE)
    return text


class Release:
    """One SPICE data release.

    Parameters
    ----------
    tag : str, optional
        The release tag, e.g. ``"2.0"``. None or ``"latest"`` ask the server
        for the latest release (one request).
    base_url : str, optional
        Root of the release tree (default: ``SUNPY_ARCHIVES_SPICE_URL`` or the
        public tree).
    session : requests.Session, optional
        Used for every request (default: one with retries and timeouts).

    Examples
    --------
    >>> from sunpy_archives.spice import Release
    >>> release = Release("2.0", base_url="http://127.0.0.1:8000/spice-data/")
    >>> release.catalog_url
    'http://127.0.0.1:8000/spice-data/release-2.0/catalog.csv'
    """

    def __init__(self, tag: str | None = None, *, base_url: str | None = None, session=None):
        self.base_url = spice_base_url(base_url)
        self._session = session
        tag = normalise_tag(tag)
        self.tag = tag if tag is not None else self.latest_tag()

    @property
    def session(self):
        if self._session is None:
            self._session = make_session()
        return self._session

    def __repr__(self) -> str:
        return f"Release({self.tag!r}, base_url={self.base_url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Release) and (self.tag, self.base_url) == (other.tag, other.base_url)

    def __hash__(self) -> int:
        return hash((self.tag, self.base_url))

    @property
    def url(self) -> str:
        """URL of the release folder."""
        return f"{self.base_url}release-{self.tag}/"

    @property
    def catalog_url(self) -> str:
        """URL of the release's ``catalog.csv``."""
        return f"{self.url}catalog.csv"

    def latest_tag(self) -> str:
        """Ask the server which release is the latest."""
        url = f"{self.base_url}metadata/latest-release.txt"
        text = request(self.session, "GET", url, archive=ARCHIVE,
                       setting_hint="SUNPY_ARCHIVES_SPICE_URL").text
        tag = text.split("\n", 1)[0].strip()
        if not _TAG.match(tag):
            raise UnknownValueError(f"the server's latest-release.txt does not start with a release "
                                    f"tag (got {tag[:40]!r})", archive=ARCHIVE, url=url)
        return tag

    @cached_property
    def latest(self) -> str:
        """The tag of the latest release on this server."""
        return self.latest_tag()

    @property
    def is_latest(self) -> bool:
        """True if this is the latest release."""
        return self.tag == self.latest

    @property
    def exists(self) -> bool:
        """True if the server has this release."""
        response = request(self.session, "GET", self.url, archive=ARCHIVE, ok=(403, 404),
                           setting_hint="SUNPY_ARCHIVES_SPICE_URL")
        return response.status_code < 300

    def check_exists(self) -> None:
        """Raise `UnknownValueError` naming the known releases if this one does not exist."""
        if self.exists:
            return
        known = self.list_releases(base_url=self.base_url, session=self.session)
        hint = f"known releases: {', '.join(known)}" if known else "see the release tree for its releases"
        raise UnknownValueError(f"there is no release {self.tag!r}; {hint}", archive=ARCHIVE, url=self.url)

    @classmethod
    def list_releases(cls, *, base_url: str | None = None, session=None) -> list[str]:
        """Tags of every release in the tree, oldest first (from the tree's folder listing).

        Returns an empty list when the server gives no listing.
        """
        root = spice_base_url(base_url)
        session = session or make_session()
        response = request(session, "GET", root, archive=ARCHIVE, ok=(403, 404),
                           setting_hint="SUNPY_ARCHIVES_SPICE_URL")
        if response.status_code >= 300:
            return []
        tags = set(_LISTED_TAG.findall(response.text))
        return sorted(tags, key=lambda t: tuple(int(p) for p in t.split(".")))
