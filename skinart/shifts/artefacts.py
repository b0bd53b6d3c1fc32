"""Dermoscopy artefacts, skinart's own: things that lie on or around a lesion in real dermoscopic images and are
known to move classifiers' scores: ink markings, rulers, hairs, immersion-gel bubbles and the dark corners of a
round dermatoscope. Each is drawn procedurally (no image assets), in lesion units (fractions of the image's
shorter side, from its centre), so it looks alike at 28 and 224 px; severity raises coverage, and each image's
marks are drawn in a fixed order from its own stream, so a higher severity adds marks to the same ones."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from skinart.shifts.draws import per_image
from skinart.shifts.drawing import curves, draw_alpha, dye, paint
from skinart.shifts.pixels import to_uint8

GENTIAN_VIOLET = (0.45, 0.25, 0.75)  # the share of red, green and blue a mark of the dye lets through
MARK_OPACITY = 0.9
LESION_CLEARANCE = 0.27  # ink marks are centred at least this far (lesion units) from the image centre


def _draw_each(images: np.ndarray, draws: Sequence[np.random.Generator], shape: tuple[int, ...],
               paint_one) -> np.ndarray:
    """(N, H, W) alpha masks: paint_one(draw, frame, uniforms) for each image with `shape` uniforms of its own."""
    height, width = images.shape[1:3]
    uniforms = per_image(draws, lambda g: g.random(shape))
    return np.stack([draw_alpha(height, width, lambda draw, frame: paint_one(draw, frame, u)) for u in uniforms])


def _ink_marks(draw, frame, uniforms: np.ndarray) -> None:
    angle, distance, kind, size, turn, width, bend = uniforms.T
    radial = np.stack([np.cos(2 * np.pi * angle), np.sin(2 * np.pi * angle)], axis=1)
    centre = radial * (LESION_CLEARANCE + 0.18 * distance)[:, None]
    heading = 2 * np.pi * angle + np.pi / 2 + (turn - 0.5) * 0.8  # roughly along the circle round the lesion
    half = (0.04 + 0.08 * size)[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    strokes = curves(centre - half, centre + half, (bend - 0.5) * 0.1)
    fill = round(255 * MARK_OPACITY)
    for k in range(len(uniforms)):
        if kind[k] < 0.35:  # a dot, as a surgeon dots a margin
            draw.ellipse(frame.circle(*centre[k], 0.012 + 0.02 * size[k]), fill=fill)
        else:
            stroke = max(1, round(frame.length(0.014 + 0.014 * width[k])))
            draw.line(frame.polyline(strokes[k]), fill=fill, width=stroke, joint="curve")


def ink_marking(images: np.ndarray, marks: int, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Ink marking: gentian-violet dots and short strokes around the lesion, as surgical skin markers leave them
    (Winkler et al., JAMA Dermatol 2019: such markings raised a commercial CNN's melanoma scores of benign
    nevi).

    marks: how many dots and strokes (a third dots); each lies 0.27–0.45 of the shorter side from the centre,
    clear of the lesion. The ink is a dye: it multiplies what is under it (GENTIAN_VIOLET)."""
    alpha = _draw_each(images, draws, (marks, 7), _ink_marks)
    return to_uint8(dye(images.astype(np.float32), alpha, GENTIAN_VIOLET))


def _hairs(draw, frame, uniforms: np.ndarray) -> None:
    u, v, heading, length, bend, width = uniforms.T
    start = 1.2 * np.stack([(u - 0.5) * 2 * frame.half_width, (v - 0.5) * 2 * frame.half_height], axis=1)
    direction = np.stack([np.cos(2 * np.pi * heading), np.sin(2 * np.pi * heading)], axis=1)
    hairs = curves(start, start + (0.35 + 0.65 * length)[:, None] * direction, (bend - 0.5) * 0.25)
    for points, w in zip(hairs, width):
        draw.line(frame.polyline(points), fill=230, width=max(1, round(frame.length(0.004 + 0.008 * w))))


