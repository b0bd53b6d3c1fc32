"""Checkpoints: a directory of model.safetensors + skinart.json + train_ids.json (never pickle), read once into a
`Checkpoint`: its metadata as typed fields, its weights verified against the recorded sha256 whenever they are
loaded, its classifier (with the preprocessing defences its metadata names) and its data: the data it was trained on
(recorded loader, root and fingerprint, verified) with the same split settings, or an explicitly external test set.
An imported model (`imported`: its file kept as given, or as safetensors for a state dict) is the same object, the data's
labels mapped to its classes by name where they differ (`labels`: benign/malignant). No other module reads skinart.json."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors.torch import load_model, save_model
from torch import nn

from skinart import __version__
from skinart.data import LesionDataset, Source, Split, dataset_of, read_data
from skinart.errors import SkinartError
from skinart.foreign import FILES, TRAINABLE, TRAINING_DATA_UNKNOWN, binary_malignant, stored_network
from skinart.metrics import operating_threshold
from skinart.compute import resolve_device
from skinart.models import create_model, wrap
from skinart.options import parse_malignant
from skinart.preprocessing import preprocessors
from skinart.rundir import META_FILE, TRAIN_IDS_FILE, WEIGHTS_FILE, resolved
from skinart.weights import file_sha256

CHECKPOINT_FORMAT = "skinart-checkpoint/1"
_REQUIRED = ("model", "classes", "img_size", "mean", "std", "malignant", "weights_sha256", "data")


@dataclass(frozen=True)
class CheckpointMeta:
    """skinart.json as typed fields: what the network is (model, classes, input size and normalisation), how its
    outputs are read (the malignant set and the operating point chosen on validation data), the data it was trained on
    (loader, root, fingerprint and split settings), the preprocessing defences attached to it, and its provenance."""

    model: str
    classes: tuple[str, ...]
    img_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    malignant: tuple[str, ...]
    weights_sha256: str
    data: dict  # what reproduces its splits: data.LesionDataset.settings()
    operating_point: dict | None = None
    preprocessing: tuple[dict, ...] = ()
    defence: dict | None = None  # a defended checkpoint: its method and the undefended source it came from
    train_config: dict | None = None  # training.TrainConfig's fields (retraining and poisoning repeat them)
    best_epoch: int | None = None
    start_weights: dict | None = None
    train_ids: str | None = None  # the file of the training split's image ids, when recorded
    imported: dict | None = None  # a model trained outside skinart: its file, sha256, format and outputs (foreign.py)
    labels: dict | None = None  # the data's classes -> these classes, when they differ (a binary model)
    format: str = CHECKPOINT_FORMAT
    skinart_version: str = __version__
    extra: dict = field(default_factory=dict)  # keys this skinart does not know, kept as written

    @classmethod
    def from_json(cls, raw: dict, where: Path) -> CheckpointMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        missing = [name for name in _REQUIRED if name not in raw]
        if missing:
            raise SkinartError(f"{where} lacks {', '.join(missing)}; it was not written by skinart: write the checkpoint "
                               "again with `skinart train` (or `skinart import`)")
        values = {k: v for k, v in raw.items() if k in known}
        for name in ("classes", "mean", "std", "malignant", "preprocessing"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known})

    def to_json(self) -> dict:
        values = asdict(self)
        extra = values.pop("extra")
        return {"format": values.pop("format"), "skinart_version": values.pop("skinart_version"),
                "weights_sha256": values.pop("weights_sha256"), **values, **extra}


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint directory, its metadata read once (`Checkpoint.load`); the run modules take these, not paths."""

    path: Path
    meta: CheckpointMeta

    @classmethod
    def load(cls, directory: str | Path, option: str = "--checkpoint") -> Checkpoint:
        """Read skinart.json (the one place it is read); every error names the `option` that gave the directory."""
        directory = Path(directory)
        fix = f"pass {option} pointing at a checkpoint directory (written by `skinart train`, `defend` or a poisoning attack)"
        if directory.is_file():
            raise SkinartError(f"{option} {directory} is a file; {fix}")
        if not directory.is_dir():
            raise SkinartError(f"{option} {directory} does not exist; {fix}")
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise SkinartError(f"{directory} is not a skinart checkpoint (needs {WEIGHTS_FILE} and {META_FILE}); {fix}")
        try:
            raw = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SkinartError(f"{meta_path} is not valid JSON ({e}); {fix}") from e
        if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
            raise SkinartError(f"{meta_path} is not a {CHECKPOINT_FORMAT} file; {fix}")
        checkpoint = cls(directory, CheckpointMeta.from_json(raw, meta_path))
        if not checkpoint.weights_path.is_file():
            raise SkinartError(f"{directory} is not a skinart checkpoint (needs {checkpoint.weights_path.name} and {META_FILE}); {fix}")
        checkpoint.verify_weights()  # before a run is judged done: replaced weights are never a run already made
        return checkpoint

    # what configs record and messages show
    def ref(self) -> dict:
        """How a config names this checkpoint: where it is and which weights it held."""
        return {"path": resolved(self.path), "weights_sha256": self.meta.weights_sha256}

    def __str__(self) -> str:
        return str(self.path)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def source(self) -> str | None:
        """The undefended checkpoint a defended one came from (what a transfer attacker crafts on by default)."""
        return (self.meta.defence or {}).get("source")

    def malignant_names(self, option: str | None = None) -> list[str]:
        """The malignant set: the one given (checked against the classes), else the checkpoint's own. A binary model's
        `malignant` output stands for the data's classes it was imported with: naming those is naming it."""
        if option and self.meta.labels and not {n.strip() for n in option.split(",")} <= set(self.classes):
            return binary_malignant(option, self.meta.labels, str(self))
        return parse_malignant(option or ",".join(self.meta.malignant), self.classes)

    def provenance(self) -> dict:
        """What every metrics.json of this model says about its training data: unknown for an imported model."""
        return {"training_data": TRAINING_DATA_UNKNOWN} if self.meta.imported else {}

    def lineage(self) -> dict:
        """What a checkpoint trained from this one inherits: an imported model's provenance and label mapping."""
        return {"imported": self.meta.imported, "labels": self.meta.labels} if self.meta.imported else {}

    def check_trainable(self, what: str) -> None:
        """Refuse in one line to retrain weights skinart cannot train (an imported program or archive)."""
        fmt = (self.meta.imported or {}).get("format")
        if fmt and fmt not in TRAINABLE:
            raise SkinartError(f"{what} retrains the model, and {self} is an imported {fmt} file skinart cannot train; "
                               "import the model's state dict with --model to retrain it, or use a preprocessing defence")

    def threshold(self, malignant: list[str]) -> float | None:
        """The stored operating point's threshold when it was chosen for this malignant set (else None)."""
        return operating_threshold(self.meta.operating_point, malignant)

    def check_compatible(self, other: Checkpoint, option: str) -> None:
        """`other` (given by `option`) must be trained for the same classes and input size."""
        for name in ("classes", "img_size"):
            if getattr(other.meta, name) != getattr(self.meta, name):
                raise SkinartError(f"{option} {other} has {name} {getattr(other.meta, name)} but {self} has "
                                   f"{getattr(self.meta, name)}; use a model trained for the same classes and input size")

    # the weights
    @property
    def weights_path(self) -> Path:
        return self.path / FILES[self.meta.imported["format"]] if self.meta.imported else self.path / WEIGHTS_FILE

    def verify_weights(self) -> None:
        """The weights file must be the one recorded in skinart.json (its sha256), byte for byte."""
        weights = self.weights_path
        try:
            found = file_sha256(weights)
        except OSError as e:
            raise SkinartError(f"cannot read {weights} ({e.strerror or e}); copy the checkpoint again") from None
        if found != self.meta.weights_sha256:
            raise SkinartError(f"{weights} has sha256 {found}, not the {self.meta.weights_sha256} recorded in "
                               f"{self.path / META_FILE}: the weights changed after they were written; copy the file with "
                               "that sha256 again (or write the checkpoint again with `skinart train`)")

    def network(self) -> nn.Module:
        """The timm network with the saved weights, verified against the recorded sha256; never unpickles."""
        self.verify_weights()  # again: the file may have changed since `load`
        weights = self.weights_path
        if self.meta.imported:  # its outputs in this checkpoint's class order
            return stored_network(weights, self.meta.imported, model=self.meta.model, classes=self.classes)
        net = create_model(self.meta.model, num_classes=len(self.classes))
        try:
            load_model(net, str(weights))
        except Exception as e:
            raise SkinartError(f"{weights} does not fit model {self.meta.model} ({str(e).splitlines()[0]}); "
                               "write the checkpoint again") from e
        return net

    def classifier(self, device: str = "auto", *, defended: bool = True, preprocessing_defences: list | None = None,
                   precision: str = "fp32"):
        """The checkpoint as an ART classifier in eval mode computing at `precision`, with the preprocessing defences its
        metadata names (unless `defended` is False or `preprocessing_defences` replaces them)."""
        if preprocessing_defences is None and defended and self.meta.preprocessing:
            preprocessing_defences = preprocessors(list(self.meta.preprocessing), resolve_device(device))
        return wrap(self.network().eval(), self.meta.img_size, self.meta.mean, self.meta.std, device,
                    preprocessing_defences=preprocessing_defences, precision=precision)

    # its data
    @cached_property
    def train_ids(self) -> np.ndarray | None:
        """The image ids the checkpoint trained on; None for a checkpoint written before they were recorded."""
        if not self.meta.train_ids:
            return None
        path = self.path / TRAIN_IDS_FILE  # always this name, whatever the metadata says: no path from a file is followed
        try:
            ids = json.loads(path.read_text())
        except (OSError, ValueError):
            ids = None
        if not isinstance(ids, list):
            raise SkinartError(f"{path}, the image ids the checkpoint trained on, is missing or not a JSON list; restore it or retrain")
        return np.array(ids, dtype=str)

    def dataset(self, *, data: str | None = None, data_root: str | None = None, split: str = "test",
                external: bool = False) -> LesionDataset:
        """The data the checkpoint was trained on (its recorded loader and root unless `data`/`data_root` name others,
        which must then hold the same data), split with its own settings (ratios, seed, resize), so its test images are
        never ones it trained on. With `external`: a whole other dataset, every image of it test."""
        trained_on, img_size = self.meta.data, self.meta.img_size
        source = read_data(*self._data_location(data, data_root), img_size)
        self._check_provenance(source, external)
        ratios = None if external else tuple(trained_on["split_ratios"])
        dataset = dataset_of(source, img_size=img_size, resize=trained_on["resize"], split_ratios=ratios, seed=trained_on["seed"])
        if self.meta.labels:
            dataset = dataset.relabelled(self.classes, self.meta.labels)
        if split not in dataset.splits:
            raise SkinartError(f"split '{split}' does not exist for {source.name} with these ratios; choose one of {', '.join(dataset.splits)}")
        self._check_disjoint(dataset.splits["test"])
        return dataset

    def data_name(self, data: str | None = None) -> str:
        return data or self.meta.data["name"]

    def _data_location(self, data: str | None, data_root: str | None) -> tuple[str, str | None]:
        """(loader, root) as given, else the checkpoint's recorded ones, not $SKINART_DATA's default (a checkpoint
        written before roots were recorded gets that default, as it always did)."""
        trained_on = self.meta.data
        name = self.data_name(data)
        recorded = trained_on.get("root") if name == trained_on["name"] else None
        if data_root or recorded is None:
            return name, data_root
        if not Path(recorded).exists():
            raise SkinartError(f"the {name} data {self} was trained on are no longer at {recorded}; "
                               "pass --data-root where they are now (their fingerprint is checked)")
        return name, recorded

    def _check_provenance(self, source: Source, external: bool) -> None:
        """The data must be the checkpoint's own (same loader, same fingerprint), or, for an external evaluation, not."""
        trained_on = self.meta.data
        recorded = trained_on.get("source_fingerprint")
        if recorded is None:
            print(f"note: {self} predates recorded data provenance, so its data cannot be verified; retrain it to "
                  "record them", file=sys.stderr)
            return
        same = source.name == trained_on["name"] and source.fingerprint == recorded
        if same and external:
            raise SkinartError(f"--external scores other data, but these are the {source.name} data {self} was trained on "
                               "(its test split is the in-distribution evaluation); drop --external, or name another dataset")
        if not same and not external:
            raise SkinartError(f"the {source.name} data at {source.root} are not the {trained_on['name']} data {self} was "
                               f"trained on (at {trained_on['root']}); drop --data/--data-root to use those, or pass --external "
                               "(`skinart evaluate`) to score these as an external test set")

    def _check_disjoint(self, test: Split) -> None:
        """No image scored as test may be one the checkpoint trained on (none recorded: nothing to check)."""
        if self.train_ids is None:
            return
        shared = np.intersect1d(test.ids.astype(str), self.train_ids)
        if shared.size:
            raise SkinartError(f"{len(shared)} of the {len(test)} test images (first: {shared[0]}) are training images of "
                               f"{self} (its {TRAIN_IDS_FILE}); score images it did not train on, or retrain it")

    # new checkpoints from this one
    def derive(self, directory: Path, **changes) -> Checkpoint:
        """A checkpoint in `directory` (a run's temporary directory) with these weights and training ids under
        metadata with `changes` (e.g. a preprocessing defence)."""
        shutil.copyfile(self.weights_path, directory / self.weights_path.name)
        if self.meta.train_ids:
            shutil.copyfile(self.path / TRAIN_IDS_FILE, directory / TRAIN_IDS_FILE)
        meta = replace(self.meta, **changes)
        (directory / META_FILE).write_text(json.dumps(meta.to_json(), indent=2))
        return Checkpoint(directory, meta)


