"""`skinart defend --method llt|jpeg|smoothing|squeeze|combined`: a checkpoint with the same weights whose metadata
attaches a preprocessing defence, plus its clean test metrics (what the defence costs on clean images)."""

from __future__ import annotations

from pathlib import Path

from skinart.checkpoints import checkpoint_dataset, classifier_from_checkpoint, derive_checkpoint, read_checkpoint_meta
from skinart.defences import DEFENCES
from skinart.errors import SkinartError
from skinart.preprocessing import PREPROCESSOR_DEFAULTS, check_quality, preprocessors
from skinart.rundir import Run, data_ref, resolved
from skinart.scoring import evaluate


def preprocess_run(method: str, checkpoint: Path, out: Path, settings: dict, data: str | None = None, data_root: str | None = None,
                   device: str = "auto", overwrite: bool = False, label: str | None = None) -> dict | None:
    """Attach the preprocessor `method` (recorded as `label`, e.g. combined) to the checkpoint's weights."""
    if "quality" in settings:
        check_quality(settings["quality"])
    meta = read_checkpoint_meta(checkpoint)
    if meta.get("preprocessing"):
        raise SkinartError(f"{checkpoint} already carries the defence {meta['preprocessing']}; defend its source checkpoint instead")
    entry = {"name": method, **{k: settings.get(k, v) for k, v in PREPROCESSOR_DEFAULTS.items()}}
    preprocessors([entry])  # ART checks the settings before anything is written
    run = Run("defend", out, overwrite, checkpoint=checkpoint, meta=meta, data=data_ref(data, data_root, meta),
              method=label or method, preprocessing=[entry])
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    # transfer attacks craft on the undefended model: the retrained model's own source, if it has one
    source = (meta.get("defence") or {}).get("source") or resolved(checkpoint)
    with run.staged() as tmp:
        # {**meta} keeps the source's operating point: a defence that moves the scores is judged at the same threshold
        defended = {**meta, "preprocessing": [entry], "defence": {**(meta.get("defence") or {}), "method": label or method, "source": source}}
        derive_checkpoint(checkpoint, tmp, defended)
        classifier, _ = classifier_from_checkpoint(tmp, device)
        return evaluate(classifier, dataset.splits["test"], defended, meta["malignant"], tmp,
                        f"{meta['model']} + {label or method} on {dataset.name} test", kind="defend")


def combined_run(retrained: Path, out: Path, settings: dict, data: str | None = None, data_root: str | None = None,
                 device: str = "auto", overwrite: bool = False) -> dict | None:
    """The thesis's best defence: llt attached to adversarially retrained weights."""
    if (read_checkpoint_meta(retrained, "--retrained").get("defence") or {}).get("method") not in [n for n, d in DEFENCES.items() if d.kind == "retrain"]:
        raise SkinartError(f"combined needs retrained weights and {retrained} has none: pass --retrained RUN, a run of "
                           "`skinart defend --method retrain` (or madry)")
    return preprocess_run("llt", retrained, out, settings, data, data_root, device, overwrite, label="combined")
