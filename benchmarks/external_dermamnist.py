"""External evaluation of a HAM10000-trained checkpoint on images it never saw, from another source.

The only other source of dermatoscopic images on this machine is MedMNIST's DermaMNIST export (28 px JPEGs made by
another pipeline from the same HAM10000 photographs). This script takes the DermaMNIST images of the lesions in the
checkpoint's *test* split (so neither trained on nor used for the threshold or the best epoch), lays them out as a
`folder` dataset named by their HAM10000 image ids (so skinart's own overlap check sees them), and runs
`skinart evaluate --external`: AUROC and the binary metrics at the threshold the checkpoint stores.

    SKINART_DATA=/path/to/data python benchmarks/external_dermamnist.py --checkpoint DIR [--out DIR]
"""

import argparse
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

from skinart.models.checkpoint import Checkpoint
from skinart.rundir import RunOptions
from skinart.runs.evaluate import evaluate_run
from skinart.models.provenance import checkpoint_dataset


def external_folder(checkpoint: Path, data: Path, folder: Path) -> int:
    """Copy the DermaMNIST JPEGs of the checkpoint's test-split images into folder/<class>/<image id>.jpg."""
    test_ids = set(checkpoint_dataset(Checkpoint.load(checkpoint)).splits["test"].ids)
    count = 0
    with open(data / "dermamnist" / "dermamnist_split_to_ham10000.csv") as f:
        for row in csv.DictReader(f):
            if row["image_id"] in test_ids:
                (folder / row["dx"]).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(data / "dermamnist" / "jpeg28" / row["dermamnist_jpeg"], folder / row["dx"] / f"{row['image_id']}.jpg")
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint trained on ham10000")
    parser.add_argument("--out", type=Path, help="leave the evaluation run here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not os.environ.get("SKINART_DATA"):
        sys.exit("set SKINART_DATA to the folder holding ham10000/ and dermamnist/ (see data/README.md)")
    if Checkpoint.load(args.checkpoint).meta.data["name"] != "ham10000":
        sys.exit(f"{args.checkpoint} was not trained on ham10000; train one with benchmarks/train_ham10000.py --out DIR")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "external"
        count = external_folder(args.checkpoint, Path(os.environ["SKINART_DATA"]), folder)
        metrics = evaluate_run(Checkpoint.load(args.checkpoint), args.out or Path(tmp) / "run",
                               RunOptions(data="folder", data_root=str(folder), device=args.device, overwrite=True), external=True)
    at = metrics["binary_at_threshold"]
    print(f"external images        {count} (DermaMNIST 28 px JPEGs of the checkpoint's test-split lesions)")
    print(f"accuracy               {metrics['accuracy']:.4f}")
    print(f"balanced accuracy      {metrics['macro_recall']:.4f}")
    print(f"binary AUROC           {metrics['auroc']:.4f}")
    print(f"stored threshold       {at['threshold']:.4f}")
    print(f"sensitivity at it      {at['sensitivity']:.4f}")
    print(f"specificity at it      {at['specificity']:.4f}")
    print(f"FNR at it              {at['fnr']:.4f}")
    print(f"FNR at argmax          {metrics['binary']['fnr']:.4f}")


if __name__ == "__main__":
    main()
