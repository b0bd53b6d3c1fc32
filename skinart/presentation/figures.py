"""Figures (matplotlib, scikit-learn's ConfusionMatrixDisplay): of one run, confusion matrices, training curves,
perturbation grids, and the universal noise or patch as an image; for reports, line plots (with interval bands) and
grouped bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from skinart.presentation.grids import Cell, plot_image_grid  # noqa: E402


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
    rows = []
    for i in range(len(clean)):
        delta = adversarial[i] - clean[i]
        rows.append([
            Cell(clean[i].transpose(1, 2, 0), f"true {classes[labels[i]]}\npred {classes[clean_probs[i].argmax()]} {clean_probs[i].max():.0%}"),
            Cell(amplified(delta), f"perturbation ×{1 / max(float(np.abs(delta).max()), 1e-12):.0f}\nL∞ {np.abs(delta).max() * 255:.1f}/255"),
            Cell(adversarial[i].transpose(1, 2, 0), f"adversarial\npred {classes[adv_probs[i].argmax()]} {adv_probs[i].max():.0%}"),
        ])
    plot_image_grid(rows, path, cell_px=256, dpi=120, title=title)


def _percent(values) -> np.ndarray:
    return np.array([np.nan if v is None else 100 * v for v in values], dtype=float)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # a legend outside the panels is kept
    plt.close(fig)
    return path


def plot_lines(panels: dict[str, dict[str, tuple]], path: Path, xlabel: str, ylabel: str, cols: int = 3) -> Path | None:
    """One subplot per panel (`cols` to a row), one line per series: (x, y), or (x, y, low, high) with the band between
    low and high shaded (a missing bound leaves a gap); y in %."""
    if not panels:
        return None
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels.items()):
        for label, (x, y, *band) in series.items():
            line, = ax.plot(x, _percent(y), marker="o", label=label)
            if band:  # shaded between points, and a bar at each (a line of one point has no area to shade)
                low, high, middle = _percent(band[0]), _percent(band[1]), _percent(y)
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
                ax.errorbar(x, middle, yerr=[middle - low, high - middle], fmt="none", ecolor=line.get_color(), alpha=0.6, capsize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path)


def plot_grouped_bars(panels: dict[str, tuple], path: Path, ylabel: str, before_label: str = "before") -> Path | None:
    """One subplot per panel (categories, group -> values[, group -> values before]): its categories along x, a bar
    per group in each (a missing value leaves its slot empty), and where a value before is given a pale bar of it behind,
    so each value stands beside its own before; values in %. Bars, not lines: nothing lies between two categories."""
    if not panels:
        return None
    categories, groups, *_ = next(iter(panels.values()))
    bars = len(categories) * len(groups)
    cols = 1 if bars > 24 else min(2, len(panels))  # many bars: one panel to a row, as wide as they need
    rows = -(-len(panels) // cols)
    width = 0.8 / len(groups)
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20").colors
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6, 1.2 + 0.22 * bars) * cols, 3.6 * rows), squeeze=False)
    for ax, (title, (categories, groups, *before)) in zip(axes.flat, panels.items()):
        for i, (group, values) in enumerate(groups.items()):
            x = np.arange(len(categories)) + (i - (len(groups) - 1) / 2) * width
            colour = colours[i % len(colours)]
            if before and any(v is not None for v in before[0].get(group, [])):
                ax.bar(x, _percent(before[0][group]), width, color=colour, alpha=0.3, edgecolor=colour, linewidth=0.6)
            ax.bar(x, _percent(values), width * (0.6 if before else 1), label=group, color=colour)
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    before = any(len(panel) > 2 for panel in panels.values())
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.0, 0.99), fontsize=7, frameon=False,
               title=f"pale: {before_label}" if before else None, title_fontsize=7)  # outside the panels: it hides no bar
    return _save(fig, path)


STYLES = ("-", "--", ":", "-.")


def _keys(grid: dict, position: int) -> list[str]:
    return list(dict.fromkeys(key[position] for panels in grid.values() for lines in panels.values() for key in lines))


def _legend(fig, keys: list[str], handle, title: str | None, corner: str) -> None:
    """A legend of `keys` right of the panels, at their top or bottom `corner`; none for a single unnamed key."""
    if keys and keys != [""]:
        fig.legend([handle(k) for k in keys], keys, title=title, loc=f"{corner} left", bbox_to_anchor=(1.0, 0.98 if corner == "upper" else 0.02),
                   fontsize=7, title_fontsize=8, frameon=False)


def plot_small_multiples(grid: dict[str, dict[str, dict[tuple[str, str], tuple]]], path: Path, xlabel: str, *,
                         colour_title: str, style_title: str | None = None,
                         references: dict[str, dict[str, float]] | None = None) -> Path | None:
    """Small multiples: a row of panels per `grid` key (a model, a run), a panel per metric, each holding its lines
    (colour, style) -> (x, y[, low, high]) with the band between low and high shaded; the same colour and line style
    mean the same thing in every panel, said once in legends outside the panels; `references` (row -> metric -> y) a
    dashed grey line across its panel. y in %."""
    if not grid:
        return None
    metrics = list(dict.fromkeys(m for panels in grid.values() for m in panels))
    colours_of, styles_of = _keys(grid, 0), _keys(grid, 1)
    palette = plt.get_cmap("tab10" if len(colours_of) <= 10 else "tab20").colors
    colour = {k: palette[i % len(palette)] for i, k in enumerate(colours_of)}
    style = {k: STYLES[i % len(STYLES)] for i, k in enumerate(styles_of)}
    fig, axes = plt.subplots(len(grid), len(metrics), figsize=(3.8 * len(metrics), 2.8 * len(grid)), squeeze=False, sharex=True)
    for axes_row, (name, panels) in zip(axes, grid.items()):
        for ax, metric in zip(axes_row, metrics):
            for (c, s), (x, y, *band) in panels.get(metric, {}).items():
                ax.plot(x, _percent(y), color=colour[c], linestyle=style[s], marker="o", markersize=3, linewidth=1.2)
                if band:
                    ax.fill_between(x, _percent(band[0]), _percent(band[1]), color=colour[c], alpha=0.12, linewidth=0)
            reference = (references or {}).get(name, {}).get(metric)
            if reference is not None:
                ax.axhline(100 * reference, color="#555", linestyle="--", linewidth=1)
            ax.set_title(f"{name}: {metric}", fontsize=8)
            ax.set_ylim(-2, 102)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        axes_row[0].set_ylabel("%", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=8)
    fig.tight_layout()
    _legend(fig, colours_of, lambda k: plt.Line2D([], [], color=colour[k], marker="o", markersize=3), colour_title, "upper")
    _legend(fig, styles_of, lambda k: plt.Line2D([], [], color="black", linestyle=style[k]), style_title, "lower")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
