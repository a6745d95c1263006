import gc
import os

import pytest

# The local-server fixtures come from the ``sunpy_archives.testing.fixtures``
# plugin, normally loaded through the package's ``pytest11`` entry point;
# register it here too when the package is not installed. (A plain
# ``pytest_plugins = [...]`` fails when the entry point is also active: pluggy
# refuses one module registered under two names.)
import sunpy_archives.testing.fixtures as _local_server_fixtures


def pytest_configure(config):
    if not config.pluginmanager.is_registered(_local_server_fixtures):
        config.pluginmanager.register(_local_server_fixtures, "sunpy_archives.testing.fixtures")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Parsed catalogs go to a folder of this test session, never the user's cache."""
    old = os.environ.get("SUNPY_ARCHIVES_CACHE_DIR")
    os.environ["SUNPY_ARCHIVES_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SUNPY_ARCHIVES_CACHE_DIR", None)
    else:
        os.environ["SUNPY_ARCHIVES_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _collect_parfive_loops():
    """parfive leaves an event loop with signal handlers behind after each download;
    collect it here, in the main thread, rather than at a random moment in a
    local server's thread (where closing it raises)."""
    yield
    gc.collect()
