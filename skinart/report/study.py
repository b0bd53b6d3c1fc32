"""`skinart report`: every scored run of a recipe run in the seeds' table layout, with bootstrap intervals, the
published numbers beside ours and the study figures; report.md, report.html (self-contained) and report.json."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from skinart.options import parse_eps
from skinart.presentation.figures import plot_lines
from skinart.report.findings import findings, row_anchor
from skinart.report.rows import collect_rows
from skinart.presentation.tables import pct
from skinart.rundir import read_plan

FIGURES = ("training_curves", "confusion_matrix", "confusion_matrix_binary", "confusion_matrix_adversarial",
           "confusion_matrix_adversarial_binary", "confusion_matrix_poisoned", "perturbations", "roc", "noise", "patch")
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child{text-align:left}img{max-width:100%}"
         "figure{display:inline-block;margin:4px}")


def _threat(row: dict) -> str:
    """The threat model as a suffix, left out where it goes without saying (clean rows, white-box)."""
    return "" if row["threat"] in ("—", "white-box") else f" ({row['threat']})"


def _label(row: dict) -> str:
    return row["task"] + _threat(row)


def _eps_label(eps: float | None) -> str:
    """ε as k/255 when it is one, else as a decimal."""
    if eps is None:
        return "ε unbounded"
    return f"ε={round(eps * 255)}/255" if abs(eps * 255 - round(eps * 255)) < 1e-6 else f"ε={eps:g}"


def _fmt(value, ci=None) -> str:
    text = pct(value)
    return f"{text} [{pct(ci[0])}–{pct(ci[1])}]" if ci and value is not None else text


def _references(rows: list[dict], reference: dict) -> list[list[str]]:
    lines = []
    for name, values in reference.items():
        row = next((r for r in rows if r["task"] == name), None) or next((r for r in rows if r["step"] == name), None)
        for metric, published in values.items():
            ours = None if row is None else row["metrics"].get(metric)
            delta = "n/a" if ours is None else f"{100 * (ours - published):+.1f}"
            lines.append([name, metric.replace("_", " "), pct(published), "not run" if row is None else _fmt(ours, row["ci"].get(metric)), delta])
    return lines


def _pivot(rows: list[dict]) -> tuple[list[str], dict]:
    """(columns, model -> column -> accuracy): the paper's Table 2 layout, one column per attack and threat model
    (and per ε for an attack run at several ε, so a sweep is not folded into its first value)."""
    attack_key = lambda r: r["attack"] + _threat(r)  # noqa: E731
    epsilons: dict[str, set] = {}
    for r in rows:
        epsilons.setdefault(attack_key(r), set()).add(r["eps"])
    column = lambda r: attack_key(r) + (f" {_eps_label(r['eps'])}" if len(epsilons[attack_key(r)]) > 1 else "")  # noqa: E731
    pivot: dict[str, dict] = {}
    for r in rows:
        pivot.setdefault(r["model"], {}).setdefault(column(r), r["metrics"]["accuracy"])
    return list(dict.fromkeys(column(r) for r in rows)), pivot


def _health(row: dict) -> list[str]:
    """Binary metrics at argmax, the AUROC of p_malignant, and the binary metrics at the checkpoint's stored threshold
    (the same for clean, attacked and defended rows of a model: it is never re-chosen)."""
    m = row["metrics"]
    return [_label(row), row["attack"], pct(m["binary_accuracy"]), pct(m["sensitivity"]), pct(m["npv"]), _fmt(m["fnr"], row["ci"].get("fnr")),
            _fmt(m.get("auroc"), row["ci"].get("auroc"))] + [pct(m.get(f"{k}_at_threshold")) for k in ("sensitivity", "specificity", "npv", "fnr")]


def _tables(rows: list[dict], detections: list[dict], recipe: dict, also: list[str] | None, also_label: str) -> list[tuple]:
    """(title, header, lines) of every table of the report, in order."""
    tables = [
        ("Model performance (multi-class)", ["run", "model", "attack", "threat", "accuracy [95% CI]", "macro recall [95% CI]",
                                             "macro specificity", "fooling rate", "error rate", "sanity checks"],
         [[r["task"], r["model"], r["attack"], r["threat"], _fmt(r["metrics"]["accuracy"], r["ci"].get("accuracy")),
           _fmt(r["metrics"]["macro_recall"], r["ci"].get("macro_recall")), pct(r["metrics"]["macro_specificity"]),
           pct(r["metrics"]["fooling_rate"]), pct(r["metrics"]["error_rate"]), r.get("sanity", "—")] for r in rows],
         [row_anchor(i) for i in range(len(rows))]),
        ("Health (binary, malignant = positive; at argmax, then at the operating point @t)",
         ["run", "attack", "binary accuracy", "sensitivity", "NPV", "FNR [95% CI]", "AUROC [95% CI]", "sensitivity @t", "specificity @t",
          "NPV @t", "FNR @t"], [_health(r) for r in rows]),
    ]
    if any(r.get("training_data") for r in rows):  # every number on an imported model says what cannot be known
        tables.append(("Training data (of the model each row scores)", ["run", "model", "training data"],
                       [[_label(r), r["model"], r.get("training_data") or "skinart's train split (ids recorded)"] for r in rows]))
    if also:
        tables.append((f"Health under the {also_label} (malignant = {', '.join(also)})", ["run", "binary accuracy", "sensitivity", "NPV", "FNR"],
                       [[_label(r)] + [pct(r["also"][k]) for k in ("accuracy", "sensitivity", "npv", "fnr")] for r in rows if r["also"]]))
    shares = [r for r in rows if r.get("predicted_shares")]
    if shares:
        classes = list(shares[0]["predicted_shares"])
        tables.append(("Where universal perturbations send the images (share of attacked test images predicted as each class)",
                       ["run", "attack", *classes], [[_label(r), r["attack"]] + [pct(r["predicted_shares"].get(c)) for c in classes]
                                                     for r in shares]))
    attacks, pivot = _pivot(rows)
    if len(attacks) > 1:
        tables.append(("Accuracy by model and attack", ["model"] + attacks,
                       [[model] + [pct(cells.get(a)) for a in attacks] for model, cells in pivot.items()]))
    if recipe.get("reference"):
        tables.append(("Published numbers beside ours", ["run", "metric", "published", "ours [95% CI]", "Δ (points)"],
                       _references(rows, recipe["reference"])))
    if detections:
        tables.append(("Poison detection", ["run", "detector", "precision", "recall", "F1", "flagged", "poisoned"],
                       [[d["task"], str(d["detector"]), pct(d["precision"]), pct(d["recall"]), pct(d["f1"]), str(d["flagged"]), str(d["poisoned"])]
                        for d in detections]))
    return tables


def _metric_label(key: str) -> str:
    """A metrics key as the figures name it: fnr_at_threshold -> FNR @t."""
    return key.replace("_at_threshold", " @t").replace("_", " ").replace("npv", "NPV").replace("fnr", "FNR")


def _series(panels: dict, panel: str, name: str, x, y) -> None:
    points = panels.setdefault(panel, {}).setdefault(name, ([], []))
    points[0].append(x)
    points[1].append(y)


def _figures(rows: list[dict], plan: dict, folder: Path) -> list[tuple[str, Path]]:
    """Recap curves (metrics per attack, per model), metrics vs poisoned share, accuracy vs adversarial share, and ε sweeps."""
    folder.mkdir(exist_ok=True)
    tasks = {t["name"]: t for t in plan["tasks"]}
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    recap = {model: {_metric_label(k): ([_label(r) for r in group], [r["metrics"][k] for r in group])
                     for k in ("accuracy", "macro_recall", "sensitivity", "npv", "fnr", "fnr_at_threshold")}
             for model, group in list(by_model.items())[:12] if len(group) > 1}
    share, sweep, poisoned = {}, {}, {}
    for r in rows:
        model_task = tasks.get(r["model"], {})
        if "ratio" in model_task.get("grid", {}):
            _series(share, model_task["step"], r["attack"] + _threat(r), float(model_task["grid"]["ratio"]), r["metrics"]["accuracy"])
        if "eps" in r["grid"]:
            for metric in ("accuracy", "fnr", "fnr_at_threshold"):
                _series(sweep, f"{r['attack']}: {_metric_label(metric)}", r["model"] + _threat(r),
                        255 * parse_eps(str(r["grid"]["eps"])), r["metrics"][metric])
        if r["threat"] == "poisoned training" and "fraction" in r["grid"]:
            for metric in ("accuracy", "macro_recall", "macro_specificity", "fnr"):
                _series(poisoned, f"{r['step']} ({r['attack']})", _metric_label(metric),
                        float(r["grid"]["fraction"]), r["metrics"][metric])
    out = [("Recap: metrics per attack, for each model", plot_lines(recap, folder / "recap.png", "", "%", categorical=True)),
           ("Metrics vs poisoned share of the training data (the thesis's Fig. 4.6)",
            plot_lines(poisoned, folder / "poisoned_share.png", "poisoned share", "%")),
           ("Accuracy vs adversarial share of the training data", plot_lines(share, folder / "adversarial_share.png", "adversarial share", "accuracy %")),
           ("ε sweep", plot_lines(sweep, folder / "eps_sweep.png", "ε (/255)", "%"))]
    return [(title, path) for title, path in out if path is not None]


def _table_md(header: list[str], lines: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines])


def _table_html(header: list[str], lines: list[list[str]], anchors: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    ids = [f" id='{a}'" for a in anchors] if anchors else [""] * len(lines)
    body = "".join(f"<tr{row_id}>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for row_id, line in zip(ids, lines))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _findings(found: list[tuple[str, int]]) -> tuple[list[str], list[str]]:
    """The Findings section first, in markdown and HTML, each finding naming (linking, in HTML) its table row."""
    if not found:
        return [], []
    md = ["## Findings", ""] + [f"- {text} (multi-class table, row {i + 1})" for text, i in found] + [""]
    html = ["<h2 id='findings'>Findings</h2><ul>"] + [f"<li><a href='#{row_anchor(i)}'>{escape(text)}</a></li>" for text, i in found] + ["</ul>"]
    return md, html


def _documents(run_dir: Path, title: str, *, intro: list[str], found: list[tuple[str, int]], tables: list[tuple], figures: list,
               images: list) -> tuple[str, str]:
    """(report.md, report.html): the same sections, Findings first; the HTML inlines every figure so it stands alone."""
    found_md, found_html = _findings(found)
    md = [f"# {title}", ""] + found_md + [p + "\n" for p in intro if p]
    html = [f"<h1>{escape(title)}</h1>"] + found_html + [f"<p>{escape(p)}</p>" for p in intro if p]
    for table_title, header, lines, *anchors in tables:
        md += [f"## {table_title}", "", _table_md(header, lines), ""]
        html += [f"<h2>{escape(table_title)}</h2>", _table_html(header, lines, *anchors)]
    if figures:  # an empty section says nothing
        md += ["## Figures", ""]
        html.append("<h2>Figures</h2>")
    for figure_title, path in figures:
        md += [f"### {figure_title}", "", f"![{figure_title}]({path.relative_to(run_dir)})", ""]
        html += [f"<h3>{escape(figure_title)}</h3>", f'<img src="{_inline(path)}" alt="{escape(figure_title)}">']
    if any(paths for _, paths in images):
        md += ["## Per-run figures", ""]
        html.append("<h2>Per-run figures</h2>")
    for name, paths in images:
        if paths:
            md.append(f"- {name}: " + ", ".join(f"[{p.relative_to(run_dir / name)}]({p.relative_to(run_dir)})" for p in paths))
            html.append(f"<details><summary>{escape(name)}</summary>" + "".join(
                f'<figure><img src="{_inline(p)}" alt="{escape(p.stem)}"><figcaption>{escape(str(p.relative_to(run_dir / name)))}</figcaption></figure>'
                for p in paths) + "</details>")
    document = f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{STYLE}</style></head><body>{''.join(html)}</body></html>"
    return "\n".join(md) + "\n", document


def write_report(run_dir: Path, bootstrap: int = 1000, seed: int = 0, also_malignant: list[str] | None = None,
               also_label: str = "alternative mapping") -> dict:
    """report.md, report.html (self-contained: figures inlined) and report.json for a `skinart run` directory."""
    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    recipe = plan["recipe"]
    rows, detections, missing = collect_rows(run_dir, plan, {"bootstrap": bootstrap, "seed": seed, "also_malignant": also_malignant})
    figures = _figures(rows, plan, run_dir / "report_figures")
    images = [(task["name"], sorted(p for p in (run_dir / task["name"]).rglob("*.png") if p.stem in FIGURES))
              for task in plan["tasks"] if (run_dir / task["name"]).is_dir()]
    intro = [recipe.get("description", "").strip(), f"Recipe `{plan['recipe_file']}`, seed {recipe.get('seed', 0)}. "
             f"All values in %. Intervals: {bootstrap}-resample percentile bootstrap over test images (seed {seed}). "
             "p_malignant is the sum of the malignant classes' probabilities; AUROC is its binary ROC area; @t marks the "
             "binary metrics at the operating point, p_malignant ≥ the threshold each checkpoint chose once on its "
             "validation split for its target sensitivity and kept fixed under every attack and defence (n/a: none stored)."]
    if missing:
        intro.append(f"Not run yet: {', '.join(missing)} (run the recipe again to resume).")
    md, html = _documents(run_dir, recipe["name"], intro=intro, found=findings(rows), figures=figures, images=images,
                          tables=_tables(rows, detections, recipe, also_malignant, also_label))
    result = {"rows": rows, "detections": detections, "missing": missing, "references": recipe.get("reference", {})}
    for name, text in (("report.md", md), ("report.html", html), ("report.json", json.dumps(result, indent=2, default=str))):
        tmp = run_dir / f".{name}.partial"
        tmp.write_text(text)
        tmp.replace(run_dir / name)
    return result
