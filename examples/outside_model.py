"""A model trained without skinart, the way an outside team would: plain PyTorch and torchvision, its own class order
(ISIC 2018's MEL,NV,BCC,AKIEC,BKL,DF,VASC), ImageNet's mean/std applied outside the network, on the training split of a
DermaMNIST-format npz. It writes the model three ways (a state dict, TorchScript, a torch.export program) and its own
test-split numbers, computed without skinart, so `skinart import` can be checked against them (README, "Your own model").

    python examples/outside_model.py --npz $SKINART_DATA/dermamnist/dermamnist_28_reconstructed.npz --out runs/outside [--epochs 6]
        [--external-folder runs/outside/ham-test --ham-root $SKINART_DATA]

--external-folder lays out the full-size HAM10000 photographs of the npz's *test* images (through the shared data's
dermamnist_split_to_ham10000.csv) as a `folder` dataset, one sub-directory per class: images the model never saw,
from another pipeline than DermaMNIST's, for `skinart evaluate --external --data folder`.
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from torch import nn

MEDMNIST = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")  # what the npz's label indices name
ORDER = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")  # the team's own output order (ISIC 2018's columns)
MALIGNANT = ("mel", "bcc", "akiec")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def images(npz, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """[0, 1] NCHW images and labels in the team's order."""
    x = torch.from_numpy(npz[f"{split}_images"]).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor([ORDER.index(MEDMNIST[label]) for label in npz[f"{split}_labels"].ravel()])
    return x, y


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    """ResNet-18 from scratch: AdamW, cosine schedule, flips, square-root class weights."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(num_classes=len(ORDER))
    counts = torch.bincount(y, minlength=len(ORDER)).float().clamp(min=1)
    weights = (counts.sum() / counts) ** 0.5
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    for epoch in range(epochs):
        net.train()
        order, total = torch.randperm(len(x)), 0.0
        for i in range(0, len(x), 64):
            batch = order[i : i + 64]
            xb = x[batch]
            xb = torch.where(torch.rand(len(xb), 1, 1, 1) < 0.5, xb.flip(3), xb)
            xb = torch.where(torch.rand(len(xb), 1, 1, 1) < 0.5, xb.flip(2), xb)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(normalise(xb)), y[batch], weight=weights / weights.mean())
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        schedule.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)
    return net.eval()


def own_numbers(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The team's own test metrics: accuracy, balanced accuracy, AUROC of P(mel) + P(bcc) + P(akiec)."""
    with torch.no_grad():
        probs = torch.cat([torch.softmax(net(normalise(x[i : i + 256])), 1) for i in range(0, len(x), 256)]).numpy()
    predicted, truth = probs.argmax(1), y.numpy()
    malignant = [ORDER.index(c) for c in MALIGNANT]
    return {"images": len(truth), "accuracy": float((predicted == truth).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
            "auroc": float(roc_auc_score(np.isin(truth, malignant), probs[:, malignant].sum(1)))}


def save(net: nn.Module, out: Path, size: int) -> None:
    torch.save(net.state_dict(), out / "theirs.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript; teams still ship it
        torch.jit.save(torch.jit.script(net), out / "theirs.ts")
    example = (torch.rand(2, 3, size, size),)
    torch.export.save(torch.export.export(net, example, dynamic_shapes=({0: torch.export.Dim("batch")},)), out / "theirs.pt2")


def external_folder(ham_root: Path, folder: Path) -> int:
    """folder/<class>/<HAM10000 image id>.jpg (links to the 200x150 photographs) for the DermaMNIST test images."""
    count = 0
    with open(ham_root / "dermamnist" / "dermamnist_split_to_ham10000.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] == "test":
                target = folder / row["dx"] / f"{row['image_id']}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.symlink_to((ham_root / "ham10000" / "images_200x150" / f"{row['image_id']}.jpg").resolve())
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--external-folder", type=Path)
    parser.add_argument("--ham-root", type=Path, help="the folder holding ham10000/ and dermamnist/ (the shared data)")
    args = parser.parse_args()
    npz = np.load(args.npz)
    args.out.mkdir(parents=True, exist_ok=True)
    net = train(*images(npz, "train"), args.epochs, args.seed)
    save(net, args.out, npz["train_images"].shape[1])
    numbers = {"classes": list(ORDER), "mean": MEAN, "std": STD, "test": own_numbers(net, *images(npz, "test"))}
    (args.out / "own_numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers["test"]))
    if args.external_folder:
        print(f"{external_folder(args.ham_root, args.external_folder)} test photographs linked under {args.external_folder}")


if __name__ == "__main__":
    main()
