"""Occlusion (MedMNIST-C's `BlackCorner` and `Characters`, Di Salvo et al. 2024): the round field of a
dermatoscope blacking out the corners, and coloured text written over the image. Lengths are MedMNIST-C's 224 px
pixels scaled to the image (`side_scale`)."""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import grey_dilation

from skinart.shifts.drawing import paint
from skinart.shifts.pixels import side_scale, to_uint8


def black_corner(images: np.ndarray, multiplier: float, draws=None) -> np.ndarray:
    """Black corners: everything outside a centred disk set to black (MedMNIST-C `BlackCorner`).

    multiplier: the disk's radius in halves of the shorter side (1.0 touches the edges; 1.10 blacks out only
    the corners' tips). Departures: MedMNIST-C's severities 4 and 5 are 0.90 and 0.95, so its severity 5 blacks
    out less than its 4; here they are swapped (0.95, 0.90), which keeps each value and makes severity
    monotone. The disk is centred on the image's true centre with its exact radius; MedMNIST-C draws it with
    cv2.circle at whole pixels, so at 28 px its severities 2 and 3 (radii 14.7 and 14) were one disk."""
    height, width = images.shape[1:3]
    y, x = np.ogrid[:height, :width]
    radius = min(height, width) / 2 * multiplier
    outside = (y - (height - 1) / 2) ** 2 + (x - (width - 1) / 2) ** 2 > radius**2
    out = images.copy()
    out[:, outside] = 0
    return out


HERSHEY_CAP_HEIGHT = 22  # px of a capital in cv2.FONT_HERSHEY_DUPLEX at font scale 1, which MedMNIST-C writes with
SMALLEST_FONT_SCALE = 0.14  # MedMNIST-C draws the font scale in [0.14, largest]
LETTER_SLOTS = 12  # uniforms drawn per word for its letters (the table asks for at most 10)
WORD_DRAWS = 7 + LETTER_SLOTS  # letters count, font scale, x, y, red, green, blue, then one per letter
GLYPH_MIN_PX = 16  # a word is rasterised with glyphs at least this tall, then averaged down


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's built-in Aileron: no font file needed


@lru_cache(maxsize=1)
def _cap_share() -> float:
    """A capital's height as a share of the built-in font's size."""
    top, bottom = _font(100).getbbox("H", anchor="ls")[1::2]
    return (bottom - top) / 100


@lru_cache(maxsize=4096)
def _glyph(letter: str, size: int, widen: int) -> tuple[np.ndarray, float, int]:
    """A letter of the font at `size` px, its strokes widened by `widen` px each side: its mask (rows from the
    font's ascent to its descent, the pen starting `margin` px from the left), its advance, and that margin.
    Letters are cached and words laid out from them: FreeType costs ~0.2 ms a call, a word from cache ~0.02."""
    font = _font(size)
    ascent, descent = font.getmetrics()
    margin = widen + size // 4 + 1  # room for strokes reaching left of the pen or past the advance
    advance = font.getlength(letter)
    canvas = Image.new("L", (int(np.ceil(advance)) + 2 * margin, ascent + descent))
    ImageDraw.Draw(canvas).text((margin, ascent), letter, fill=255, font=font, anchor="ls")
    mask = np.asarray(canvas)
    return (grey_dilation(mask, size=2 * widen + 1) if widen else mask), advance, margin


