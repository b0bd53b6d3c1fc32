"""Images per second for training, prediction and PGD steps, per precision, each with its ratio to fp32 measured in
the same run. No data, no downloads: synthetic uint8 images and the model's random initialisation (timing depends on
neither).

    python benchmarks/throughput.py [--model skin_cnn --img-size 28 --batch-size 64 --images 1024 --device cpu
                                     --precisions fp32,bf16 --measure train,predict,pgd --pgd-steps 5]
    python benchmarks/throughput.py --model resnet50 --img-size 224 --device cuda --precisions fp32,bf16,fp16

Training runs `skinart.training.loop.train` (its whole input pipeline) for --epochs epochs and counts the epochs after the
first (warm-up: workers starting, cuDNN choosing its algorithms). PGD counts images x steps per second.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skinart.attacks.factories import build
from skinart.attacks.loops import craft_evasion, one_hot
from skinart.data import CLASSES, LesionDataset, Split, to_model_input
from skinart.compute import resolve_device, use_deterministic
from skinart.models.networks import create_model, data_config, predict, wrap
from skinart.training.loop import TrainConfig, train

PRECISIONS_BY_DEVICE = {"cpu": "fp32,bf16", "cuda": "fp32,bf16,fp16"}


def synthetic(n: int, img_size: int) -> LesionDataset:
    rng = np.random.default_rng(0)
    split = Split(images=rng.integers(0, 256, (n, img_size, img_size, 3), dtype=np.uint8),
                  labels=np.arange(n) % len(CLASSES), groups=np.arange(n), ids=np.arange(n).astype(str))
    return LesionDataset(name="synthetic", img_size=img_size, splits={"train": split}, root="", source_fingerprint="",
                         resize="crop", split_ratios=None, seed=0)


def train_rate(args, precision: str) -> float:
    dataset = synthetic(args.images, args.img_size)
    cfg = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size, patience=0, augment=args.augment,
                      precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        history = train(dataset, cfg, Path(tmp), device=args.device)["history"]
    seconds = sum(record["seconds"] for record in history[1:])
    return (len(history) - 1) * (args.images // args.batch_size) * args.batch_size / seconds


def _classifier(args, precision: str):
    torch.manual_seed(0)
    net = create_model(args.model).eval()
    return wrap(net, args.img_size, *data_config(net), args.device, precision=precision)


def _timed(work, repeats: int = 3) -> float:
    work()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        work()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def predict_rate(args, precision: str) -> float:
    classifier, images = _classifier(args, precision), synthetic(args.images, args.img_size).splits["train"].images
    return len(images) / _timed(lambda: predict(classifier, images, batch_size=args.batch_size))


def pgd_rate(args, precision: str) -> float:
    classifier = _classifier(args, precision)
    split = synthetic(args.batch_size, args.img_size).splits["train"]
    x, y = to_model_input(split.images), one_hot(split.labels, len(CLASSES))
    options = {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": args.pgd_steps, "num_random_init": 0}
    attack = build("pgd", classifier, options, {"batch_size": args.batch_size, "verbose": False})
    return len(x) * args.pgd_steps / _timed(lambda: craft_evasion(attack, classifier, x, y))


MEASURES = {"train": train_rate, "predict": predict_rate, "pgd": pgd_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="skin_cnn")
    parser.add_argument("--img-size", type=int, default=28)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024, help="training images (predict: as many)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs, the first not counted")
    parser.add_argument("--augment", default="rotate")
    parser.add_argument("--pgd-steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", help="comma-separated (default: fp32,bf16 on CPU, and fp16 on CUDA)")
    parser.add_argument("--measure", default="train,predict,pgd")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    use_deterministic(False)  # as a run without --deterministic: cuDNN benchmarks its algorithms
    precisions = (args.precisions or PRECISIONS_BY_DEVICE[args.device]).split(",")
    if args.device == "cpu" and "fp16" in precisions:
        sys.exit("fp16 is measured on CUDA only (CPU autocast computes fp16 slowly, and nobody trains so); drop it")
    print(f"# {args.model} at {args.img_size} px, batch {args.batch_size}, {args.device} "
          f"({torch.cuda.get_device_name() if args.device == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"load {os.getloadavg()[0]:.1f}")
    for what in args.measure.split(","):
        rates = {}
        for precision in precisions:
            print(f"measuring {what} at {precision}", file=sys.stderr)
            rates[precision] = MEASURES[what](args, precision)
            ratio = f"  x{rates[precision] / rates['fp32']:.2f} fp32" if "fp32" in rates and precision != "fp32" else ""
            unit = "image-steps/s" if what == "pgd" else "images/s"
            print(f"{what:8s}{precision:6s}{rates[precision]:12.1f} {unit}{ratio}", flush=True)


if __name__ == "__main__":
    main()
