"""The study report as documents: report.md (figures linked) and report.html (self-contained, every figure inlined),
the same sections in the same order, Findings first, none left empty."""

from __future__ import annotations

import base64
import os
from html import escape
from pathlib import Path

from skinart.report.findings import row_anchor
from skinart.report.tables import Table

FIGURES = ("training_curves", "confusion_matrix", "confusion_matrix_binary", "confusion_matrix_adversarial",
           "confusion_matrix_adversarial_binary", "confusion_matrix_poisoned", "perturbations", "roc", "noise", "patch",
           "severity_curves", "shift_gallery")
# At 1280 px a table fits the page: long cells (run names, sanity verdicts) wrap instead of widening it, and a table
# with more columns than the width holds (a long ε grid) scrolls inside a box as wide as the page, not the page itself.
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
         ".table{max-width:100%;overflow-x:auto}table{border-collapse:collapse;margin:1em 0 .3em;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;overflow-wrap:anywhere}td:first-child,th:first-child{text-align:left}"
         "th{max-width:9em}.note{font-size:12px;color:#444;margin:0 0 1em}img{max-width:100%}figure{display:inline-block;margin:4px}")


def _table_md(header: list[str], lines: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines])


def _table_html(header: list[str], lines: list[list[str]], anchors: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    ids = [f" id='{a}'" for a in anchors] if anchors else [""] * len(lines)
    body = "".join(f"<tr{row_id}>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for row_id, line in zip(ids, lines))
    return f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _inline(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _findings(found: list[tuple[str, int | None]]) -> tuple[list[str], list[str]]:
    """The Findings section first, in markdown and HTML, each finding naming (linking, in HTML) its table row (a shift
    finding, None, names the Natural shift tables; a finding of another section names its table)."""
    if not found:
        return [], []
    md = ["## Findings", ""] + [f"- {text} " + ("(Natural shift tables)" if i is None else f"({i})" if isinstance(i, str) else f"(multi-class table, row {i + 1})")
                                for text, i in found] + [""]
    html = ["<h2 id='findings'>Findings</h2><ul>"] + [f"<li>{escape(text)}</li>" if not isinstance(i, int) else
                                                     f"<li><a href='#{row_anchor(i)}'>{escape(text)}</a></li>" for text, i in found] + ["</ul>"]
    return md, html


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def documents(base: Path, title: str, *, intro: list[str], found: list[tuple[str, int]], tables: list[Table], figures: list,
              images: list[tuple[str, Path, list[Path]]]) -> tuple[str, str]:
    """(report.md, report.html) written into `base`: the same sections, Findings first, none left empty; markdown links
    figures relative to `base`, the HTML inlines every figure so it stands alone. `images`: (run, its folder, figures)."""
    found_md, found_html = _findings(found)
    md = [f"# {title}", ""] + found_md + [p + "\n" for p in intro if p]
    html = [f"<h1>{escape(title)}</h1>"] + found_html + [f"<p>{escape(p)}</p>" for p in intro if p]
    for table in tables:
        md += [f"## {table.title}", "", _table_md(table.header, table.lines), ""] + [note + "\n" for note in table.notes]
        html += [f"<h2>{escape(table.title)}</h2>", _table_html(table.header, table.lines, table.anchors)]
        html += [f"<p class='note'>{escape(note)}</p>" for note in table.notes]
    if figures:
        md += ["## Figures", ""]
        html.append("<h2>Figures</h2>")
    for figure_title, path in figures:
        md += [f"### {figure_title}", "", f"![{figure_title}]({_link(path, base)})", ""]
        html += [f"<h3>{escape(figure_title)}</h3>", f'<img src="{_inline(path)}" alt="{escape(figure_title)}">']
    if any(paths for *_, paths in images):
        md += ["## Per-run figures", ""]
        html.append("<h2>Per-run figures</h2>")
    for name, folder, paths in images:
        if paths:
            md.append(f"- {name}: " + ", ".join(f"[{p.relative_to(folder).as_posix()}]({_link(p, base)})" for p in paths))
            html.append(f"<details><summary>{escape(name)}</summary>" + "".join(
                f'<figure><img src="{_inline(p)}" alt="{escape(p.stem)}"><figcaption>{escape(p.relative_to(folder).as_posix())}</figcaption></figure>'
                for p in paths) + "</details>")
    document = f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{STYLE}</style></head><body>{''.join(html)}</body></html>"
    return "\n".join(md) + "\n", document


def run_figures(name: str, folder: Path) -> tuple[str, Path, list[Path]]:
    return name, folder, sorted(p for p in folder.rglob("*.png") if p.stem in FIGURES)
