"""`evaluate --attack --shift`: an evasion attack of the test images under one shift at one severity. Its numbers are
those of a plain loop that corrupts (as `evaluate --shift` does), attacks with ART's FGSM, then predicts; its
unattacked numbers are those of the shifted images; and its run is another config than the unshifted attack's, so
neither skips into the other."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import invoke

from skinart.attacks.config import AttackConfig
from skinart.attacks.loops import one_hot, sample_indices
from skinart.data import to_model_input
from skinart.defences.deployed import deployed
from skinart.errors import SkinartError
from skinart.metrics import classification_metrics
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict
from skinart.models.provenance import checkpoint_dataset
from skinart.rundir import RunOptions
from skinart.runs.attack import attack_run
from skinart.shifts.apply import apply_shift
from skinart.shifts.config import ImageShift
from skinart.toolbox import FastGradientMethod

EPS, SEED, IMAGES = 2 / 255, 3, 24
NOISE = ImageShift("gaussian_noise", 3)


def _fgsm(trained, derma_subset, out, shift, overwrite=False):
    cfg = AttackConfig(method="fgsm", eps=str(EPS), max_samples=IMAGES, seed=SEED)
    return attack_run(cfg, Checkpoint.load(trained), out, RunOptions(data_root=str(derma_subset), device="cpu", overwrite=overwrite),
                      threat="white-box", shift=shift)


def test_a_shifted_attack_is_a_plain_corrupt_attack_predict_loop(trained, derma_subset, tmp_path):
    out = tmp_path / "fgsm-noise"
    metrics = _fgsm(trained, derma_subset, out, NOISE)
    checkpoint = Checkpoint.load(trained)
    test = checkpoint_dataset(checkpoint, data_root=str(derma_subset)).splits["test"]
    keep = sample_indices(len(test), IMAGES, SEED)
    shifted = to_model_input(apply_shift(test.images[keep], NOISE.shift, NOISE.severity, SEED, test.ids[keep]))
    crafter = deployed(checkpoint, "cpu", defended=False)
    adversarial = FastGradientMethod(crafter, eps=EPS).generate(shifted, y=one_hot(test.labels[keep], len(checkpoint.classes)))
    classifier, malignant = deployed(checkpoint, "cpu"), list(checkpoint.meta.malignant)
    threshold = checkpoint.threshold(malignant)
    for half, images in (("clean", shifted), ("adversarial", adversarial)):
        probs = predict(classifier, images)
        plain = classification_metrics(test.labels[keep], probs.argmax(1), classes=checkpoint.classes,
                                       malignant=tuple(malignant), probs=probs, threshold=threshold)
        assert metrics[half]["confusion_matrix"] == plain["confusion_matrix"], half
        assert metrics[half]["binary_at_threshold"]["confusion_matrix"] == plain["binary_at_threshold"]["confusion_matrix"], half
        assert metrics[half]["accuracy"] == pytest.approx(plain["accuracy"])
    # the attack's "clean" images are the shifted ones: not the unshifted images' numbers
    unshifted = predict(classifier, test.images[keep])
    assert not np.allclose(unshifted, predict(classifier, shifted))
    assert (metrics["shift"], metrics["severity"]) == ("gaussian_noise", 3)
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == IMAGES and {(r["shift"], r["severity"]) for r in rows} == {("gaussian_noise", "3")}


def test_a_shifted_attack_is_another_run_than_the_unshifted_one(trained, derma_subset, tmp_path):
    out = tmp_path / "fgsm"
    shifted = _fgsm(trained, derma_subset, out, NOISE)
    shifted_config = json.loads((out / "config.json").read_text())
    with pytest.raises(SkinartError, match="already holds a different run"):  # not skipped as if it were done
        _fgsm(trained, derma_subset, out, None)
    plain = _fgsm(trained, derma_subset, out, None, overwrite=True)
    assert plain is not None and "shift" not in plain
    plain_config = json.loads((out / "config.json").read_text())
    assert shifted_config["config_hash"] != plain_config["config_hash"] and "shift" not in plain_config
    assert shifted_config["shift"] == {"shift": "gaussian_noise", "severity": 3}
    assert _fgsm(trained, derma_subset, out, None) is None  # the unshifted run is done: skipped
    with open(out / "per_image.csv", newline="") as f:
        assert {(r["shift"], r["severity"]) for r in csv.DictReader(f)} == {("", "")}
    assert shifted["clean"]["confusion_matrix"] != plain["clean"]["confusion_matrix"]


def test_the_report_names_a_shifted_attack_as_its_run_does(trained, derma_subset, tmp_path):
    out = tmp_path / "fgsm-noise"
    _fgsm(trained, derma_subset, out, NOISE)
    assert "test images under gaussian_noise severity 3" in (out / "metrics.md").read_text()
    result = invoke("report", out, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert "| fgsm under gaussian_noise severity 3 |" in (tmp_path / "report" / "report.md").read_text()
