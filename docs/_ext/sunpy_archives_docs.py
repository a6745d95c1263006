"""
Small Sphinx helpers for the sunpy-archives documentation.

``.. sunpy-archives-settings::`` renders `sunpy_archives.core.config.SETTINGS`
as a table, so the configuration page always lists exactly the settings the
code reads, with their environment variables and defaults.
``.. sunpy-archives-benchmarks::`` renders ``benchmarks/results.json`` as a table,
and the build draws ``generated/benchmarks.png`` from the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

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


# -- Benchmark figures ------------------------------------------------------------------------
# benchmarks/results.json holds the measured figures; the performance page's table
# and plot are both made from it at build time.

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks" / "results.json"


def _benchmark_rows() -> list[dict]:
    return json.loads(BENCHMARKS.read_text())["rows"]


def _table(header: list[str], rows: list[list[str]]) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head_row = nodes.row()
    for title in header:
        head_row += _entry([nodes.Text(title)])
    group += nodes.thead("", head_row)
    body = nodes.tbody()
    for values in rows:
        row = nodes.row()
        for value in values:
            row += _entry([nodes.Text(value)])
        body += row
    group += body
    return table


class BenchmarkTable(SphinxDirective):
    """``.. sunpy-archives-benchmarks::`` renders benchmarks/results.json as a table."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(BENCHMARKS))
        header = ["Archive", "Task", "Ours", "Official client", "Advantage", "Target", "Met"]
        rows = []
        for row in _benchmark_rows():
            advantage = row["official"] / row["ours"]
            rows.append([row["archive"], row["task"], f"{row['ours']:g} {row['unit']}",
                         f"{row['official_client']}: {row['official']:g} {row['unit']}",
                         f"{advantage:.2f}x", f">= {row['target']:g}x",
                         "yes" if advantage >= row["target"] else "no"])
        return [_table(header, rows)]


def _write_benchmark_plot(app) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    rows = _benchmark_rows()
    labels = [f"{r['archive']}: {r['task']}" for r in rows]
    advantage = [r["official"] / r["ours"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1))
    y = range(len(rows))
    ax.barh(y, advantage, color=["tab:green" if a >= r["target"] else "tab:orange"
                                 for a, r in zip(advantage, rows)])
    ax.scatter([r["target"] for r in rows], y, marker="|", s=300, color="black", label="target")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("official client / sunpy-archives (higher is better)")
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(app.srcdir) / "generated" / "benchmarks.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def setup(app):
    app.add_directive("sunpy-archives-settings", SettingsTable)
    app.add_directive("sunpy-archives-benchmarks", BenchmarkTable)
    app.connect("builder-inited", _write_benchmark_plot)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
