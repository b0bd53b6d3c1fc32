"""Grids of images drawn as one picture: numpy places every cell, enlarged by a whole number of pixels (sharp, square
pixels), and matplotlib only writes the captions. A figure of one small axes per cell spent most of its time laying out
axes (a perturbation grid 0.47 s, the shift gallery of 80 cells 1.9 s); one picture with its texts costs a fraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

PAD = 6  # pixels around and between cells


@dataclass(frozen=True)
class Cell:
    """One image of a grid (HWC, uint8 or float in [0, 1]) with the text above and below it."""

    image: np.ndarray
    above: str = ""
    below: str = ""


def as_uint8(image: np.ndarray) -> np.ndarray:
    """HWC uint8 as it is; a float image in [0, 1] rounded to uint8 (what a screen shows of it)."""
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel as a scale × scale block."""
    return np.repeat(np.repeat(as_uint8(image), scale, axis=0), scale, axis=1)


def _line_px(fontsize: float, dpi: int) -> int:
    return int(np.ceil(fontsize * 1.25 * dpi / 72))


def _lines(texts) -> int:
    return max((t.count("\n") + 1 for t in texts if t), default=0)


def plot_image_grid(rows: Sequence[Sequence[Cell]], path: Path | str, *, cell_px: int, dpi: int, fontsize: float = 8,
                    caption_fontsize: float | None = None, title: str = "", column_titles: Sequence[str] = (),
                    row_labels: Sequence[str] = (), label_px: int = 0) -> Path:
    """A PNG of `rows` of cells: each image enlarged by the largest whole factor keeping its height within `cell_px`
    (at least 1), its `above` and `below` texts (`caption_fontsize`, default `fontsize`), `column_titles` over the first
    row, `row_labels` right-aligned in a margin `label_px` wide, and `title` on top."""
    caption = caption_fontsize or fontsize
    scale = max(1, cell_px // max(cell.image.shape[0] for row in rows for cell in row))
    widths = [max(cell.image.shape[1] * scale for cell in column) for column in zip(*rows)]
    heights = [max(cell.image.shape[0] * scale for cell in row) for row in rows]
    above = _lines(c.above for row in rows for c in row) * _line_px(caption, dpi)
    below = _lines(c.below for row in rows for c in row) * _line_px(caption, dpi)
    top = PAD + (_lines([title]) * _line_px(fontsize + 1, dpi)) + (_line_px(fontsize, dpi) if column_titles else 0)
    left = PAD + label_px
    width = left + sum(widths) + PAD * len(widths)
    height = top + sum(above + h + below + PAD for h in heights)
    pasted = []  # (y, x, enlarged image), into the picture once the texts are drawn
    texts = []  # (x, y, text, ha, va, fontsize) in pixels from the top left
    if title:
        texts.append((width / 2, PAD, title, "center", "top", fontsize + 1))
    xs = np.cumsum([left] + [w + PAD for w in widths[:-1]])
    for x, w, column_title in zip(xs, widths, column_titles):
        texts.append((x + w / 2, top - 2, column_title, "center", "bottom", fontsize))
    y = top
    for i, (row, h) in enumerate(zip(rows, heights)):
        if i < len(row_labels):
            texts.append((left - PAD, y + above + h / 2, row_labels[i], "right", "center", fontsize))
        for x, w, cell in zip(xs, widths, row):
            pasted.append((y + above, x, enlarged(cell.image, scale)))
            if cell.above:
                texts.append((x + w / 2, y + above - 1, cell.above, "center", "bottom", caption))
            if cell.below:
                texts.append((x + w / 2, y + above + h + 1, cell.below, "center", "top", caption))
        y += above + h + below + PAD
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    for x, y, text, ha, va, size in texts:
        fig.text(x / width, 1 - y / height, text, ha=ha, va=va, fontsize=size)
    fig.canvas.draw()  # the texts alone, then the cells pasted into its pixels: matplotlib resamples no image
    drawn = np.asarray(fig.canvas.buffer_rgba())[:height, :width, :3]
    plt.close(fig)
    picture = np.full((height, width, 3), 255, dtype=np.uint8)
    picture[: drawn.shape[0], : drawn.shape[1]] = drawn
    for y, x, image in pasted:
        picture[y : y + image.shape[0], x : x + image.shape[1]] = image
    Image.fromarray(picture).save(path, format="PNG", dpi=(dpi, dpi))
    return Path(path)
