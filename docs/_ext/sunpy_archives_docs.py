"""
Small Sphinx helpers for the sunpy-archives documentation.

``.. sunpy-archives-settings::`` renders `sunpy_archives.core.config.SETTINGS`
as a table, so the configuration page always lists exactly the settings the
code reads, with their environment variables and defaults.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

HEADERS = ("Environment variable and sunpyrc key", "Meaning and default")
WIDTHS = (36, 64)


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _entry(*paragraphs: list[nodes.Node]) -> nodes.entry:
    entry = nodes.entry()
    for children in paragraphs:
        entry += nodes.paragraph("", "", *children)
    return entry


class SettingsTable(SphinxDirective):
    """A table of every setting in ``sunpy_archives.core.config.SETTINGS``."""

    has_content = False
    required_arguments = 0
    optional_arguments = 0

    def run(self) -> list[nodes.Node]:
        from sunpy_archives.core import config

        # Rebuild the page whenever the settings change.
        self.env.note_dependency(config.__file__)

        table = nodes.table(classes=["sunpy-archives-settings", "colwidths-given"])
        group = nodes.tgroup(cols=len(HEADERS))
        table += group
        for width in WIDTHS:
            group += nodes.colspec(colwidth=width)
        head_row = nodes.row()
        for title in HEADERS:
            head_row += _entry([nodes.Text(title)])
        group += nodes.thead("", head_row)
        body = nodes.tbody()
        for setting in config.SETTINGS.values():
            row = nodes.row()
            row += _entry([nodes.strong("", "", _literal(setting.env))],
                          [nodes.Text("sunpyrc: "), _literal(setting.name)])
            default = _literal(setting.default) if setting.default else nodes.emphasis("", "not set")
            row += _entry([nodes.Text(setting.doc)], [nodes.Text("Default: "), default])
            body += row
        group += body
        return [table]


def setup(app):
    app.add_directive("sunpy-archives-settings", SettingsTable)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
