"""WebP+flip (LLT) speed: thread-pool throughput ÷ a single-thread Pillow loop on the same images, and
predict with LLT ÷ predict without (resnet50 @ 224 px by default), each measured in one run.

Target (issue 4): throughput ratio >= 1.8 on 2 cores. Uses real HAM10000 images when SKINART_DATA is set.

    SKINART_DATA=/path/to/data python benchmarks/llt_speed.py [--images 256 --model resnet50 --img-size 224]
"""

import argparse
import os
import time

import numpy as np
import torch

from skinart.data import load_dataset, to_model_input
from skinart.models.networks import create_model, data_config, wrap
from skinart.defences.preprocessors import WebPFlip, webp_batch, webp_roundtrip


def images(n: int, size: int) -> np.ndarray:
    """float32 NCHW in [0, 1]: real lesions when the shared data are there, else smooth synthetic ones."""
    if os.environ.get("SKINART_DATA"):
        test = load_dataset("ham10000", img_size=size).splits["test"]
        return to_model_input(test.images[:n])
    grid = np.linspace(0, 1, size, dtype=np.float32)
    base = np.stack([np.outer(grid, grid), np.outer(grid[::-1], grid), np.outer(grid, grid[::-1])])
    return np.clip(base[None] + 0.05 * np.random.default_rng(0).standard_normal((n, 3, size, size), dtype=np.float32), 0, 1)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--predict-images", type=int, default=32)
    parser.add_argument("--quality", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = images(args.images, args.img_size)
    uint8 = np.rint(x * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    single = best_of(lambda: [webp_roundtrip(im, args.quality) for im in uint8], args.repeats)
    pooled = best_of(lambda: webp_batch(x, args.quality), args.repeats)
    print(f"WebP round trip of {args.images} images at {args.img_size}px, quality {args.quality}, {os.cpu_count()} cores")
    print(f"  single thread {args.images / single:7.1f} img/s; thread pool {args.images / pooled:7.1f} img/s")
    print(f"  throughput ratio {single / pooled:.2f} (target >= 1.8)")

    torch.manual_seed(0)
    net = create_model(args.model).eval()
    plain = wrap(net, args.img_size, *data_config(net), device="cpu")
    defended = wrap(net, args.img_size, *data_config(net), device="cpu", preprocessing_defences=[WebPFlip(args.quality, device_type="cpu")])
    batch = x[: args.predict_images]
    plain.predict(batch[:2]), defended.predict(batch[:2])  # warm-up
    without = best_of(lambda: plain.predict(batch, batch_size=32), args.repeats)
    with_llt = best_of(lambda: defended.predict(batch, batch_size=32), args.repeats)
    print(f"predict {args.model} @ {args.img_size}px on {len(batch)} images: {without:.2f} s without LLT, {with_llt:.2f} s with")
    print(f"  predict ratio with/without LLT {with_llt / without:.3f}")


if __name__ == "__main__":
    main()
