"""Metrics per subgroup of the scored images (`evaluate --by sex|age|site`): every metric of a clean evaluation in each
group with its bootstrap intervals, groups under SMALL_GROUP images flagged, and the largest gap between the groups
large enough to compare. Clean evaluations call it on their split; a shift run can call it on each shift × severity."""

from __future__ import annotations

import numpy as np

from skinart.data import SMALL_GROUP, UNKNOWN, group_order
from skinart.metrics import bootstrap_ci, classification_metrics, p_malignant


def _at_threshold(metric: str, row: int) -> tuple:
    """(value, images behind it) of a metric at the stored threshold: row 1 of its confusion matrix holds the malignant
    images (behind the sensitivity), row 0 the benign ones (behind the specificity)."""
    return (lambda m: (m["binary_at_threshold"] or {}).get(metric),
            lambda m: sum(m["binary_at_threshold"]["confusion_matrix"][row]) if m["binary_at_threshold"] else 0)


# the metrics whose largest gap between groups is reported: name -> (its value in a group's metrics, the images behind it)
GAP_METRICS = {
    "accuracy": (lambda m: m["accuracy"], lambda m: m["images"]),
    "balanced_accuracy": (lambda m: m["macro_recall"], lambda m: m["images"]),
    "sensitivity_at_threshold": _at_threshold("sensitivity", 1),
    "specificity_at_threshold": _at_threshold("specificity", 0),
}


def subgroup_metrics(labels: np.ndarray, probs: np.ndarray, groups: np.ndarray, *, classes, malignant, threshold: float | None,
                     resamples: int = 1000, seed: int = 0) -> dict:
    """{"groups": {group: its metrics}, "largest_gap": {metric: the gap}} of the images (`labels`, class `probs`) split
    by `groups` (each image's group, e.g. `data.subgroups(split.metadata, "sex", name)`); every image in one group, so
    the groups' counts add up to the whole's."""
    malignant_idx = [list(classes).index(m) for m in malignant]
    per_group = {}
    for name in group_order(groups):
        mine = groups == name
        per_group[name] = _group(labels[mine], probs[mine], classes=classes, malignant=malignant, malignant_idx=malignant_idx,
                                 threshold=threshold, resamples=resamples, seed=seed)
    return {"groups": per_group, "largest_gap": largest_gaps(per_group)}


def _group(labels: np.ndarray, probs: np.ndarray, *, classes, malignant, malignant_idx: list[int], threshold: float | None,
           resamples: int, seed: int) -> dict:
    """A group's images, whether it is small, every clean metric (at argmax and at the stored threshold) and the
    bootstrap intervals, the sensitivity's at the threshold included."""
    predicted = probs.argmax(1)
    metrics = classification_metrics(labels, predicted, classes=tuple(classes), malignant=tuple(malignant), probs=probs,
                                     threshold=threshold)
    ci = bootstrap_ci(labels, predicted, n_classes=len(classes), malignant_idx=malignant_idx, resamples=resamples, seed=seed,
                      scores=p_malignant(probs, malignant_idx), threshold=threshold)
    fnr = ci.get("fnr_at_threshold")
    ci["sensitivity_at_threshold"] = None if fnr is None else [1 - fnr[1], 1 - fnr[0]]
    return {"images": len(labels), "small": len(labels) < SMALL_GROUP, **metrics, "ci": ci}


def largest_gaps(groups: dict[str, dict]) -> dict[str, dict | None]:
    """Per GAP_METRICS metric: the groups with its highest and lowest value among the known ones (not the images of
    unknown sex, age or site, which are no group of patients) with at least SMALL_GROUP images behind it (so never a
    small group, and a sensitivity only over as many malignant images), and the difference in percentage points; None
    with fewer than two such groups."""
    gaps = {}
    for metric, (value, behind) in GAP_METRICS.items():
        values = {name: value(g) for name, g in groups.items()
                  if name != UNKNOWN and behind(g) >= SMALL_GROUP and value(g) is not None}
        order = sorted(values, key=values.get)  # two groups even where every value is equal
        gaps[metric] = {"between": [order[-1], order[0]], "points": 100 * (values[order[-1]] - values[order[0]])} \
            if len(values) > 1 else None
    return gaps
