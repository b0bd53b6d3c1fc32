"""The gallery figure: what every shift does at each severity, on a few images, so a reader sees the table."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from skinart.shifts.apply import apply_shift  # noqa: E402
from skinart.shifts.table import SHIFTS  # noqa: E402

DPI = 100
LABEL_WIDTH = 1.5  # inches of row labels on the left
TITLE_HEIGHT = 0.35  # inches of column titles on top
CAPTION_HEIGHT = 0.22  # inches under each cell for its parameter


def side_by_side(images: np.ndarray) -> np.ndarray:
    """The images in one row, a white pixel column between neighbours."""
    gap = np.full((images.shape[1], 1, 3), 255, dtype=np.uint8)
    return np.concatenate([part for image in images for part in (image, gap)][:-1], axis=1)


def plot_shift_gallery(images: np.ndarray, shifts: Sequence[str], severities: Sequence[int], path: Path | str,
                       seed: int = 0, ids: Sequence | None = None) -> Path:
    """A grid saved as PNG: a row per shift, a column per severity after a clean one; each cell shows all
    `images` (uint8 N×H×W×3, a few) side by side, captioned with the severity's parameter. Cells are drawn
    at least at the images' own resolution (28 px images enlarged, pixels kept square and sharp)."""
    ids = list(range(len(images))) if ids is None else list(ids)
    columns = [0, *severities]
    strip = side_by_side(images)
    cell_height = max(1.0, strip.shape[0] / DPI)
    cell_width = cell_height * strip.shape[1] / strip.shape[0]
    width = LABEL_WIDTH + len(columns) * cell_width + 0.1
    height = TITLE_HEIGHT + len(shifts) * (cell_height + CAPTION_HEIGHT)
    fig, axes = plt.subplots(len(shifts), len(columns), figsize=(width, height), squeeze=False)
    for row, name in zip(axes, shifts):
        shift = SHIFTS[name]
        row[0].set_ylabel(f"{name}\n({shift.kind})", rotation=0, ha="right", va="center", fontsize=8)
        for ax, severity in zip(row, columns):
            ax.imshow(side_by_side(apply_shift(images, name, severity, seed, ids)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("clean" if severity == 0 else str(shift.parameters[severity - 1]), fontsize=6, labelpad=1)
    for ax, severity in zip(axes[0], columns):
        ax.set_title("clean" if severity == 0 else f"severity {severity}", fontsize=8)
    # margins in inches, fixed: tight_layout measures every text and would cost more than drawing the grid
    fig.subplots_adjust(left=LABEL_WIDTH / width, right=1 - 0.1 / width, top=1 - TITLE_HEIGHT / height,
                        bottom=CAPTION_HEIGHT / height, wspace=0.04, hspace=CAPTION_HEIGHT / cell_height)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)
