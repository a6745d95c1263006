import pytest

from sunpy_archives.core.config import SETTINGS, cache_dir, get_int_setting, get_setting
from sunpy_archives.core.errors import BadInputError


def test_layering_argument_then_env_then_default(monkeypatch):
    monkeypatch.delenv("SUNPY_ARCHIVES_SPICE_URL", raising=False)
    assert get_setting("spice_url") == SETTINGS["spice_url"].default
    assert get_setting("spice_url").startswith("https://")
    monkeypatch.setenv("SUNPY_ARCHIVES_SPICE_URL", "http://env.example/")
    assert get_setting("spice_url") == "http://env.example/"
    assert get_setting("spice_url", "http://arg.example/") == "http://arg.example/"


def test_sunpy_config_layer(monkeypatch):
    from sunpy import config

    monkeypatch.delenv("SUNPY_ARCHIVES_ESO_URL", raising=False)
    added = not config.has_section("sunpy_archives")
    if added:
        config.add_section("sunpy_archives")
    try:
        config.set("sunpy_archives", "eso_url", "http://from-sunpyrc.example")
        assert get_setting("eso_url") == "http://from-sunpyrc.example"
        monkeypatch.setenv("SUNPY_ARCHIVES_ESO_URL", "http://env.example")
        assert get_setting("eso_url") == "http://env.example"
    finally:
        if added:
            config.remove_section("sunpy_archives")
        else:
            config.remove_option("sunpy_archives", "eso_url")


def test_int_setting_errors_say_what_to_fix(monkeypatch):
    monkeypatch.setenv("SUNPY_ARCHIVES_MAX_CONN", "many")
    with pytest.raises(BadInputError, match="SUNPY_ARCHIVES_MAX_CONN"):
        get_int_setting("max_conn")
    monkeypatch.setenv("SUNPY_ARCHIVES_MAX_CONN", "0")
    with pytest.raises(BadInputError, match="at least 1"):
        get_int_setting("max_conn", minimum=1)
    assert get_int_setting("max_conn", 3) == 3


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SUNPY_ARCHIVES_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()


def test_every_archive_url_setting_defaults_to_the_real_service():
    for name in ("spice_url", "soar_url", "imap_url", "jsoc_url", "eso_url"):
        assert SETTINGS[name].default.startswith(("http://", "https://"))
        assert "127.0.0.1" not in SETTINGS[name].default
