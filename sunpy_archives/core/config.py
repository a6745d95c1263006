"""
Layered settings shared by every client.

A setting is looked up, first match wins, in:

1. the argument given to the client's constructor;
2. its environment variable (read when the client is constructed, so
   changing ``os.environ`` between two searches takes effect);
3. the ``[sunpy_archives]`` section of the user's sunpyrc, under the
   setting's name (e.g. ``spice_url = https://...``);
4. the default, which for URLs is the real service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInputError

__all__ = ["Setting", "SETTINGS", "get_setting", "get_int_setting", "cache_dir"]


@dataclass(frozen=True)
class Setting:
    """One configurable value.

    Parameters
    ----------
    name : str
        The key in the ``[sunpy_archives]`` section of sunpyrc.
    env : str
        The environment variable that overrides it.
    default : str
        The value used when nothing else is set.
    doc : str
        One line for the documentation and ``sunpy-archives serve``.
    """

    name: str
    env: str
    default: str
    doc: str


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("spice_url", "SUNPY_ARCHIVES_SPICE_URL",
                "https://spice.osups.universite-paris-saclay.fr/spice-data/",
                "Root of the SPICE release tree (holds metadata/ and release-X.Y/)."),
        Setting("soar_url", "SUNPY_ARCHIVES_SOAR_URL",
                "https://soar.esac.esa.int/soar-sl-tap/data",
                "SOAR data endpoint used to fetch SPICE files outside a release."),
        Setting("imap_url", "IMAP_DATA_ACCESS_URL", "https://api.imap-mission.com",
                "IMAP Science Data Center API root."),
        Setting("imap_max_splits", "SUNPY_ARCHIVES_IMAP_MAX_SPLITS", "2",
                "Range requests per IMAP file; they go to the storage host the SDC redirects "
                "to, never to the SDC API."),
        Setting("jsoc_url", "SUNPY_ARCHIVES_JSOC_URL", "http://jsoc.stanford.edu/",
                "JSOC site root; drms's CGI and download URLs derive from it."),
        Setting("jsoc_email", "SUNPY_ARCHIVES_JSOC_EMAIL", "",
                "Default JSOC notify address for exports (must be registered with JSOC)."),
        Setting("eso_url", "SUNPY_ARCHIVES_ESO_URL", "https://archive.eso.org",
                "ESO Science Archive root (tap_obs, datalink, dataPortal)."),
        Setting("cache_dir", "SUNPY_ARCHIVES_CACHE_DIR", "",
                "Where parsed catalogs are cached (default: the user cache folder)."),
        Setting("max_conn", "SUNPY_ARCHIVES_MAX_CONN", "5",
                "Parallel downloads per archive when the client makes its own downloader."),
        Setting("max_splits", "SUNPY_ARCHIVES_MAX_SPLITS", "1",
                "Parallel range requests per file (parfive would open 5 per file by default)."),
        Setting("retries", "SUNPY_ARCHIVES_RETRIES", "5",
                "Retries of a request that failed with 429, 5xx or a dropped connection."),
        Setting("timeout", "SUNPY_ARCHIVES_TIMEOUT", "60",
                "Seconds to wait for an archive to answer a metadata request."),
    ]
}


def _sunpy_config_value(name: str) -> str | None:
    # Imported lazily: sunpy's config is already loaded whenever a Fido client
    # exists, but this module must stay importable on its own.
    try:
        from sunpy import config as sunpy_config
    except ImportError:  # pragma: no cover - sunpy is a hard dependency
        return None
    if sunpy_config.has_section("sunpy_archives") and sunpy_config.has_option("sunpy_archives", name):
        return sunpy_config.get("sunpy_archives", name)
    return None


def get_setting(name: str, value: str | None = None) -> str:
    """Return the effective value of setting ``name``.

    Parameters
    ----------
    name : str
        A key of `SETTINGS`.
    value : str, optional
        A value given explicitly (e.g. a constructor argument); wins when not None.

    Returns
    -------
    str

    Examples
    --------
    >>> get_setting("spice_url", "http://127.0.0.1:8000/spice-data/")
    'http://127.0.0.1:8000/spice-data/'
    """
    setting = SETTINGS[name]
    if value is not None:
        return str(value)
    env = os.environ.get(setting.env)
    if env:
        return env
    configured = _sunpy_config_value(name)
    if configured:
        return configured
    return setting.default


def get_int_setting(name: str, value: int | None = None, *, minimum: int = 0) -> int:
    """Like `get_setting` for an integer setting, with a clear error for a bad value."""
    raw = get_setting(name, None if value is None else str(value))
    try:
        number = int(raw)
    except ValueError:
        raise BadInputError(
            f"setting {name!r} must be a whole number, got {raw!r}; "
            f"fix {SETTINGS[name].env} or the [sunpy_archives] section of sunpyrc"
        ) from None
    if number < minimum:
        raise BadInputError(f"setting {name!r} must be at least {minimum}, got {number}")
    return number


def cache_dir(value: str | os.PathLike | None = None) -> Path:
    """The folder for cached catalogs, created if needed."""
    configured = get_setting("cache_dir", None if value is None else str(value))
    if configured:
        path = Path(configured).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "sunpy-archives"
    path.mkdir(parents=True, exist_ok=True)
    return path
