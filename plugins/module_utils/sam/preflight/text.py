# Copyright: boma.mesh contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markdown building blocks of the preflight report (tables, code spans)."""


def cell(value):
    """A table cell: pipes escaped (they would split the cell), empty as an em dash."""
    if value is None or value in ("", []):
        return "—"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out + [""]


def code(value):
    return "`%s`" % value if value not in (None, "") else "—"


def kind_rows(state, kind):
    return sorted((r for r in state["resources"] if r["kind"] == kind), key=lambda r: r["metadata"]["name"])
