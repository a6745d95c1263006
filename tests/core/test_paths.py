
import pytest
from astropy.time import Time

from sunpy_archives.core.errors import BadInputError, UnsafePathError
from sunpy_archives.core.paths import RelPath, render_path, safe_name, safe_relpath, template_root


@pytest.mark.parametrize("value, expected", [
    ("solo_L2_spice.fits", "solo_L2_spice.fits"),
    ("../../etc/passwd", ".._.._etc_passwd"),
    ("/abs/name.fits", "_abs_name.fits"),
    ("..", "_"),
    (".", "_"),
    ("", "_"),
    ("a\x00b", "a_b"),
    ("back\\slash", "back_slash"),
    ("new\nline", "new_line"),
])
def test_safe_name(value, expected):
    assert safe_name(value) == expected


def test_safe_name_shortens_keeping_extension():
    name = safe_name("x" * 500 + ".fits")
    assert len(name) <= 200 and name.endswith(".fits")


@pytest.mark.parametrize("value, expected", [
    ("level2/2022/04/02", "level2/2022/04/02"),
    ("/etc", "etc"),
    ("level2/../../../tmp", "level2/_/_/_/tmp"),
    ("a//b/./c/", "a/b/c"),
    ("..", "_"),
    ("", "_"),
    ("a\x00/b", "a_/b"),
])
def test_safe_relpath(value, expected):
    assert safe_relpath(value) == expected


def test_template_root(tmp_path):
    assert template_root(f"{tmp_path}/{{file_path}}/{{file}}") == tmp_path
    assert template_root(f"{tmp_path}/x{{level}}/{{file}}") == tmp_path
    assert template_root(f"{tmp_path}/name.fits") == tmp_path


@pytest.mark.parametrize("file_path, filename", [
    ("../../..", "../../evil.fits"),
    ("/etc", "passwd"),
    ("level2/../../../../tmp", "x.fits"),
    ("a\x00b", "\x00"),
    ("~", "~root"),
])
def test_render_path_never_leaves_root(tmp_path, file_path, filename):
    root = tmp_path / "data"
    dest = render_path(f"{root}/{{file_path}}/{{file}}",
                       {"file_path": RelPath(file_path), "file": safe_name(filename)})
    assert dest.resolve().is_relative_to(root.resolve())
    assert dest != root


def test_render_path_plain_values_cannot_hold_separators(tmp_path):
    dest = render_path(f"{tmp_path}/{{level}}/{{file}}", {"level": "../../x", "file": "f"})
    assert dest.parent.name == ".._.._x"
    assert dest.parent.parent == tmp_path


def test_render_path_time_and_format_spec(tmp_path):
    t = Time("2022-04-02T11:15:37")
    dest = render_path(f"{tmp_path}/{{start_time:%Y/%m}}/{{file}}", {"start_time": t, "file": "f"})
    # A format spec cannot smuggle separators either: "/" from strftime is replaced.
    assert dest.parent.name == "2022_04"
    dest = render_path(f"{tmp_path}/{{start_time.datetime:%Y}}/{{file}}", {"start_time": t, "file": "f"})
    assert dest.parent.name == "2022"


def test_render_path_unknown_field_names_known_ones(tmp_path):
    with pytest.raises(BadInputError, match=r"\{nope\}.*file, level"):
        render_path(f"{tmp_path}/{{nope}}/{{file}}", {"file": "f", "level": "L2"})


def test_render_path_template_that_climbs_out_is_refused(tmp_path):
    with pytest.raises(UnsafePathError):
        render_path(f"{tmp_path}/{{file}}/../../x", {"file": "f"})