def save_checkpoint(directory: Path, net: nn.Module, meta: dict, train_ids: np.ndarray | None = None, *,
                    kept: Path | None = None) -> Checkpoint:
    """Write model.safetensors (or copy the imported file `kept` under its format's name) + skinart.json (+ the training
    split's image ids) into `directory` (a run's temporary directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / (FILES[meta["imported"]["format"]] if meta.get("imported") else WEIGHTS_FILE)
    if kept is not None:
        shutil.copyfile(kept, weights)
    else:
        save_model(net, str(weights), force_contiguous=True)  # channels-last weights (models.wrap) are not contiguous
    if train_ids is not None:
        # unique ids: adversarial copies repeat the ids of their originals
        (directory / TRAIN_IDS_FILE).write_text(json.dumps(np.unique(train_ids.astype(str)).tolist()))
        meta = {**meta, "train_ids": TRAIN_IDS_FILE}
    checkpoint = Checkpoint(directory, CheckpointMeta.from_json({**meta, "weights_sha256": file_sha256(weights)}, directory / META_FILE))
    (directory / META_FILE).write_text(json.dumps(checkpoint.meta.to_json(), indent=2))
    # safetensors writes 0600; the weights get the mode of every other file (others on a shared filesystem read them)
    weights.chmod(stat.S_IMODE((directory / META_FILE).stat().st_mode))
    return checkpoint
