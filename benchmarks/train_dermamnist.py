"""Train skinart's CPU choice on the 28 px DermaMNIST-format data; print test accuracy, macro recall, FNR.

Targets (issues 2 and 14): accuracy >= 0.78 and macro recall >= 0.60 with binary FNR <= 0.25 (at the operating point the
checkpoint stores, chosen on the validation split, if not at argmax), in <= 15 minutes on 2 CPU cores. The published
best at 28 px is accuracy 0.766-0.768 (MedMNIST v2).

    SKINART_DATA=/path/to/data python benchmarks/train_dermamnist.py [--model skin_cnn --epochs 30 --balance sqrt-weights ...]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from skinart.models.checkpoint import Checkpoint
from skinart.runs.evaluate import evaluate_run
from skinart.rundir import RunOptions
from skinart.runs.train import train_run
from skinart.training.loop import TrainConfig


def main() -> None:
    # --balance, measured (test accuracy / macro recall): none 0.759 / 0.517, weights 0.639 / 0.618, sqrt-weights
    # 0.728 / 0.597, the closest to both targets
    defaults = TrainConfig(model="skin_cnn", epochs=30, lr=3e-3, weight_decay=5e-4, patience=0, balance="sqrt-weights")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in vars(defaults).items():
        if name not in ("pretrained", "weights"):
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not os.environ.get("SKINART_DATA"):
        sys.exit("set SKINART_DATA to the folder holding dermamnist/ (see data/README.md)")
    cfg = TrainConfig(**{k: getattr(args, k) for k in vars(defaults) if k not in ("pretrained", "weights")})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        start, cpu = time.perf_counter(), time.process_time()
        train_run(cfg, out, RunOptions(data="dermamnist", device=args.device))
        metrics = evaluate_run(Checkpoint.load(out), Path(tmp) / "eval", RunOptions(device=args.device))  # a run never writes inside its input
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    at = metrics["binary_at_threshold"]
    fnr = min(metrics["binary"]["fnr"], at["fnr"] if at else 1.0)
    print(f"config         {cfg}")
    print(f"wall time      {wall / 60:.1f} min (target <= 15) on {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"cpu time       {cpu / 60:.1f} min (all threads of this process)")
    print(f"test accuracy  {metrics['accuracy']:.4f} (target >= 0.78)")
    print(f"macro recall   {metrics['macro_recall']:.4f} (target >= 0.60)")
    print(f"binary AUROC   {metrics['auroc']:.4f}")
    print(f"FNR at argmax  {metrics['binary']['fnr']:.4f}")
    if at:
        print(f"FNR at t       {at['fnr']:.4f} (t = {at['threshold']:.4f}, chosen on val; target <= 0.25 at argmax or at t)")
        print(f"specificity@t  {at['specificity']:.4f}")
    met = metrics["accuracy"] >= 0.78 and metrics["macro_recall"] >= 0.60 and fnr <= 0.25 and wall <= 900
    print("targets        " + ("met" if met else "NOT met"))


if __name__ == "__main__":
    main()
