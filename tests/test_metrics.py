import numpy as np
import pytest

from skinart.data import CLASSES
from skinart.errors import SkinartError
from skinart.metrics import (
    _auroc_ranks, attack_metrics, auroc, binary_metrics, bootstrap_ci, choose_threshold, classification_metrics, operating_threshold,
    p_malignant, threshold_metrics,
)
from skinart.options import parse_malignant

# Three classes a, b, c; truth and prediction chosen so every count below is worked out by hand.
#            pred a  b  c
# truth a        3  1  0
# truth b        1  2  1
# truth c        0  0  2
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 0, 1, 1, 2, 2, 2])


def test_multiclass_metrics_match_hand_computed_confusion_matrix():
    m = classification_metrics(Y_TRUE, Y_PRED, classes=("a", "b", "c"), malignant=["c"])
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
    b = classification_metrics(Y_TRUE, Y_PRED, classes=("a", "b", "c"), malignant=["c"])["binary"]
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
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), classes=("a", "b", "c"), malignant=["c"])
    assert m["per_class"]["c"]["recall"] is None
    assert m["macro_recall"] == pytest.approx((0.5 + 1.0) / 2)


def test_parse_malignant():
    assert parse_malignant("mel, BCC,akiec", CLASSES) == ["akiec", "bcc", "mel"]
    assert parse_malignant(["nv", "mel"], CLASSES) == ["mel", "nv"]
    with pytest.raises(SkinartError, match="unknown class"):
        parse_malignant("mel,melanoma", CLASSES)
    with pytest.raises(SkinartError, match="no class is benign"):
        parse_malignant(",".join(CLASSES), CLASSES)


# p_malignant, AUROC and the operating point on arrays small enough to check by hand: classes a, b, c, malignant = {c}.
PROBS = np.array([[0.8, 0.1, 0.1], [0.6, 0.1, 0.3], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8],  # truth a, a, b, b
                  [0.5, 0.1, 0.4], [0.3, 0.0, 0.7], [0.1, 0.0, 0.9]])                   # truth c, c, c
LABELS = np.array([0, 0, 1, 1, 2, 2, 2])


def test_p_malignant_sums_the_malignant_classes():
    assert p_malignant(PROBS, [1, 2]) == pytest.approx([0.2, 0.4, 0.8, 0.9, 0.5, 0.7, 0.9])


def test_auroc_of_p_malignant_matches_hand_count_and_is_null_for_one_class():
    # benign scores 0.1 0.3 0.6 0.8, malignant 0.4 0.7 0.9: each malignant beats 2, 3, 4 benign: 9 of 12 pairs
    assert auroc(LABELS, p_malignant(PROBS, [2]), [2]) == pytest.approx(9 / 12)
    assert auroc(np.array([0, 0]), np.array([0.1, 0.9]), [2]) is None


def test_bootstrap_auroc_statistic_equals_roc_auc_score_with_ties():
    rng = np.random.default_rng(1)
    y, s = rng.integers(0, 3, (5, 40)), np.round(rng.random((5, 40)), 1)  # rounded: many ties
    for row_y, row_s, value in zip(y, s, _auroc_ranks(y, s, [2], axis=-1)):
        assert value == pytest.approx(auroc(row_y, row_s, [2]))


def test_threshold_choice_is_the_largest_reaching_the_target_sensitivity():
    scores = p_malignant(PROBS, [2])  # malignant 0.4 0.7 0.9; benign 0.1 0.3 0.6 0.8
    chosen = choose_threshold(LABELS, scores, [2], 2 / 3)
    # ≥ 0.9 catches 1/3; ≥ 0.8 still 1/3; ≥ 0.7 catches 2/3 with one benign (0.8) above: specificity 3/4
    assert chosen == {"threshold": pytest.approx(0.7), "target_sensitivity": pytest.approx(2 / 3), "sensitivity": pytest.approx(2 / 3),
                      "specificity": pytest.approx(3 / 4)}
    assert choose_threshold(LABELS, scores, [2], 0.9)["threshold"] == pytest.approx(0.4)  # all three: down to 0.4
    assert choose_threshold(LABELS, scores, [2], 1.0)["specificity"] == pytest.approx(2 / 4)
    assert choose_threshold(LABELS[:4], scores[:4], [2], 0.9) is None  # no malignant image: nothing to choose on


def test_binary_metrics_at_the_threshold_and_beside_argmax():
    m = classification_metrics(LABELS, PROBS.argmax(1), classes=("a", "b", "c"), malignant=["c"], probs=PROBS, threshold=0.7)
    at = m["binary_at_threshold"]
    # p ≥ 0.7: predicted malignant 0.8 (b), 0.7 (c), 0.9 (c): TP 2, FP 1, FN 1 (0.4), TN 3
    assert at["confusion_matrix"] == [[3, 1], [1, 2]] and at["threshold"] == 0.7
    assert at["sensitivity"] == pytest.approx(2 / 3) and at["npv"] == pytest.approx(3 / 4) and at["fnr"] == pytest.approx(1 / 3)
    # argmax: samples 2 and 3 (b, argmax c) are false positives, 4 (c, argmax a) a false negative
    assert m["binary"]["confusion_matrix"] == [[2, 2], [1, 2]] and m["auroc"] == pytest.approx(9 / 12)
    without = classification_metrics(LABELS, PROBS.argmax(1), classes=("a", "b", "c"), malignant=["c"], probs=PROBS, threshold=None)
    assert without["binary_at_threshold"] is None and without["auroc"] == pytest.approx(9 / 12)


