"""`skinart evaluate` without an attack: the clean metrics of a checkpoint on one split of its own data, or on a whole
other dataset (an external evaluation)."""

from __future__ import annotations

from pathlib import Path

from skinart.checkpoints import checkpoint_dataset, classifier_from_checkpoint, read_checkpoint_meta
from skinart.options import parse_malignant
from skinart.rundir import Run, data_ref
from skinart.scoring import evaluate


def evaluate_run(checkpoint: Path, out: Path, data: str | None = None, data_root: str | None = None, split: str = "test",
                 malignant: str | None = None, device: str = "auto", overwrite: bool = False,
                 external: bool = False) -> dict | None:
    """Metrics of a checkpoint on a split of its own data (verified), or with `external` on every image of other data;
    None when `out` already holds this run."""
    meta = read_checkpoint_meta(checkpoint)
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(meta["classes"]))
    which = {"external": True} if external else {"split": split}
    run = Run("evaluate", out, overwrite, checkpoint=checkpoint, meta=meta, data=data_ref(data, data_root, meta, **which),
              malignant=malignant_names)
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root, split, external)
    images = dataset.splits[split]
    classifier, _ = classifier_from_checkpoint(checkpoint, device)
    what = f"external {dataset.name} data" if external else f"{dataset.name} {split}"
    with run.staged() as tmp:
        return evaluate(classifier, images, meta, malignant_names, tmp, f"{meta['model']} on {what} ({len(images)} images)",
                        about={"external": external, "data": {**dataset.identity(), "split": "all" if external else split}})
