"""Metrics exactly as DESIGN.md defines them: multi-class and binary (malignant = positive)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import DegenerateDataWarning, bootstrap
from sklearn.metrics import confusion_matrix

from skinart.data import CLASSES, DEFAULT_MALIGNANT


def _ratio(num: float, den: float) -> float | None:
    """num/den, or None (JSON null) where the ratio is undefined."""
    return float(num / den) if den else None


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, malignant_idx: list[int]) -> dict:
    """Malignant (positive) vs benign; matrix rows = truth [benign, malignant], columns = prediction."""
    t, p = np.isin(y_true, malignant_idx), np.isin(y_pred, malignant_idx)
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


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...] = CLASSES, malignant: tuple[str, ...] = DEFAULT_MALIGNANT
) -> dict:
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
        "macro_specificity": float(np.mean([v["specificity"] for v in present])) if present else None,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": (cm / np.maximum(support[:, None], 1)).round(4).tolist(),
        "binary": binary_metrics(y_true, y_pred, [classes.index(m) for m in malignant]),
        "malignant": list(malignant),
    }


def attack_metrics(
    y_true: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray, classes: tuple[str, ...] = CLASSES,
    malignant: tuple[str, ...] = DEFAULT_MALIGNANT, target: int | None = None,
) -> dict:
    """Clean and attacked metrics plus the three rates DESIGN.md separates: fooling (prediction changed),
    error (1 − accuracy, the thesis's "fooling rate") and success (originally correct, now wrong)."""
    clean = classification_metrics(y_true, clean_pred, classes, malignant)
    adversarial = classification_metrics(y_true, adv_pred, classes, malignant)
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


def perturbation_norms(clean: np.ndarray, adversarial: np.ndarray) -> dict:
    """Measured L∞ (max over samples) and mean L2 of adversarial − clean, in [0, 1] pixel units."""
    delta = (adversarial.astype(np.float32) - clean.astype(np.float32)).reshape(len(clean), -1)
    if not len(delta):
        return {"linf_max": None, "l2_mean": None}
    return {"linf_max": float(np.abs(delta).max()), "l2_mean": float(np.linalg.norm(delta, axis=1).mean())}


def _macro_recall(y, p, n_classes: int, axis: int = -1):
    recalls = [np.sum((y == c) & (p == c), axis=axis) / np.sum(y == c, axis=axis) for c in range(n_classes)]
    return np.nanmean(np.stack(recalls), axis=0)


def _fnr(y, p, malignant_idx: list[int], axis: int = -1):
    t, q = np.isin(y, malignant_idx), np.isin(p, malignant_idx)
    return np.sum(t & ~q, axis=axis) / np.sum(t, axis=axis)


def bootstrap_ci(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, malignant_idx: list[int], resamples: int = 1000,
                 seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap intervals (scipy, test images resampled in pairs, seeded) of the headline metrics."""
    statistics = {
        "accuracy": lambda y, p, axis=-1: np.mean(y == p, axis=axis),
        "macro_recall": lambda y, p, axis=-1: _macro_recall(y, p, n_classes, axis),
        "fnr": lambda y, p, axis=-1: _fnr(y, p, malignant_idx, axis),
    }
    if len(y_true) < 2 or resamples < 1:
        return {}
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        # every resample giving one value (e.g. accuracy 0 under PGD) is a valid [v, v] percentile interval;
        # scipy's warning about it speaks of BCa, which is not used here
        warnings.simplefilter("ignore", DegenerateDataWarning)
        for name, statistic in statistics.items():
            result = bootstrap((y_true, y_pred), statistic, paired=True, vectorized=True, n_resamples=resamples,
                               confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
            low, high = result.confidence_interval
            out[name] = None if np.isnan(low) or np.isnan(high) else [float(low), float(high)]
    return out


MASKING_GAP = 0.10  # adaptive accuracy this far below transfer (or white-box) accuracy raises a flag


def robustness_flags(table: dict, preprocessed: bool) -> dict:
    """Only a preprocessor can hide gradients here: masking shows as the attack through it (BPDA, EOT) beating the
    attack that ignores it. Adaptive far below transfer, with or without one, means the transfer number overstates."""
    below = lambda a, b: a in table and b in table and table[a]["accuracy"] < table[b]["accuracy"] - MASKING_GAP  # noqa: E731
    return {"robustness_overstated": below("adaptive", "transfer"), "gradient_masking_suspected": preprocessed and below("adaptive", "white-box")}
