"""`skinart evaluate --shift`: its numbers are those of a plain loop that corrupts then predicts, its per-image rows
cover every image × shift × severity, the stored threshold is what it judges, and the threshold it reports as
restoring the target sensitivity does restore it on the images it was chosen on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke

from skinart.defences.deployed import deployed
from skinart.metrics import choose_threshold, classification_metrics, p_malignant, restoring_threshold, threshold_interval
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict
from skinart.models.provenance import checkpoint_dataset
from skinart.report.shifts import shift_findings
from skinart.shifts.apply import apply_shift

SHIFTS = ("gaussian_noise", "ink_marking")


@pytest.fixture(scope="module")
def shifted(trained, derma_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("shift") / "run"
    result = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--shift", ",".join(SHIFTS),
                    "--severity", "1,5", "--seed", 3, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "metrics.json").read_text())


def test_shifted_metrics_are_those_of_a_plain_corrupt_then_predict_loop(shifted, trained, derma_subset):
    out, metrics = shifted
    checkpoint = Checkpoint.load(trained)
    test = checkpoint_dataset(checkpoint, data_root=str(derma_subset)).splits["test"]
    classifier, malignant = deployed(checkpoint, "cpu"), list(checkpoint.meta.malignant)
    threshold = checkpoint.threshold(malignant)
    assert metrics["threshold"] == threshold and metrics["images"] == len(test)
    rows = {(r["shift"], r["severity"]): r for r in metrics["rows"]}
    assert sorted(rows) == sorted((s, v) for s in SHIFTS for v in (1, 5))
    for (name, severity), row in rows.items():
        probs = predict(classifier, apply_shift(test.images, name, severity, 3, test.ids))
        plain = classification_metrics(test.labels, probs.argmax(1), classes=checkpoint.classes, malignant=tuple(malignant),
                                       probs=probs, threshold=threshold)
        assert row["metrics"]["accuracy"] == pytest.approx(plain["accuracy"])
        assert row["metrics"]["macro_recall"] == pytest.approx(plain["macro_recall"])
        assert row["metrics"]["binary_at_threshold"]["confusion_matrix"] == plain["binary_at_threshold"]["confusion_matrix"]
        clean_error = 1 - metrics["clean"]["metrics"]["macro_recall"]
        assert row["relative_balanced_error"] == pytest.approx((1 - plain["macro_recall"] - clean_error) / clean_error)
    # the corruption changed what the model saw: the strongest noise moves some decision
    assert rows[("gaussian_noise", 5)]["metrics"]["confusion_matrix"] != metrics["clean"]["metrics"]["confusion_matrix"]


def test_per_image_rows_cover_every_image_shift_and_severity(shifted, trained, derma_subset):
    out, metrics = shifted
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    n = metrics["images"]
    assert len(rows) == n * (1 + len(SHIFTS) * 2)
    clean = [r for r in rows if r["shift"] == "clean"]
    assert len(clean) == n and {r["severity"] for r in clean} == {"0"}
    at_t = [r for r in rows if (r["shift"], r["severity"]) == ("ink_marking", "5")]
    malignant = [r for r in at_t if r["true_class"] in metrics["malignant"]]
    caught = sum(int(r["malignant_at_threshold"]) for r in malignant) / len(malignant)
    ink = next(r for r in metrics["rows"] if (r["shift"], r["severity"]) == ("ink_marking", 5))
    assert caught == pytest.approx(ink["metrics"]["binary_at_threshold"]["sensitivity"])


def test_the_same_image_gets_the_same_corruption_in_any_sample(trained, derma_subset, tmp_path):
    """Paired comparisons: an image's corruption depends on its id, not on which other images were scored with it."""
    checkpoint = Checkpoint.load(trained)
    test = checkpoint_dataset(checkpoint, data_root=str(derma_subset)).splits["test"]
    whole = apply_shift(test.images, "gaussian_noise", 3, 0, test.ids)
    part = apply_shift(test.images[5:9][::-1], "gaussian_noise", 3, 0, test.ids[5:9][::-1])
    assert np.array_equal(part, whole[5:9][::-1])


def test_the_restoring_threshold_restores_the_target_on_its_own_images():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 400)
    probs = rng.dirichlet(np.ones(7), 400)
    malignant_idx = [0, 1, 4]
    scores = p_malignant(probs, malignant_idx)
    for target in (0.5, 0.8, 0.9, 0.95, 1.0):
        t = restoring_threshold(scores[np.isin(labels, malignant_idx)], target)
        caught = np.mean(scores[np.isin(labels, malignant_idx)] >= t)
        assert caught >= target  # it restores the target ...
        assert np.mean(scores[np.isin(labels, malignant_idx)] > t) < target  # ... and is the largest that does
        assert t == pytest.approx(choose_threshold(labels, scores, malignant_idx, target)["threshold"])
    low, high = threshold_interval(labels, scores, malignant_idx, 0.9, resamples=200)
    assert low <= restoring_threshold(scores[np.isin(labels, malignant_idx)], 0.9) <= high and low < high


