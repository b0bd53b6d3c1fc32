"""Time per PGD step: skinart's ART PGD ÷ a raw PyTorch fwd+bwd sign-step loop on the same model and batch.

Target (issue 3): ratio <= 1.10. ART out of the box is timed too, for reference. No data needed:
the batch is random pixels and the weights are timm's initialisation (timing does not depend on either).

    python benchmarks/attack_overhead.py [--model resnet18 --img-size 28 --batch 128 --steps 10 --repeats 3]
"""

import argparse
import os
import time

import numpy as np
import torch

from skinart.attacks.factories import build
from skinart.toolbox import ProjectedGradientDescent
from skinart.models.networks import create_model, data_config, wrap


def raw_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, steps: int) -> torch.Tensor:
    """The reference: weights frozen, gradient w.r.t. the input only, sign step, L∞ clamp."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = (x + (adv.detach() + step * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=28)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = create_model(args.model).eval()
    classifier = wrap(net, args.img_size, *data_config(net), device="cpu")
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 3, args.img_size, args.img_size), dtype=np.float32)
    y = np.eye(net.num_classes, dtype=np.float32)[rng.integers(0, net.num_classes, args.batch)]
    options = {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": args.steps, "num_random_init": 0}
    attack = build("pgd", classifier, options, {"batch_size": args.batch, "verbose": False})
    art_attack = ProjectedGradientDescent(classifier, **options, batch_size=args.batch, verbose=False)

    def skinart_pgd():
        attack.generate(x, y)

    def art_pgd():
        art_attack.generate(x, y)

    model, xt, yt = classifier.model, torch.from_numpy(x), torch.from_numpy(y.argmax(1))

    def torch_pgd():
        for p in model.parameters():
            p.requires_grad_(False)
        raw_pgd(model, xt, yt, 8 / 255, 2 / 255, args.steps)
        for p in model.parameters():
            p.requires_grad_(True)

    runs = {"skinart": skinart_pgd, "art": art_pgd, "torch": torch_pgd}
    best = {name: float("inf") for name in runs}
    for fn in runs.values():  # warm-up
        fn()
    for _ in range(args.repeats):  # interleaved, best of n: the least disturbed measurement of each
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - start) / args.steps)
    print(f"{args.model} @ {args.img_size}px, batch {args.batch}, {args.steps} steps, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    for name, seconds in best.items():
        print(f"  {name:<8} {1000 * seconds:8.1f} ms/step")
    print(f"ratio skinart/torch {best['skinart'] / best['torch']:.3f} (target <= 1.10); ART out of the box {best['art'] / best['torch']:.3f}")


if __name__ == "__main__":
    main()
