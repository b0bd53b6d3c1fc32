"""Pixels: decode and resize once with Pillow (on every core), cache, convert to model input."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from skinart.errors import SkinartError
from skinart.options import choose
from skinart.data.catalog import RESIZE_METHODS, SPLIT_NAMES, cached_array
from skinart.data.dermamnist import open_npz
from skinart.data.sources import Source


def resize_image(img: Image.Image, size: int, method: str) -> np.ndarray:
    img = img.convert("RGB")
    if method == "crop":
        img = ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
    else:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _decode(path: Path, size: int, method: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
            return resize_image(img, size, method)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SkinartError(f"cannot read image {path} ({e}); replace or remove that file") from e


def _decode_all(paths: list[Path], size: int, method: str) -> np.ndarray:
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda p: _decode(p, size, method), paths)
        for i, arr in enumerate(tqdm(jobs, total=len(paths), desc=f"resize to {size}px", disable=True if len(paths) < 2000 else None, file=sys.stderr)):
            out[i] = arr
    return out


def _npz_pixels(source: Source, size: int, method: str) -> np.ndarray:
    npz = open_npz(source.npz)
    images = np.concatenate([npz[f"{s}_images"] for s in SPLIT_NAMES])
    if images.ndim == 3:  # grey-scale MedMNIST sets
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.shape[1] == size:
        return images.astype(np.uint8, copy=False)
    return np.stack([resize_image(Image.fromarray(im), size, method) for im in images])


def memory_bytes() -> int:
    """This machine's physical memory: pixels that need more can never be held, whatever else is running."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_pixels(size: int, method: str = "crop", n_images: int | None = None) -> None:
    """Refuse, before anything is allocated, a side that is not positive, an unknown resize method, or a side at which
    `n_images` images cannot fit in memory (a MemoryError traceback after minutes of decoding otherwise)."""
    if size <= 0:
        raise SkinartError(f"--img-size must be positive, got {size}")
    choose(method, RESIZE_METHODS, "resize method")
    # uint8 HWC, held twice: the cache and the splits copied out of it. A lower bound (training and attacks add
    # float copies of batches), so no size that fits is ever refused.
    need, have = 2 * 3 * size * size * (n_images or 0), memory_bytes()
    if need > have:
        fits = int((have / (2 * 3 * n_images)) ** 0.5)
        raise SkinartError(f"--img-size {size}: {n_images} images need at least {need / 2**30:,.0f} GiB of memory, more than "
                           f"this machine's {have / 2**30:,.0f} GiB; pass a smaller --img-size (at most {fits})")


def load_pixels(source: Source, size: int, method: str = "crop", use_cache: bool = True) -> np.ndarray:
    """All of a source's images at `size`, resized once and cached by (source fingerprint, size, method)."""
    check_pixels(size, method, len(source.ids))
    key = f"pixels:{source.name}:{source.fingerprint}:{size}:{method}"
    build = (lambda: _npz_pixels(source, size, method)) if source.npz else (lambda: _decode_all(source.paths, size, method))
    return cached_array(f"{source.name}-{size}-{method}", key, build, use_cache)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [0, 1], the classifier's input space (epsilons live here)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


def from_model_input(x: np.ndarray) -> np.ndarray:
    """float NCHW in [0, 1] -> uint8 NHWC, rounding (not truncating) to the nearest level."""
    return np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
