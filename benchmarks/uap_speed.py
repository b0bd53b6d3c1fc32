"""UAP from a checkpoint to the test-split fooling rate: ART's UAP (`uap`) and skinart's batched SGD UAP (`uap-sgd`)
side by side, then the time of one pass of ART's per-image loop on 1 and on 2 torch threads.

Target (issue 17): on 2 cores, test fooling rate >= 0.80 at eps 8/255 with <= 1,000 fit images in <= 60 s per fit, for
at least one of the two methods, on a resnet18 trained at 28 px for 4 epochs and on the quickstart model. Every
figure is printed on its own line, with the machine's load (timings on a shared machine are noisy). With --baseline,
ART's UAP is also run with none of skinart's bypasses (weights not frozen, ART's success-rate logging, batch-size-1
evaluations, torch's own thread count, ART's sub-attacker FGSM step of 1/255 for 5 passes) and its time printed. With
--reference, a plain-PyTorch UAP trained by Adam is fitted too: where it fools no more, the ceiling is the model's.

    SKINART_DATA=/path/to/data python benchmarks/uap_speed.py --checkpoint runs/resnet18-28 [--baseline] [--reference]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skinart.attacks.config import AttackConfig
from skinart.runs.attack import attack_run
from skinart.attacks.factories import build
from skinart.models.checkpoint import Checkpoint
from skinart.attacks.loops import sample_indices, torch_threads
from skinart.data import to_model_input
from skinart.rundir import RunOptions, seed_everything
from skinart.toolbox import UniversalPerturbation
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed

METHODS = ("uap", "uap-sgd")


def fit_images(checkpoint: Path, n: int, seed: int = 0):
    """(classifier, n seeded train images as model input, test images as model input) of a checkpoint."""
    loaded = Checkpoint.load(checkpoint)
    dataset = checkpoint_dataset(loaded)
    classifier = deployed(loaded, "cpu")
    train, test = dataset.splits["train"], dataset.splits["test"]
    return classifier, to_model_input(train.images[sample_indices(len(train), n, seed)]), to_model_input(test.images)


def art_pass_seconds(checkpoint: Path, eps: float, n: int, threads: int) -> float:
    """Seconds of one pass of ART's per-image UAP loop over `n` fit images on `threads` torch threads."""
    classifier, x, _ = fit_images(checkpoint, n)
    attack = build("uap", classifier, {"eps": eps, "max_iter": 1}, {})
    seed_everything(0)
    start = time.perf_counter()
    with torch_threads(threads):
        attack.generate(x)
    return time.perf_counter() - start


def art_out_of_the_box(checkpoint: Path, eps: float, n: int) -> tuple[float, float]:
    """ART's UniversalPerturbation as a notebook would call it; the test split scored at ART's batch size 1."""
    start = time.perf_counter()
    classifier, x_fit, x = fit_images(checkpoint, n)
    uap = UniversalPerturbation(classifier, attacker="fgsm", attacker_params={"eps": 1 / 255}, eps=eps, max_iter=5)
    seed_everything(0)
    uap.generate(x_fit)
    clean = classifier.predict(x, batch_size=1).argmax(1)
    adv = classifier.predict(np.clip(x + uap.noise, 0, 1), batch_size=1).argmax(1)
    return time.perf_counter() - start, float(np.mean(clean != adv))


def adam_reference(checkpoint: Path, eps: float, n: int, epochs: int = 10, seed: int = 0) -> tuple[float, float, float]:
    """(fit fooling, test fooling, seconds) of a plain-PyTorch UAP: δ trained by Adam (lr 0.01) on the mean cross-entropy
    of the clean predictions over mini-batches of 64, clamped to ε after each step. Outside ART and skinart's methods,
    it tells whether a low fooling rate is the attacks' failure or the model's: what another optimiser reaches."""
    classifier, x_fit, x_test = fit_images(checkpoint, n, seed)
    net = classifier.model.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x_fit, x_test = torch.from_numpy(x_fit), torch.from_numpy(x_test)
    with torch.no_grad():
        clean_fit, clean_test = net(x_fit).argmax(1), net(x_test).argmax(1)
    torch.manual_seed(seed)
    delta = torch.zeros(1, *x_fit.shape[1:], requires_grad=True)
    optimiser, start = torch.optim.Adam([delta], lr=0.01), time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(x_fit)).split(64):
            loss = -torch.nn.functional.cross_entropy(net((x_fit[batch] + delta).clamp(0, 1)), clean_fit[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        fooling = [float((net((x + delta).clamp(0, 1)).argmax(1) != clean).float().mean()) for x, clean in
                   ((x_fit, clean_fit), (x_test, clean_test))]
    return fooling[0], fooling[1], seconds


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--fit-samples", type=int, default=1000)
    parser.add_argument("--loop-samples", type=int, default=200, help="fit images of the timed 1- vs 2-thread pass of ART's loop")
    parser.add_argument("--baseline", action="store_true", help="also time ART out of the box")
    parser.add_argument("--reference", action="store_true", help="also fit a plain-PyTorch Adam UAP (what another optimiser reaches)")
    args = parser.parse_args()
    print(f"checkpoint {args.checkpoint}, eps {args.eps}, {args.fit_samples} fit images; {load()}")
    for method in METHODS:
        cfg = AttackConfig(method, eps=args.eps, fit_samples=args.fit_samples)
        with tempfile.TemporaryDirectory() as tmp:
            m = attack_run(cfg, Checkpoint.load(args.checkpoint), Path(tmp) / method, RunOptions(device="cpu"))
        print(f"{method} fit seconds: {m['fit_seconds']:.1f} (target <= 60; {m['fit_passes']} passes; {load()})")
        print(f"{method} fit fooling rate: {m['fit_fooling_rate']:.3f}")
        print(f"{method} test fooling rate: {m['fooling_rate']:.3f} (target >= 0.80; {m['images']} test images, "
              f"L∞ {m['linf_max'] * 255:.2f}/255)")
        print(f"{method} test accuracy: {m['clean']['accuracy']:.3f} -> {m['adversarial']['accuracy']:.3f}")
        print(f"{method} test FNR (argmax): {m['clean']['binary']['fnr']:.3f} -> {m['adversarial']['binary']['fnr']:.3f}")
        print(f"{method} attacked test images predicted as: " +
              ", ".join(f"{c} {s:.2f}" for c, s in m["predicted_shares"]["attacked"].items()))
    for threads in (1, 2):
        seconds = art_pass_seconds(args.checkpoint, cfg.eps, args.loop_samples, threads)
        print(f"ART loop, one pass over {args.loop_samples} fit images, {threads} torch thread(s): {seconds:.1f} s ({load()})")
    if args.reference:
        fit, test, seconds = adam_reference(args.checkpoint, cfg.eps, args.fit_samples)
        print(f"plain-PyTorch Adam UAP (reference, 10 epochs): fit fooling {fit:.3f}, test fooling {test:.3f}, {seconds:.1f} s")
    if args.baseline:
        seconds, fooling = art_out_of_the_box(args.checkpoint, cfg.eps, args.fit_samples)
        print(f"ART out of the box seconds: {seconds:.1f} (test fooling {fooling:.3f}; {load()})")


if __name__ == "__main__":
    main()
