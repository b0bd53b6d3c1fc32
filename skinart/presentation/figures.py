"""Figures of one run (matplotlib, scikit-learn's ConfusionMatrixDisplay): confusion matrices, training curves,
perturbation grids, and the universal noise or patch as an image."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def plot_confusion(cm: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    ConfusionMatrixDisplay(cm, display_labels=labels).plot(ax=ax, cmap="Blues", values_format="d", colorbar=False)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusions(metrics: dict, classes: list[str], folder: Path, title: str, suffix: str = "") -> None:
    """The multi-class and the 2×2 (benign/malignant) confusion matrices of one set of metrics."""
    plot_confusion(metrics["confusion_matrix"], classes, folder / f"confusion_matrix{suffix}.png", title)
    plot_confusion(metrics["binary"]["confusion_matrix"], ["benign", "malignant"], folder / f"confusion_matrix{suffix}_binary.png", title)


def plot_roc(curves: dict[str, tuple], path: Path, title: str) -> None:
    """ROC curves of p_malignant, one per label: (false positive rates, true positive rates, AUROC, the operating
    point as (1 − specificity, sensitivity) or None), the point marked where the stored threshold puts it."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="#bbb", linestyle=":", linewidth=1)
    for label, (fpr, tpr, area, point) in curves.items():
        line, = ax.plot(fpr, tpr, label=label if area is None else f"{label} (AUROC {area:.3f})")
        if point is not None:
            ax.plot(*point, marker="o", color=line.get_color(), markeredgecolor="black")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title + "\n(dots: the stored operating point)" if any(c[3] is not None for c in curves.values()) else title, fontsize=8)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
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


def amplified(delta: np.ndarray) -> np.ndarray:
    """A CHW perturbation scaled to fill [0, 1] around mid-grey, as HWC for display."""
    scale = max(float(np.abs(delta).max()), 1e-12)
    return (0.5 + 0.5 * delta / scale).transpose(1, 2, 0)


def save_image(hwc: np.ndarray, path: Path) -> None:
    plt.imsave(path, np.clip(hwc, 0, 1))


def plot_perturbations(clean: np.ndarray, adversarial: np.ndarray, *, clean_probs: np.ndarray, adv_probs: np.ndarray,
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


def plot_lines(panels: dict[str, dict[str, tuple[list, list]]], path: Path, xlabel: str, ylabel: str,
               categorical: bool = False) -> Path | None:
    """One subplot per panel, one line per series (x, y); y in %."""
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
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