def hair(images: np.ndarray, count: int, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Hair: dark, gently curved hairs across the image, some crossing the lesion, as in dermoscopy of hairy
    skin (the reason for hair-removal preprocessing such as DullRazor, Lee et al. 1997).

    count: how many hairs, each 0.35–1 of the shorter side long and 0.4–1.2 % of it wide (1–3 px at 224 px,
    faint sub-pixel lines at 28 px), at 90 % opacity, in one dark brown to black per image."""
    tone = per_image(draws, lambda g: g.random())  # drawn first: the hairs' stream follows
    alpha = _draw_each(images, draws, (count, 6), _hairs)
    colours = (15 + 45 * tone)[:, None] * np.array([1.0, 0.8, 0.65], dtype=np.float32)
    return to_uint8(paint(images.astype(np.float32), alpha, colours[:, None, None, :]))


RULER_DEPTH = 0.1  # how far a ruler reaches in from the image's edge, in lesion units
TICK_SPACING = 0.025  # between ticks, in lesion units (a millimetre when the shorter side spans 4 cm)
RULER_PLATE = (236, 232, 214)  # the ruler's off-white plastic, laid at 75 % opacity
RULER_INK = (20, 20, 20)


def _edge_point(frame, edge: int, along, inwards):
    """Canvas (x, y) of the point `along` ∈ [0, 1] edge `edge` (top, bottom, left, right), `inwards` lesion units
    in from it (numbers or arrays)."""
    a, b = frame.half_width, frame.half_height
    uv = ((-a + 2 * a * along, -b + inwards), (-a + 2 * a * along, b - inwards),
          (-a + inwards, -b + 2 * b * along), (a - inwards, -b + 2 * b * along))[edge]
    return frame.xy(*uv)


def _ruler_span(uniforms: np.ndarray, length: float) -> tuple[int, float, float]:
    """(edge, start, end) of a ruler covering `length` of an edge around a drawn point, kept on the edge: a
    longer ruler contains a shorter one at the same point, so coverage grows with severity."""
    edge, middle = int(uniforms[0] * 4), 0.15 + 0.7 * uniforms[1]
    start = float(np.clip(middle - length / 2, 0, 1 - length))
    return edge, start, start + length


def _ruler_plate(draw, frame, span) -> None:
    edge, start, end = span
    corners = [(start, 0), (end, 0), (end, RULER_DEPTH), (start, RULER_DEPTH)]
    draw.polygon([_edge_point(frame, edge, along, inwards) for along, inwards in corners], fill=191)


def _ruler_ticks(draw, frame, span) -> None:
    """Millimetre ticks on the ruler's inner side, longer every 5 and 10, and the inner rule line."""
    edge, start, end = span
    edge_length = 2 * (frame.half_width if edge < 2 else frame.half_height)
    k = np.arange(int((end - start) * edge_length / TICK_SPACING) + 1)
    along = start + k * TICK_SPACING / edge_length
    reach = RULER_DEPTH * np.where(k % 10 == 0, 0.75, np.where(k % 5 == 0, 0.5, 0.3))
    inner, outer = _edge_point(frame, edge, along, RULER_DEPTH), _edge_point(frame, edge, along, RULER_DEPTH - reach)
    width = max(1, round(frame.length(0.004)))
    for segment in np.stack(np.broadcast_arrays(*inner, *outer), axis=1).tolist():
        draw.line(segment, fill=242, width=width)
    draw.line([*_edge_point(frame, edge, start, RULER_DEPTH), *_edge_point(frame, edge, end, RULER_DEPTH)], fill=242,
              width=width)


def ruler(images: np.ndarray, length: float, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Ruler: a translucent millimetre ruler along one edge, as photographed beside lesions for scale (one of
    the artefacts Bissoto et al. 2019 annotated in ISIC images as a source of dataset bias).

    length: the share of the edge the ruler covers, around a point drawn per image (the edge too); it reaches
    0.1 of the shorter side in from the edge, never near the lesion."""
    height, width = images.shape[1:3]
    spans = [_ruler_span(u, length) for u in per_image(draws, lambda g: g.random(2))]
    plates = np.stack([draw_alpha(height, width, lambda draw, frame: _ruler_plate(draw, frame, s)) for s in spans])
    ticks = np.stack([draw_alpha(height, width, lambda draw, frame: _ruler_ticks(draw, frame, s)) for s in spans])
    return to_uint8(paint(paint(images.astype(np.float32), plates, RULER_PLATE), ticks, RULER_INK))


BUBBLE_LAYERS = (26, 150, 215)  # opacity × 255 of a bubble's inside, rim and highlight: each layer over the last


def _bubbles(draw, frame, uniforms: np.ndarray) -> None:
    """Every bubble's inside, then every rim, then every highlight: each layer is more opaque than the one
    before, so drawing over is taking the maximum and an added bubble never hides part of another's rim."""
    circles = [((u - 0.5) * 2 * frame.half_width, (v - 0.5) * 2 * frame.half_height, 0.025 + 0.08 * r)
               for u, v, r in uniforms]
    for u, v, r in circles:
        draw.ellipse(frame.circle(u, v, r), fill=BUBBLE_LAYERS[0])
    for u, v, r in circles:
        rim = max(1, round(frame.length(0.1 * r + 0.004)))
        draw.ellipse(frame.circle(u, v, r), outline=BUBBLE_LAYERS[1], width=rim)
    for u, v, r in circles:
        draw.ellipse(frame.circle(u - 0.45 * r, v - 0.45 * r, 0.2 * r), fill=BUBBLE_LAYERS[2])


def gel_bubbles(images: np.ndarray, count: int, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Gel bubbles: air bubbles trapped in the immersion gel or oil of contact dermoscopy: clear discs with a
    bright rim and a specular highlight, anywhere in the field, the lesion showing through their insides.

    count: how many bubbles, of radius 2.5–10.5 % of the shorter side."""
    alpha = _draw_each(images, draws, (count, 3), _bubbles)
    return to_uint8(paint(images.astype(np.float32), alpha, (255, 255, 255)))


SCOPE_BLACK = (6, 5, 5)
SCOPE_EDGE = 0.2  # the width of the field stop's soft edge, in halves of the shorter side
SCOPE_DECENTRE = 0.06  # the field's centre lies up to this far off the image's, in halves of the shorter side


def dark_corners(images: np.ndarray, radius: float, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Dark corners: the round field of view of a contact dermatoscope photographed into a rectangular image:
    dark outside a circle with a soft edge, its centre a little off the image's (drawn per image). Unlike
    MedMNIST-C's black_corner (a sharp black disk edge, exactly centred), this is the vignette as it appears in
    dermoscopic archives such as ISIC's.

    radius: the field's radius in halves of the shorter side (the corners of a square lie at 1.41)."""
    height, width = images.shape[1:3]
    half = min(height, width) / 2
    centre = per_image(draws, lambda g: g.uniform(-1, 1, 2)) * SCOPE_DECENTRE * half  # (N, 2): y, x in pixels
    y = np.arange(height) - (height - 1) / 2
    x = np.arange(width) - (width - 1) / 2
    distance = np.hypot(y[None, :, None] - centre[:, 0, None, None], x[None, None, :] - centre[:, 1, None, None]) / half
    ramp = np.clip((distance - radius) / SCOPE_EDGE + 0.5, 0, 1)
    alpha = (ramp * ramp * (3 - 2 * ramp)).astype(np.float32)  # smoothstep: no visible ring at the edge
    return to_uint8(paint(images.astype(np.float32), alpha, SCOPE_BLACK))
