"""Run directories: config.json + outputs, written under a temporary name and renamed when complete,
so an interrupted step leaves nothing half-written and a re-run with the same config is skipped.
`RunDir` is the skeleton every run kind is built on, `RunOptions` the options every run takes; `plan.json` marks a
recipe run. The names of the files inside a run directory are the constants below, for writers and readers alike."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from skinart.compute import check_precision, environment, use_deterministic
from skinart.errors import SkinartError
from skinart.options import check_names_fit

# every run
CONFIG_FILE = "config.json"  # the run's settings and its config hash (written last: a run without it is unfinished)
METRICS_FILE = "metrics.json"  # what the run measured; its `kind` says which run wrote it
METRICS_MD = "metrics.md"
# a checkpoint (train, defend, poison runs)
WEIGHTS_FILE = "model.safetensors"
EXPORTED_FILE = "model.pt2"  # an imported torch.export program, kept as given (its graph is its architecture)
SCRIPTED_FILE = "model.torchscript.pt"  # an imported TorchScript archive, kept as given
ONNX_FILE = "model.onnx"  # an imported ONNX model, kept as given (converted to PyTorch whenever it is loaded)
META_FILE = "skinart.json"
TRAIN_IDS_FILE = "train_ids.json"  # beside skinart.json, which stays readable: thousands of ids would swamp it
HISTORY_FILE = "history.json"
# run kinds' own outputs
PREDICTIONS_FILE = "predictions.npz"  # evaluate, defend: ids, labels, probabilities
ADVERSARIAL_FILE = "adversarial.npz"  # attack: the adversarial images with clean and attacked probabilities
PER_IMAGE_FILE = "per_image.csv"  # attack, evaluate, worst case: one row per image (ids, predictions, norms, robust)
POISON_FILE = "poison.npz"  # poison: which training images were poisoned
FLAGGED_FILE = "flagged.npz"  # detect-poison: the images the detector flagged
# a recipe run
PLAN_FILE = "plan.json"
# a run's resume folder (`resume_folder`): a training's last finished epoch
RESUME_FILE = "epoch.pt"


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def resolved(path: str | Path | None) -> str | None:
    """An absolute path for a config (so a run is the same run from any working directory)."""
    return str(Path(path).resolve()) if path else None


def seed_everything(seed: int) -> None:
    """Python's `random` (UAP's sample order), numpy (ART's random starts, splits) and torch (weights, patches)."""
    import torch  # here: the CLI imports this module to parse a command, before anything runs

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def random_states() -> dict:
    """The states `seed_everything` seeds (and CUDA's), as tensors and plain values: a resume file holding them loads
    with torch.load(weights_only=True), unpickling no code."""
    import torch  # here: the CLI imports this module to parse a command, before anything runs

    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}