def word_alpha(text: str, cap_height: float, stroke: float) -> tuple[np.ndarray, int, int]:
    """The alpha mask of `text` with capitals `cap_height` px tall and strokes about `stroke` px wide (kerning
    ignored), and the offset (x, y) of its top-left corner from the text's baseline origin, in image pixels."""
    oversample = max(1, int(np.ceil(GLYPH_MIN_PX / cap_height)))
    size = max(1, round(cap_height * oversample / _cap_share()))
    widen = max(0, round((stroke * oversample - 0.1 * size) / 2))  # the font's own strokes are ~0.1 of its size
    ascent = _font(size).getmetrics()[0]
    glyphs = [_glyph(letter, size, widen) for letter in text]
    margin = glyphs[0][2]
    left_pad, top_pad = (-margin) % oversample, (-ascent) % oversample  # the pen's origin on a whole image pixel
    width = left_pad + 2 * margin + int(np.ceil(sum(advance for _, advance, _ in glyphs)))
    canvas = np.zeros((top_pad + glyphs[0][0].shape[0], width), dtype=np.uint8)
    pen = left_pad + margin
    for mask, advance, _ in glyphs:
        start = int(round(pen)) - margin
        region = canvas[top_pad:, start:start + mask.shape[1]]
        np.maximum(region, mask[:, :region.shape[1]], out=region)
        pen += advance
    rows, columns = -(-canvas.shape[0] // oversample), -(-canvas.shape[1] // oversample)
    canvas = np.pad(canvas, ((0, rows * oversample - canvas.shape[0]), (0, columns * oversample - canvas.shape[1])))
    alpha = canvas.reshape(rows, oversample, columns, oversample).mean(axis=(1, 3), dtype=np.float32) / 255
    return alpha, -(left_pad + margin) // oversample, -(top_pad + ascent) // oversample


def write_word(image: np.ndarray, alpha: np.ndarray, x: int, y: int, colour) -> None:
    """Lays `colour` at opacity `alpha` over the float image in place, its top-left corner at (x, y), clipped."""
    height, width = image.shape[:2]
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + alpha.shape[0], height), min(x + alpha.shape[1], width)
    if bottom > top and right > left:
        region = alpha[top - y:bottom - y, left - x:right - x]
        image[top:bottom, left:right] = paint(image[top:bottom, left:right], region, colour)


def write_words(image: np.ndarray, limits: tuple[int, int, float], uniforms: np.ndarray, scale: float) -> np.ndarray:
    """One image with MedMNIST-C's random words written on it; `uniforms` ((words, WORD_DRAWS)) decide them."""
    largest_letters, largest_font_scale = limits[1:]
    out = image.astype(np.float32)
    height, width = (side / scale for side in image.shape[:2])  # in MedMNIST-C's 224 px pixels
    for u in uniforms:
        letters = 3 + int(u[0] * (largest_letters - 2))
        font_scale = SMALLEST_FONT_SCALE + u[1] * (largest_font_scale - SMALLEST_FONT_SCALE)
        text = "".join(string.ascii_lowercase[int(v * 26)] for v in u[7:7 + letters])
        # MedMNIST-C's baseline origin: x in [10, width − 8·letters], y in [10, height − 10] (224 px pixels)
        x = (10 + u[2] * max(width - 8 * letters - 10, 0)) * scale
        y = (10 + u[3] * (height - 20)) * scale
        alpha, left, top = word_alpha(text, HERSHEY_CAP_HEIGHT * font_scale * scale, stroke=scale)
        write_word(out, alpha, round(x) + left, round(y) + top, 255 * u[4:7])
    return to_uint8(out)


def characters(images: np.ndarray, limits: tuple[int, int, float], draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Characters: random lowercase words in random colours written over the image (MedMNIST-C `Characters`).

    limits: (most words, most letters per word, largest font scale of OpenCV's Hershey duplex font); an image
    gets 1 to `most words` words of 3 to `most letters` letters, at font scales from 0.14 up, i.e. capitals
    3–4 px tall at 224 px. Every count and size comes from one uniform per image and word, mapped through the
    severity's limits, so a higher severity writes the same words longer, larger, and more of them.
    Departures: Pillow's built-in font (Aileron) at the Hershey font's capital height and cv2's 1 px stroke,
    instead of OpenCV's Hershey font; the font scale is continuous, not in hundredths. At 28 px the words are
    what MedMNIST-C's would be once averaged down: faint coloured streaks about half a pixel tall."""
    scale = side_scale(images)
    most_words = limits[0]
    written = []
    for image, generator in zip(images, draws):
        words = 1 + int(generator.random() * most_words)
        written.append(write_words(image, limits, generator.random((words, WORD_DRAWS)), scale))
    return np.stack(written)
