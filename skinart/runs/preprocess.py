"""`skinart defend --method llt|jpeg|smoothing|squeeze|combined`: a checkpoint with the same weights whose metadata
attaches a preprocessing defence, plus its clean test metrics (what the defence costs on clean images)."""

from __future__ import annotations

from pathlib import Path

from skinart.models.checkpoint import Checkpoint
from skinart.certification.table import smoothing_of
from skinart.defences.table import DEFENCES, PREPROCESSOR_DEFAULTS, check_setting
from skinart.errors import SkinartError
from skinart.defences.preprocessors import preprocessors
from skinart.rundir import RunDir, RunOptions, resolved
from skinart.runs.scoring import evaluate
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def preprocess_run(method: str, checkpoint: Checkpoint, out: Path, options: RunOptions, *, settings: dict,
                   label: str | None = None) -> dict | None:
    """Attach the preprocessor `method` (recorded as `label`, e.g. combined) to the checkpoint's weights."""
    if "quality" in settings:
        check_setting("quality", settings["quality"])
    if checkpoint.meta.preprocessing:
        raise SkinartError(f"{checkpoint} already carries the defence {list(checkpoint.meta.preprocessing)}; "
                           "defend its source checkpoint instead")
    if smoothing_of(checkpoint.meta.defence):
        raise SkinartError(f"{checkpoint} is a smoothed classifier (trained under noise of σ), whose noise goes on the pixels "
                           f"before any preprocessing: {method} cannot sit in front of it; defend its source checkpoint instead")
    entry = {"name": method, **{k: settings.get(k, v) for k, v in PREPROCESSOR_DEFAULTS.items()}}
    preprocessors([entry])  # ART checks the settings before anything is written
    run = RunDir("defend", out, options, checkpoint=checkpoint, data=options.data_ref(checkpoint.data_name()),
                 method=label or method, preprocessing=[entry])
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root)
    # transfer attacks craft on the undefended model: the retrained model's own source, if it has one
    source = checkpoint.source or resolved(checkpoint.path)
    with run.staged() as tmp:
        # the source's operating point is kept: a defence that moves the scores is judged at the same threshold
        defended = checkpoint.derive(tmp, preprocessing=(entry,), written_by=f"skinart defend --method {label or method}",
                                     defence={**(checkpoint.meta.defence or {}), "method": label or method, "source": source})
        return evaluate(deployed(defended, options.device, precision=options.precision), dataset.splits["test"], defended,
                        malignant=list(checkpoint.meta.malignant), out=tmp, title=f"{checkpoint.meta.model} + {label or method} on {dataset.name} test", kind="defend")


def combined_run(retrained: Checkpoint, out: Path, options: RunOptions, *, settings: dict,
                 source: Path | None = None) -> dict | None:
    """The thesis's best defence: llt attached to adversarially retrained weights; `source`, the --checkpoint given
    beside --retrained, must be the checkpoint they were retrained from."""
    if (retrained.meta.defence or {}).get("method") not in [n for n, d in DEFENCES.items() if d.kind == "retrain"]:
        raise SkinartError(f"combined needs retrained weights and {retrained} has none: pass --retrained RUN, a run of "
                           "`skinart defend --method retrain` (or madry)")
    if source is not None and retrained.source != resolved(source):
        raise SkinartError(f"--retrained {retrained} was retrained from {retrained.source}, not from --checkpoint {source}; "
                           "give the retraining of that checkpoint, or drop --checkpoint (combined defends --retrained's weights)")
    return preprocess_run("llt", retrained, out, options, settings=settings, label="combined")
