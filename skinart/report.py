"""Figures and tables for a run directory (matplotlib, scikit-learn's ConfusionMatrixDisplay)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    ConfusionMatrixDisplay(cm, display_labels=labels).plot(ax=ax, cmap="Blues", values_format="d", colorbar=False)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    validated = any("val_loss" in h for h in history)  # a split without validation images has the loss panel only
    fig, axes = plt.subplots(1, 1 + validated, figsize=(5 + 5 * validated, 3.6), squeeze=False)
    axes[0][0].plot(epochs, [h["train_loss"] for h in history], label="train loss")
    if validated:
        axes[0][0].plot(epochs, [h.get("val_loss") for h in history], label="val loss")
        axes[0][1].plot(epochs, [h.get("val_accuracy") for h in history], label="val accuracy")
        axes[0][1].plot(epochs, [h.get("val_macro_recall") for h in history], label="val macro recall")
    for ax, title in zip(axes[0], ("loss", "validation")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def metrics_markdown(metrics: dict, title: str) -> str:
    b = metrics["binary"]
    lines = [
        f"# {title}",
        "",
        "| accuracy | macro recall | macro specificity | binary accuracy | sensitivity | specificity | PPV | NPV | FNR |",
        "|---|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(_pct(v) for v in (
            metrics["accuracy"], metrics["macro_recall"], metrics["macro_specificity"], b["accuracy"],
            b["sensitivity"], b["specificity"], b["ppv"], b["npv"], b["fnr"],
        )) + " |",
        "",
        "| class | recall | specificity | precision | support |",
        "|---|---|---|---|---|",
    ]
    for name, c in metrics["per_class"].items():
        lines.append(f"| {name} | {_pct(c['recall'])} | {_pct(c['specificity'])} | {_pct(c['precision'])} | {c['support']} |")
    return "\n".join(lines) + "\n\n(all values in %; binary: malignant = positive)\n"


def amplified(delta: np.ndarray) -> np.ndarray:
    """A CHW perturbation scaled to fill [0, 1] around mid-grey, as HWC for display."""
    scale = max(float(np.abs(delta).max()), 1e-12)
    return (0.5 + 0.5 * delta / scale).transpose(1, 2, 0)


def save_image(hwc: np.ndarray, path: Path) -> None:
    plt.imsave(path, np.clip(hwc, 0, 1))


def plot_perturbations(clean: np.ndarray, adversarial: np.ndarray, clean_probs: np.ndarray, adv_probs: np.ndarray,
                       classes: list[str], labels: np.ndarray, path: Path, title: str) -> None:
    """Rows of original | amplified perturbation | adversarial, each titled with prediction and confidence."""
    rows = len(clean)
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.6 * rows), squeeze=False)
    for i in range(rows):
        delta = adversarial[i] - clean[i]
        panels = (
            (clean[i].transpose(1, 2, 0), f"true {classes[labels[i]]}\npred {classes[clean_probs[i].argmax()]} {clean_probs[i].max():.0%}"),
            (amplified(delta), f"perturbation ×{1 / max(float(np.abs(delta).max()), 1e-12):.0f}\nL∞ {np.abs(delta).max() * 255:.1f}/255"),
            (adversarial[i].transpose(1, 2, 0), f"adversarial\npred {classes[adv_probs[i].argmax()]} {adv_probs[i].max():.0%}"),
        )
        for ax, (image, caption) in zip(axes[i], panels):
            ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_title(caption, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def attack_markdown(metrics: dict, title: str) -> str:
    """Clean vs attacked rows in the seeds' layout (model performance, then health)."""
    lines = [
        f"# {title}", "",
        "| images | accuracy | macro recall | macro specificity | sensitivity | NPV | FNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ("clean", "adversarial"):
        m, b = metrics[row], metrics[row]["binary"]
        lines.append(f"| {row} | " + " | ".join(_pct(v) for v in (
            m["accuracy"], m["macro_recall"], m["macro_specificity"], b["sensitivity"], b["npv"], b["fnr"])) + " |")
    rates = ("fooling_rate", "error_rate", "success_rate", "targeted_success_rate", "targeted_rate_clean")
    lines += ["", " · ".join(f"{r.replace('_', ' ')} {_pct(metrics[r])}" for r in rates if r in metrics)]
    if metrics.get("linf_max") is not None:
        lines.append(f"measured perturbation: L∞ max {metrics['linf_max'] * 255:.2f}/255, L2 mean {metrics['l2_mean']:.4f}")
    return "\n".join(lines) + "\n\n(all values in %; binary: malignant = positive)\n"


# ---- run reports: every step of a recipe run, in the seeds' table layout, with CIs and published numbers ----

ROW_METRICS = ("accuracy", "macro_recall", "macro_specificity", "fooling_rate", "error_rate", "clean_accuracy",
               "binary_accuracy", "sensitivity", "specificity", "npv", "fnr")
FIGURES = ("training_curves", "confusion_matrix", "confusion_matrix_binary", "confusion_matrix_adversarial",
           "confusion_matrix_adversarial_binary", "confusion_matrix_poisoned", "perturbations", "noise", "patch")


def threat_label(threat: str, access: str = "gradients") -> str:
    """The threat model as a reader should see it: a query attack on the evaluated model is black-box,
    not white-box, though it attacks the same model (DESIGN.md threat models)."""
    if access == "gradients":
        return threat
    return f"{'black-box' if threat == 'white-box' else threat}, {access} only"


def _flat(m: dict) -> dict:
    b = m["binary"]
    return {"accuracy": m["accuracy"], "macro_recall": m["macro_recall"], "macro_specificity": m["macro_specificity"],
            "binary_accuracy": b["accuracy"], "sensitivity": b["sensitivity"], "specificity": b["specificity"],
            "npv": b["npv"], "fnr": b["fnr"]}


def _row(task: dict, where: Path, metrics: dict, model: str, attack: str, threat: str, arrays: tuple | None, options: dict) -> dict:
    """One reported line: flat metrics, bootstrap CIs from the per-image predictions, the alternative binary mapping."""
    from skinart.attacks import METHODS  # attacks builds on this module
    from skinart.metrics import binary_metrics, bootstrap_ci

    m = metrics.get("adversarial", metrics)
    row = {"task": task["name"], "step": task["step"], "grid": task["grid"], "model": model, "attack": attack,
           "threat": threat_label(threat, METHODS[attack].access if attack in METHODS else "gradients"),
           "eps": metrics.get("eps"), "dir": str(where), "metrics": _flat(m), "ci": {}, "also": None}
    row["metrics"].update({k: metrics.get(k) for k in ("fooling_rate", "error_rate")})
    row["metrics"]["clean_accuracy"] = metrics["clean"]["accuracy"] if "clean" in metrics else None
    if arrays is not None:
        classes = list(m["per_class"])
        labels, predicted = arrays
        malignant = [classes.index(c) for c in m.get("malignant", ("akiec", "bcc", "mel"))]
        row["ci"] = bootstrap_ci(labels, predicted, len(classes), malignant, options["bootstrap"], options["seed"])
        if options["also_malignant"]:
            row["also"] = binary_metrics(labels, predicted, [classes.index(c) for c in options["also_malignant"]])
    return row


def _arrays(path: Path, key: str) -> tuple | None:
    if not path.is_file():
        return None
    with np.load(path) as f:
        return f["labels"], f[key].argmax(1)


def collect_rows(run_dir: Path, plan: dict, options: dict) -> tuple[list[dict], list[dict], list[str]]:
    """(rows, poison detections, tasks not yet run) from the run directories of a recipe run."""
    import json

    rows, detections, missing = [], [], []
    for task in plan["tasks"]:
        where = run_dir / task["name"]
        if task["command"] == "report":
            continue
        if not (where / "metrics.json").is_file() and task["command"] != "train":
            missing.append(task["name"])
            continue
        if task["command"] == "train":
            continue
        metrics = json.loads((where / "metrics.json").read_text())
        checkpoint = task["params"].get("checkpoint") or task["params"].get("retrained") or ""
        model = task["uses"].get("checkpoint") or task["uses"].get("retrained") or Path(str(checkpoint)).name
        if "threats" in metrics:  # evaluate --attack: one sub-run per threat model
            for threat in metrics["threats"]:
                sub = json.loads((where / threat / "metrics.json").read_text())
                rows.append(_row(task, where / threat, sub, model, metrics["method"], threat,
                                 _arrays(where / threat / "adversarial.npz", "adversarial_probabilities"), options))
        elif "adversarial" in metrics:
            rows.append(_row(task, where, metrics, model, metrics["method"], metrics["threat_model"],
                             _arrays(where / "adversarial.npz", "adversarial_probabilities"), options))
        elif "poisoned_model" in metrics:
            rows.append(_row(task, where, metrics["poisoned_model"], task["name"], task["params"]["method"], "poisoned training", None, options))
        elif "precision" in metrics:
            detections.append({"task": task["name"], **{k: metrics.get(k) for k in ("detector", "precision", "recall", "f1", "flagged", "poisoned")}})
        else:  # evaluate or a defended checkpoint: clean test metrics
            rows.append(_row(task, where, metrics, task["name"] if task["command"] == "defend" else model, "clean", "—",
                             _arrays(where / "predictions.npz", "probabilities"), options))
    return rows, detections, missing


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
    text = _pct(value)
    return f"{text} [{_pct(ci[0])}–{_pct(ci[1])}]" if ci and value is not None else text


def _references(rows: list[dict], reference: dict) -> list[list[str]]:
    lines = []
    for name, values in reference.items():
        row = next((r for r in rows if r["task"] == name), None) or next((r for r in rows if r["step"] == name), None)
        for metric, published in values.items():
            ours = None if row is None else row["metrics"].get(metric)
            delta = "n/a" if ours is None else f"{100 * (ours - published):+.1f}"
            lines.append([name, metric.replace("_", " "), _pct(published), "not run" if row is None else _fmt(ours, row["ci"].get(metric)), delta])
    return lines


def _plot_lines(panels: dict[str, dict[str, tuple[list, list]]], path: Path, xlabel: str, ylabel: str, categorical: bool = False) -> Path | None:
    """One subplot per panel, one line per series (x, y); y in %."""
    if not panels:
        return None
    cols = min(3, len(panels))
    rows_ = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.6 * cols, 3.4 * rows_), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels.items()):
        for label, (x, y) in series.items():
            ax.plot(range(len(x)) if categorical else x, [np.nan if v is None else 100 * v for v in y], marker="o", label=label)
            if categorical:
                ax.set_xticks(range(len(x)), x, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _figures(rows: list[dict], plan: dict, folder: Path) -> list[tuple[str, Path]]:
    """Recap curves (metrics per attack, per model), metrics vs poisoned share, accuracy vs adversarial share, and ε sweeps."""
    from skinart.attacks import parse_eps

    folder.mkdir(exist_ok=True)
    tasks = {t["name"]: t for t in plan["tasks"]}
    recap: dict[str, dict] = {}
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for model, group in list(by_model.items())[:12]:
        if len(group) > 1:
            labels = [_label(r) for r in group]
            recap[model] = {k.replace("_", " ").replace("npv", "NPV").replace("fnr", "FNR"): (labels, [r["metrics"][k] for r in group]) for k in ("accuracy", "macro_recall", "sensitivity", "npv", "fnr")}
    share: dict[str, dict] = {}
    for r in rows:
        model_task = tasks.get(r["model"], {})
        if "ratio" in model_task.get("grid", {}):
            series = share.setdefault(model_task["step"], {}).setdefault(r["attack"] + _threat(r), ([], []))
            series[0].append(float(model_task["grid"]["ratio"]))
            series[1].append(r["metrics"]["accuracy"])
    sweep: dict[str, dict] = {}
    for r in rows:
        if "eps" in r["grid"]:
            for metric in ("accuracy", "fnr"):
                panel = sweep.setdefault(f"{r['attack']}: {metric.replace('fnr', 'FNR')}", {})
                series = panel.setdefault(r["model"] + _threat(r), ([], []))
                series[0].append(255 * parse_eps(str(r["grid"]["eps"])))
                series[1].append(r["metrics"][metric])
    poisoned: dict[str, dict] = {}
    for r in rows:
        if r["threat"] == "poisoned training" and "fraction" in r["grid"]:
            panel = poisoned.setdefault(f"{r['step']} ({r['attack']})", {})
            for metric in ("accuracy", "macro_recall", "macro_specificity", "fnr"):
                series = panel.setdefault(metric.replace("_", " ").replace("fnr", "FNR"), ([], []))
                series[0].append(float(r["grid"]["fraction"]))
                series[1].append(r["metrics"][metric])
    out = [("Recap: metrics per attack, for each model", _plot_lines(recap, folder / "recap.png", "", "%", categorical=True)),
           ("Metrics vs poisoned share of the training data (the thesis's Fig. 4.6)",
            _plot_lines(poisoned, folder / "poisoned_share.png", "poisoned share", "%")),
           ("Accuracy vs adversarial share of the training data", _plot_lines(share, folder / "adversarial_share.png", "adversarial share", "accuracy %")),
           ("ε sweep", _plot_lines(sweep, folder / "eps_sweep.png", "ε (/255)", "%"))]
    return [(title, path) for title, path in out if path is not None]


def _table_md(header: list[str], lines: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines])


