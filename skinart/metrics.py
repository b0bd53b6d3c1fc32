"""Metrics exactly as DESIGN.md defines them: multi-class and binary (malignant = positive)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import DegenerateDataWarning, bootstrap, rankdata
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from skinart.data import CLASSES, DEFAULT_MALIGNANT, EXTRA_CLASSES


def _ratio(num: float, den: float) -> float | None:
    """num/den, or None (JSON null) where the ratio is undefined."""
    return float(num / den) if den else None


def _binary(t: np.ndarray, p: np.ndarray) -> dict:
    """The binary metrics of truth `t` and decision `p` (booleans, True = malignant); matrix [[TN, FP], [FN, TP]]."""
    tp, tn = int(np.sum(t & p)), int(np.sum(~t & ~p))
    fp, fn = int(np.sum(~t & p)), int(np.sum(t & ~p))
    sensitivity = _ratio(tp, tp + fn)
    return {
        "accuracy": _ratio(tp + tn, len(t)),
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "fnr": None if sensitivity is None else 1.0 - sensitivity,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, malignant_idx: list[int]) -> dict:
    """Malignant (positive) vs benign at argmax: the predicted class mapped to malignant or benign."""
    return _binary(np.isin(y_true, malignant_idx), np.isin(y_pred, malignant_idx))


def p_malignant(probs: np.ndarray, malignant_idx: list[int]) -> np.ndarray:
    """The probability of malignancy: the sum of the malignant classes' probabilities."""
    return probs[:, malignant_idx].sum(axis=1)


def threshold_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float, malignant_idx: list[int]) -> dict:
    """Binary metrics at an operating point: malignant when p_malignant ≥ threshold (roc_curve's convention)."""
    return {**_binary(np.isin(y_true, malignant_idx), scores >= threshold), "threshold": float(threshold)}


def auroc(y_true: np.ndarray, scores: np.ndarray, malignant_idx: list[int]) -> float | None:
    """Binary AUROC of p_malignant; None when the images hold only one of the two classes."""
    t = np.isin(y_true, malignant_idx)
    return float(roc_auc_score(t, scores)) if 0 < t.sum() < len(t) else None


