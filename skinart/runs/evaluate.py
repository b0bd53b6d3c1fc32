"""`skinart evaluate` without an attack: the clean metrics of a checkpoint on one split of its own data, or on a whole
other dataset (an external evaluation)."""

from __future__ import annotations

from pathlib import Path

from skinart.data import subgroups
from skinart.models.checkpoint import Checkpoint
from skinart.rundir import RunDir, RunOptions
from skinart.runs.scoring import evaluate
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def evaluate_run(checkpoint: Checkpoint, out: Path, options: RunOptions, *, split: str = "test",
                 external: bool = False, by: str | None = None) -> dict | None:
    """Metrics of a checkpoint on a split of its own data (verified), or with `external` on every image of other data,
    and with `by` (sex, age or site) per subgroup of the images; None when `out` already holds this run."""
    malignant = checkpoint.malignant_names(options.malignant)
    which = {"external": True} if external else {"split": split}
    run = RunDir("evaluate", out, options, checkpoint=checkpoint,
                 data=options.data_ref(checkpoint.data_name(), **which), malignant=malignant, **({"by": by} if by else {}))
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root, split=split, external=external,
                                 data_options=options.data_options)
    images = dataset.splits[split]
    grouped = None if by is None else (by, subgroups(images.metadata, by, dataset.name))  # refused before anything is written
    classifier = deployed(checkpoint, options.device, precision=options.precision, samples=options.smoothing_n)
    what = f"external {dataset.name} data" if external else f"{dataset.name} {split}"
    with run.staged() as tmp:
        return evaluate(classifier, images, checkpoint, malignant=malignant, out=tmp,
                        title=f"{checkpoint.meta.model} on {what} ({len(images)} images)",
                        about={"external": external, "data": {**dataset.identity(), "split": "all" if external else split}},
                        by=grouped)