def _table_html(header: list[str], lines: list[list[str]]) -> str:
    from html import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for line in lines)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def run_report(run_dir: Path, bootstrap: int = 1000, seed: int = 0, also_malignant: list[str] | None = None,
               also_label: str = "alternative mapping") -> dict:
    """report.md, report.html (self-contained: figures inlined) and report.json for a `skinart run` directory."""
    import base64
    import json
    from html import escape

    from skinart.recipes import read_plan

    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    recipe = plan["recipe"]
    options = {"bootstrap": bootstrap, "seed": seed, "also_malignant": also_malignant}
    rows, detections, missing = collect_rows(run_dir, plan, options)
    tables = [
        ("Model performance (multi-class)", ["run", "model", "attack", "threat", "accuracy [95% CI]", "macro recall [95% CI]",
                                             "macro specificity", "fooling rate", "error rate"],
         [[r["task"], r["model"], r["attack"], r["threat"], _fmt(r["metrics"]["accuracy"], r["ci"].get("accuracy")),
           _fmt(r["metrics"]["macro_recall"], r["ci"].get("macro_recall")), _pct(r["metrics"]["macro_specificity"]),
           _pct(r["metrics"]["fooling_rate"]), _pct(r["metrics"]["error_rate"])] for r in rows]),
        ("Health (binary, malignant = positive)", ["run", "binary accuracy", "sensitivity", "NPV", "FNR [95% CI]"],
         [[_label(r), _pct(r["metrics"]["binary_accuracy"]), _pct(r["metrics"]["sensitivity"]), _pct(r["metrics"]["npv"]),
           _fmt(r["metrics"]["fnr"], r["ci"].get("fnr"))] for r in rows]),
    ]
    if also_malignant:
        tables.append((f"Health under the {also_label} (malignant = {', '.join(also_malignant)})",
                       ["run", "binary accuracy", "sensitivity", "NPV", "FNR"],
                       [[_label(r)] + [_pct(r["also"][k]) for k in ("accuracy", "sensitivity", "npv", "fnr")] for r in rows if r["also"]]))
    attack_key = lambda r: r["attack"] + _threat(r)  # noqa: E731
    epsilons: dict[str, set] = {}
    for r in rows:
        epsilons.setdefault(attack_key(r), set()).add(r["eps"])
    # an attack run at several ε gets one column per ε, so a sweep is not folded into its first value
    column = lambda r: attack_key(r) + (f" {_eps_label(r['eps'])}" if len(epsilons[attack_key(r)]) > 1 else "")  # noqa: E731
    attacks = list(dict.fromkeys(column(r) for r in rows))
    pivot = {}
    for r in rows:
        pivot.setdefault(r["model"], {}).setdefault(column(r), r["metrics"]["accuracy"])
    if len(attacks) > 1:
        tables.append(("Accuracy by model and attack", ["model"] + attacks,
                       [[model] + [_pct(cells.get(a)) for a in attacks] for model, cells in pivot.items()]))
    if recipe.get("reference"):
        tables.append(("Published numbers beside ours", ["run", "metric", "published", "ours [95% CI]", "Δ (points)"],
                       _references(rows, recipe["reference"])))
    if detections:
        tables.append(("Poison detection", ["run", "detector", "precision", "recall", "F1", "flagged", "poisoned"],
                       [[d["task"], str(d["detector"]), _pct(d["precision"]), _pct(d["recall"]), _pct(d["f1"]), str(d["flagged"]), str(d["poisoned"])]
                        for d in detections]))
    figures = _figures(rows, plan, run_dir / "report_figures")
    images = [(task["name"], sorted(p for p in (run_dir / task["name"]).rglob("*.png") if p.stem in FIGURES))
              for task in plan["tasks"] if (run_dir / task["name"]).is_dir()]
    intro = [recipe.get("description", "").strip(), f"Recipe `{plan['recipe_file']}`, seed {recipe.get('seed', 0)}. "
             f"All values in %. Intervals: {bootstrap}-resample percentile bootstrap over test images (seed {seed})."]
    if missing:
        intro.append(f"Not run yet: {', '.join(missing)} (run the recipe again to resume).")
    md = [f"# {recipe['name']}", ""] + [p + "\n" for p in intro if p]
    html = [f"<h1>{escape(recipe['name'])}</h1>"] + [f"<p>{escape(p)}</p>" for p in intro if p]
    for title, header, lines in tables:
        md += [f"## {title}", "", _table_md(header, lines), ""]
        html += [f"<h2>{escape(title)}</h2>", _table_html(header, lines)]
    inline = lambda p: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    md += ["## Figures", ""]
    html.append("<h2>Figures</h2>")
    for title, path in figures:
        md += [f"### {title}", "", f"![{title}]({path.relative_to(run_dir)})", ""]
        html += [f"<h3>{escape(title)}</h3>", f'<img src="{inline(path)}" alt="{escape(title)}">']
    md += ["## Per-run figures", ""]
    html.append("<h2>Per-run figures</h2>")
    for name, paths in images:
        if paths:
            md.append(f"- {name}: " + ", ".join(f"[{p.relative_to(run_dir / name)}]({p.relative_to(run_dir)})" for p in paths))
            html.append(f"<details><summary>{escape(name)}</summary>" + "".join(
                f'<figure><img src="{inline(p)}" alt="{escape(p.stem)}"><figcaption>{escape(str(p.relative_to(run_dir / name)))}</figcaption></figure>'
                for p in paths) + "</details>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;margin:1em 0;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}td:first-child{text-align:left}img{max-width:100%}"
             "figure{display:inline-block;margin:4px}")
    document = f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(recipe['name'])}</title><style>{style}</style></head><body>{''.join(html)}</body></html>"
    result = {"rows": rows, "detections": detections, "missing": missing, "references": recipe.get("reference", {})}
    for name, text in (("report.md", "\n".join(md) + "\n"), ("report.html", document), ("report.json", json.dumps(result, indent=2, default=str))):
        tmp = run_dir / f".{name}.partial"
        tmp.write_text(text)
        tmp.replace(run_dir / name)
    return result
