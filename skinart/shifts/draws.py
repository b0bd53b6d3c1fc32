"""Per-image random streams. An image's stream depends only on (seed, shift name, the image's id), never on the
batch it arrives in or its position there, so the same image gets the same corruption for every model and batch
size (paired comparisons).

The severity is deliberately not part of the key: every severity reads the same stream and only changes how far
the same draw goes (the same noise field scaled, the first k of the same hairs, the same blur direction). A
severity curve then compares one corruption growing, not five unrelated ones, and per image it is monotone for
the shifts whose draws nest (ink, ruler, hair, bubbles, impulse noise)."""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np


def image_generator(seed: int, name: str, image_id) -> np.random.Generator:
    """The stream of one image under one shift: PCG64 seeded from a blake2b digest (not Python's salted hash()).
    An id is read as text, so 7, np.int64(7) and "7" name the same image."""
    digest = hashlib.blake2b(f"{seed}\x1f{name}\x1f{image_id}".encode(), digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "little")))


def image_generators(seed: int, name: str, ids: Sequence) -> list[np.random.Generator]:
    return [image_generator(seed, name, image_id) for image_id in ids]


def per_image(draws: Sequence[np.random.Generator], draw: Callable[[np.random.Generator], np.ndarray]) -> np.ndarray:
    """One draw from each image's stream, stacked along a new first axis."""
    return np.stack([draw(generator) for generator in draws])
