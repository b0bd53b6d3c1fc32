"""per_image.csv (issue 26): every attack, evaluation and worst-case run writes one row per image, and the rows agree
with the run's own arrays and metrics (an adversarial example is judged image by image)."""

import csv
import json

import numpy as np
import pytest
from helpers import invoke

from skinart.rundir import PER_IMAGE_FILE
from skinart.runs.scoring import PER_IMAGE_COLUMNS, per_image_rows

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def run(*args):
    result = invoke(*args, "--device", "cpu")
    assert result.exit_code == 0, result.output + result.stderr
    return result


def rows(path):
    with open(path / PER_IMAGE_FILE, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == PER_IMAGE_COLUMNS
        return list(reader)


def test_rows_say_robust_only_where_the_attacked_prediction_is_the_true_class():
    eye = np.eye(7, dtype=np.float32)
    clean = eye[[4, 5]] * 0.9 + 0.1 / 7
    got = per_image_rows(ids=np.array(["a", "b"]), labels=np.array([4, 5]), classes=CLASSES, malignant=["akiec", "bcc", "mel"],
                         clean_probs=clean, attacked=(np.array([5, 5]), np.array([0.1, 0.2])),
                         norms=(np.array([0.03, 0.01]), np.array([1.5, 0.5])), attack=["pgd", "fgsm"])
    assert [r["robust"] for r in got] == ["false", "true"]
    assert [r["attacked_prediction"] for r in got] == ["nv", "nv"] and got[0]["true_class"] == "mel"
    assert float(got[0]["clean_p_malignant"]) == pytest.approx(0.9 + 3 * 0.1 / 7, abs=1e-6)
    assert got[1]["linf"] == "0.010000" and got[0]["attack"] == "pgd"
    plain = per_image_rows(ids=np.array(["a"]), labels=np.array([4]), classes=CLASSES, malignant=["mel"], clean_probs=clean[:1])
    assert all(plain[0][c] == "" for c in ("attacked_prediction", "robust", "linf", "attack"))  # never attacked: no claim


def test_attack_and_evaluate_runs_write_rows_matching_their_arrays(trained, derma_subset, tmp_path):
    run("attack", "--method", "pgd", "--checkpoint", trained, "--data-root", derma_subset, "--out", tmp_path / "a",
        "--max-samples", 12, "--max-iter", 3)
    got, saved = rows(tmp_path / "a"), np.load(tmp_path / "a" / "adversarial.npz")
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert [r["image_id"] for r in got] == [str(i) for i in saved["ids"]]
    assert [r["attacked_prediction"] for r in got] == [CLASSES[i] for i in saved["adversarial_probabilities"].argmax(1)]
    assert np.mean([r["robust"] == "true" for r in got]) == pytest.approx(metrics["adversarial"]["accuracy"])
    assert max(float(r["linf"]) for r in got) == pytest.approx(metrics["linf_max"], abs=1e-6)
    run("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", tmp_path / "e")
    got, saved = rows(tmp_path / "e"), np.load(tmp_path / "e" / "predictions.npz")
    assert [r["clean_prediction"] for r in got] == [CLASSES[i] for i in saved["probabilities"].argmax(1)]
    assert {r["robust"] for r in got} == {""}


def test_worst_case_rows_are_robust_only_under_every_attack(trained, derma_subset, tmp_path):
    out = tmp_path / "worst"
    run("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", out, "--attack", "fgsm,pgd",
        "--threat", "white-box", "--eps", "8/255", "--max-iter", 3, "--max-samples", 12)
    labels = np.load(out / "fgsm" / "white-box" / "adversarial.npz")["labels"]
    each = [np.load(out / m / "white-box" / "adversarial.npz")["adversarial_probabilities"].argmax(1) == labels for m in ("fgsm", "pgd")]
    got = rows(out / "white-box")
    assert [r["robust"] == "true" for r in got] == list(np.all(each, axis=0))
    assert {r["attack"] for r in got} <= {"fgsm", "pgd"} and all(rows(out / m / "white-box") for m in ("fgsm", "pgd"))
