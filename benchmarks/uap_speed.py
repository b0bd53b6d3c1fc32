"""UAP from a checkpoint to the test-split fooling rate, timed end to end (data, fit, test evaluation).

Target (issue 3): resnet18 @ 28 px on 2 cores, test fooling rate >= 0.80 at eps <= 8/255 in <= 2 minutes.
With --baseline, the same fit is also run through ART with none of skinart's bypasses (weights not
frozen, ART's success-rate logging, ART's batch-size-1 evaluation of the test split), and the ratio printed.

    SKINART_DATA=/path/to/data python benchmarks/uap_speed.py --checkpoint runs/resnet18-28 [--baseline]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from skinart.attack_config import AttackConfig
from skinart.attack_run import attack_run
from skinart.attacks import build
from skinart.checkpoints import checkpoint_dataset, classifier_from_checkpoint, read_checkpoint_meta
from skinart.crafting import sample_indices
from skinart.data import to_model_input
from skinart.runs import seed_everything


def art_out_of_the_box(checkpoint: Path, cfg: AttackConfig) -> tuple[float, float]:
    """ART's UniversalPerturbation as a notebook would call it; the test split scored at ART's batch size 1."""
    meta = read_checkpoint_meta(checkpoint)
    start = time.perf_counter()
    dataset = checkpoint_dataset(checkpoint, meta, None, None)
    classifier, _ = classifier_from_checkpoint(checkpoint, "cpu")
    train, test = dataset.splits["train"], dataset.splits["test"]
    uap = build("uap", classifier, {"eps": cfg.eps, "eps_step": cfg.eps_step, "max_iter": cfg.max_iter}, {})
    seed_everything(cfg.seed)
    uap.generate(to_model_input(train.images[sample_indices(len(train), cfg.fit_samples, cfg.seed)]))
    x = to_model_input(test.images)
    clean = classifier.predict(x, batch_size=1).argmax(1)
    adv = classifier.predict(np.clip(x + uap.noise, 0, 1), batch_size=1).argmax(1)
    return time.perf_counter() - start, float(np.mean(clean != adv))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--eps-step", default="1/255")
    parser.add_argument("--max-iter", type=int, default=5)
    parser.add_argument("--fit-samples", type=int, default=1000)
    parser.add_argument("--baseline", action="store_true", help="also time ART out of the box")
    args = parser.parse_args()
    cfg = AttackConfig("uap", eps=args.eps, eps_step=args.eps_step, max_iter=args.max_iter, fit_samples=args.fit_samples)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metrics = attack_run(cfg, args.checkpoint, Path(tmp) / "uap", device="cpu")
        wall = time.perf_counter() - start
    print(f"skinart uap   {wall:6.1f} s end to end (fit {metrics['fit_seconds']:.1f} s on {metrics['fit_samples']} train images; "
          f"target <= 120 s)")
    print(f"  fooling rate: fit sample {metrics['fit_fooling_rate']:.3f}, test split {metrics['fooling_rate']:.3f} "
          f"(target >= 0.80) at eps {cfg.eps * 255:.0f}/255; measured L∞ {metrics['linf_max'] * 255:.2f}/255")
    print(f"  test accuracy {metrics['clean']['accuracy']:.3f} -> {metrics['adversarial']['accuracy']:.3f}, "
          f"FNR {metrics['clean']['binary']['fnr']:.3f} -> {metrics['adversarial']['binary']['fnr']:.3f}")
    if args.baseline:
        seconds, fooling = art_out_of_the_box(args.checkpoint, cfg)
        print(f"ART out of the box {seconds:6.1f} s (test fooling {fooling:.3f}); ratio skinart/ART {wall / seconds:.2f}")


if __name__ == "__main__":
    main()
