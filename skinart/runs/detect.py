"""`skinart defend --method detect-poison`: ART's poison detectors on the poisoned model's pre-logit features of its
own (poisoned) training split, scored against the samples the attack really poisoned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from skinart.models.checkpoint import Checkpoint
from skinart.attacks.loops import one_hot
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.models.networks import PreLogits, wrap
from skinart.options import choose
from skinart.attacks.poisons import poison_split
from skinart.rundir import CONFIG_FILE, FLAGGED_FILE, METRICS_FILE, POISON_FILE, RunDir, RunOptions, write_json
from skinart.toolbox import ActivationDefence, SpectralSignatureDefense
from skinart.models.provenance import checkpoint_dataset
from skinart.models.build import network


def _pca_dims(y: np.ndarray) -> int:
    """ART's 10 PCA dimensions, or fewer when a class has fewer training images than that."""
    counts = np.bincount(y.argmax(1))
    return int(min(10, counts[counts > 0].min()))


# each of defences.table.DETECTORS by its ART class; ART's settings otherwise: the defender does not know the poisoned
# share (no oracle)
ART_DETECTORS = {
    "activation": lambda clf, x, y: ActivationDefence(clf, x, y).detect_poison(nb_clusters=2, reduce="PCA", nb_dims=_pca_dims(y)),
    "spectral": lambda clf, x, y: SpectralSignatureDefense(clf, x, y).detect_poison(),
}


def detect_run(poisoned: Checkpoint, out: Path, options: RunOptions, *, detector: str = "activation") -> dict | None:
    """The detector's flags on the poisoned training split, with precision and recall against the real poison."""
    choose(detector, ART_DETECTORS, "--detector")
    poison_file, config_file = poisoned.path / POISON_FILE, poisoned.path / CONFIG_FILE
    if not poison_file.is_file() or not config_file.is_file():
        raise SkinartError(f"{poisoned} is not a poisoned run (no {POISON_FILE}); pass --poisoned-run, a run of "
                           "`skinart attack --method poison-flip|poison-backdoor`")
    attack = json.loads(config_file.read_text())["attack"]
    run = RunDir("detect-poison", out, options, inputs=[poisoned.path], method="detect-poison", detector=detector,
                 poisoned_run=poisoned.ref())
    if run.done:
        return None
    dataset = checkpoint_dataset(poisoned, data=options.data, data_root=options.data_root)
    poison = np.load(poison_file)
    n_classes = len(poisoned.classes)
    train_split = poison_split(dataset.splits["train"], attack["method"], poison["indices"], int(poison["target"]), n_classes)
    meta = poisoned.meta
    features = wrap(PreLogits(network(poisoned).eval()), meta.img_size, meta.mean, meta.std, options.device)
    x, y = to_model_input(train_split.images), one_hot(train_split.labels, n_classes)
    _, is_clean = ART_DETECTORS[detector](features, x, y)
    flagged, is_poisoned = np.asarray(is_clean) == 0, np.isin(np.arange(len(train_split)), poison["indices"])
    precision, recall, f1, _ = precision_recall_fscore_support(is_poisoned, flagged, average="binary", zero_division=0)
    metrics = {"kind": "detect-poison", "detector": detector, "attack": attack["method"], "fraction": attack["fraction"],
               "train_samples": len(flagged), "poisoned": int(is_poisoned.sum()), "flagged": int(flagged.sum()),
               "true_positives": int((flagged & is_poisoned).sum()), "precision": float(precision), "recall": float(recall), "f1": float(f1)}
    with run.staged() as tmp:
        write_json(tmp / METRICS_FILE, metrics)
        np.savez(tmp / FLAGGED_FILE, indices=np.flatnonzero(flagged), ids=train_split.ids[flagged])
    return metrics
