"""Sphinx configuration of the sunpy-archives documentation.

The build is meant to run offline: no intersphinx inventories are fetched, no
remote images are used, and the gallery examples run against the local
archive servers that ship in ``sunpy_archives.testing``.
"""

import atexit
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

# -- Environment of the build --------------------------------------------------
# Set before anything imports matplotlib or builds a client. The gallery
# examples run in this process, so they inherit both values.
os.environ["MPLBACKEND"] = "agg"

# A private catalog cache for this build only: whatever the caller has set
# (their real cache, say), the build neither reads nor writes it.
_cache = tempfile.mkdtemp(prefix="sunpy-archives-docs-cache-")
os.environ["SUNPY_ARCHIVES_CACHE_DIR"] = _cache
atexit.register(shutil.rmtree, _cache, ignore_errors=True)

# The gallery examples point the clients at servers they start themselves;
# drop settings that could send anything elsewhere first.
for _variable in ("SUNPY_ARCHIVES_SPICE_URL", "SUNPY_ARCHIVES_SOAR_URL", "IMAP_DATA_ACCESS_URL",
                  "IMAP_API_KEY", "SUNPY_ARCHIVES_JSOC_URL", "SUNPY_ARCHIVES_JSOC_EMAIL",
                  "SUNPY_ARCHIVES_ESO_URL"):
    os.environ.pop(_variable, None)

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import sunpy_archives  # noqa: E402

# -- Project information -------------------------------------------------------
project = "sunpy-archives"
author = "The sunpy-archives developers"
copyright = "The sunpy-archives developers"
release = sunpy_archives.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration -----------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sunpy_archives_docs",  # docs/_ext: the settings table, built from the code
]

exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    # Execution-time pages of sphinx-gallery: they load a table widget from a
    # CDN. Versions 0.19 and later skip them (see below); older ones write them
    # whatever the configuration says, so they are left out of the build here.
    "sg_execution_times.rst",
    "generated/gallery/sg_execution_times.rst",
]
# Single backticks link to Python objects where they can be resolved, as in
# the package's docstrings; unresolvable names render as code, silently.
default_role = "obj"
nitpicky = False

# -- autodoc / numpydoc ----------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections give the types
autoclass_content = "class"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False
numpydoc_xref_param_type = False

# -- HTML output -----------------------------------------------------------------
html_theme = "alabaster"
html_title = f"sunpy-archives {release}"
html_static_path = []
html_theme_options = {
    "description": "Fido clients for solar archives",
    "fixed_sidebar": True,
    "show_relbars": True,
    "page_width": "1200px",
    "sidebar_width": "240px",
    "body_max_width": "none",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}

# -- sphinx-gallery --------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "generated/gallery",
    # Run every example (the default runs only files named plot_*).
    "filename_pattern": r"\.py$",
    "plot_gallery": True,
    # A failing example fails the build (once every example has run).
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    # Names from sunpy_archives in the examples' code link to the API reference;
    # no links into other projects' documentation (that needs their inventories).
    "doc_module": ("sunpy_archives",),
    "reference_url": {"sunpy_archives": None},
}
# Do not write the execution-time pages at all where the option exists.
from sphinx_gallery.gen_gallery import DEFAULT_GALLERY_CONF  # noqa: E402

if "write_computation_times" in DEFAULT_GALLERY_CONF:
    sphinx_gallery_conf["write_computation_times"] = False


# -- Module docstrings -----------------------------------------------------------
# numpydoc parses the sections of functions and classes but leaves module
# docstrings alone, so a numpydoc-style heading there ("Examples" over a row
# of dashes) would become a section of the page and swallow everything after
# it. Turn such headings into rubrics, as numpydoc does elsewhere.
_UNDERLINE = re.compile(r"^([-=~^])\1+$")


def _module_headings_to_rubrics(app, what, name, obj, options, lines):
    if what != "module":
        return
    out = []
    i = 0
    while i < len(lines):
        title = lines[i]
        underline = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if (title.strip() and title == title.lstrip() and _UNDERLINE.match(underline)
                and len(underline) >= len(title.strip()) and (i == 0 or not lines[i - 1].strip())):
            out += [f".. rubric:: {title.strip()}", ""]
            i += 2
            if i < len(lines) and not lines[i].strip():
                i += 1
            continue
        out.append(title)
        i += 1
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", _module_headings_to_rubrics)
