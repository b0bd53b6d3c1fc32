"""The wrong-import check on real validation predictions: a ResNet-18 trained outside skinart on DermaMNIST-28 (its
confusion on the 1003 validation images, `skinart import --weights theirs.pth --model resnet18 --classes
mel,nv,bcc,akiec,bkl,df,vasc --img-size 28 --resize squash --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225`) named
right, with two outputs swapped, as binary, and collapsed onto one class; and a weak but rightly named CNN (a class-
balanced loss for 300 steps: accuracy 0.502, below the majority class's share, which warned before)."""

from __future__ import annotations

import numpy as np
import pytest

from skinart.data import CLASSES
from skinart.runs.import_check import import_check

RIGHT = [[17, 10, 2, 0, 2, 2, 0], [8, 34, 5, 0, 3, 2, 0], [12, 9, 49, 0, 19, 21, 0], [3, 6, 1, 2, 0, 0, 0],
         [6, 2, 11, 0, 60, 30, 2], [5, 8, 31, 0, 61, 560, 6], [1, 2, 0, 1, 1, 1, 8]]
WEAK = [[10, 9, 6, 0, 0, 4, 4], [9, 29, 10, 0, 1, 1, 2], [10, 16, 45, 0, 24, 10, 5], [3, 8, 0, 0, 0, 0, 1],
        [5, 8, 18, 0, 64, 14, 2], [34, 51, 79, 0, 125, 355, 27], [7, 1, 1, 0, 1, 3, 1]]


def _predictions(confusion) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) with this confusion matrix (rows: true class, columns: predicted)."""
    pairs = [(t, p) for t, row in enumerate(confusion) for p, n in enumerate(row) for _ in range(n)]
    return np.array([t for t, _ in pairs]), np.array([p for _, p in pairs])


def _renamed(predictions: np.ndarray, a: str, b: str) -> np.ndarray:
    """The predictions of the same model whose outputs for a and b were named the other way round."""
    i, j = CLASSES.index(a), CLASSES.index(b)
    return np.where(predictions == i, j, np.where(predictions == j, i, predictions))


def test_a_df_vasc_swap_is_suspect_and_names_the_two_classes():
    labels, predictions = _predictions(RIGHT)
    check = import_check(labels, _renamed(predictions, "df", "vasc"), CLASSES)
    assert check["verdict"] == "suspect" and check["recalled_best_by"] == {"df": "vasc", "vasc": "df"}
    assert "df by the output named vasc" in check["warning"] and "--classes" in check["warning"]
    assert check["balanced_accuracy"] + check["best_naming_gain"] == pytest.approx(import_check(labels, predictions, CLASSES)["balanced_accuracy"])


def test_the_right_naming_is_plausible():
    check = import_check(*_predictions(RIGHT), CLASSES)
    assert check["verdict"] == "plausible" and check["warning"] is None and check["best_naming_gain"] == 0


def test_a_weak_but_rightly_named_model_is_plausible():
    labels, predictions = _predictions(WEAK)
    assert np.mean(labels == predictions) < np.mean(labels == CLASSES.index("nv"))  # below always guessing nv
    check = import_check(labels, predictions, CLASSES)
    assert check["verdict"] == "plausible", check["warning"]


def test_one_class_for_every_image_is_no_better_than_chance():
    labels, _ = _predictions(RIGHT)
    check = import_check(labels, np.full_like(labels, CLASSES.index("nv")), CLASSES)
    assert check["verdict"] == "suspect" and "no better than chance (0.143" in check["warning"] and "--mean/--std" in check["warning"]


def test_a_binary_model_with_its_outputs_swapped_is_suspect():
    labels, predictions = _predictions(RIGHT)
    malignant = [CLASSES.index(c) for c in ("akiec", "bcc", "mel")]
    binary_labels, binary_predictions = np.isin(labels, malignant).astype(int), np.isin(predictions, malignant).astype(int)
    assert import_check(binary_labels, binary_predictions, ("benign", "malignant"))["verdict"] == "plausible"
    check = import_check(binary_labels, 1 - binary_predictions, ("benign", "malignant"))
    assert check["verdict"] == "suspect" and check["recalled_best_by"] == {"benign": "malignant", "malignant": "benign"}
