import numpy as np
import pytest

from skinart.data import CLASSES
from skinart.errors import SkinartError
from skinart.metrics import binary_metrics, classification_metrics
from skinart.options import parse_malignant

# Three classes a, b, c; truth and prediction chosen so every count below is worked out by hand.
#            pred a  b  c
# truth a        3  1  0
# truth b        1  2  1
# truth c        0  0  2
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 0, 1, 1, 2, 2, 2])


def test_multiclass_metrics_match_hand_computed_confusion_matrix():
    m = classification_metrics(Y_TRUE, Y_PRED, ("a", "b", "c"), ["c"])
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 2, 1], [0, 0, 2]]
    assert m["accuracy"] == pytest.approx(7 / 10)
    # recall: a 3/4, b 2/4, c 2/2
    assert m["per_class"]["a"]["recall"] == pytest.approx(0.75)
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert m["macro_recall"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    # specificity a: TN = 6 - FP(1)... negatives of a = 6, predicted a among them = 1 -> 5/6
    assert m["per_class"]["a"]["specificity"] == pytest.approx(5 / 6)
    # b: negatives 6, predicted b among them 1 -> 5/6; c: negatives 8, predicted c among them 1 -> 7/8
    assert m["per_class"]["c"]["specificity"] == pytest.approx(7 / 8)
    assert m["macro_specificity"] == pytest.approx((5 / 6 + 5 / 6 + 7 / 8) / 3)
    assert m["per_class"]["c"]["precision"] == pytest.approx(2 / 3)
    assert m["confusion_matrix_normalized"][1] == [0.25, 0.5, 0.25]


def test_binary_metrics_collapse_malignant_classes():
    # malignant = {c}: truth positives are samples 8, 9 (both predicted c): TP 2, FN 0;
    # negatives 0..7, sample 7 predicted c: FP 1, TN 7
    b = classification_metrics(Y_TRUE, Y_PRED, ("a", "b", "c"), ["c"])["binary"]
    assert b["confusion_matrix"] == [[7, 1], [0, 2]]
    assert b["sensitivity"] == 1.0 and b["fnr"] == 0.0
    assert b["specificity"] == pytest.approx(7 / 8)
    assert b["ppv"] == pytest.approx(2 / 3)
    assert b["npv"] == 1.0
    assert b["accuracy"] == pytest.approx(9 / 10)


def test_binary_metrics_with_two_malignant_classes():
    # malignant = {b, c}: positives 4..9; predicted positive: 3, 5, 6, 7, 8, 9 -> TP 5 (5..9), FN 1 (4), FP 1 (3), TN 3
    b = binary_metrics(Y_TRUE, Y_PRED, [1, 2])
    assert b["confusion_matrix"] == [[3, 1], [1, 5]]
    assert b["sensitivity"] == pytest.approx(5 / 6)
    assert b["fnr"] == pytest.approx(1 / 6)
    assert b["npv"] == pytest.approx(3 / 4)


def test_undefined_ratios_are_null_not_nan():
    b = binary_metrics(np.array([0, 0]), np.array([0, 0]), [1])
    assert b["sensitivity"] is None and b["fnr"] is None and b["ppv"] is None
    assert b["specificity"] == 1.0


def test_macro_recall_skips_classes_absent_from_truth():
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), ("a", "b", "c"), ["c"])
    assert m["per_class"]["c"]["recall"] is None
    assert m["macro_recall"] == pytest.approx((0.5 + 1.0) / 2)


def test_parse_malignant():
    assert parse_malignant("mel, BCC,akiec", CLASSES) == ["akiec", "bcc", "mel"]
    assert parse_malignant(["nv", "mel"], CLASSES) == ["mel", "nv"]
    with pytest.raises(SkinartError, match="unknown class"):
        parse_malignant("mel,melanoma", CLASSES)
    with pytest.raises(SkinartError, match="no class is benign"):
        parse_malignant(",".join(CLASSES), CLASSES)
