"""Drawing on images of any size: shapes are drawn with Pillow on a canvas several times the image's size and
box-averaged down (Image.reduce) to an alpha mask at the image's size, so a hair 0.3 px wide at 28 px becomes
the faint line it would be, and the same artefact looks alike at 28 and 224 px. Box averaging gives each pixel
its exact covered share, with none of LANCZOS's ringing. Then the masks are composited over the images."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

CANVAS_MIN_SIDE = 224  # canvases are at least this many pixels across the image's shorter side (and 2× the image)


def canvas_scale(height: int, width: int) -> int:
    return max(2, -(-CANVAS_MIN_SIDE // min(height, width)))


@dataclass(frozen=True)
class Frame:
    """Artefact geometry in lesion units: (u, v) measured from the image centre, where 1 is the image's shorter
    side, so u and v lie within ±half_width and ±half_height; `xy` and `length` give canvas pixels."""

    height: int
    width: int
    scale: int

    @cached_property
    def unit(self) -> float:
        return min(self.height, self.width) * self.scale

    @cached_property
    def half_width(self) -> float:
        return self.width / min(self.height, self.width) / 2

    @cached_property
    def half_height(self) -> float:
        return self.height / min(self.height, self.width) / 2

    def xy(self, u, v):
        """Canvas (x, y) of lesion-unit (u, v), numbers or arrays."""
        return (self.width * self.scale / 2 + u * self.unit, self.height * self.scale / 2 + v * self.unit)

    def length(self, size: float) -> float:
        return size * self.unit

    def polyline(self, uv: np.ndarray) -> list[float]:
        """The flat [x0, y0, x1, y1, …] canvas list Pillow draws, of (P, 2) lesion-unit points."""
        x, y = self.xy(uv[:, 0], uv[:, 1])
        return np.stack([x, y], axis=1).ravel().tolist()

    def circle(self, u: float, v: float, radius: float) -> tuple[float, float, float, float]:
        x, y = self.xy(u, v)
        r = self.length(radius)
        return (x - r, y - r, x + r, y + r)


def draw_alpha(height: int, width: int, paint: Callable[[ImageDraw.ImageDraw, Frame], None]) -> np.ndarray:
    """An (H, W) float32 alpha mask in [0, 1]: what `paint` draws (fill = opacity × 255) on the canvas, averaged
    down."""
    frame = Frame(height, width, canvas_scale(height, width))
    canvas = Image.new("L", (width * frame.scale, height * frame.scale))
    paint(ImageDraw.Draw(canvas), frame)
    return np.asarray(canvas.reduce(frame.scale), dtype=np.float32) / 255


def curves(start: np.ndarray, end: np.ndarray, bend: np.ndarray, points: int = 8) -> np.ndarray:
    """(K, points, 2) lesion-unit points of K quadratic Bézier curves from `start` to `end` ((K, 2) each) whose
    middles are pushed sideways by `bend` ((K,), lesion units, + to the left of the direction of travel)."""
    step = end - start
    normal = np.stack([step[:, 1], -step[:, 0]], axis=1) / np.maximum(np.hypot(*step.T), 1e-9)[:, None]
    control = (start + end) / 2 + 2 * bend[:, None] * normal
    t = np.linspace(0, 1, points)[None, :, None]
    return (1 - t) ** 2 * start[:, None] + 2 * t * (1 - t) * control[:, None] + t**2 * end[:, None]


def paint(images: np.ndarray, alpha: np.ndarray, colour) -> np.ndarray:
    """Float images with `colour` laid over them at opacity `alpha` ((N, H, W) or (H, W))."""
    alpha = alpha[..., None]
    return images * (1 - alpha) + np.asarray(colour, dtype=np.float32) * alpha


def dye(images: np.ndarray, alpha: np.ndarray, transmittance) -> np.ndarray:
    """Float images stained by a dye letting through `transmittance` (per channel) where `alpha` is 1: a dye
    darkens what is under it (multiplies), so a dark lesion stays dark under ink and only skin turns violet."""
    alpha = alpha[..., None]
    return images * (1 - alpha + alpha * np.asarray(transmittance, dtype=np.float32))
