"""Models that bring their own config (timm's hf-hub: and local-dir:): their label_names, input size and normalisation
are the import's defaults, the arguments they were built with rebuild them, the hub revision read is recorded; a state
dict for a timm architecture takes that architecture's normalisation unless --mean/--std are given, and says so."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from huggingface_hub import constants
from timm.models import save_for_hf

from skinart.data import CLASSES
from skinart.defences.deployed import deployed
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict
from skinart.models.provenance import checkpoint_dataset

from helpers import invoke

ISIC = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC")  # the team's label_names, ISIC's names in its own order
MEAN, STD = (0.6, 0.5, 0.55), (0.2, 0.25, 0.2)
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _saved(folder, label_names=ISIC):
    """A ResNet-18 saved as timm saves for the hub: config.json (label_names, model_args, its input size and mean/std)."""
    torch.manual_seed(0)
    net = timm.create_model("resnet18", num_classes=7, drop_rate=0.1).eval()
    net.pretrained_cfg = {**net.pretrained_cfg, "input_size": (3, 28, 28), "mean": MEAN, "std": STD}
    save_for_hf(net, folder, model_config={"label_names": list(label_names)}, model_args={"drop_rate": 0.1}, safe_serialization=True)
    return net


def _import(weights, out, data, *extra):
    return invoke("import", "--weights", weights, "--data-root", data, "--out", out, "--device", "cpu", *extra)


def _check_own_defaults(net, out):
    checkpoint = Checkpoint.load(out)
    meta = checkpoint.meta
    assert meta.classes == CLASSES and meta.img_size == 28 and meta.mean == MEAN and meta.std == STD
    assert meta.imported["label_names"] == list(ISIC) and meta.imported["model_args"] == {"drop_rate": 0.1, "in_chans": 3, "global_pool": "avg"}
    test = checkpoint_dataset(checkpoint, split="test").splits["test"]
    x = torch.from_numpy(np.ascontiguousarray(test.images.transpose(0, 3, 1, 2))).float() / 255
    with torch.no_grad():
        theirs = torch.softmax(net((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)), 1).numpy()
    order = [ISIC.index({"akiec": "AK"}.get(c, c.upper())) for c in CLASSES]
    np.testing.assert_allclose(predict(deployed(checkpoint, "cpu"), test.images), theirs[:, order], atol=1e-5)
    return meta


def test_a_hub_model_brings_its_classes_input_size_and_normalisation_and_its_revision_is_recorded(derma_subset, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--team--skin-r18"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    net = _saved(repo / "snapshots" / REVISION)
    result = _import("hf-hub:team/skin-r18", tmp_path / "hub-import", derma_subset)
    assert result.exit_code == 0, result.output
    meta = _check_own_defaults(net, tmp_path / "hub-import")
    assert meta.imported["revision"] == REVISION and meta.model == "resnet18"


def test_a_local_dir_model_brings_its_own_and_is_rebuilt_with_its_model_args(derma_subset, tmp_path):
    net = _saved(tmp_path / "theirs")
    result = _import(f"local-dir:{tmp_path / 'theirs'}", tmp_path / "imported", derma_subset)
    assert result.exit_code == 0, result.output
    meta = _check_own_defaults(net, tmp_path / "imported")
    assert meta.imported["format"] == "local-dir" and meta.imported["normalisation"] == "the model's own config"


def test_label_names_that_are_no_classes_need_classes_in_one_line(derma_subset, tmp_path):
    _saved(tmp_path / "imagenet", label_names=("tench", "goldfish", "shark", "hen", "ostrich", "finch", "junco"))
    result = _import(f"local-dir:{tmp_path / 'imagenet'}", tmp_path / "out", derma_subset)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "label_names (tench, goldfish" in result.stderr
    assert "name its outputs with --classes" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_state_dict_takes_its_architectures_normalisation_and_says_so(derma_subset, tmp_path):
    torch.save(timm.create_model("resnet18", num_classes=7).state_dict(), tmp_path / "weights.pth")
    result = _import(tmp_path / "weights.pth", tmp_path / "imported", derma_subset, "--model", "resnet18", "--classes",
                     ",".join(CLASSES), "--img-size", 28)
    assert result.exit_code == 0, result.output
    meta = Checkpoint.load(tmp_path / "imported").meta
    assert meta.mean == (0.485, 0.456, 0.406) and meta.std == (0.229, 0.224, 0.225)
    assert meta.imported["normalisation"] == "resnet18's own in timm"
    assert "note: no --mean/--std: resnet18's own normalisation in timm is used" in result.stderr
