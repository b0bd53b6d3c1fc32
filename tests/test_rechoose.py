"""`skinart evaluate --external --rechoose-threshold --on SPLIT`: the threshold re-chosen on one split of other data
restores the target sensitivity there, is judged on their test split (never on the images it was chosen on), and is
written as a derived checkpoint that records where it came from and what it replaced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke

from skinart.data import dataset_of, read_data
from skinart.defences.deployed import deployed
from skinart.metrics import p_malignant
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict


def rechoose(checkpoint: Path, data_root: Path, out: Path, *args):
    return invoke("evaluate", "--checkpoint", checkpoint, "--external", "--data", "ham10000", "--data-root", data_root,
                  "--rechoose-threshold", "--out", out, "--device", "cpu", *args)


@pytest.fixture(scope="module")
def rechosen(trained, ham_subset, tmp_path_factory) -> Path:
    """The DermaMNIST-trained CNN's threshold re-chosen on the val split of a (generated) HAM10000 folder."""
    out = tmp_path_factory.mktemp("rechoose") / "ckpt"
    result = rechoose(trained, ham_subset, out)
    assert result.exit_code == 0, result.output
    return out


def test_rechosen_threshold_restores_the_target_on_its_split_and_is_judged_on_test(rechosen, trained, ham_subset):
    parent, derived = Checkpoint.load(trained), Checkpoint.load(rechosen)
    malignant = list(parent.meta.malignant)
    idx = [parent.classes.index(m) for m in malignant]
    settings = parent.meta.data
    dataset = dataset_of(read_data("ham10000", ham_subset, 28), img_size=28, resize=settings["resize"],
                         split_ratios=tuple(settings["split_ratios"]), seed=settings["seed"])
    val, test = dataset.splits["val"], dataset.splits["test"]
    scores = p_malignant(predict(deployed(parent, "cpu"), val.images), idx)
    positive = np.sort(scores[np.isin(val.labels, idx)])
    point, target = derived.meta.operating_point, parent.meta.operating_point["target_sensitivity"]
    t = point["threshold"]
    assert t != parent.threshold(malignant)
    assert np.mean(positive >= t) >= target  # restores the target where it was chosen
    assert np.mean(positive > t) < target  # and is the largest threshold that does (the most specific)
    assert point["chosen_on"] == "external ham10000 val" and point["data"]["images"] == len(val)
    assert point["replaced"] == parent.meta.operating_point
    assert derived.meta.weights_sha256 == parent.meta.weights_sha256

    metrics = json.loads((rechosen / "metrics.json").read_text())
    with np.load(rechosen / "predictions.npz") as f:
        assert f["ids"].tolist() == test.ids.tolist()  # judged on test, disjoint from val
    assert not set(test.ids) & set(val.ids)
    assert metrics["kind"] == "rechoose" and metrics["binary_at_threshold"]["threshold"] == t
    assert metrics["stored_threshold_here"]["threshold"] == parent.threshold(malignant)


def test_a_rechosen_checkpoint_is_not_graded_on_all_the_data_its_threshold_saw(rechosen, ham_subset, tmp_path):
    out = tmp_path / "eval"
    result = invoke("evaluate", "--checkpoint", rechosen, "--external", "--data", "ham10000", "--data-root", ham_subset,
                    "--out", out, "--device", "cpu")
    assert result.exit_code == 2 and "re-chosen on the val split" in result.stderr and not out.exists()


@pytest.mark.parametrize("args, fragment", [
    (["--on", "test"], "choose one of val, train"),
    (["--attack", "fgsm"], "drop --attack"),
    (["--shift", "gaussian_noise"], "drop --shift"),
])
def test_rechoose_refusals(trained, ham_subset, tmp_path, args, fragment):
    out = tmp_path / "ckpt"
    result = rechoose(trained, ham_subset, out, *args)
    assert result.exit_code == 2 and fragment in result.stderr and not out.exists(), result.stderr
