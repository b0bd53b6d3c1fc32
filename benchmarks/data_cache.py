"""HAM10000 (10,015 images) -> 224 px: first load (decode + resize on all cores, then cache) and cached reload.

Targets on 2 cores: first load <= 60 s, cached reload <= 3 s. The baseline, measured in the same run,
is a plain single-threaded Pillow loop over the same files (open, convert, ImageOps.fit).

    SKINART_DATA=/path/to/data python benchmarks/data_cache.py [--size 224]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from skinart.data import load_dataset, read_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--baseline-images", type=int, default=2000, help="images timed for the single-thread baseline")
    args = parser.parse_args()
    if not os.environ.get("SKINART_DATA"):
        sys.exit("set SKINART_DATA to the folder holding ham10000/ (see data/README.md)")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SKINART_CACHE"] = cache
        source = read_source("ham10000")
        paths = source.paths[: args.baseline_images]
        start = time.perf_counter()
        for p in paths:
            with Image.open(p) as img:
                ImageOps.fit(img.convert("RGB"), (args.size, args.size), Image.Resampling.BILINEAR)
        baseline = (time.perf_counter() - start) * len(source.paths) / len(paths)

        start = time.perf_counter()
        ds = load_dataset("ham10000", img_size=args.size)
        first = time.perf_counter() - start
        start = time.perf_counter()
        again = load_dataset("ham10000", img_size=args.size)
        reload = time.perf_counter() - start
        n = sum(len(s) for s in again.splits.values())
        size_gb = sum(f.stat().st_size for f in Path(cache).rglob("*.npy")) / 1e9
    print(f"images                     {n} at {args.size}px ({size_gb:.2f} GB cached), {os.cpu_count()} cores")
    print(f"baseline single-thread PIL {baseline:7.1f} s (extrapolated from {len(paths)} images)")
    print(f"first load (incl. split)   {first:7.1f} s   target <= 60 s   speed-up vs baseline {baseline / first:.2f}x")
    print(f"cached reload              {reload:7.1f} s   target <= 3 s    ratio first/reload {first / reload:.1f}x")
    assert ds.splits["test"].images.shape[1:] == (args.size, args.size, 3)


if __name__ == "__main__":
    main()
