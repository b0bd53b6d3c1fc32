"""The check that an imported model was imported right, on its validation predictions: its per-class recalls against
those of every other naming of its outputs. A wrong `--classes` order shows as another naming recalling the classes
better (the best one found by assignment on the recall matrix); a wrong normalisation or input size as a balanced
accuracy no better than chance (1/k, what the outputs score on average over all namings, whatever the class shares).
Both are judged on draws of each class's recall row from its posterior (Dirichlet over the outputs, counts + 1/k), so
a difference a few images could make raises no alarm, and a weak but rightly named model passes."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

DRAWS = 2000
LEVEL = 0.99  # how sure the check must be (one-sided) before it calls an import suspect
NAMING = "check --classes (the model's own output order)"
INPUT = "check --mean/--std (its normalisation), --img-size/--resize (its input) and --classes (its output order)"


def import_check(labels: np.ndarray, predictions: np.ndarray, classes: tuple[str, ...], seed: int = 0) -> dict:
    """The verdict ("suspect" or "plausible"), the one-line warning of a suspect import, and the numbers behind it."""
    k = len(classes)
    counts = np.zeros((k, k))
    np.add.at(counts, (labels, predictions), 1)
    present = np.flatnonzero(counts.sum(1))
    recall = counts[present] / counts[present].sum(1, keepdims=True)
    rows = np.arange(len(present))
    _, best = linear_sum_assignment(recall, maximize=True)  # the naming of the outputs that recalls the classes best
    rng = np.random.default_rng(seed)
    drawn = np.stack([rng.dirichlet(counts[c] + 1 / k, size=DRAWS) for c in present], axis=1)  # draws x classes x outputs
    balanced = drawn[:, rows, present].mean(1)
    gain = drawn[:, rows, best].mean(1) - balanced
    check = {"split": "val", "images": int(len(labels)), "balanced_accuracy": float(recall[rows, present].mean()),
             "chance": 1 / k, "balanced_accuracy_lower": float(np.quantile(balanced, 1 - LEVEL)),
             "best_naming_gain": float(recall[rows, best].mean() - recall[rows, present].mean()),
             "best_naming_gain_lower": float(np.quantile(gain, 1 - LEVEL)), "level": LEVEL,
             "per_class_recall": {classes[c]: float(recall[i, c]) for i, c in enumerate(present)},
             "recalled_best_by": {classes[c]: classes[best[i]] for i, c in enumerate(present) if best[i] != c}}
    warning = _warning(check)
    return {"verdict": "suspect" if warning else "plausible", "warning": warning, **check}


def _warning(check: dict) -> str | None:
    ba = check["balanced_accuracy"]
    moved = check["recalled_best_by"]
    if moved and check["best_naming_gain_lower"] > 0:
        named = ", ".join(f"{c} by the output named {o}" for c, o in moved.items())
        return (f"the validation images are recalled better by another naming of the outputs ({named}): balanced accuracy "
                f"{ba:.3f} would be {ba + check['best_naming_gain']:.3f}; {NAMING}")
    if check["balanced_accuracy_lower"] <= check["chance"]:
        return (f"balanced accuracy {ba:.3f} on the validation split is no better than chance ({check['chance']:.3f}, what "
                f"any naming of the outputs scores on average); {INPUT}")
    return None

