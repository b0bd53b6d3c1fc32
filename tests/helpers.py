"""What test modules share: the in-process CLI, generated data in the layouts skinart reads (a DermaMNIST-format
npz, a HAM10000 folder), so tests that need data but not real accuracy run on any clone, and a tiny torch model trained
here in a second (`Tiny`, `tiny_model`) for the tests of attack algorithms (torch imported only then). Imported as
`helpers` (pytest puts tests/ on the path); conftest.py, which pytest alone imports, holds the fixtures."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from skinart.cli import app
from skinart.data.catalog import CLASSES

# class shares of the generated data: HAM10000's imbalance (nv most), every class present in every split
SHARES = np.array([0.05, 0.08, 0.14, 0.04, 0.14, 0.49, 0.06])
DERMA_SIZES = {"train": 600, "val": 150, "test": 200}


def invoke(*args):
    """Run the skinart command in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args])


def lesion_images(labels: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 N×H×W×3 "lesions" a small CNN learns in a few epochs but not perfectly: a skin-toned background, a dark
    disc whose colour, size and place depend on the class, and mottling strong enough that neighbouring classes overlap
    (so attacks have decisions to change)."""
    n, k = len(labels), len(CLASSES)
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    angle = 2 * np.pi * labels / k
    centre_y = 0.5 + 0.12 * np.sin(angle) + rng.normal(0, 0.05, n)
    centre_x = 0.5 + 0.12 * np.cos(angle) + rng.normal(0, 0.05, n)
    radius = 0.18 + 0.02 * (labels % 3) + rng.normal(0, 0.02, n)
    inside = ((yy[None] - centre_y[:, None, None]) ** 2 + (xx[None] - centre_x[:, None, None]) ** 2) < radius[:, None, None] ** 2
    hue = np.stack([np.cos(angle), np.cos(angle + 2.1), np.cos(angle + 4.2)], axis=1)  # one colour per class
    skin = np.array([0.85, 0.65, 0.55]) + rng.normal(0, 0.04, (n, 3))
    lesion = np.array([0.45, 0.3, 0.25]) + 0.12 * hue + rng.normal(0, 0.04, (n, 3))
    pixels = np.where(inside[..., None], lesion[:, None, None, :], skin[:, None, None, :])
    # mottled like skin: noise at a quarter of the resolution, enlarged (smooth, so WebP keeps it as it keeps photos)
    coarse = rng.normal(0, 0.08, (n, -(-height // 4), -(-width // 4), 3))
    pixels = pixels + np.kron(coarse, np.ones((1, 4, 4, 1)))[:, :height, :width] + rng.normal(0, 0.015, pixels.shape)
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


def class_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """n labels in SHARES' proportions, every class at least twice, shuffled."""
    counts = np.maximum(2, np.round(SHARES * n).astype(int))
    counts[CLASSES.index("nv")] += n - counts.sum()
    return rng.permutation(np.repeat(np.arange(len(CLASSES)), counts))


def write_dermamnist(path: Path, sizes: dict[str, int] = DERMA_SIZES, side: int = 28, seed: int = 0) -> Path:
    """A DermaMNIST-format npz ({split}_images uint8 N×side×side×3, {split}_labels N×1) of generated lesions."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in sizes.items():
        labels = class_labels(n, rng)
        arrays[f"{split}_images"] = lesion_images(labels, side, side, rng)
        arrays[f"{split}_labels"] = labels[:, None].astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def write_ham10000(root: Path, n: int = 240, seed: int = 0, size: tuple[int, int] = (48, 36)) -> Path:
    """A HAM10000-layout folder: HAM10000_metadata.csv (lesion_id, image_id, dx, ...) and images/ISIC_*.jpg of generated
    lesions, about a third of the lesions photographed twice (as in HAM10000, where a lesion may have several images)."""
    rng = np.random.default_rng(seed)
    labels = class_labels(n, rng)
    lesion_of = np.arange(n)
    twice = rng.choice(n, n // 3, replace=False)
    for i in twice:  # a second image of an earlier lesion of the same class
        same = np.flatnonzero((labels == labels[i]) & (np.arange(n) < i))
        if len(same):
            lesion_of[i] = lesion_of[rng.choice(same)]
    images = lesion_images(labels, size[1], size[0], rng)
    (root / "images").mkdir(parents=True)
    rows = []
    for i, (label, lesion) in enumerate(zip(labels, lesion_of)):
        image_id = f"ISIC_{9000000 + i:07d}"
        Image.fromarray(images[i]).save(root / "images" / f"{image_id}.jpg", quality=95)
        rows.append({"lesion_id": f"HAM_{lesion:07d}", "image_id": image_id, "dx": CLASSES[label], "dx_type": "histo",
                     "age": str(30 + i % 50), "sex": ("male", "female")[i % 2], "localization": "back"})
    with open(root / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


PAD_CODES = {"nv": "NEV", "akiec": "ACK", "bkl": "SEK", "bcc": "BCC", "mel": "MEL", "df": "DF", "vasc": "VASC"}
PAD_COLUMNS = ("patient_id", "lesion_id", "smoke", "drink", "background_father", "background_mother", "age", "pesticide",
               "gender", "skin_cancer_history", "cancer_history", "has_piped_water", "has_sewage_system", "fitspatrick",
               "region", "diameter_1", "diameter_2", "diagnostic", "itch", "grew", "hurt", "changed", "bleed", "elevation",
               "img_id", "biopsed")
PAD_OPTIONS = ("--image-column", "img_id", "--label-column", "diagnostic", "--group-column", "lesion_id", "--label-map",
               "NEV=nv,ACK=akiec,SEK=bkl")


def write_pad_layout(metadata: Path, target: Path) -> Path:
    """HAM10000's metadata rewritten in PAD-UFES-20's layout (its metadata.csv columns, its diagnostic codes NEV, ACK,
    SEK..., the image's file name in img_id), the rows in HAM10000's order: read with PAD_OPTIONS, the same data."""
    with open(metadata, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(target, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PAD_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows({"patient_id": r["lesion_id"], "lesion_id": r["lesion_id"], "age": r["age"], "gender": r["sex"],
                          "region": r["localization"], "diagnostic": PAD_CODES[r["dx"]], "img_id": f"{r['image_id']}.jpg",
                          "biopsed": str(r["dx_type"] == "histo")} for r in rows)
    return target


def write_ham_subset(rows: list[dict], images: Path, target: Path, per_class: int = 30) -> list[dict]:
    """A HAM10000-layout folder with whole lesions of every class (images linked, not copied)."""
    chosen, count = [], {}
    by_lesion: dict[str, list[dict]] = {}
    for r in rows:
        by_lesion.setdefault(r["lesion_id"], []).append(r)
    for lesion_rows in by_lesion.values():
        dx = lesion_rows[0]["dx"]
        if count.get(dx, 0) < per_class:
            chosen += lesion_rows
            count[dx] = count.get(dx, 0) + len(lesion_rows)
    (target / "images").mkdir(parents=True)
    for r in chosen:
        (target / "images" / f"{r['image_id']}.jpg").symlink_to(images / f"{r['image_id']}.jpg")
    with open(target / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return chosen


# ----------------------------------------------------------------------------------------- a tiny model

TINY_SIZE = 16  # the tiny model's images: 16 px


def _define_tiny():
    from torch import nn

    class Tiny(nn.Module):
        """Two conv layers and a linear head. It counts its forward passes and the images they carry (`passes`, `images`:
        what the fast attacks save), and records whether any weight was trainable during each pass (`trainable_seen`:
        the attacks freeze the weights inside their `generate` only)."""

        def __init__(self, classes: int):
            super().__init__()
            self.num_classes, self.passes, self.images = classes, 0, 0
            self.trainable_seen: list[bool] = []
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, classes))

        def forward(self, x):
            self.passes, self.images = self.passes + 1, self.images + len(x)
            self.trainable_seen.append(any(p.requires_grad for p in self.parameters()))
            return self.body(x)

    return Tiny


def __getattr__(name: str):
    """`Tiny` is defined on first use: conftest imports this module in every pytest process (the suite guards' too), and
    torch need not load for that."""
    if name == "Tiny":
        globals()["Tiny"] = _define_tiny()
        return globals()["Tiny"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def template_images(rng: np.random.Generator, templates: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n float32 NCHW images in [0, 1], each half a random class's colour template and half uniform noise; their labels."""
    labels = rng.integers(0, len(templates), n)
    x = np.clip(0.5 * templates[labels] + rng.uniform(0, 0.5, (n, *templates.shape[1:])), 0, 1).astype(np.float32)
    return x, labels


def tiny_model(classes: int, n: int, seed: int):
    """(classifier, net, x, one-hot model predictions): a `Tiny` trained for 40 Adam steps to tell `classes` noisy colour
    templates apart, wrapped as skinart wraps every model (normalisation first), and n fresh images it classifies into
    every class (a model with decisions to change)."""
    import torch
    from torch import nn

    from skinart.models.networks import wrap

    torch.manual_seed(0)
    rng = np.random.default_rng(seed)
    net = __getattr__("Tiny")(classes)
    classifier = wrap(net, TINY_SIZE, (0.5,) * 3, (0.25,) * 3, device="cpu")
    templates = rng.uniform(0, 1, (classes, 3, TINY_SIZE, TINY_SIZE)).astype(np.float32)
    x_train, labels = template_images(rng, templates, 512)
    optimiser = torch.optim.Adam(classifier.model.parameters(), 1e-2)
    for _ in range(40):
        i = rng.choice(512, 64)
        loss = nn.functional.cross_entropy(classifier.model(torch.from_numpy(x_train[i])), torch.from_numpy(labels[i]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    classifier.model.eval()
    x, _ = template_images(rng, templates, n)
    predicted = classifier.predict(x).argmax(1)
    assert len(set(predicted)) == classes  # a model with decisions to change
    net.passes = net.images = 0
    net.trainable_seen.clear()
    return classifier, net, x, np.eye(classes, dtype=np.float32)[predicted]


def export_onnx(net, path: Path, side: int = 28) -> Path:
    """torch.onnx.export as a team would call it: a dynamic batch, the default opset (torch imported only then)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.14 deprecates the TorchScript-based exporter it still ships
        torch.onnx.export(net.eval(), (torch.rand(2, 3, side, side),), str(path), dynamo=False, input_names=["x"],
                          output_names=["z"], dynamic_axes={"x": {0: "batch"}, "z": {0: "batch"}})
    return path


def unconvertible_onnx(net, path: Path, side: int = 28) -> Path:
    """`net` exported to ONNX with its logits passed through Shrink(bias=0, lambd=0), the identity (but at exactly 0):
    an operator onnxruntime runs and onnx2torch 1.5 has no converter for at any opset, so the model computes what `net`
    does and does not convert to PyTorch (the onnx extra imported only then)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(export_onnx(net, path, side)))
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{out}_logits" if o == out else o for o in node.output]
    model.graph.node.append(helper.make_node("Shrink", [f"{out}_logits"], [out], bias=0.0, lambd=0.0))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