@pytest.mark.parametrize("args, message", [
    (("--severity", "3"), "--severity applies only with --shift"),
    (("--shift", "all", "--attack", "fgsm"), "one shift at one severity"),
    (("--shift", "all", "--split", "val"), "does not combine with --shift"),
    (("--shift", "all", "--eps", "8/255"), "does not combine with --shift"),
    (("--shift", "fog"), "fog"),
    (("--shift", "all", "--severity", "6"), "6"),
    (("--shift", "all", "--severity", "0"), "0"),
])
def test_a_bad_shift_option_is_one_line_and_writes_nothing(trained, tmp_path, args, message):
    out = tmp_path / "run"
    result = invoke("evaluate", "--checkpoint", trained, "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_the_report_of_a_shift_run_has_its_section_and_names_the_shifts_that_break_t(shifted, tmp_path):
    out, metrics = shifted
    result = invoke("report", out, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Natural shift: the operating point over the severities (per shift)" in md
    assert "## Model performance" not in md  # no attack rows: no empty table
    lines = [line for line in md.splitlines() if line.startswith("| run ") or line.startswith(f"| {out.name} |")]
    assert len([line for line in lines if "| gaussian_noise | 5 |" in line]) == 1
    broken = {name for name, s in metrics["by_shift"].items() if s["below_clean_floor"]}
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert {name for name in SHIFTS if f"under {name} sensitivity" in findings} == broken


def test_a_shift_finding_names_the_severities_below_the_clean_floor_and_the_restoring_threshold():
    base = {"section": "shift", "task": "m", "model": "m", "shift_kind": "corruption", "images": 500, "data": "test split",
            "threshold": 0.2, "target": 0.9, "specificity_at_threshold": 0.5, "sensitivity_ci": None, "balanced_accuracy": 0.5,
            "auroc": 0.8, "relative_balanced_error": 0.1, "clean_floor": 0.85}
    entries = [{**base, "shift": "clean", "severity": 0, "sensitivity_at_threshold": 0.92, "restoring_threshold": 0.2},
               *({**base, "shift": "jpeg_compression", "severity": s, "sensitivity_at_threshold": v, "restoring_threshold": r}
                 for s, v, r in ((1, 0.90, 0.19), (3, 0.80, 0.1), (5, 0.60, 0.05))),
               {**base, "shift": "hair", "severity": 5, "sensitivity_at_threshold": 0.95, "restoring_threshold": 0.3}]
    (finding,) = shift_findings(entries)
    assert "under jpeg_compression" in finding and "from 92.0 to 60.0 at severity 5" in finding
    assert "at severities 3, 5" in finding and "t = 0.05 would restore it" in finding


def test_a_threshold_its_owner_gave_is_judged_with_nothing_to_restore(trained, derma_subset, tmp_path):
    """An imported model's owner may give t without a target sensitivity: clean and shifted evaluations judge it,
    and report no restoring threshold instead of failing."""
    checkpoint = Checkpoint.load(trained)
    owned = tmp_path / "owned"
    owned.mkdir()
    point = {"threshold": 0.3, "chosen_on": "given at import (the model's owner)", "malignant": list(checkpoint.meta.malignant)}
    checkpoint.derive(owned, operating_point=point)
    for args in ((), ("--shift", "hair", "--severity", "5")):
        out = tmp_path / f"eval{len(args)}"
        result = invoke("evaluate", "--checkpoint", owned, "--data-root", derma_subset, "--out", out, "--device", "cpu", *args)
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        rows = [metrics["operating_point_here"]] if not args else [metrics["clean"], *metrics["rows"]]
        assert all(r["restoring_threshold"] is None for r in rows)
        assert "given by the model's owner" in result.stdout


def test_a_recipe_seed_reaches_every_evaluate_step_without_a_refusal(tmp_path):
    """The recipe's seed goes to every step whose command takes --seed: evaluate takes it clean, attacked and shifted."""
    recipe = (Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml").read_text().replace("seed: 0", "seed: 1")
    (tmp_path / "seeded.yaml").write_text(recipe)
    result = invoke("recipes", "validate", tmp_path / "seeded.yaml")
    assert result.exit_code == 0, result.output
