"""Checkpoints: a directory of model.safetensors + skinart.json + train_ids.json (never pickle), read once into a
`Checkpoint`: its metadata as `CheckpointMeta` (pure data, typed when written as well as read), its weights verified
against the recorded sha256 whenever they are loaded. What is built from it lives elsewhere, as timm keeps
`PretrainedCfg` apart from `create_model`: its network (`models.build`), its data, checked (`models.provenance`), its
classifier behind its defences (`defences.deployed`). An imported model (`imported`: its file kept as given, or as safetensors for a state dict) is the same object, the data's
labels mapped to its classes by name where they differ (`labels`: benign/malignant). No other module reads skinart.json."""

from __future__ import annotations

import json
import shutil
import stat
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors.torch import save_model
from torch import nn

from skinart import __version__
from skinart.errors import SkinartError
from skinart.metrics import operating_threshold
from skinart.models.foreign import FILES, TRAINABLE, TRAINING_DATA_UNKNOWN, binary_malignant
from skinart.models.weights import file_sha256
from skinart.options import parse_malignant
from skinart.rundir import META_FILE, TRAIN_IDS_FILE, WEIGHTS_FILE, resolved

CHECKPOINT_FORMAT = "skinart-checkpoint/1"
_REQUIRED = ("model", "classes", "img_size", "mean", "std", "malignant", "weights_sha256", "data")
_SEQUENCES = ("classes", "mean", "std", "malignant", "preprocessing")
_TYPES = {"model": str, "img_size": int, "data": dict, "weights_sha256": str, "operating_point": (dict, type(None)),
          "imported": (dict, type(None)), "labels": (dict, type(None)), "train_config": (dict, type(None)),
          "written_by": (str, type(None))}


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
    written_by: str | None = None  # the command that wrote it (`skinart import`, `skinart defend --method llt`...): the fix
    # a damaged checkpoint's refusal names; None in checkpoints written before skinart recorded it
    weights_sha256: str = ""  # set by save_checkpoint from the file it writes; required in every skinart.json
    format: str = CHECKPOINT_FORMAT
    skinart_version: str = __version__
    extra: dict = field(default_factory=dict)  # keys this skinart does not know, kept as written

    def __post_init__(self):
        """Typed when written as well as read: sequences become tuples, and a field of the wrong type is refused here,
        not where a later command reads it."""
        for name in _SEQUENCES:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        wrong = [name for name, kind in _TYPES.items() if not isinstance(getattr(self, name), kind)]
        wrong += [name for name in ("classes", "malignant") if not all(isinstance(c, str) for c in getattr(self, name))]
        wrong += [name for name in ("mean", "std") if len(getattr(self, name)) != 3
                  or not all(isinstance(v, (int, float)) for v in getattr(self, name))]
        if wrong:
            raise SkinartError(f"checkpoint metadata has a wrong {', '.join(wrong)} ({', '.join(repr(getattr(self, n)) for n in wrong)}); "
                               "write the checkpoint again with `skinart train` (or `skinart import`)")

    @classmethod
    def from_json(cls, raw: dict, where: Path) -> CheckpointMeta:
        known = {f.name for f in fields(cls)} - {"extra"}
        missing = [name for name in _REQUIRED if name not in raw]
        if missing:
            raise SkinartError(f"{where} lacks {', '.join(missing)}; it was not written by skinart: write the checkpoint "
                               "again with `skinart train` (or `skinart import`)")
        try:
            return cls(**{k: v for k, v in raw.items() if k in known}, extra={k: v for k, v in raw.items() if k not in known})
        except SkinartError as e:
            raise SkinartError(f"{where}: {e}") from None

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
        named = {n.strip() for n in option.split(",")} if option else set()
        if named and self.meta.labels and len(self.classes) == 2 and not named <= set(self.classes):
            return binary_malignant(option, self.meta.labels, str(self), self.classes[1])
        return parse_malignant(option or ",".join(self.meta.malignant), self.classes)

    def provenance(self) -> dict:
        """What every metrics.json of this model says about its training data (unknown for an imported model) and the
        verdict of its import's check on the validation split (`import_check`: verdict, warning, the numbers behind it)."""
        if not self.meta.imported:
            return {}
        check = self.meta.imported.get("check")
        return {"training_data": TRAINING_DATA_UNKNOWN, **({"import_check": check} if check else {})}

    def lineage(self) -> dict:
        """What a checkpoint trained from this one inherits: an imported model's provenance and label mapping."""
        return {"imported": self.meta.imported, "labels": self.meta.labels} if self.meta.imported else {}

    @property
    def access(self) -> str:
        """What an attacker reads of this model (attacks.table's `access` column): scores for an imported ONNX model
        onnxruntime runs, which gives no gradients; gradients for every other."""
        return (self.meta.imported or {}).get("access", "gradients")

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
            again = f"`{self.meta.written_by}`" if self.meta.written_by else "the command that wrote it"
            raise SkinartError(f"{weights} has sha256 {found}, not the {self.meta.weights_sha256} recorded in "
                               f"{self.path / META_FILE}: the weights changed after they were written; copy the file with "
                               f"that sha256 again (or write the checkpoint again with {again})")

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

    def data_name(self, data: str | None = None) -> str:
        return data or self.meta.data["name"]

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


def save_checkpoint(directory: Path, net: nn.Module, meta: CheckpointMeta, train_ids: np.ndarray | None = None, *,
                    kept: Path | None = None) -> Checkpoint:
    """Write model.safetensors (or copy the imported file `kept` under its format's name) + skinart.json (`meta` with the
    sha256 of the weights written) (+ the training split's image ids) into `directory` (a run's temporary directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / (FILES[meta.imported["format"]] if meta.imported else WEIGHTS_FILE)
    if kept is not None:
        shutil.copyfile(kept, weights)
    else:
        save_model(net, str(weights), force_contiguous=True)  # channels-last weights (models.wrap) are not contiguous
    if train_ids is not None:
        # unique ids: adversarial copies repeat the ids of their originals
        (directory / TRAIN_IDS_FILE).write_text(json.dumps(np.unique(train_ids.astype(str)).tolist()))
        meta = replace(meta, train_ids=TRAIN_IDS_FILE)
    checkpoint = Checkpoint(directory, replace(meta, weights_sha256=file_sha256(weights)))
    (directory / META_FILE).write_text(json.dumps(checkpoint.meta.to_json(), indent=2))
    # safetensors writes 0600; the weights get the mode of every other file (others on a shared filesystem read them)
    weights.chmod(stat.S_IMODE((directory / META_FILE).stat().st_mode))
    return checkpoint