def roc_points(y_true: np.ndarray, scores: np.ndarray, malignant_idx: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(false positive rates, true positive rates, thresholds), every distinct score a candidate (none dropped, so
    the first point reaching a sensitivity is there); None when one class is absent."""
    t = np.isin(y_true, malignant_idx)
    return roc_curve(t, scores, drop_intermediate=False) if 0 < t.sum() < len(t) else None


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, malignant_idx: list[int], target: float) -> dict | None:
    """The largest threshold whose sensitivity on these images is at least `target` (the most specific one that still
    meets it), with the sensitivity and specificity it gives; None when one class is absent."""
    roc = roc_points(y_true, scores, malignant_idx)
    if roc is None:
        return None
    fpr, tpr, thresholds = roc
    i = int(np.argmax(tpr >= target - 1e-12))  # tpr rises as the threshold falls: the first index reaching the target
    return {"threshold": float(thresholds[i]), "target_sensitivity": float(target), "sensitivity": float(tpr[i]),
            "specificity": float(1.0 - fpr[i])}


def restoring_threshold(malignant_scores: np.ndarray, target: float | None) -> float | None:
    """The largest threshold whose sensitivity over these malignant images' p_malignant is at least `target`: the
    ⌈target·n⌉-th largest score (`choose_threshold`'s, without the benign images it needs for specificity); None
    without a target (a threshold its owner gave)."""
    n = len(malignant_scores)
    if target is None:
        return None
    k = int(np.ceil(target * n - 1e-9))
    return float(np.sort(malignant_scores)[n - k]) if n and 0 < k <= n else None


def threshold_interval(y_true: np.ndarray, scores: np.ndarray, malignant_idx: list[int], target: float | None, *,
                       resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of `restoring_threshold` (the malignant images resampled, seeded); None under
    MIN_INTERVAL_IMAGES malignant images or without resamples."""
    positive = scores[np.isin(y_true, malignant_idx)]
    if target is None or resamples < 1 or len(positive) < MIN_INTERVAL_IMAGES:
        return None
    draws = np.sort(positive[np.random.default_rng(seed).integers(0, len(positive), (resamples, len(positive)))], axis=1)
    k = int(np.ceil(target * len(positive) - 1e-9))
    values = draws[:, len(positive) - k]
    return [float(np.quantile(values, (1 - level) / 2)), float(np.quantile(values, (1 + level) / 2))]


def operating_threshold(operating_point: dict | None, malignant: list[str] | tuple[str, ...]) -> float | None:
    """The stored threshold when it was chosen for this malignant set; None otherwise (a checkpoint from before
    operating points, or p_malignant over other classes, which the threshold does not calibrate): never a made-up one."""
    if not operating_point or sorted(operating_point.get("malignant", [])) != sorted(malignant):
        return None
    return operating_point["threshold"]


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, *, classes: tuple[str, ...] = CLASSES, malignant: tuple[str, ...] = DEFAULT_MALIGNANT,
    probs: np.ndarray | None = None, threshold: float | None = None,
) -> dict:
    """Multi-class metrics and the binary ones at argmax; given the probabilities, also the AUROC of p_malignant and,
    given the checkpoint's threshold, the binary metrics at that operating point (else None: never a made-up one)."""
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    support = cm.sum(axis=1)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    tn = cm.sum() - support - fp
    per_class = {
        c: {
            "recall": _ratio(tp[i], support[i]),
            "specificity": _ratio(tn[i], tn[i] + fp[i]),
            "precision": _ratio(tp[i], tp[i] + fp[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }
    present = [v for v in per_class.values() if v["recall"] is not None]
    return {
        "accuracy": _ratio(tp.sum(), cm.sum()),
        # classes absent from y_true have no recall; the macro mean is over present classes (= balanced accuracy)
        "macro_recall": float(np.mean([v["recall"] for v in present])) if present else None,
        "macro_specificity": float(np.mean(known)) if (known := [v["specificity"] for v in present if v["specificity"] is not None]) else None,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": (cm / np.maximum(support[:, None], 1)).round(4).tolist(),
        "malignant": list(malignant),
        **_outside_data(y_pred, classes),
        **_binary_views(y_true, y_pred, [classes.index(m) for m in malignant], probs, threshold),
    }


def _outside_data(y_pred: np.ndarray, classes: tuple[str, ...]) -> dict:
    """A model's outputs that no dataset here labels (ISIC 2019's scc, unk): the share of images predicted as each, every
    one an error (none where the model has no such output)."""
    outside = [i for i, c in enumerate(classes) if c in EXTRA_CLASSES]
    return {"predicted_outside_data": {classes[i]: _ratio(np.sum(y_pred == i), len(y_pred)) for i in outside}} if outside else {}


def _binary_views(y_true: np.ndarray, y_pred: np.ndarray, malignant_idx: list[int], probs: np.ndarray | None,
                  threshold: float | None) -> dict:
    """The binary metrics at argmax, the AUROC of p_malignant and the binary metrics at the operating point."""
    scores = None if probs is None else p_malignant(probs, malignant_idx)
    return {
        "binary": binary_metrics(y_true, y_pred, malignant_idx),
        "auroc": None if scores is None else auroc(y_true, scores, malignant_idx),
        "binary_at_threshold": None if scores is None or threshold is None else threshold_metrics(y_true, scores, threshold, malignant_idx),
    }


def attack_metrics(
    y_true: np.ndarray, *, clean_probs: np.ndarray, adv_probs: np.ndarray, classes: tuple[str, ...] = CLASSES,
    malignant: tuple[str, ...] = DEFAULT_MALIGNANT, target: int | None = None, threshold: float | None = None,
) -> dict:
    """Clean and attacked metrics plus the three rates DESIGN.md separates: fooling (prediction changed),
    error (1 − accuracy, the thesis's "fooling rate") and success (originally correct, now wrong). Both halves are
    judged at the same threshold: the deployed one is what the attacker faces."""
    clean_pred, adv_pred = clean_probs.argmax(1), adv_probs.argmax(1)
    clean = classification_metrics(y_true, clean_pred, classes=classes, malignant=malignant, probs=clean_probs, threshold=threshold)
    adversarial = classification_metrics(y_true, adv_pred, classes=classes, malignant=malignant, probs=adv_probs, threshold=threshold)
    correct = clean_pred == y_true
    metrics = {
        "clean": clean,
        "adversarial": adversarial,
        "fooling_rate": _ratio(np.sum(adv_pred != clean_pred), len(y_true)),
        "error_rate": None if adversarial["accuracy"] is None else 1.0 - adversarial["accuracy"],
        "success_rate": _ratio(np.sum(correct & (adv_pred != y_true)), np.sum(correct)),
    }
    if target is not None:  # share of images of other classes predicted as the target, attacked and clean
        others = y_true != target
        metrics["targeted_success_rate"] = _ratio(np.sum(others & (adv_pred == target)), np.sum(others))
        metrics["targeted_rate_clean"] = _ratio(np.sum(others & (clean_pred == target)), np.sum(others))
    return metrics


def prediction_shares(y_pred: np.ndarray, classes: tuple[str, ...] | list[str]) -> dict[str, float] | None:
    """The share of images predicted as each class (summing to 1); None for no images."""
    if not len(y_pred):
        return None
    counts = np.bincount(y_pred, minlength=len(classes))
    return {c: float(counts[i] / len(y_pred)) for i, c in enumerate(classes)}


def worst_case_choice(y_true: np.ndarray, probs: list[np.ndarray], malignant_idx: list[int],
                      by_decision: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image over several attacks: (the attack that hurts it most, its prediction, the worst p_malignant), as
    `worst_case_metrics` describes; `by_decision` (attacks on the decision at the operating point): the attack that hurts
    it most is the one giving it that worst p_malignant."""
    preds = np.stack([p.argmax(1) for p in probs])  # attacks × images
    truth = np.isin(y_true, malignant_idx)
    harm = 2 * (np.isin(preds, malignant_idx) != truth) + (preds != y_true)  # a binary flip always changes the class too
    scores = np.stack([p_malignant(p, malignant_idx) for p in probs])
    chosen = np.where(truth, scores.argmin(0), scores.argmax(0)) if by_decision else harm.argmax(0)
    return chosen, preds[chosen, np.arange(len(y_true))], np.where(truth, scores.min(0), scores.max(0))


def worst_case_metrics(y_true: np.ndarray, probs: list[np.ndarray], classes: tuple[str, ...], malignant: tuple[str, ...],
                       threshold: float | None = None) -> dict:
    """The per-image worst case over several attacks on the same images: an image is correct only if every attack leaves
    it correct (so `accuracy` is the robust accuracy). Its prediction is that of the attack that hurts it most (one that
    flips its malignant/benign decision, else one that changes its class, else the first); its p_malignant is the lowest
    over the attacks for a malignant image and the highest for a benign one, so the AUROC and the operating point see the
    worst case over the decision too."""
    malignant_idx = [classes.index(m) for m in malignant]
    _, worst, worst_scores = worst_case_choice(y_true, probs, malignant_idx)
    metrics = classification_metrics(y_true, worst, classes=classes, malignant=malignant)
    metrics["auroc"] = auroc(y_true, worst_scores, malignant_idx)
    metrics["binary_at_threshold"] = None if threshold is None else threshold_metrics(y_true, worst_scores, threshold, malignant_idx)
    return metrics


def _macro_recall(y, p, n_classes: int, axis: int = -1):
    recalls = [np.sum((y == c) & (p == c), axis=axis) / np.sum(y == c, axis=axis) for c in range(n_classes)]
    return np.nanmean(np.stack(recalls), axis=0)


def _miss_rate(truth, decision, axis: int = -1):
    """The share of malignant images decided benign (FNR), vectorised over resamples."""
    return np.sum(truth & ~decision, axis=axis) / np.sum(truth, axis=axis)


def _auroc_ranks(y, s, malignant_idx: list[int], axis: int = -1):
    """AUROC as the Mann-Whitney U over average ranks (ties count one half, as in roc_auc_score), vectorised over
    resamples: roc_auc_score takes ~5 ms a call, 1000 resamples a report row. NaN when one class is absent."""
    t = np.isin(y, malignant_idx)
    n_pos, n_neg = np.sum(t, axis=axis), np.sum(~t, axis=axis)
    rank_sum = np.sum(rankdata(s, axis=axis) * t, axis=axis)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


# Fewer images than this behind a number (malignant images behind an FNR, images of the rarer of malignant and benign
# behind an AUROC) get no interval. Simulated 95 % percentile bootstraps of a proportion (1000 sets each) covered a true
# 0.8 or 0.95 96 % or 93 % of the time at 50 images, but only 91 % or 67 % at 20: so narrow an interval is a wrong number.
MIN_INTERVAL_IMAGES = 50


def bootstrap_ci(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int, malignant_idx: list[int], resamples: int = 1000,
                 seed: int = 0, level: float = 0.95, scores: np.ndarray | None = None, threshold: float | None = None) -> dict:
    """Percentile bootstrap intervals (scipy, test images resampled together with their prediction and p_malignant,
    seeded) of the headline metrics; with `scores` (p_malignant) also of the AUROC, and with the stored `threshold`
    too of the FNR at that operating point. A metric with fewer than MIN_INTERVAL_IMAGES images behind it is None
    (too small for an interval); none at all without resamples."""
    malignant = np.isin(y_true, malignant_idx)
    n, n_malignant = len(y_true), int(malignant.sum())
    statistics = {  # name: (images behind it, statistic)
        "accuracy": (n, lambda y, p, s, axis=-1: np.mean(y == p, axis=axis)),
        "macro_recall": (n, lambda y, p, s, axis=-1: _macro_recall(y, p, n_classes, axis)),
        "fnr": (n_malignant, lambda y, p, s, axis=-1: _miss_rate(np.isin(y, malignant_idx), np.isin(p, malignant_idx), axis)),
    }
    if scores is not None:
        statistics["auroc"] = (min(n_malignant, n - n_malignant), lambda y, p, s, axis=-1: _auroc_ranks(y, s, malignant_idx, axis))
        if threshold is not None:
            statistics["fnr_at_threshold"] = (n_malignant, lambda y, p, s, axis=-1: _miss_rate(np.isin(y, malignant_idx), s >= threshold, axis))
    if resamples < 1:
        return {}
    data = (y_true, y_pred, np.zeros(n) if scores is None else scores)
    out = dict.fromkeys(statistics)
    named = [name for name, (behind, _) in statistics.items() if behind >= MIN_INTERVAL_IMAGES]
    if not named:
        return out
    # one bootstrap for every statistic: the same resamples (what one seed drew for each apart), drawn once
    together = lambda y, p, s, axis=-1: np.stack([statistics[name][1](y, p, s, axis=axis) for name in named])  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        # every resample giving one value (e.g. accuracy 0 under PGD) is a valid [v, v] percentile interval;
        # scipy's warning about it speaks of BCa, which is not used here
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = bootstrap(data, together, paired=True, vectorized=True, n_resamples=resamples,
                           confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    for name, low, high in zip(named, *result.confidence_interval):
        out[name] = None if np.isnan(low) or np.isnan(high) else [float(low), float(high)]
    return out


MASKING_GAP = 0.10  # adaptive accuracy this far below transfer (or white-box) accuracy raises a flag


def robustness_flags(table: dict, preprocessed: bool, measure: str = "accuracy") -> dict:
    """Only a preprocessor can hide gradients here: masking shows as the attack through it (BPDA, EOT) beating the
    attack that ignores it. Adaptive far below transfer, with or without one, means the transfer number overstates.
    `measure`: the table's column compared (accuracy, or what an attack objective lowers)."""
    below = lambda a, b: a in table and b in table and table[a][measure] < table[b][measure] - MASKING_GAP  # noqa: E731
    return {"robustness_overstated": below("adaptive", "transfer"), "gradient_masking_suspected": preprocessed and below("adaptive", "white-box")}