def set_random_states(states: dict) -> None:
    import torch  # here: the CLI imports this module to parse a command, before anything runs

    keys, pos, has_gauss, cached = states["numpy"]
    random.setstate(states["python"])
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def needs_run(out: Path, config: dict, overwrite: bool) -> bool:
    """False when `out` already holds this very run; raises when it holds anything else, unless `overwrite` and it
    holds a skinart run of the same kind (skinart never deletes what it did not write)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return True
    if not out.is_dir():
        raise SkinartError(f"--out {out} is a file; choose a directory path")
    try:
        existing = json.loads((out / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        existing = None
    if not isinstance(existing, dict):
        raise SkinartError(f"output directory {out} holds files that are not a skinart run; choose another --out "
                           "(--overwrite replaces only skinart's own runs)")
    if existing.get("config_hash") == config_hash(config) and not overwrite:
        return False
    if not overwrite:
        raise SkinartError(f"output directory {out} already holds a different run; pass --overwrite to replace it or choose another --out")
    if existing.get("kind") != config["kind"]:
        raise SkinartError(f"output directory {out} holds a run of kind {existing.get('kind', 'unknown (older skinart)')}, "
                           f"not {config['kind']}; "
                           "--overwrite replaces only a run of the same kind: choose another --out")
    return True


def check_out(out: Path, inputs) -> None:
    """Inputs are never outputs: `out` may not be, contain or lie inside a run directory the run reads."""
    target = Path(out).resolve()
    for given in (p for p in inputs if p):
        source = Path(given).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise SkinartError(f"--out {out} is, contains or lies inside the input {given}; inputs are never outputs: "
                               "choose an --out outside every input run")


def check_named(out: Path, kind: str) -> None:
    """`--out ""` (or `.`, `/`, `..`) names the folder a command runs in or one above it, never a new run directory."""
    if Path(out).name in ("", ".."):
        raise SkinartError(f"--out '{out}' names no run directory (an empty --out is the current folder); give one, "
                           f"e.g. --out runs/{kind}")


def check_writable(out: Path) -> None:
    """Before the work, what the swap at its end needs: a folder it can write beside `out` (in its nearest existing
    parent), and an existing `out` it can replace (not a mount point, not immutable or read-only)."""
    parent = next(p for p in Path(out).absolute().parents if p.exists())
    if out.is_dir() and os.path.ismount(out):
        raise SkinartError(f"--out {out} is a mount point, which cannot be replaced (busy); choose a folder inside it or "
                           "another --out")
    for folder in (parent, out) if out.is_dir() else (parent,):
        probe = folder / f".skinart-probe-{os.getpid()}"
        try:
            probe.mkdir()
            probe.rmdir()
        except OSError as e:
            raise SkinartError(f"--out {out} cannot be written: {folder} refuses a new entry ({e.strerror or e}); choose "
                               "an --out you can write to") from None


def resume_folder(out: Path, config: dict) -> Path:
    """Where a run of `config` into `out` keeps what lets it resume after a failure (a training's last finished epoch):
    a sibling of `out`, named by the config, so only the same run resumes from it."""
    return out.parent / f".{out.name}.resume-{config_hash(config)}"


def other_resume_folders(resume: Path) -> list[Path]:
    """The resume folders beside `resume` of other configs into the same --out: what an earlier, different run left."""
    prefix = resume.name[: resume.name.rindex(".resume-")]
    return [p for p in resume.parent.glob(f"{glob.escape(prefix)}.resume-*") if p != resume]


def drop_other_resume_folders(resume: Path) -> None:
    """Once the run of `resume` has kept an epoch of its own, another config's progress into the same --out is dropped."""
    for folder in other_resume_folders(resume):
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged(out: Path, config: dict) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success write config.json, swap it into place and drop the run's resume
    folder. On failure nothing half-written is left: neither the temporary directory nor the parent folders this run
    created, except a resume folder the run filled (and the folders holding it), from which the same run resumes.
    Another config's resume folder is kept until this run has kept an epoch of its own (`drop_other_resume_folders`) or
    finished: a changed option that fails at once loses nothing."""
    created = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    resume = resume_folder(out, config)
    for leftover in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):  # from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    for earlier in other_resume_folders(resume):
        if (earlier / RESUME_FILE).is_file():
            print(f"note: a different config for {out} starts afresh; the earlier run's progress stays in {earlier} until "
                  "this run finishes its first epoch (the earlier command resumes from it)", file=sys.stderr)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        write_json(tmp / CONFIG_FILE, {"config_hash": config_hash(config), **config})
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
        shutil.rmtree(resume, ignore_errors=True)
        drop_other_resume_folders(resume)
    except BaseException:
        if created is not None and created != out and not any(resume.glob("*")):
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class RunOptions:
    """What every run takes besides its own settings: the data (default: the checkpoint's own), the malignant set
    (default: the checkpoint's), the device, the precision its classifiers compute in (a training's own is its
    TrainConfig's, which a retraining inherits), whether algorithms must be deterministic, and whether an --out holding
    another run is replaced."""

    data: str | None = None
    data_root: str | None = None
    malignant: str | None = None
    device: str = "auto"
    overwrite: bool = False
    precision: str = "fp32"
    deterministic: bool = False
    data_options: dict | None = None  # --data csv's labels file and columns (`data.csv_options`)
    smoothing_n: int | None = None  # a checkpoint recording σ: noisy copies per smoothed prediction (None: its own n)

    def data_ref(self, default_name: str | None = None, **extra) -> dict:
        """How a config names its data: the dataset (default: the checkpoint's) and root (and --data csv's options),
        plus e.g. the split."""
        options = {"options": self.data_options} if self.data_options else {}
        return {"name": self.data or default_name, "root": resolved(self.data_root), **options, **extra}


class RunDir:
    """One run directory of a `kind` (train, evaluate, attack, …): its config names the checkpoint it reads (a
    `Checkpoint`: its path and weights hash) and the data, plus the run's own settings, the precision (a bf16 run never
    skips an fp32 one), whether algorithms were deterministic, and what the numbers depend on besides
    (`compute.environment`: the device's name, torch's thread count, the torch/CUDA/cuDNN versions; a run on another is
    another run). `inputs` are the other run directories it reads, which `out` may not overlap. `done` when `out` already holds this very run; `staged()` writes it, every random
    state seeded from `seed` first, so a step draws the same numbers whatever ran before it in the process."""

    def __init__(self, kind: str, out: Path, options: RunOptions = RunOptions(), *, inputs=(), checkpoint=None,
                 data: dict | None = None, seed: int = 0, **settings):
        self.out, self.overwrite, self.seed = Path(out), options.overwrite, seed
        check_named(self.out, kind)
        # the longest name skinart writes beside `out` is its resume folder's (.NAME.resume-HASH)
        check_names_fit(self.out, "--out", added=len(resume_folder(self.out, {}).name) - len(self.out.name))
        check_out(self.out, [checkpoint and checkpoint.path, *inputs])
        check_precision(options.precision, options.device)
        self.config = {"kind": kind, **settings, "precision": options.precision, "deterministic": options.deterministic,
                       **({"smoothing_n": options.smoothing_n} if options.smoothing_n else {}), **environment(options.device)}
        self.deterministic = options.deterministic
        if checkpoint is not None:
            self.config["checkpoint"] = checkpoint.ref()
        if data is not None:
            self.config["data"] = data

    @property
    def done(self) -> bool:
        """Whether `out` holds this very run already; when not, `out` is checked writable and deterministic algorithms
        switched on or off before the work starts."""
        if not needs_run(self.out, self.config, self.overwrite):
            return True
        check_writable(self.out)
        use_deterministic(self.deterministic)
        return False

    @property
    def resume_folder(self) -> Path:
        return resume_folder(self.out, self.config)

    def staged(self):
        seed_everything(self.seed)
        return staged(self.out, self.config)


def read_plan(run_dir: Path) -> dict:
    path = Path(run_dir) / PLAN_FILE
    if not Path(run_dir).exists():
        raise SkinartError(f"{run_dir} does not exist; give a directory written by `skinart run`")
    if not path.is_file():
        raise SkinartError(f"{run_dir} holds no {PLAN_FILE}; give a directory written by `skinart run`")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise SkinartError(f"{path} is not valid JSON ({e}); run the recipe again into this directory to rewrite it") from None
