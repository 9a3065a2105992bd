"""Building blocks of the self-contained HTML pages: sections, tables, images.

No template engine and no JavaScript framework: the pages are strings built
here, with every image embedded as a base64 ``data:`` URI (a copied
``report.html`` still shows everything) and a dozen lines of inline JavaScript
that sort a table when a column header is clicked.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1d2330; background: #f5f6f8; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 0; color: #b9c0cc; font-size: 13px; }
nav { padding: 8px 32px; background: #e8ebf0; font-size: 13px; }
nav a { margin-right: 14px; color: #2457a6; text-decoration: none; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
section { background: #fff; border-radius: 6px; padding: 14px 20px; margin: 16px 0;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 18px; margin: 4px 0 10px 0; }
h3 { font-size: 15px; margin: 14px 0 6px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e6eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { background: #dde3ec; }
.scroll { max-height: 420px; overflow-y: auto; display: inline-block; }
img { max-width: 100%; border: 1px solid #e3e6eb; margin: 4px 8px 8px 0; }
.row { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 8px; }
.row figure { margin: 0; flex: 1 1 380px; max-width: 640px; }
figcaption { font-size: 12px; color: #5b6475; }
pre { background: #f0f2f5; padding: 10px; font-size: 12px; overflow-x: auto;
  white-space: pre-wrap; word-break: break-all; }
.note { color: #5b6475; font-size: 13px; }
.bad { color: #b42318; }
.good { color: #1a7f37; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.dataset.order !== "asc";
    th.parentNode.querySelectorAll("th").forEach(function (h) {
      delete h.dataset.order;
    });
    th.dataset.order = asc ? "asc" : "desc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value || a.cells[col].textContent;
      var y = b.cells[col].dataset.value || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def esc(value: object) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def fmt(value: object, digits: int = 4) -> str:
    """A number for a table cell (``-`` for missing or NaN)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def pct(value: object) -> str:
    """A share as a percentage (``-`` when missing)."""
    if isinstance(value, int | float) and not math.isnan(float(value)):
        return f"{100 * float(value):.2f}%"
    return "-"


def png_tag(data: bytes, alt: str) -> str:
    """An ``<img>`` with PNG bytes embedded as base64."""
    return embedded_image(data, "image/png", alt)


def embedded_image(data: bytes, mime: str, alt: str, css_class: str = "") -> str:
    """An ``<img>`` with ``data`` (of type ``mime``) embedded as base64."""
    encoded = base64.b64encode(data).decode("ascii")
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<img{cls} src="data:{mime};base64,{encoded}" alt="{esc(alt)}">'


def image_tag(path: Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as base64 (empty string if missing)."""
    if not path.is_file():
        return ""
    return png_tag(path.read_bytes(), alt)


def figure(path: Path, caption: str) -> str:
    """An embedded image with a caption, or a note that the file is absent."""
    tag = image_tag(path, caption)
    if not tag:
        return f'<p class="note">{esc(caption)}: {esc(path.name)} not found.</p>'
    return f"<figure>{tag}<figcaption>{esc(caption)}</figcaption></figure>"


def figures(items: Iterable[tuple[Path, str]]) -> str:
    """Several figures side by side (present files only)."""
    cells = [figure(path, caption) for path, caption in items if path.is_file()]
    if not cells:
        return '<p class="note">no figures found.</p>'
    return '<div class="row">' + "".join(cells) + "</div>"


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    sortable: bool = False,
    scroll: bool = False,
    raw_values: Iterable[Sequence[object]] | None = None,
) -> str:
    """An HTML table; cells are escaped strings.

    Args:
        header: Column titles.
        rows: Cell texts per row.
        sortable: Click a header to sort (numbers numerically).
        scroll: Cap the height and scroll (long class lists).
        raw_values: Per cell, the value to sort by (e.g. the float behind "12%").

    Returns:
        The ``<table>`` markup.
    """
    values = list(raw_values) if raw_values is not None else None
    # A key/value table (all titles empty) gets no header row.
    head = "".join(f"<th>{esc(h)}</th>" for h in header) if any(header) else ""
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, cell in enumerate(row):
            key = values[r][c] if values is not None else None
            attr = f' data-value="{esc(key)}"' if key is not None else ""
            cells.append(f"<td{attr}>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    markup = f"<table{cls}>{thead}<tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{markup}</div>' if scroll else markup


def section(anchor: str, title: str, body: str) -> str:
    """A titled ``<section id=anchor>``."""
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: header, a table of contents, the sections.

    Args:
        title: Page title.
        subtitle: One line under it (run folder, date).
        sections: ``(anchor, title, body)`` per section, in order.

    Returns:
        The HTML text.
    """
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f"<script>{SORT_SCRIPT}</script></body></html>\n"
    )