def test_attack_metrics_judge_both_halves_at_the_same_threshold():
    attacked = PROBS[:, [2, 1, 0]]  # the attack swaps a and c
    m = attack_metrics(LABELS, clean_probs=PROBS, adv_probs=attacked, classes=("a", "b", "c"), malignant=("c",), threshold=0.7)
    assert m["clean"]["binary_at_threshold"]["threshold"] == m["adversarial"]["binary_at_threshold"]["threshold"] == 0.7
    assert m["adversarial"]["binary_at_threshold"]["sensitivity"] == 0.0  # malignant p now 0.5, 0.3, 0.1


def test_operating_threshold_only_for_the_set_it_was_chosen_for():
    point = {"threshold": 0.3, "malignant": ["mel", "bcc", "akiec"]}
    assert operating_threshold(point, ["akiec", "bcc", "mel"]) == 0.3
    assert operating_threshold(point, ["akiec", "bcc", "mel", "nv"]) is None  # the thesis mapping: argmax only
    assert operating_threshold(None, ["mel"]) is None  # a checkpoint from before operating points


def test_bootstrap_interval_of_auroc_contains_it():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    s = np.clip(0.4 * (y == 2) + rng.random(200) * 0.7, 0, 1)
    ci = bootstrap_ci(y, y, n_classes=3, malignant_idx=[2], resamples=300, scores=s)
    assert ci["auroc"][0] <= auroc(y, s, [2]) <= ci["auroc"][1]
    assert "auroc" not in bootstrap_ci(y, y, n_classes=3, malignant_idx=[2], resamples=300)


def test_bootstrap_gives_the_fnr_at_the_operating_point_and_no_interval_to_a_small_sample():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    s = np.clip(0.4 * (y == 2) + rng.random(300) * 0.7, 0, 1)
    ci = bootstrap_ci(y, y, n_classes=3, malignant_idx=[2], resamples=300, scores=s, threshold=0.5)
    fnr_at_t = threshold_metrics(y, s, 0.5, [2])["fnr"]
    assert 0 < fnr_at_t < 1 and ci["fnr_at_threshold"][0] <= fnr_at_t <= ci["fnr_at_threshold"][1] < 1
    small = bootstrap_ci(y[:40], y[:40], n_classes=3, malignant_idx=[2], resamples=300, scores=s[:40], threshold=0.5)
    assert set(small) == {"accuracy", "macro_recall", "fnr", "auroc", "fnr_at_threshold"} and set(small.values()) == {None}
    # 200 images, about a third of them malignant: 50 or more of each class, every interval
    assert all(bootstrap_ci(y[:200], y[:200], n_classes=3, malignant_idx=[2], resamples=100, scores=s[:200]).values())


def test_bootstrap_accuracy_interval_covers_the_true_accuracy_about_95_times_in_100():
    """A known answer: 200 test sets of 150 images of 7 classes from a model right with probability 0.8 (wrong: another
    class). The 95 % percentile interval must contain 0.8 in about 95 % of them (binomial spread over 200 sets: 91-99 %;
    here 192). An interval too narrow or off-centre covers less (an 80 % level, or one shifted by 0.03: 172 of 200), and
    labels resampled apart from their predictions (unpaired) give an accuracy near chance (0 of 200)."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        y = rng.integers(0, 7, 150)
        predicted = np.where(rng.random(150) < 0.8, y, (y + rng.integers(1, 7, 150)) % 7)
        low, high = bootstrap_ci(y, predicted, n_classes=7, malignant_idx=[4], resamples=400,
                                 seed=int(rng.integers(1 << 30)))["accuracy"]
        covered += low <= 0.8 <= high
    assert 0.91 <= covered / 200 <= 0.99


def test_without_a_validation_split_the_threshold_is_chosen_on_train_and_says_so(monkeypatch, capsys):
    from types import SimpleNamespace

    from skinart.training import loop as training

    monkeypatch.setattr(training, "predict", lambda classifier, images: images)  # the "images" are the probabilities
    split = type("Split", (SimpleNamespace,), {"__len__": lambda self: len(self.labels)})(labels=LABELS, images=PROBS)
    point = training.operating_point(None, SimpleNamespace(splits={"train": split}, classes=("a", "b", "c")), ["c"], 2 / 3)
    assert point == {"threshold": pytest.approx(0.7), "target_sensitivity": 2 / 3, "chosen_on": "train", "malignant": ["c"],
                     "train_sensitivity": pytest.approx(2 / 3), "train_specificity": pytest.approx(3 / 4)}
    assert "chosen on the train split" in capsys.readouterr().err
    with_val = SimpleNamespace(splits={"train": split, "val": split}, classes=("a", "b", "c"))
    assert training.operating_point(None, with_val, ["c"], 2 / 3)["chosen_on"] == "val"
