"""Randomized-smoothing certification of a checkpoint's test images: skinart's batched certify against ART's own
per-image `certify` on a few images, the machine's load printed beside every time (timings on a shared machine are
noisy).

Target (issue 39): n = 1,000 noisy copies (plus n0 = 100 to select the class) per image at 28 px certifies 100 test
images of the quickstart model in <= 2 min on this 2-core CPU. ART's `certify` draws each image's copies with numpy's
legacy normal and predicts them on their own; skinart draws them with torch and predicts the copies of several images
in each forward pass of --batch-size rows (skinart.certification.smoothing).

    SKINART_DATA=/path/to/data python benchmarks/certify_speed.py --checkpoint runs/quickstart/train [--art-images 3]
"""

import argparse
import os
import time
from pathlib import Path

import torch

from skinart.attacks.loops import sample_indices
from skinart.certification.smoothing import smoothed
from skinart.data import to_model_input
from skinart.defences.deployed import deployed
from skinart.models.checkpoint import Checkpoint
from skinart.models.provenance import checkpoint_dataset
from skinart.rundir import seed_everything
from skinart.toolbox import PyTorchRandomizedSmoothing


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def art_certifier(classifier, sigma: float, n0: int, alpha: float):
    """ART's own PyTorchRandomizedSmoothing over the same model (statsmodels needed for its bound: `pip install statsmodels`)."""
    return PyTorchRandomizedSmoothing(model=classifier.model, loss=classifier.loss, input_shape=classifier.input_shape,
                                      nb_classes=classifier.nb_classes, clip_values=(0.0, 1.0), preprocessing=None,
                                      device_type="cpu", sample_size=n0, scale=sigma, alpha=alpha)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True, help="a trained checkpoint, e.g. runs/quickstart/train")
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1024, help="noisy rows per forward pass")
    parser.add_argument("--precision", default="fp32", help="fp32 or bf16 (torch.autocast: the base classifier in bf16)")
    parser.add_argument("--art-images", type=int, default=3, help="images ART's own certify runs on (0: none)")
    args = parser.parse_args()

    checkpoint = Checkpoint.load(args.checkpoint)
    test = checkpoint_dataset(checkpoint).splits["test"]
    x = to_model_input(test.images[sample_indices(len(test), args.images, 0)])
    classifier = deployed(checkpoint, "cpu", precision=args.precision)
    rows = len(x) * (args.n0 + args.n)
    print(f"{checkpoint.meta.model} at {checkpoint.meta.img_size} px, {len(x)} test images, n0 {args.n0} + n {args.n} = "
          f"{rows} noisy rows, {args.batch_size} rows per forward pass, {args.precision}, {torch.get_num_threads()} torch threads; {load()}")

    certifier = smoothed(classifier, sigma=args.sigma, sample_size=args.n0, alpha=args.alpha, seed=0, batch_size=args.batch_size)
    start, cpu = time.perf_counter(), time.process_time()
    predicted, radius = certifier.certify(x, args.n, batch_size=args.batch_size)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"skinart batched certify: {seconds:.1f} s wall, {cpu:.1f} s CPU (all threads; what 2 free cores share) "
          f"({rows / seconds:.0f} rows/s), {(predicted >= 0).mean():.0%} certified, median radius "
          f"{float(sorted(radius)[len(radius) // 2]):.3f}; {load()}")

    if args.art_images:
        art = art_certifier(classifier, args.sigma, args.n0, args.alpha)
        seed_everything(0)
        start, cpu = time.perf_counter(), time.process_time()
        art.certify(x[: args.art_images], args.n, batch_size=args.batch_size)
        per_image, cpu = (time.perf_counter() - start) / args.art_images, (time.process_time() - cpu) / args.art_images
        print(f"ART certify: {per_image:.2f} s wall, {cpu:.2f} s CPU per image on {args.art_images} images: {per_image * len(x):.0f} s "
              f"wall, {cpu * len(x):.0f} s CPU for {len(x)} at that rate; {load()}")


if __name__ == "__main__":
    main()
