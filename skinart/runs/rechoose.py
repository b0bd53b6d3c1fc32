"""Run: `skinart evaluate --external --rechoose-threshold --on SPLIT`, the operating point chosen again on other data.

The external data are split (lesion-grouped, with the checkpoint's own ratios and seed); the threshold that meets the
checkpoint's target sensitivity is chosen on SPLIT of them and judged on their test split, which it never saw. The run
directory is a derived checkpoint (the same weights, the new operating point, where it was chosen and the one it
replaced) holding that judgement as its metrics.json."""

from __future__ import annotations

from pathlib import Path

from skinart.defences.deployed import deployed
from skinart.errors import SkinartError
from skinart.metrics import choose_threshold, p_malignant, threshold_interval, threshold_metrics
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict
from skinart.models.provenance import checkpoint_dataset
from skinart.rundir import RunDir, RunOptions
from skinart.runs.scoring import evaluate


def rechoose_run(checkpoint: Checkpoint, out: Path, options: RunOptions, *, on: str = "val") -> dict | None:
    """The derived checkpoint in `out` with the threshold re-chosen on split `on` of external data, and its metrics on
    their test split at that threshold (beside the stored one's); None when `out` already holds this run."""
    malignant = checkpoint.malignant_names(options.malignant)
    target = _target(checkpoint, malignant)
    run = RunDir("rechoose", out, options, checkpoint=checkpoint, malignant=malignant, on=on,
                 data=options.data_ref(checkpoint.data_name(), external=True, split=on))
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root, external=True,
                                 split_external=True)
    classifier = deployed(checkpoint, options.device, precision=options.precision, samples=options.smoothing_n)
    malignant_idx = [checkpoint.classes.index(m) for m in malignant]
    chosen_on = dataset.splits[on]
    scores = p_malignant(predict(classifier, chosen_on.images), malignant_idx)
    chosen = choose_threshold(chosen_on.labels, scores, malignant_idx, target)
    if chosen is None:
        raise SkinartError(f"the {on} split of {dataset.name} ({len(chosen_on)} images) lacks malignant or benign images, "
                           "so no threshold can be chosen on it; choose on another split with --on")
    stored = checkpoint.threshold(malignant)
    point = {"threshold": chosen["threshold"], "target_sensitivity": target, "chosen_on": f"external {dataset.name} {on}",
             "malignant": list(malignant), f"{on}_sensitivity": chosen["sensitivity"], f"{on}_specificity": chosen["specificity"],
             "threshold_ci": threshold_interval(chosen_on.labels, scores, malignant_idx, target),
             "data": {**dataset.settings(), "split": on, "images": len(chosen_on)},
             "replaced": checkpoint.meta.operating_point}
    test = dataset.splits["test"]
    with run.staged() as tmp:
        derived = checkpoint.derive(tmp, operating_point=point, written_by="skinart evaluate --external --rechoose-threshold")
        stored_here = threshold_metrics(test.labels, p_malignant(predict(classifier, test.images), malignant_idx), stored,
                                        malignant_idx)
        return evaluate(classifier, test, derived, malignant=malignant, out=tmp, kind="rechoose",
                        title=f"{checkpoint.meta.model} on external {dataset.name} test ({len(test)} images), threshold "
                              f"re-chosen on its {on} split",
                        about={"external": True, "data": {**dataset.identity(), "split": "test"}, "rechosen": point,
                               "stored_threshold_here": stored_here})


def _target(checkpoint: Checkpoint, malignant: list[str]) -> float:
    """The target sensitivity the stored operating point was chosen for: what a new threshold must meet."""
    point = checkpoint.meta.operating_point
    if checkpoint.threshold(malignant) is None or point.get("target_sensitivity") is None:
        raise SkinartError(f"{checkpoint} has no operating point chosen for a target sensitivity with this malignant set, "
                           "so there is nothing to re-choose; import it with --target-sensitivity (or train it with skinart)")
    return float(point["target_sensitivity"])


def stored_then_rechosen(metrics: dict) -> str:
    """One line: the stored threshold's and the re-chosen one's sensitivity on the external test split."""
    old, new = metrics["stored_threshold_here"], metrics["binary_at_threshold"]
    return (f"stored t = {old['threshold']:.4g}: sensitivity {old['sensitivity']:.3f} on the external test split; "
            f"re-chosen t = {metrics['rechosen']['threshold']:.4g} (on {metrics['rechosen']['chosen_on']}): "
            f"sensitivity {new['sensitivity']:.3f}, specificity {new['specificity']:.3f}")

