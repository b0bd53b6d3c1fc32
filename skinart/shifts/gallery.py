"""The gallery figure: what every shift does at each severity, on a few images, so a reader sees the table."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from skinart.presentation.grids import Cell, plot_image_grid
from skinart.shifts.apply import apply_shift
from skinart.shifts.table import SHIFTS

DPI = 100
CELL_PX = 100  # the strips' height at most, enlarged by whole pixels (28 px images: 84)
LABEL_PX = 150  # row labels on the left


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
    rows = [[Cell(side_by_side(apply_shift(images, name, severity, seed, ids)),
                  below="clean" if severity == 0 else str(SHIFTS[name].parameters[severity - 1])) for severity in columns]
            for name in shifts]
    return plot_image_grid(rows, path, cell_px=CELL_PX, dpi=DPI, caption_fontsize=6, label_px=LABEL_PX,
                           column_titles=["clean" if s == 0 else f"severity {s}" for s in columns],
                           row_labels=[f"{name}\n({SHIFTS[name].kind})" for name in shifts])
