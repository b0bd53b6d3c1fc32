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
