"""`skinart defend --method detect-poison`: ART's poison detectors on the poisoned model's pre-logit features of its
own (poisoned) training split, scored against the samples the attack really poisoned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from skinart.checkpoints import checkpoint_dataset, load_checkpoint, read_checkpoint_meta
from skinart.crafting import one_hot
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.models import PreLogits, wrap
from skinart.options import choose
from skinart.poisons import poison_split
from skinart.rundir import CONFIG_FILE, Run, resolved, write_json
from skinart.toolbox import ActivationDefence, SpectralSignatureDefense


def _pca_dims(y: np.ndarray) -> int:
    """ART's 10 PCA dimensions, or fewer when a class has fewer training images than that."""
    counts = np.bincount(y.argmax(1))
    return int(min(10, counts[counts > 0].min()))


# ART's settings otherwise: the defender does not know the poisoned share (no oracle)
DETECTORS = {
    "activation": lambda clf, x, y: ActivationDefence(clf, x, y).detect_poison(nb_clusters=2, reduce="PCA", nb_dims=_pca_dims(y)),
    "spectral": lambda clf, x, y: SpectralSignatureDefense(clf, x, y).detect_poison(),
}


def detect_run(poisoned_run: Path, out: Path, detector: str = "activation", data: str | None = None,
               data_root: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """The detector's flags on the poisoned training split, with precision and recall against the real poison."""
    choose(detector, DETECTORS, "--detector")
    meta = read_checkpoint_meta(poisoned_run, "--poisoned-run")
    poison_file, config_file = Path(poisoned_run) / "poison.npz", Path(poisoned_run) / CONFIG_FILE
    if not poison_file.is_file() or not config_file.is_file():
        raise SkinartError(f"{poisoned_run} is not a poisoned run (no poison.npz); pass --poisoned-run, a run of "
                           "`skinart attack --method poison-flip|poison-backdoor`")
    attack = json.loads(config_file.read_text())["attack"]
    run = Run("detect-poison", out, overwrite, inputs=[poisoned_run], method="detect-poison", detector=detector,
              poisoned_run={"path": resolved(poisoned_run), "weights_sha256": meta["weights_sha256"]})
    if run.done:
        return None
    dataset = checkpoint_dataset(poisoned_run, meta, data, data_root)
    poison = np.load(poison_file)
    train_split = poison_split(dataset.splits["train"], attack["method"], poison["indices"], int(poison["target"]), len(meta["classes"]))
    net, _ = load_checkpoint(poisoned_run)
    features = wrap(PreLogits(net.eval()), meta["img_size"], tuple(meta["mean"]), tuple(meta["std"]), device)
    x, y = to_model_input(train_split.images), one_hot(train_split.labels, len(meta["classes"]))
    _, is_clean = DETECTORS[detector](features, x, y)
    flagged, poisoned = np.asarray(is_clean) == 0, np.isin(np.arange(len(train_split)), poison["indices"])
    precision, recall, f1, _ = precision_recall_fscore_support(poisoned, flagged, average="binary", zero_division=0)
    metrics = {"kind": "detect-poison", "detector": detector, "attack": attack["method"], "fraction": attack["fraction"],
               "train_samples": len(flagged), "poisoned": int(poisoned.sum()), "flagged": int(flagged.sum()),
               "true_positives": int((flagged & poisoned).sum()), "precision": float(precision), "recall": float(recall), "f1": float(f1)}
    with run.staged() as tmp:
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "flagged.npz", indices=np.flatnonzero(flagged), ids=train_split.ids[flagged])
    return metrics
