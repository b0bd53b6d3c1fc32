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
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    if any("val_loss" in h for h in history):
        loss_ax.plot(epochs, [h.get("val_loss") for h in history], label="val loss")
        score_ax.plot(epochs, [h.get("val_accuracy") for h in history], label="val accuracy")
        score_ax.plot(epochs, [h.get("val_macro_recall") for h in history], label="val macro recall")
    for ax, title in ((loss_ax, "loss"), (score_ax, "validation")):
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
