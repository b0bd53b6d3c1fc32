"""Natural-shift speed: seconds of `apply_shift` per shift over severities 1–5, and the total, on N images at one size.

Target (issue 36): every shift × severity on 2,000 images at 28 px, plus prediction, in ≤ 3 min on 2 cores, i.e. the
shifts well under 0.2 ms per image per shift and severity. Uses DermaMNIST's test images (28 px) or HAM10000's
(resized) when SKINART_DATA is set, generated lesions otherwise. Prints the machine's load beside the numbers.

    SKINART_DATA=/path/to/data python benchmarks/shift_speed.py [--images 2000 --size 28]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from skinart.shifts.apply import apply_shift
from skinart.shifts.table import SEVERITIES, SHIFTS


def generated(count: int, size: int) -> np.ndarray:
    """Skin-toned noise with a dark disk in the middle: enough structure for every shift to do its work."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    disk = (np.hypot(y, x) < 0.25)[None, ..., None]
    skin = np.array([222, 172, 152]) + rng.normal(0, 8, (count, size, size, 3))
    return np.clip(np.where(disk, skin * 0.45, skin), 0, 255).astype(np.uint8)


def real(count: int, size: int, root: Path) -> np.ndarray:
    if size == 28:
        return np.load(root / "dermamnist" / "dermamnist_28_reconstructed.npz")["test_images"][:count]
    files = sorted((root / "ham10000" / "images_200x150").glob("*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC)) for f in files])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=28)
    args = parser.parse_args()
    root = os.environ.get("SKINART_DATA")
    images = real(args.images, args.size, Path(root)) if root else generated(args.images, args.size)
    ids = list(range(len(images)))
    print(f"{len(images)} images at {images.shape[1]}×{images.shape[2]} px ({'real' if root else 'generated'}), "
          f"severities {SEVERITIES[0]}–{SEVERITIES[-1]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    total = 0.0
    for name in SHIFTS:
        start = time.perf_counter()
        for severity in SEVERITIES:
            apply_shift(images, name, severity, seed=0, ids=ids)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"  {name:17s} {seconds:6.2f} s  ({1000 * seconds / len(images) / len(SEVERITIES):.3f} ms per image and severity)")
    calls = len(images) * len(SHIFTS) * len(SEVERITIES)
    print(f"total {total:.1f} s for {calls} image-shifts: {1000 * total / calls:.3f} ms each; "
          f"load {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
