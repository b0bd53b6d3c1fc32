"""Bad input across every command, as a new user types it (issue 13).

Each row is one mistake: the command line, and what a good message names. For every row the same
contract holds (`check`): exit code 2; stderr is one line starting `error:` that contains each expected
piece (the option or key path at fault, and the fix); no output written anywhere under the test's
directory (which is also the working directory, so a default `runs/...` counts); and every input
byte-identical afterwards. Inputs are copies made for the row (checkpoint, llt-defended checkpoint,
retrained checkpoint, attack run, poisoned run, recipe, recipe run, ...), so a command that wrongly
deletes or writes into an input can only damage its own copy; the shared originals are checked too: around every
test of this module that uses them by what any write changes (`file_stats`: inode, size, mtime and ctime, no file
read), naming the row, and by their bytes (sha256) once when the module starts and once when it ends.

Placeholders in a row: {T} trained skin_cnn checkpoint, {L} its llt defence, {R} its retraining,
{A} an fgsm attack run (20 images), {P} a poison-flip run, {T64}/{T6} copies of {T} whose metadata
claim 64 px / 6 classes, {Y} a tiny recipe, {Y2} the same under another name, {RUN} the run of {Y},
{D} the DermaMNIST-format subset, {H} the HAM10000-layout subset, {OUT} a fresh --out path, {IN} the
folder holding this row's input copies, {RO} a directory nobody can write into, {NOTES} a folder holding the user's
own report.md, {PT2} a torch.export program of a small CNN, {IMPZERO} {T}'s weights imported
with `skinart import` and then changed by hand, {ONNXBB} an ONNX model onnx2torch does not convert, imported (scores
only); others below.

Many rows fail against the code issue 13 was filed on, by design: they are the issue's known bugs and
the ones this suite found (`usage-*` rows: click's own usage errors, today a boxed multi-line message).
`pytest -rP` shows what each row answers today.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from helpers import invoke, unconvertible_onnx, write_pad_layout
from safetensors.torch import load_file, save_file

from skinart.data import CLASSES

# ----------------------------------------------------------------------------------------- the contract


def check(result, expect, before: dict, after: dict, out: Path, hide: dict[str, str]) -> list[str]:
    """Every way `result` breaks the bad-input contract (empty: it keeps it); the shared originals are checked apart
    (`_shared_inputs_untouched`)."""
    problems = []
    stderr = result.stderr or ""
    for path, name in hide.items():  # paths are not evidence that a message names an option
        stderr = stderr.replace(path, name)
    lines = stderr.strip().splitlines()
    if result.exit_code != 2:
        problems.append(f"exit code {result.exit_code}, not 2")
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, not 1")
    if not lines or not lines[-1].startswith("error:"):
        problems.append("stderr does not end with one line starting 'error:'")
    text = "\n".join(lines)
    for piece in expect:
        found = piece.search(text) if isinstance(piece, re.Pattern) else piece in text
        if not found:
            problems.append(f"message lacks {piece.pattern if isinstance(piece, re.Pattern) else piece!r}")
    if out.exists():
        problems.append("--out was written")
    new = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    for what, keys in (("new", new), ("deleted", gone), ("changed", changed)):
        if keys:
            problems.append(f"{len(keys)} {what} path(s) under the test directory, e.g. {', '.join(keys[:3])}")
    return problems


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 (files), 'dir', or the link target: the whole state of a tree."""
    root = Path(root)
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    state = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            state[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            state[rel] = "dir"
        else:
            state[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return state


def file_stats(root: Path) -> dict[str, tuple]:
    """relative path -> what any change to it changes, read from the file system without reading a file: the kind and
    mode, the size, the inode (a file replaced), mtime and ctime in ns (ctime moves on every write and cannot be set
    back), or the link target. Equal twice, nothing was written, replaced, added or removed in between."""
    root = Path(root)
    paths = [root] if not root.is_dir() or root.is_symlink() else [root, *sorted(root.rglob("*"))]
    state = {}
    for p in paths:
        st = p.lstat()
        rel = str(p.relative_to(root)) if p != root else "."
        state[rel] = ("link:" + os.readlink(p),) if p.is_symlink() else \
            (st.st_mode, st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return state


def changed_paths(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# ----------------------------------------------------------------------------------------- shared inputs


def _ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def _write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sources(trained, derma_subset, retrain_run, flip_run, tmp_path_factory):
    """Every kind of input run directory, built once; rows work on copies of these. The retraining and the poisoned run
    are the session's (conftest: `retrain_run`, `flip_run`), copied in."""
    base = tmp_path_factory.mktemp("bad-inputs-src")
    cnn = base / "cnn"
    cnn.mkdir()
    for f in trained.iterdir():  # the checkpoint files only (another test may have written an evaluation into it)
        if f.is_file():
            shutil.copy2(f, cnn / f.name)
    d = str(derma_subset)
    _ok("defend", "--method", "llt", "--checkpoint", cnn, "--data-root", d, "--device", "cpu", "--out", base / "llt")
    shutil.copytree(retrain_run, base / "rt")
    _ok("attack", "--method", "fgsm", "--checkpoint", cnn, "--data-root", d, "--device", "cpu", "--max-samples", 20,
        "--out", base / "fgsm")
    shutil.copytree(flip_run, base / "flip")
    meta = json.loads((cnn / "skinart.json").read_text())
    for name, change in (("cnn64", {"img_size": 64}), ("cnn6", {"classes": meta["classes"][:6]})):
        shutil.copytree(cnn, base / name)
        (base / name / "skinart.json").write_text(json.dumps({**meta, **change}, indent=2))
    recipe = {"name": "tiny-bad", "seed": 0, "data": {"loader": "dermamnist", "root": d},
              "steps": [{"name": "clean", "command": "evaluate", "params": {"checkpoint": str(cnn), "device": "cpu"}},
                        {"name": "fgsm", "command": "attack",
                         "params": {"checkpoint": str(cnn), "method": "fgsm", "max_samples": 20, "device": "cpu"}}]}
    _write_yaml(base / "tiny.yaml", recipe)
    _write_yaml(base / "other.yaml", {**recipe, "name": "other-recipe"})
    _ok("run", base / "tiny.yaml", "--out", base / "run")
    return SimpleNamespace(base=base, data=Path(d), cnn=cnn)


class SharedInputs:
    """The shared originals every row copies from (`sources.base`) and the dataset rows read in place (`sources.data`):
    their bytes hashed when the module starts (`start`) and checked when it ends, and the tests whose stat check saw
    a path change (`changed_by`), so the end-of-module check names the row even for a change stat did not show."""

    def __init__(self, sources: SimpleNamespace):
        self.roots = {"<src>": sources.base, "<data>": sources.data}
        self.start = self.digest()
        self.changed_by: dict[str, str] = {}

    def digest(self) -> dict[str, str]:
        return {f"{name}/{rel}": h for name, root in self.roots.items() for rel, h in tree_digest(root).items()}

    def stats(self) -> dict[str, tuple]:
        return {f"{name}/{rel}": st for name, root in self.roots.items() for rel, st in file_stats(root).items()}


@pytest.fixture(scope="module")
def shared_inputs(sources):
    """The shared originals, hashed once per module; at the module's end no byte of them may have changed."""
    guard = SharedInputs(sources)
    yield guard
    changed = changed_paths(guard.start, guard.digest())
    named = {path: guard.changed_by.get(path, "a test whose stat check saw nothing") for path in changed}
    assert not changed, f"{len(changed)} shared input path(s) changed during the module: {named}"


@pytest.fixture(autouse=True)
def _shared_inputs_untouched(request):
    """Around each test of this module that uses the shared inputs: none of them changed (by `file_stats`), or the test
    fails naming the paths; the row is the test's id."""
    if "sources" not in request.fixturenames:
        yield
        return
    guard = request.getfixturevalue("shared_inputs")
    before = guard.stats()
    yield
    changed = changed_paths(before, guard.stats())
    for path in changed:
        guard.changed_by.setdefault(path, request.node.name)
    if changed:
        pytest.fail(f"{request.node.name} changed {len(changed)} shared input path(s): {', '.join(changed[:5])}", pytrace=False)


COPIES = {"T": "cnn", "L": "llt", "R": "rt", "A": "fgsm", "P": "flip", "T64": "cnn64", "T6": "cnn6", "Y": "tiny.yaml",
          "Y2": "other.yaml", "RUN": "run"}


def validation_recipe(data: Path) -> dict:
    """A recipe of every step kind that `recipes validate` accepts; the recipe rows break one thing each."""
    return {
        "name": "bad", "seed": 0,
        "data": {"loader": "dermamnist", "root": str(data)},
        "model": {"name": "skin_cnn"},
        "steps": [
            {"name": "train", "command": "train", "params": {"epochs": 1, "batch_size": 32, "device": "cpu"}},
            {"name": "clean", "command": "evaluate", "params": {"checkpoint": "train"}},
            {"name": "fgsm", "command": "attack", "params": {"checkpoint": "train", "method": "fgsm"},
             "grid": {"eps": ["2/255", "8/255"]}},
            {"name": "llt", "command": "defend", "params": {"checkpoint": "train", "method": "llt"}},
            {"name": "rt", "command": "defend", "params": {"checkpoint": "train", "method": "retrain", "retrain_epochs": 1},
             "grid": {"ratio": [0.2, 0.6]}},
            {"name": "rt_pgd", "command": "attack", "params": {"checkpoint": "rt", "method": "pgd", "eps": "8/255", "max_iter": 3}},
            {"name": "flip", "command": "attack", "params": {"checkpoint": "train", "method": "poison-flip", "source_class": "nv",
                                                             "target_class": "bkl", "retrain_epochs": 1},
             "grid": {"fraction": [0.2, 0.6]}},
            {"name": "report", "command": "report", "params": {"bootstrap": 100}},
        ],
        "reference": {"clean": {"accuracy": 0.7}},
    }


class Recipe:
    """A recipe file written for the row: the validation recipe with one edit, or literal text."""

    def __init__(self, edit=None, text: str | None = None, name: str = "recipe.yaml"):
        self.edit, self.text, self.name = edit, text, name

    def make(self, inputs: "Inputs") -> Path:
        path = inputs.root / self.name
        if self.text is not None:
            path.write_text(self.text)
            return path
        recipe = validation_recipe(inputs.src.data)
        if self.edit:
            self.edit(recipe, inputs)
        return _write_yaml(path, recipe)


def _unwritable(path: Path) -> bool:
    """Make `path` a directory nobody can write into (root ignores modes: the immutable attribute)."""
    path.chmod(0o555)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    try:
        (path / ".probe").mkdir()
    except OSError:
        return True
    (path / ".probe").rmdir()
    return False


class Inputs:
    """The row's inputs, made on first mention of their placeholder, under <tmp>/in."""

    def __init__(self, tmp: Path, src: SimpleNamespace, request):
        self.tmp, self.src, self.request = tmp, src, request
        self.root = tmp / "in"
        self.root.mkdir()
        self.made: dict[str, Path] = {}
        self.locked: list[Path] = []

    def resolve(self, arg) -> str:
        if isinstance(arg, Recipe):
            return str(arg.make(self))
        return re.sub(r"\{([A-Z0-9]+)\}", lambda m: str(self.path(m.group(1))), str(arg))

    def path(self, key: str) -> Path:
        if key not in self.made:
            self.made[key] = self._make(key)
        return self.made[key]

    def _copy(self, key: str, name: str | None = None) -> Path:
        source, target = self.src.base / COPIES[key], self.root / (name or key)
        shutil.copytree(source, target) if source.is_dir() else shutil.copy2(source, target)
        return target

    def _lock(self, path: Path) -> Path:
        if not _unwritable(path):
            pytest.skip("cannot make a directory unwritable here")
        self.locked.append(path)
        return path

    def _make(self, key: str) -> Path:
        if key in COPIES:
            return self._copy(key)
        if key == "OUT":
            return self.tmp / "out"
        if key == "NESTED":  # an --out whose parents do not exist yet
            return self.tmp / "new" / "deeper" / "run"
        if key == "IN":
            return self.root
        if key == "D":
            return self.src.data
        if key == "H":
            return self.request.getfixturevalue("ham_subset")
        if key == "F":  # a folder of the user's own files
            (self.root / "mine").mkdir()
            (self.root / "mine" / "notes.txt").write_text("my notes")
            return self.root / "mine"
        if key == "NOTES":  # the user's own report.md, in the folder they give `report --out`
            (self.root / "notes").mkdir()
            (self.root / "notes" / "report.md").write_text("# my own notes")
            return self.root / "notes"
        if key == "EMPTY":
            (self.root / "empty").mkdir()
            return self.root / "empty"
        if key == "RO":
            (self.root / "locked").mkdir()
            return self._lock(self.root / "locked")
        if key == "RORUN":  # a recipe run nobody can write into
            return self._lock(self._copy("RUN", "run-locked"))
        if key == "TBADJSON":
            target = self._copy("T", "cnn-bad-json")
            (target / "skinart.json").write_text('{"format": "skinart-checkpoint/1", ')
            return target
        if key == "TBADW":
            target = self._copy("T", "cnn-bad-weights")
            (target / "model.safetensors").write_bytes((target / "model.safetensors").read_bytes()[:100])
            return target
        if key == "TZERO":  # the classifier's last weight tensor zeroed by hand, skinart.json untouched
            target = self._copy("T", "cnn-zeroed")
            zero_last_weight(target / "model.safetensors")
            return target
        if key == "PT2":  # a torch.export program: 28 px images in, the seven classes out
            net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 7))
            program = torch.export.export(net.eval(), (torch.rand(2, 3, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},))
            torch.export.save(program, self.root / "theirs.pt2")
            return self.root / "theirs.pt2"
        if key == "IMPZERO":
            target = self.root / "imported"
            _ok("import", "--weights", self.path("T") / "model.safetensors", "--model", "skin_cnn", "--classes", ",".join(CLASSES),
                "--img-size", 28, "--data-root", self.src.data, "--device", "cpu", "--out", target)
            zero_last_weight(target / "model.safetensors")
            return target
        if key == "TNOSHA":  # a hand-written skinart.json without the weights' hash
            target = self._copy("T", "cnn-no-sha")
            meta = json.loads((target / "skinart.json").read_text())
            del meta["weights_sha256"]
            (target / "skinart.json").write_text(json.dumps(meta))
            return target
        if key == "RUNBADPLAN":
            target = self._copy("RUN", "run-bad-plan")
            (target / "plan.json").write_text("{")
            return target
        if key == "BADNPZ":
            (self.root / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
            return self.root / "broken.npz"
        if key == "WRONGNPZ":
            np.savez(self.root / "other.npz", x_train=np.zeros((2, 28, 28, 3), np.uint8), y_train=np.zeros(2))
            return self.root / "other.npz"
        if key in ("BADFOLDER", "TINYFOLDER"):  # --data folder: a folder name that is no class; one image in all
            from PIL import Image

            folder = self.root / "images" / ("cancer" if key == "BADFOLDER" else "mel")
            folder.mkdir(parents=True)
            Image.new("RGB", (28, 28)).save(folder / "a.png")
            return self.root / "images"
        if key == "CSVNPZ":  # a CSV file renamed .npz
            (self.root / "labels.npz").write_text("image_id,dx\nISIC_0024306,nv\n")
            return self.root / "labels.npz"
        if key == "ROT":  # a train run nobody can write into or replace
            return self._lock(self._copy("T", "cnn-locked"))
        if key == "LATIN1FOLDER":  # a class folder holding an image whose file name is not UTF-8 (Latin-1 bytes)
            from PIL import Image

            folder = self.root / "latin1" / "mel"
            folder.mkdir(parents=True)
            Image.new("RGB", (28, 28)).save(os.path.join(os.fsencode(folder), b"l\xe9sion\xff.jpg"), format="PNG")
            Image.new("RGB", (28, 28)).save(folder / "b.png")
            return self.root / "latin1"
        if key in OUTSIDE_FILES:
            return OUTSIDE_FILES[key](self)
        raise KeyError(key)

    def unlock(self) -> None:
        for path in self.locked:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
            path.chmod(0o755)


def zero_last_weight(path: Path) -> None:
    """Zero the last weight tensor of a safetensors file (the classifier's fc.weight): a readable file, other weights."""
    tensors = load_file(path)
    last = [k for k in tensors if k.endswith("weight")][-1]
    save_file({**tensors, last: torch.zeros_like(tensors[last])}, path)


def flip_member_byte(path: Path) -> Path:
    """A copy of the zip archive `path` with one byte changed in its largest data member (tensors): an archive that
    still opens, one member failing its CRC (a bad copy, a bit flipped on disk)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little") \
        + int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    data[start + info.compress_size // 2] ^= 0xFF
    target = path.with_name(f"crc-{path.name}")
    target.write_bytes(bytes(data))
    return target


def _cnn_weights(inputs: "Inputs") -> dict[str, torch.Tensor]:
    return load_file(inputs.path("T") / "model.safetensors")


def _torchscript(inputs: "Inputs") -> Path:
    import warnings

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 7))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript
        torch.jit.save(torch.jit.script(net.eval()), inputs.root / "theirs.ts")
    return inputs.root / "theirs.ts"


def _truncated_safetensors(inputs: "Inputs", keep: float = 2 / 3) -> Path:
    whole = (inputs.path("T") / "model.safetensors").read_bytes()
    (inputs.root / "theirs.safetensors").write_bytes(whole[: max(16, int(len(whole) * keep))])  # a download cut short
    return inputs.root / "theirs.safetensors"


def _training_checkpoint(inputs: "Inputs") -> Path:
    weights = _cnn_weights(inputs)
    torch.save({"epoch": 3, "state_dict": weights, "state_dict_ema": weights}, inputs.root / "last.pth")
    return inputs.root / "last.pth"


def _state_dict_pth(inputs: "Inputs") -> Path:
    torch.save(_cnn_weights(inputs), inputs.root / "theirs.pth")
    return inputs.root / "theirs.pth"


def _scores_only(inputs: "Inputs") -> Path:
    """A small CNN as an ONNX model onnx2torch does not convert, imported: onnxruntime runs it, giving scores only."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 7))
    _ok("import", "--weights", unconvertible_onnx(net, inputs.root / "theirs.onnx"), "--classes", ",".join(CLASSES),
        "--img-size", 28, "--data-root", inputs.src.data, "--device", "cpu", "--out", inputs.root / "scores-only")
    return inputs.root / "scores-only"


def _plain_pickle(inputs: "Inputs") -> Path:
    import pickle

    with open(inputs.root / "model.pkl", "wb") as f:  # a whole module through plain pickle: unpickling it runs code
        pickle.dump(torch.nn.Linear(3, 7), f)
    return inputs.root / "model.pkl"


OUTSIDE_FILES = {  # files from outside skinart, damaged or ambiguous: models, and labels in another layout
    "PADCSV": lambda inputs: write_pad_layout(inputs.path("H") / "HAM10000_metadata.csv", inputs.root / "metadata.csv"),
    "TS": _torchscript,
    "SFTRUNC": _truncated_safetensors,
    "SFHEAD": lambda inputs: _truncated_safetensors(inputs, keep=0),  # cut inside its header
    "EMA": _training_checkpoint,
    "PICKLE": _plain_pickle,
    "PT2CRC": lambda inputs: flip_member_byte(inputs.path("PT2")),
    "TSCRC": lambda inputs: flip_member_byte(inputs.path("TS")),
    "PTHCRC": lambda inputs: flip_member_byte(_state_dict_pth(inputs)),
    "ONNXBB": _scores_only,
}


@contextmanager
def memory_cap(headroom_gb: int = 4):
    """Cap this process's address space a few GiB above its current size, so an image size that cannot fit
    fails at once instead of paging a shared machine to death."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(re.search(r"VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
    cap = size + headroom_gb * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ----------------------------------------------------------------------------------------- the rows

INPUT = re.compile(r"\binput\b")  # an --out that is, holds or sits inside an input run directory: the message says so
def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError:
        return False
    return True


HASHES = re.compile(r"sha256 [0-9a-f]{64}, not the [0-9a-f]{64} recorded")  # a changed weights file: both hashes, whole
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def case(id_, args, *expect, memory=False, marks=()):
    return pytest.param(list(args), expect, memory, id=id_, marks=marks)


def train(*extra):
    return ["train", "--data-root", "{D}", "--model", "skin_cnn", "--epochs", "1", "--device", "cpu", "--out", "{OUT}", *extra]


def evaluate(*extra, checkpoint="{T}"):
    return ["evaluate", "--checkpoint", checkpoint, "--data-root", "{D}", "--device", "cpu", "--out", "{OUT}", *extra]


def threats(method, *extra, checkpoint="{L}"):
    return evaluate("--attack", method, "--max-samples", "10", *extra, checkpoint=checkpoint)


LIGHT = {  # settings that keep a wrongly accepted row short
    "square": ["--max-iter", "5"], "autoattack": ["--param", "max_iter=2"], "hopskipjump": ["--max-iter", "1", "--param", "max_eval=20", "--param", "init_eval=5"],
    "uap": ["--fit-samples", "20", "--max-iter", "1"], "uap-sgd": ["--fit-samples", "20", "--max-iter", "1"], "patch": ["--fit-samples", "20", "--max-iter", "1"],
}


def attack(method, *extra, checkpoint="{T}", light=True):
    args = ["attack", "--method", method, "--checkpoint", checkpoint, "--data-root", "{D}", "--device", "cpu", "--out", "{OUT}"]
    if method.startswith("poison"):
        return args + ["--retrain-epochs", "1", *extra]
    return args + (["--max-samples", "10", *LIGHT.get(method, [])] if light else []) + list(extra)


def rescore(method, *extra, checkpoint="{T}"):
    """--adversarial-run: the saved run's settings apply, so nothing else is given."""
    return attack(method, "--adversarial-run", "{A}", *extra, checkpoint=checkpoint, light=False)


def flip(*extra):
    return attack("poison-flip", "--source-class", "nv", "--target-class", "bkl", "--fraction", "0.2", *extra)


def defend(method, *extra, checkpoint="{T}"):
    args = ["defend", "--method", method, "--checkpoint", checkpoint, "--data-root", "{D}", "--device", "cpu", "--out", "{OUT}"]
    return args + (["--retrain-epochs", "1"] if method in ("retrain", "madry") else []) + (["--max-iter", "1"] if method == "madry" else []) + list(extra)


def validate(edit=None, *extra, text=None):
    return ["recipes", "validate", Recipe(edit, text), *extra]


def step(i):
    return lambda r: r["steps"][i]


def edit(fn):
    """An edit of the validation recipe that does not need the row's inputs."""
    return lambda r, inputs: fn(r)


def param(i, **values):
    return edit(lambda r: r["steps"][i]["params"].update(values))


def setting(section, **values):
    return edit(lambda r: r[section].update(values))


def add_step(**s):
    return edit(lambda r: r["steps"].append(s))


def imports(weights: str, *steps: dict, **params):
    """The validation recipe made an import of `weights` (outputs in CLASSES' order, 28 px), then `steps`."""
    def make(r, inputs):
        del r["model"], r["reference"]
        r["steps"] = [{"name": "imp", "command": "import", "params": {"weights": inputs.resolve(weights), "classes": list(CLASSES),
                                                                     "img_size": 28, "device": "cpu", **params}}, *steps]
    return make


LONG = "{IN}/" + "w" * 300 + ".safetensors"  # a name no common file system holds (255 bytes at most)
FINITE = "is not a finite number"


TRAIN = [
    case("train-model-typo", train("--model", "resnet19"), "unknown model 'resnet19'", "resnet18"),
    case("train-model-capitalised", train("--model", "Skin_CNN"), "unknown model 'Skin_CNN'"),
    case("train-img-size-zero", train("--img-size", "0"), "--img-size"),
    case("train-img-size-negative", train("--img-size", "-5"), "--img-size"),
    case("train-img-size-cannot-fit-memory", train("--img-size", "100000"), "--img-size", re.compile("memory"), memory=True),
    case("train-epochs-zero", train("--epochs", "0"), "--epochs"),
    case("train-epochs-negative", train("--epochs", "-3"), "--epochs"),
    case("train-batch-size-zero", train("--batch-size", "0"), "--batch-size"),
    case("train-lr-zero", train("--lr", "0"), "--lr"),
    case("train-lr-negative", train("--lr", "-0.001"), "--lr"),
    case("train-lr-negative-named-with-its-value", train("--lr", "-0.1"), "--lr -0.1 is not greater than 0", "--lr 0.001"),
    case("train-data-root-csv-renamed-npz", train("--data-root", "{CSVNPZ}"), "not an npz file", "renamed",
         re.compile(r"^(?!.*pickle)")),
    case("train-out-empty", train("--out", ""), "--out", "names no run directory"),
    case("train-out-immutable-overwrite", train("--out", "{ROT}", "--overwrite"), "--out", "cannot be written"),
    case("train-weight-decay-negative", train("--weight-decay", "-1e-4"), "--weight-decay"),
    case("train-label-smoothing-one", train("--label-smoothing", "1.0"), "--label-smoothing"),
    case("train-patience-negative", train("--patience", "-1"), "--patience"),
    case("train-balance-typo", train("--balance", "smote"), "unknown --balance 'smote'", "oversample"),
    case("train-augment-typo", train("--augment", "rotation"), "--augment", "rotate"),
    case("train-optimizer-adam", train("--optimizer", "adam"), "--optimizer", "adamw"),
    case("train-scheduler-typo", train("--scheduler", "linear"), "--scheduler", "cosine"),
    case("train-resize-typo", train("--resize", "stretch"), "stretch", "squash"),
    case("train-split-ratios-sum", train("--split-ratios", "0.9,0.2"), "--split-ratios"),
    case("train-split-ratios-percent", train("--split-ratios", "70,15,15"), "--split-ratios"),
    case("train-split-ratios-four", train("--split-ratios", "0.25,0.25,0.25,0.25"), "--split-ratios"),
    case("train-split-ratios-words", train("--split-ratios", "train,test"), "--split-ratios"),
    case("train-malignant-unknown", train("--malignant", "mel,cancer"), "--malignant", "cancer"),
    case("train-malignant-every-class", train("--malignant", "akiec,bcc,bkl,df,mel,nv,vasc"), "--malignant"),
    case("train-weights-missing", train("--weights", "{IN}/w.safetensors"), "--weights"),
    case("train-weights-is-directory", train("--weights", "{T}"), "--weights", "is a folder, not a file"),
    case("train-weights-name-too-long", train("--weights", LONG), "--weights", "longer than the file system allows",
         re.compile(r"\(\d+, os.pathconf PC_NAME_MAX\)"), re.compile("^(?!.*disk space)")),
    case("train-out-name-too-long-for-the-staging-names", train("--out", "{IN}/" + "o" * 250), "--out",
         re.compile(r"choose a name of at most \d+ characters"), re.compile("^(?!.*disk space)")),
    case("train-lr-overflows-a-float", train("--lr", "1e999"), "--lr", f"1e999 {FINITE}"),
    case("train-weight-decay-nan", train("--weight-decay", "nan"), "--weight-decay", FINITE),
    case("train-target-sensitivity-inf", train("--target-sensitivity", "inf"), "--target-sensitivity", FINITE),
    case("train-malignant-empty", train("--malignant", ""), "--malignant is empty", "mel,bcc,akiec", re.compile(r"^(?!.*\(none\))")),
    case("train-precision-fp16-on-cpu", train("--precision", "fp16"), "--precision fp16", "bf16"),
    case("train-weights-of-other-model", train("--model", "resnet18", "--weights", "{T}/model.safetensors"), "resnet18"),
    case("train-pretrained-skin-cnn", train("--pretrained"), "drop --pretrained"),
    case("train-pretrained-and-weights", train("--model", "resnet18", "--pretrained", "--weights", "{T}/model.safetensors"),
         "either --pretrained or --weights"),
    case("train-data-unknown", train("--data", "imagenet"), "unknown dataset 'imagenet'", "dermamnist"),
    case("train-data-root-missing", train("--data-root", "{IN}/nope.npz"), "--data-root"),
    case("train-data-root-is-checkpoint", train("--data-root", "{T}"), "--data-root"),
    case("train-data-root-corrupt-npz", train("--data-root", "{BADNPZ}"), "not a readable npz"),
    case("train-data-folder-non-utf8-name", train("--data", "folder", "--data-root", "{LATIN1FOLDER}"),
         r"mel/l\xe9sion\xff.jpg", "not UTF-8", "rename"),
    case("train-pretrained-offline", train("--model", "resnet18", "--pretrained"), "--pretrained", "cannot be reached", "--weights",
         marks=pytest.mark.skipif(_hub_reachable(), reason="needs a machine that cannot reach the Hugging Face hub")),
    case("train-data-folder-is-file", train("--data", "folder", "--data-root", "{D}"), "not a directory"),
    case("train-device-typo", train("--device", "gpu"), "'gpu'", "cuda"),
    case("train-device-cuda-absent", train("--device", "cuda"), "--device cuda", marks=no_cuda),
    case("train-seed-negative", train("--seed", "-1"), "--seed"),
    case("train-out-is-file", train("--out", "{Y}"), "--out", "is a file"),
    case("train-out-holds-user-files", train("--out", "{F}"), "not a skinart run"),
    case("train-out-holds-user-files-overwrite", train("--out", "{F}", "--overwrite"), "--out", "not a skinart run"),
    case("train-out-is-attack-run-overwrite", train("--out", "{A}", "--overwrite"), "--out", "attack"),
    case("train-out-parent-unwritable", train("--out", "{RO}/run"), "--out", re.compile(r"(?i)writ|permission")),
]

EVALUATE = [
    case("evaluate-checkpoint-missing", evaluate(checkpoint="{IN}/nope"), "does not exist", "--checkpoint"),
    case("evaluate-checkpoint-empty-dir", evaluate(checkpoint="{EMPTY}"), "not a skinart checkpoint"),
    case("evaluate-checkpoint-is-attack-run", evaluate(checkpoint="{A}"), "not a skinart checkpoint"),
    case("evaluate-checkpoint-is-file", evaluate(checkpoint="{T}/skinart.json"), "--checkpoint"),
    case("evaluate-checkpoint-corrupt-json", evaluate(checkpoint="{TBADJSON}"), "not valid JSON"),
    case("evaluate-checkpoint-truncated-weights", evaluate(checkpoint="{TBADW}"), "model.safetensors", "copy the file", HASHES),
    case("evaluate-checkpoint-weights-zeroed", evaluate(checkpoint="{TZERO}"), "cnn-zeroed/model.safetensors", HASHES),
    case("evaluate-checkpoint-imported-weights-changed", evaluate(checkpoint="{IMPZERO}"), HASHES,
         re.compile(r"^(?!.*skinart train).*write the checkpoint again with `skinart import`")),
    case("evaluate-precision-fp16-on-cpu", evaluate("--precision", "fp16"), "--precision fp16", "bf16"),
    case("evaluate-checkpoint-meta-without-sha256", evaluate(checkpoint="{TNOSHA}"), "lacks weights_sha256", "skinart train"),
    case("evaluate-checkpoint-weights-do-not-fit", evaluate(checkpoint="{T6}"), "does not fit"),
    case("evaluate-split-typo", evaluate("--split", "holdout"), "'holdout'", "train, val, test"),
    case("evaluate-split-capitalised", evaluate("--split", "Test"), "'Test'", "train, val, test"),
    case("evaluate-malignant-unknown", evaluate("--malignant", "melanoma"), "--malignant", "melanoma"),
    case("evaluate-data-unknown", evaluate("--data", "ham"), "unknown dataset 'ham'"),
    case("evaluate-data-root-missing", evaluate("--data-root", "{IN}/nope.npz"), "--data-root"),
    case("evaluate-data-root-wrong-npz", evaluate("--data-root", "{WRONGNPZ}"), "not a MedMNIST-format npz"),
    case("evaluate-device-typo", evaluate("--device", "gpu"), "'gpu'", "cuda"),
    case("evaluate-out-is-file", evaluate("--out", "{Y}"), "--out", "is a file"),
    case("evaluate-out-is-checkpoint", evaluate("--out", "{T}"), "--out", INPUT),
    case("evaluate-out-is-checkpoint-overwrite", evaluate("--out", "{T}", "--overwrite"), "--out", INPUT),
    case("evaluate-out-inside-checkpoint", evaluate("--out", "{T}/eval"), "--out", INPUT),
    case("evaluate-out-holds-checkpoint-overwrite", evaluate("--out", "{IN}", "--overwrite"), "--out", INPUT),
    case("evaluate-out-is-attack-run-overwrite", evaluate("--out", "{A}", "--overwrite"), "--out", "attack"),
    case("evaluate-eps-without-attack", evaluate("--eps", "8/255"), "--eps", "--attack"),
    case("evaluate-threat-without-attack", evaluate("--threat", "transfer"), "--threat", "--attack"),
    case("evaluate-objective-without-attack", evaluate("--objective", "miss"), "--objective applies only with --attack"),
]

EVALUATE_ATTACK = [
    case("evaluate-attack-method-typo", threats("pgdd"), "unknown attack method 'pgdd'"),
    case("evaluate-attack-poisoning-method", threats("poison-flip"), "--attack", "poison-flip"),
    case("evaluate-attack-eps-zero", threats("fgsm", "--eps", "0"), "--eps", "(0, 1]"),
    case("evaluate-attack-eps-words", threats("fgsm", "--eps", "eight"), "--eps 'eight' is not a number"),
    case("evaluate-attack-eps-step-on-fgsm", threats("fgsm", "--eps-step", "1/255"), "--eps-step does not apply to fgsm"),
    case("evaluate-attack-eps-on-cw", threats("cw", "--eps", "8/255"), "--eps does not apply to cw"),
    case("evaluate-attack-max-iter-zero", threats("pgd", "--max-iter", "0"), "--max-iter"),
    case("evaluate-attack-max-samples-zero", threats("fgsm", "--max-samples", "0"), "--max-samples"),
    case("evaluate-attack-threat-typo", threats("fgsm", "--threat", "grey-box"), "unknown --threat 'grey-box'"),
    case("evaluate-attack-transfer-without-source", threats("fgsm", "--threat", "transfer", checkpoint="{T}"), "--source-checkpoint"),
    case("evaluate-attack-all-threats-undefended", threats("fgsm", checkpoint="{T}"), "--source-checkpoint"),
    case("evaluate-attack-source-other-size", threats("fgsm", "--threat", "transfer", "--source-checkpoint", "{T64}"), "img_size"),
    case("evaluate-attack-source-other-classes", threats("fgsm", "--threat", "transfer", "--source-checkpoint", "{T6}"), "classes"),
    case("evaluate-attack-list-duplicate", threats("fgsm,fgsm"), "--attack", "distinct methods"),
    case("evaluate-attack-list-without-eps", threats("fgsm,pgd"), "one budget", "--eps"),
    case("evaluate-attack-list-empty-item", threats("fgsm,,pgd"), "--attack", "distinct methods"),
    case("evaluate-attack-list-typo", threats("fgsm,autoatack"), "unknown attack method 'autoatack'"),
    case("evaluate-attack-list-unbounded", threats("fgsm,cw"), "--attack cw is unbounded", "bounded"),
    case("evaluate-attack-list-objective-uap", threats("pgd,uap", "--eps", "8/255", "--objective", "miss"),
         "--objective miss does not apply to uap", "pgd"),
    case("evaluate-attack-list-poison", threats("fgsm,poison-flip"), "--attack poison-flip"),
    case("evaluate-attack-list-option-none-takes", threats("fgsm,square", "--eps", "8/255", "--eps-step", "1/255"), "--eps-step applies to none"),
    case("evaluate-attack-list-eps-step-above-eps", threats("fgsm,pgd", "--eps", "2/255", "--eps-step", "8/255"), "--eps-step"),
    case("evaluate-attack-list-param-without-method", threats("fgsm,autoattack", "--eps", "8/255", "--param", "max_iter=2"),
         "--param max_iter", "name the one it is for", "autoattack.max_iter"),
    case("evaluate-attack-param-other-method", threats("fgsm", "--param", "pgd.max_iter=2"), "pgd is not an attack of --attack fgsm"),
    case("evaluate-param-without-attack", evaluate("--param", "max_iter=2"), "--param applies only with --attack"),
    # --attack with --shift: evasion methods crafting on the test images under one shift at one severity
    case("evaluate-attack-shift-universal", threats("uap", "--shift", "gaussian_noise", "--severity", "3", "--max-iter", "1"),
         "--attack uap with --shift", "fitted on unshifted training images", "fgsm, pgd"),
    case("evaluate-attack-shift-patch", threats("patch", "--shift", "hair", "--severity", "3", "--max-iter", "1"),
         "--attack patch with --shift", "fgsm, pgd"),
    case("evaluate-attack-shift-list-with-uap", threats("fgsm,uap", "--eps", "8/255", "--shift", "hair", "--severity", "3"),
         "--attack uap with --shift"),
    case("evaluate-attack-shift-every-severity", threats("fgsm", "--shift", "gaussian_noise"), "one shift at one severity",
         "--severity 3"),
    case("evaluate-attack-shift-two-shifts", threats("fgsm", "--shift", "gaussian_noise,hair", "--severity", "3"),
         "one shift at one severity"),
    case("evaluate-attack-shift-all", threats("fgsm", "--shift", "all", "--severity", "3"), "one shift at one severity"),
    case("evaluate-attack-by-without-metadata", threats("fgsm", "--threat", "white-box", "--by", "sex", checkpoint="{T}"),
         "carry no sex"),
    case("evaluate-attack-shift-external", threats("fgsm", "--shift", "hair", "--severity", "3", "--external"), "--external scores every image",
         "drop --attack"),
    case("attack-autoattack-target-class", attack("autoattack", "--target-class", "mel"), "--target-class does not apply to autoattack"),
    case("attack-autoattack-eps-step", attack("autoattack", "--eps-step", "1/255"), "--eps-step does not apply to autoattack"),
    case("attack-autoattack-max-iter", attack("autoattack", "--max-iter", "5"), "--max-iter does not apply to autoattack"),
    case("attack-autoattack-norm-bad", attack("autoattack", "--param", "norm=3"), "norm", "inf, 1 or 2"),
    case("attack-autoattack-square-queries-zero", attack("autoattack", "--param", "square_max_iter=0"), "square_max_iter"),
    case("attack-autoattack-param-unknown", attack("autoattack", "--param", "colour=red"), "colour", "valid ART parameters"),
    case("evaluate-attack-source-not-checkpoint", threats("fgsm", "--threat", "transfer", "--source-checkpoint", "{A}"),
         "--source-checkpoint"),
    case("evaluate-attack-source-with-white-box", threats("fgsm", "--threat", "white-box", "--source-checkpoint", "{T}"),
         "--source-checkpoint is for --threat transfer"),
    case("evaluate-attack-out-is-source-overwrite", threats("fgsm", "--source-checkpoint", "{T}", "--out", "{T}", "--overwrite"),
         "--out", INPUT),
    case("evaluate-attack-out-inside-checkpoint", threats("fgsm", "--out", "{L}/fgsm"), "--out", INPUT),
    case("evaluate-attack-late-error-leaves-out-parents", threats("fgsm", "--eps-step", "1/255", "--out", "{NESTED}"),
         "--eps-step does not apply to fgsm"),
]

ATTACK = [
    case("attack-checkpoint-weights-zeroed", attack("fgsm", checkpoint="{TZERO}"), "cnn-zeroed/model.safetensors", HASHES),
    case("attack-method-typo", attack("fgsn"), "unknown attack method 'fgsn'", "fgsm"),
    case("attack-method-capitalised", attack("FGSM"), "unknown attack method 'FGSM'"),
    case("attack-method-is-a-defence", attack("llt"), "unknown attack method 'llt'"),
    case("attack-fgsm-eps-zero", attack("fgsm", "--eps", "0"), "--eps", "(0, 1]"),
    case("attack-fgsm-eps-in-255-units", attack("fgsm", "--eps", "8"), "--eps", "(0, 1]"),
    case("attack-fgsm-eps-negative", attack("fgsm", "--eps", "-2/255"), "--eps", "(0, 1]"),
    case("attack-fgsm-eps-words", attack("fgsm", "--eps", "eight"), "--eps 'eight' is not a number"),
    case("attack-fgsm-eps-percent", attack("fgsm", "--eps", "2%"), "--eps '2%' is not a number"),
    case("attack-out-empty", attack("fgsm", "--out", ""), "--out", "names no run directory"),
    case("attack-fgsm-eps-overflows-a-float", attack("fgsm", "--eps", "1e999"), "--eps 1e999 is outside (0, 1]"),
    case("attack-fgsm-eps-divide-by-zero", attack("fgsm", "--eps", "1/0"), "--eps"),
    case("attack-fgsm-eps-step", attack("fgsm", "--eps-step", "1/255"), "--eps-step does not apply to fgsm"),
    case("attack-fgsm-max-iter", attack("fgsm", "--max-iter", "10"), "--max-iter does not apply to fgsm"),
    case("attack-fgsm-attacker", attack("fgsm", "--attacker", "pgd"), "--attacker does not apply to fgsm"),
    case("attack-fgsm-fit-samples", attack("fgsm", "--fit-samples", "50"), "--fit-samples"),
    case("attack-fgsm-param-eps-out-of-range", attack("fgsm", "--param", "eps=5"), "eps", "(0, 1]"),
    case("attack-fgsm-fraction", attack("fgsm", "--fraction", "0.2"), "--fraction"),
    case("attack-fgsm-seed-negative", attack("fgsm", "--seed", "-1"), "--seed"),
    case("attack-pgd-param-max-iter-words", attack("pgd", "--param", "max_iter=abc"), "max_iter", "--param"),
    case("attack-pgd-param-unknown-key", attack("pgd", "--param", "colour=red"), "colour"),
    case("attack-pgd-param-no-equals", attack("pgd", "--param", "decay"), "is not key=value"),
    case("attack-pgd-param-eps-step-inf", attack("pgd", "--param", "eps_step=.inf"), "--param eps_step=.inf", FINITE),
    case("attack-cw-param-overflows-a-float", attack("cw", "--param", "confidence=1e999"), "--param confidence=1e999", FINITE),
    case("attack-flip-fraction-nan", flip("--fraction", "nan"), "--fraction", FINITE),
    case("attack-patch-size-overflows-a-float", attack("patch", "--patch-size", "1e999"), "--patch-size", FINITE),
    case("attack-pgd-param-negative-step", attack("pgd", "--param", "eps_step=-1"), "eps_step"),
    case("attack-pgd-param-norm-bad", attack("pgd", "--param", "norm=3"), "norm"),
    case("attack-pgd-eps-step-above-eps", attack("pgd", "--eps", "2/255", "--eps-step", "8/255"), re.compile("--eps-step|eps_step")),
    case("attack-pgd-max-iter-zero", attack("pgd", "--max-iter", "0"), "--max-iter must be at least 1"),
    case("attack-pgd-random-init-negative", attack("pgd", "--random-init", "-1"), "--random-init"),
    case("attack-pgd-max-samples-zero", attack("pgd", "--max-samples", "0"), "--max-samples"),
    case("attack-pgd-max-samples-negative", attack("pgd", "--max-samples", "-10"), "--max-samples"),
    case("attack-pgd-target-class-typo", attack("pgd", "--target-class", "melanoma"), "'melanoma' is not a class", "mel"),
    case("attack-pgd-target-class-capitalised", attack("pgd", "--target-class", "MEL"), "--target-class"),
    case("attack-pgd-source-class", attack("pgd", "--source-class", "nv"), "--source-class"),
    case("attack-pgd-patch-size", attack("pgd", "--patch-size", "0.3"), "--patch-size does not apply to pgd"),
    case("attack-mim-random-init", attack("mim", "--random-init", "2"), "--random-init does not apply to mim"),
    case("attack-cw-eps", attack("cw", "--eps", "8/255"), "--eps does not apply to cw"),
    case("attack-cw-linf-eps-step", attack("cw-linf", "--eps-step", "1/255"), "--eps-step does not apply to cw-linf"),
    case("attack-square-eps-step", attack("square", "--eps-step", "1/255"), "--eps-step does not apply to square"),
    case("attack-square-target-class", attack("square", "--target-class", "mel"), "--target-class"),
    case("attack-hopskipjump-eps", attack("hopskipjump", "--eps", "8/255"), "--eps does not apply to hopskipjump"),
    case("attack-hopskipjump-param-max-eval-zero", attack("hopskipjump", "--param", "max_eval=0"), "max_eval"),
    case("attack-objective-typo", attack("pgd", "--objective", "misses"), "unknown --objective 'misses'", "miss"),
    case("attack-objective-on-uap", attack("uap", "--objective", "miss"), "--objective miss does not apply to uap", "pgd"),
    case("attack-objective-with-target-class", attack("pgd", "--objective", "alarm", "--target-class", "mel"), "--objective alarm",
         "--target-class"),
    case("attack-uap-attacker-typo", attack("uap", "--attacker", "deepfool"), "unknown --attacker 'deepfool'"),
    case("attack-uap-targeted-pgd-attacker", attack("uap", "--attacker", "pgd", "--target-class", "nv"), "supports only --attacker fgsm"),
    case("attack-uap-fit-samples-zero", attack("uap", "--fit-samples", "0"), "--fit-samples"),
    case("attack-uap-random-init", attack("uap", "--random-init", "1"), "--random-init does not apply to uap"),
    case("attack-uap-param-delta-above-one", attack("uap", "--param", "delta=2"), "delta"),
    case("attack-uap-sgd-attacker", attack("uap-sgd", "--attacker", "pgd"), "--attacker does not apply to uap-sgd"),
    case("attack-uap-sgd-random-init", attack("uap-sgd", "--random-init", "1"), "--random-init does not apply to uap-sgd"),
    case("attack-uap-sgd-eps-step-above-eps", attack("uap-sgd", "--eps", "4/255", "--eps-step", "8/255"), "--eps-step at most --eps"),
    case("attack-uap-sgd-max-iter-zero", attack("uap-sgd", "--max-iter", "0"), "--max-iter must be at least 1"),
    case("attack-uap-sgd-param-delta-zero", attack("uap-sgd", "--param", "delta=0"), "delta", "(0, 1)"),
    case("attack-uap-sgd-param-batch-size-zero", attack("uap-sgd", "--param", "batch_size=0"), "batch_size", "at least 1"),
    case("attack-uap-sgd-param-patience-zero", attack("uap-sgd", "--param", "patience=0"), "patience", "at least 1"),
    case("attack-uap-sgd-param-unknown-key", attack("uap-sgd", "--param", "momentum=0.9"), "momentum", "valid ART parameters are eps"),
    case("attack-uap-sgd-patch-size", attack("uap-sgd", "--patch-size", "0.3"), "--patch-size does not apply to uap-sgd"),
    case("attack-patch-size-zero", attack("patch", "--patch-size", "0"), "--patch-size"),
    case("attack-patch-size-above-one", attack("patch", "--patch-size", "1.5"), "--patch-size 1.5 must be in (0, 1]"),
    case("attack-patch-eps", attack("patch", "--eps", "8/255"), "--eps does not apply to patch"),
    case("attack-patch-target-class-typo", attack("patch", "--target-class", "Melanoma"), "--target-class"),
    case("attack-flip-fraction-above-one", flip("--fraction", "1.2"), "--fraction in (0, 1)"),
    case("attack-flip-fraction-zero", flip("--fraction", "0"), "--fraction in (0, 1)"),
    case("attack-flip-fraction-percent", flip("--fraction", "20"), "--fraction in (0, 1)"),
    case("attack-flip-fraction-missing", attack("poison-flip", "--source-class", "nv", "--target-class", "bkl"), "--fraction"),
    case("attack-flip-source-class-missing", attack("poison-flip", "--target-class", "bkl", "--fraction", "0.2"), "--source-class"),
    case("attack-flip-same-classes", flip("--target-class", "nv"), "the same class"),
    case("attack-flip-source-class-typo", flip("--source-class", "naevus"), "--source-class 'naevus'"),
    case("attack-flip-eps", flip("--eps", "8/255"), "--eps does not apply"),
    case("attack-flip-param", flip("--param", "eps=0.1"), "--param does not apply"),
    case("attack-flip-retrain-epochs-zero", flip("--retrain-epochs", "0"), "--retrain-epochs"),
    case("attack-flip-max-samples", flip("--max-samples", "10"), "--max-samples"),
    case("attack-flip-threat", flip("--threat", "transfer"), "--threat"),
    case("attack-backdoor-target-missing", attack("poison-backdoor", "--fraction", "0.1"), "--target-class"),
    case("attack-backdoor-source-class", attack("poison-backdoor", "--target-class", "nv", "--fraction", "0.1", "--source-class", "mel"),
         "--source-class"),
    case("attack-backdoor-max-iter", attack("poison-backdoor", "--target-class", "nv", "--fraction", "0.1", "--max-iter", "5"),
         "--max-iter does not apply"),
    case("attack-checkpoint-missing", attack("fgsm", checkpoint="{IN}/nope"), "does not exist"),
    case("attack-checkpoint-is-attack-run", attack("fgsm", checkpoint="{A}"), "not a skinart checkpoint"),
    case("attack-malignant-typo", attack("fgsm", "--malignant", "mel,bcc,akeic"), "--malignant", "akeic"),
    case("attack-threat-typo", attack("fgsm", "--threat", "blackbox"), "unknown --threat 'blackbox'"),
    case("attack-threat-transfer-without-source", attack("fgsm", "--threat", "transfer"), "needs --source-checkpoint"),
    case("attack-source-other-size", attack("fgsm", "--source-checkpoint", "{T64}"), "img_size"),
    case("attack-source-other-classes", attack("fgsm", "--source-checkpoint", "{T6}"), "classes"),
    case("attack-source-missing", attack("fgsm", "--source-checkpoint", "{IN}/nope"), "--source-checkpoint"),
    case("attack-adversarial-run-other-method", rescore("pgd"), "holds fgsm images, not pgd"),
    case("attack-adversarial-run-other-eps", rescore("fgsm", "--eps", "8/255"), "differs from"),
    case("attack-adversarial-run-with-source", rescore("fgsm", "--source-checkpoint", "{T}"),
         "drop --source-checkpoint"),
    case("attack-adversarial-run-is-checkpoint", attack("fgsm", "--adversarial-run", "{T}", light=False), "is not a finished evasion"),
    case("attack-adversarial-run-is-poisoned-run", attack("poison-flip", "--adversarial-run", "{P}"), "--adversarial-run"),
    case("attack-adversarial-run-other-image-size", rescore("fgsm", checkpoint="{T64}"),
         "crafted on other test images"),
    case("attack-out-is-checkpoint", attack("fgsm", "--out", "{T}"), "--out", INPUT),
    case("attack-out-is-checkpoint-overwrite", attack("fgsm", "--out", "{T}", "--overwrite"), "--out", INPUT),
    case("attack-out-inside-checkpoint", attack("fgsm", "--out", "{T}/fgsm"), "--out", INPUT),
    case("attack-out-is-source-checkpoint-overwrite", attack("fgsm", "--source-checkpoint", "{R}", "--out", "{R}", "--overwrite"),
         "--out", INPUT),
    case("attack-out-is-adversarial-run-overwrite", rescore("fgsm", "--out", "{A}", "--overwrite", checkpoint="{R}"), "--out", INPUT),
    case("attack-poison-out-is-checkpoint-overwrite", flip("--out", "{T}", "--overwrite"), "--out", INPUT),
    case("attack-out-is-defended-checkpoint-overwrite", attack("fgsm", "--out", "{L}", "--overwrite"), "--out",
         re.compile("defen[cds]")),
]

DEFEND = [
    case("defend-method-typo", defend("webp"), "unknown defence 'webp'", "llt"),
    case("defend-method-is-an-attack", defend("fgsm"), "unknown defence 'fgsm'"),
    case("defend-checkpoint-missing", ["defend", "--method", "llt", "--data-root", "{D}", "--out", "{OUT}"], "needs --checkpoint"),
    case("defend-checkpoint-is-attack-run", defend("llt", checkpoint="{A}"), "not a skinart checkpoint"),
    case("defend-llt-quality-zero", defend("llt", "--quality", "0"), "--quality", "outside 1–100"),
    case("defend-llt-quality-101", defend("llt", "--quality", "101"), "--quality", "outside 1–100"),
    case("defend-llt-already-defended", defend("llt", checkpoint="{L}"), "already carries"),
    case("defend-llt-window", defend("llt", "--window", "5"), "--window"),
    case("defend-llt-ratio", defend("llt", "--ratio", "0.3"), "--ratio"),
    case("defend-jpeg-quality-above-100", defend("jpeg", "--quality", "150"), "outside 1–100"),
    case("defend-smoothing-window-zero", defend("smoothing", "--window", "0"), "--window"),
    case("defend-smoothing-window-negative", defend("smoothing", "--window", "-3"), "--window"),
    case("defend-squeeze-bits-zero", defend("squeeze", "--bits", "0"), "--bits"),
    case("defend-squeeze-bits-above-64", defend("squeeze", "--bits", "65"), "--bits"),
    case("defend-retrain-ratio-zero", defend("retrain", "--ratio", "0"), "--ratio 0.0 is outside (0, 1]"),
    case("defend-retrain-ratio-above-one", defend("retrain", "--ratio", "1.5"), "--ratio 1.5 is outside (0, 1]"),
    case("defend-retrain-ratio-percent", defend("retrain", "--ratio", "40"), "--ratio", "(0, 1]"),
    case("defend-retrain-attacks-typo", defend("retrain", "--attacks", "fgsm,deepfool"), "--attacks names deepfool"),
    case("defend-retrain-attacks-poisoning", defend("retrain", "--attacks", "poison-flip"), "--attacks names poison-flip"),
    case("defend-retrain-attacks-empty", defend("retrain", "--attacks", ","), "--attacks"),
    case("defend-retrain-mode-typo", defend("retrain", "--mode", "dynamic"), "--mode", "static"),
    case("defend-retrain-init-typo", defend("retrain", "--init", "random"), "--init", "scratch"),
    case("defend-retrain-rounds-zero", defend("retrain", "--rounds", "0"), "--rounds"),
    case("defend-retrain-epochs-zero", defend("retrain", "--retrain-epochs", "0"), "--retrain-epochs"),
    case("defend-retrain-online-rounds", defend("retrain", "--mode", "online", "--rounds", "3"), "--rounds is for --mode static"),
    case("defend-retrain-eps-zero", defend("retrain", "--eps", "0"), "--eps", "(0, 1]"),
    case("defend-retrain-eps-step-on-fgsm", defend("retrain", "--eps-step", "1/255"), "--eps-step"),
    case("defend-retrain-defended-checkpoint", defend("retrain", checkpoint="{L}"), "preprocessing defence"),
    case("defend-madry-attacks", defend("madry", "--attacks", "pgd,mim"), "--attacks"),
    case("defend-madry-ratio", defend("madry", "--ratio", "0.3"), "--ratio"),
    case("defend-combined-without-retrained", defend("combined"), "--retrained"),
    case("defend-combined-retrained-from-another-checkpoint", defend("combined", "--retrained", "{R}"), "--retrained",
         "was retrained from", "not from --checkpoint"),
    case("defend-retrain-ratio-inf", defend("retrain", "--ratio", "inf"), "--ratio", FINITE),
    case("defend-combined-retrained-is-plain", ["defend", "--method", "combined", "--retrained", "{T}", "--data-root", "{D}",
                                                "--out", "{OUT}"], "--retrained"),
    case("defend-combined-retrained-is-llt", ["defend", "--method", "combined", "--retrained", "{L}", "--data-root", "{D}",
                                              "--out", "{OUT}"], "--retrained"),
    case("defend-combined-retrained-missing", ["defend", "--method", "combined", "--retrained", "{IN}/nope", "--data-root", "{D}",
                                               "--out", "{OUT}"], "--retrained"),
    case("defend-detect-without-poisoned-run", defend("detect-poison"), "--poisoned-run"),
    case("defend-detect-poisoned-run-is-checkpoint", ["defend", "--method", "detect-poison", "--poisoned-run", "{T}",
                                                      "--data-root", "{D}", "--out", "{OUT}"], "is not a poisoned run"),
    case("defend-detect-poisoned-run-is-attack-run", ["defend", "--method", "detect-poison", "--poisoned-run", "{A}",
                                                      "--data-root", "{D}", "--out", "{OUT}"], "--poisoned-run"),
    case("defend-detect-detector-typo", ["defend", "--method", "detect-poison", "--poisoned-run", "{P}", "--detector", "spectre",
                                         "--data-root", "{D}", "--out", "{OUT}"], "unknown --detector 'spectre'"),
    case("defend-detect-with-checkpoint", defend("detect-poison", "--poisoned-run", "{P}"), "--checkpoint"),
    case("defend-data-root-missing", defend("llt", "--data-root", "{IN}/nope.npz"), "--data-root"),
    case("defend-out-is-checkpoint-overwrite", defend("llt", "--out", "{T}", "--overwrite"), "--out", INPUT),
    case("defend-out-inside-checkpoint", defend("llt", "--out", "{T}/llt"), "--out", INPUT),
    case("defend-retrain-out-is-checkpoint-overwrite", defend("retrain", "--out", "{T}", "--overwrite"), "--out", INPUT),
    case("defend-combined-out-is-retrained-overwrite", ["defend", "--method", "combined", "--retrained", "{R}", "--data-root", "{D}",
                                                        "--out", "{R}", "--overwrite"], "--out", INPUT),
    case("defend-detect-out-is-poisoned-run-overwrite", ["defend", "--method", "detect-poison", "--poisoned-run", "{P}",
                                                         "--data-root", "{D}", "--out", "{P}", "--overwrite"], "--out", INPUT),
]


def _reference_copy(r, inputs):
    r["steps"] = [{"name": "clean", "command": "evaluate", "params": {"checkpoint": str(inputs.path("T")), "device": "cpu"}}]
    del r["reference"]


RUN = [
    case("run-recipe-missing", ["run", "{IN}/nope.yaml", "--out", "{OUT}"], "not found"),
    case("run-recipe-is-directory", ["run", "{T}", "--out", "{OUT}"], "YAML recipe"),
    case("run-recipe-bad-yaml", ["run", Recipe(text="name: x\nsteps:\n  - name: [unclosed\n"), "--out", "{OUT}"], "not valid YAML at line"),
    case("run-recipe-invalid", ["run", Recipe(edit(lambda r: r["steps"][2]["grid"].update(eps=["2/255", 3]))), "--out", "{OUT}"],
         "steps[2].grid.eps[1]"),
    case("run-recipe-grid-ratio-out-of-range", ["run", Recipe(edit(lambda r: r["steps"][4]["grid"].update(ratio=[0, 1.5]))),
                                                "--out", "{OUT}"], "steps[4].grid.ratio["),
    case("run-default-out-recipe-invalid", ["run", Recipe(param(0, epochs="many"))], "steps[0].params.epochs"),
    case("run-set-no-equals", ["run", "{Y}", "--out", "{OUT}", "--set", "data.size"], "--set"),
    case("run-set-unknown-step", ["run", "{Y}", "--out", "{OUT}", "--set", "steps.nosuch.params.x=1"], "no step 'nosuch'"),
    case("run-set-eps-overflows-a-float", ["run", "{Y}", "--out", "{OUT}", "--set", "steps.fgsm.params.eps=1e999"],
         "steps[1].params.eps", "outside (0, 1]"),
    case("run-recipe-is-a-folder", ["run", "{IN}", "--out", "{OUT}"], "is a folder", "YAML recipe file"),
    case("run-set-wrong-type", ["run", "{Y}", "--out", "{OUT}", "--set", "data.size=abc"], "data.size"),
    case("run-out-is-file", ["run", "{Y}", "--out", "{Y2}"], "--out"),
    case("run-out-is-checkpoint", ["run", "{Y}", "--out", "{T}"], "--out", re.compile("checkpoint|train")),
    case("run-out-is-input-checkpoint", ["run", Recipe(_reference_copy), "--out", "{T}"], "--out", INPUT),
    case("run-out-is-attack-run", ["run", "{Y}", "--out", "{A}"], "--out", "attack"),
    case("run-out-holds-user-files", ["run", "{Y}", "--out", "{F}"], "--out", "not a skinart run"),
    case("run-out-holds-another-recipe", ["run", "{Y2}", "--out", "{RUN}"], "holds a run of recipe 'tiny-bad'"),
    case("run-out-parent-unwritable", ["run", "{Y}", "--out", "{RO}/run"], "--out", re.compile(r"(?i)writ|permission")),
]

RECIPES = [
    case("recipe-grid-ratio-out-of-range", validate(edit(lambda r: r["steps"][4]["grid"].update(ratio=[0, 1.5]))), "steps[4].grid.ratio["),
    case("recipe-webp-quality-101", validate(param(3, quality=101)), "steps[3].params.quality"),
    case("recipe-model-unknown", validate(setting("model", name="resnet19")), "model.name"),
    case("recipe-loader-unknown", validate(setting("data", loader="ham9")), "data.loader"),
    case("recipe-size-negative", validate(setting("data", size=-5)), "data.size"),
    case("recipe-size-zero", validate(setting("data", size=0)), "data.size"),
    case("recipe-size-cannot-fit-memory", validate(setting("data", size=100000)), "data.size"),
    case("recipe-root-missing", validate(setting("data", root="/nonexistent/dermamnist.npz")), "data.root"),
    case("recipe-balance-typo", validate(setting("data", balance="smote")), "data.balance"),
    case("recipe-resize-typo", validate(setting("data", resize="stretch")), "data.resize"),
    case("recipe-split-ratios-sum", validate(setting("data", split_ratios=[0.9, 0.2])), "data.split_ratios"),
    case("recipe-malignant-unknown", validate(setting("data", malignant=["mel", "cancer"])), "data.malignant"),
    case("recipe-pretrained-string", validate(setting("model", pretrained="yes")), "model.pretrained"),
    case("recipe-top-key-typo", validate(edit(lambda r: r.update(modle={}))), "recipe.modle", "did you mean 'model'"),
    case("recipe-data-key-typo", validate(setting("data", sise=64)), "data.sise", "did you mean 'size'"),
    case("recipe-seed-words", validate(edit(lambda r: r.update(seed="zero"))), "seed"),
    case("recipe-steps-missing", validate(edit(lambda r: r.pop("steps"))), "steps"),
    case("recipe-steps-mapping", validate(edit(lambda r: r.update(steps={"train": {}}))), "steps"),
    case("recipe-command-unknown", validate(edit(lambda r: step(1)(r).update(command="predict"))), "steps[1].command"),
    case("recipe-step-defined-twice", validate(edit(lambda r: step(1)(r).update(name="train"))), "steps[1].name"),
    case("recipe-step-name-with-space", validate(edit(lambda r: step(1)(r).update(name="clean eval"))), "steps[1].name"),
    case("recipe-param-key-typo", validate(param(1, chekpoint="train")), "steps[1].params.chekpoint", "did you mean 'checkpoint'"),
    case("recipe-param-wrong-type", validate(param(0, epochs="many")), "steps[0].params.epochs"),
    case("recipe-epochs-zero", validate(param(0, epochs=0)), "steps[0].params.epochs"),
    case("recipe-lr-negative", validate(param(0, lr=-0.01)), "steps[0].params.lr"),
    case("recipe-lr-inf", validate(param(0, lr=float("inf"))), "steps[0].params.lr", FINITE),
    case("recipe-import-file-missing", validate(imports("{IN}/theirs.pt2")), "steps[0].params.weights", "does not exist"),
    case("recipe-retrains-an-imported-program", validate(imports("{PT2}", {"name": "rt", "command": "defend",
                                                                          "params": {"checkpoint": "imp", "method": "retrain"}})),
         "steps[1].params.checkpoint", "defend --method retrain retrains the model",
         "writes no checkpoint skinart can retrain"),
    case("recipe-poisons-an-imported-model", validate(imports("{T}/model.safetensors", {
        "name": "flip", "command": "attack", "params": {"checkpoint": "imp", "method": "poison-flip", "source_class": "nv",
                                                        "target_class": "bkl", "fraction": 0.2}}, model="skin_cnn")),
         "steps[1].params.checkpoint", "writes no checkpoint trained by skinart"),
    case("recipe-combined-checkpoint-not-the-retrained-source",
         validate(edit(lambda r: r["steps"].extend([{"name": "train2", "command": "train", "params": {"epochs": 1}},
                                                    {"name": "comb", "command": "defend", "params": {
                                                        "method": "combined", "checkpoint": "train2", "retrained": "rt"}}]))),
         "steps[9].params.checkpoint", "was retrained from 'train', not from step 'train2'"),
    case("recipe-target-sensitivity-above-one", validate(param(0, target_sensitivity=1.5)), "steps[0].params.target_sensitivity", "(0, 1]"),
    case("recipe-device-typo", validate(param(0, device="gpu")), "steps[0].params.device"),
    case("recipe-required-option-missing", validate(edit(lambda r: step(1)(r)["params"].pop("checkpoint"))), "steps[1].params.checkpoint"),
    case("recipe-reference-unknown-step", validate(param(5, checkpoint="rtt")), "steps[5].params.checkpoint"),
    case("recipe-reference-later-step", validate(param(1, checkpoint="rt")), "steps[1].params.checkpoint"),
    case("recipe-eps-grid-member", validate(edit(lambda r: step(2)(r)["grid"].update(eps=["2/255", 3]))), "steps[2].grid.eps[1]"),
    case("recipe-eps-in-255-units", validate(param(5, eps=8)), "steps[5].params.eps"),
    case("recipe-eps-in-grid-and-params", validate(param(2, eps="4/255")), "steps[2].grid.eps"),
    case("recipe-attack-method-typo", validate(param(2, method="fgsn")), "steps[2].params.method"),
    case("recipe-defence-method-typo", validate(param(3, method="webp")), "steps[3].params.method"),
    case("recipe-option-not-for-method", validate(param(2, eps_step="1/255")), "steps[2].params.eps_step"),
    case("recipe-param-eps-out-of-range", validate(param(5, param={"eps": 5})), "steps[5].params.param"),
    case("recipe-param-max-iter-words", validate(param(5, param={"max_iter": "abc"})), "steps[5].params.param"),
    case("recipe-target-class-typo", validate(param(6, target_class="melanoma")), "steps[6].params.target_class"),
    case("recipe-flip-source-class-missing", validate(edit(lambda r: step(6)(r)["params"].pop("source_class"))), "steps[6]",
         re.compile("source.class")),
    case("recipe-grid-fraction-out-of-range", validate(edit(lambda r: step(6)(r)["grid"].update(fraction=[0.2, 1.5]))),
         "steps[6].grid.fraction[1]"),
    case("recipe-grid-scalar", validate(edit(lambda r: step(4)(r)["grid"].update(ratio=0.2))), "steps[4].grid.ratio"),
    case("recipe-grid-empty", validate(edit(lambda r: step(4)(r)["grid"].update(ratio=[]))), "steps[4].grid.ratio"),
    case("recipe-report-bootstrap-negative", validate(param(7, bootstrap=-5)), "steps[7].params.bootstrap"),
    case("recipe-combined-on-plain-checkpoint", validate(add_step(name="comb", command="defend",
                                                                  params={"method": "combined", "retrained": "train"})),
         "steps[8].params.retrained"),
    case("recipe-detect-poison-on-clean-model", validate(add_step(name="det", command="defend",
                                                                  params={"method": "detect-poison", "poisoned_run": "train"})),
         "steps[8].params.poisoned_run"),
    case("recipe-reference-percent", validate(edit(lambda r: r["reference"].update(clean={"accuracy": 70.19}))),
         "reference.clean.accuracy", "0.7019"),
    case("recipe-reference-unknown-run", validate(edit(lambda r: r["reference"].update(nosuch={"accuracy": 0.7}))), "reference.nosuch"),
    case("recipe-reference-metric-typo", validate(edit(lambda r: r["reference"].update(clean={"acuracy": 0.7}))),
         "reference.clean.acuracy"),
    case("recipe-set-wrong-type", validate(None, "--set", "data.size=abc"), "data.size"),
    case("recipe-set-wrong-type-key-path-once", validate(None, "--set", "steps.train.params.epochs=abc"),
         re.compile(r"^(?!.*params\.epochs.*params\.epochs).*steps\[0\]\.params\.epochs: .*'--epochs'")),
    case("recipe-set-no-equals", validate(None, "--set", "data.size"), "--set"),
    case("recipe-set-unknown-step", validate(None, "--set", "steps.nosuch.params.x=1"), "no step 'nosuch'"),
    case("recipe-file-missing", ["recipes", "validate", "{IN}/nope.yaml"], "not found"),
    case("recipe-is-directory", ["recipes", "validate", "{T}"], "YAML recipe"),
    case("recipe-bad-yaml", validate(text="name: x\nsteps: [\n"), "not valid YAML at line"),
    case("recipe-is-a-list", validate(text="- name: x\n"), "expected a mapping"),
    case("recipe-empty-file", validate(text=""), "expected a mapping"),
    case("recipe-one-good-one-bad", ["recipes", "validate", "{Y}", Recipe(param(0, epochs="many"), name="bad.yaml")],
         "steps[0].params.epochs"),
]

REPORT = [
    case("report-bootstrap-negative", ["report", "{RUN}", "--bootstrap", "-5"], "--bootstrap"),
    case("report-seed-negative", ["report", "{RUN}", "--bootstrap", "10", "--seed", "-1"], "--seed"),
    case("report-also-malignant-typo", ["report", "{RUN}", "--bootstrap", "0", "--also-malignant", "mel,cancer"], "--also-malignant"),
    case("report-also-malignant-every-class", ["report", "{RUN}", "--bootstrap", "0", "--also-malignant",
                                              "akiec,bcc,bkl,df,mel,nv,vasc"], "--also-malignant"),
    case("report-also-label-without-also-malignant", ["report", "{RUN}", "--bootstrap", "0", "--also-label", "thesis"],
         "--also-label", "--also-malignant"),
    case("report-checkpoint-without-out", ["report", "{T}"], "give --out DIR"),
    case("report-attack-run-without-out", ["report", "{A}"], "give --out DIR"),
    case("report-run-missing", ["report", "{IN}/nope"], "skinart run"),
    case("report-run-is-file", ["report", "{Y}"], "skinart run"),
    case("report-plan-corrupt", ["report", "{RUNBADPLAN}"], "plan.json"),
    case("report-run-unwritable", ["report", "{RORUN}", "--bootstrap", "0"], re.compile(r"(?i)writ|permission")),
    case("report-out-holds-the-users-report", ["report", "{RUN}", "--bootstrap", "0", "--out", "{NOTES}"], "--out",
         "skinart report did not write (report.md)"),
    case("report-runs-out-holds-the-users-report", ["report", "{A}", "--bootstrap", "0", "--out", "{NOTES}"], "did not write"),
    case("report-checkpoint-alone-nothing-to-report", ["report", "{T}", "--out", "{OUT}"], "nothing to report", "evaluate"),
]

def certify(*extra, checkpoint="{T}"):
    return ["certify", "--checkpoint", checkpoint, "--data-root", "{D}", "--device", "cpu", "--out", "{OUT}", *extra]


CERTIFY = [
    case("certify-sigma-zero", certify("--sigma", "0"), "--sigma 0", "(0, 1]"),
    case("certify-n-too-small-for-alpha", certify("--sigma", "0.25", "--n", "5"), "--n 5", "--n 10"),
    case("certify-alpha-above-half", certify("--sigma", "0.25", "--alpha", "0.7"), "--alpha 0.7"),
    case("certify-radii-typo", certify("--sigma", "0.25", "--radii", "0.1,big"), "--radii", "0.12,0.25,0.5"),
    case("certify-no-sigma-checkpoint-trained-without-noise", certify(), "give --sigma"),
    case("certify-checkpoint-with-a-preprocessing-defence", certify("--sigma", "0.25", checkpoint="{L}"), "preprocessing defence",
         "source checkpoint"),
    case("defend-randomized-smoothing-variant-typo", defend("randomized-smoothing", "--variant", "gauss"), "--variant 'gauss'",
         "gaussian, smoothadv, macer"),
    case("defend-randomized-smoothing-sigma-above-one", defend("randomized-smoothing", "--sigma", "2"), "--sigma 2", "(0, 1]"),
    case("defend-sigma-on-a-preprocessing-defence", defend("llt", "--sigma", "0.5"), "--sigma does not apply to llt"),
    case("defend-randomized-smoothing-balance-typo", defend("randomized-smoothing", "--balance", "weighted"), "--balance 'weighted'",
         "sqrt-weights"),
    case("defend-randomized-smoothing-smoothing-n-zero", defend("randomized-smoothing", "--smoothing-n", "0"), "--smoothing-n"),
    case("evaluate-smoothing-n-zero", evaluate("--smoothing-n", "0"), "--smoothing-n must be at least 1"),
    case("attack-smoothing-n-negative", attack("fgsm", "--smoothing-n", "-4"), "--smoothing-n must be at least 1"),
]

DATA_INFO = [
    case("data-info-unknown-dataset", ["data", "info", "--data", "imagenet"], "unknown dataset 'imagenet'", "dermamnist"),
    case("data-info-dataset-capitalised", ["data", "info", "--data", "HAM10000"], "unknown dataset 'HAM10000'"),
    case("data-info-root-missing", ["data", "info", "--data-root", "{IN}/nope.npz"], "--data-root"),
    case("data-info-root-empty", ["data", "info", "--data-root", "{EMPTY}"], "--data-root"),
    case("data-info-root-corrupt-npz", ["data", "info", "--data-root", "{BADNPZ}"], "not a readable npz"),
    case("data-info-root-wrong-npz", ["data", "info", "--data-root", "{WRONGNPZ}"], "not a MedMNIST-format npz"),
    case("data-info-ham-root-is-npz", ["data", "info", "--data", "ham10000", "--data-root", "{D}"], "--data-root"),
    case("data-info-ham-root-missing", ["data", "info", "--data", "ham10000", "--data-root", "{IN}/nope"], "does not exist"),
    case("data-info-folder-not-a-class", ["data", "info", "--data", "folder", "--data-root", "{BADFOLDER}"],
         "folder 'cancer' is not a class"),
    case("data-info-folder-non-utf8-name", ["data", "info", "--data", "folder", "--data-root", "{LATIN1FOLDER}"],
         r"mel/l\xe9sion\xff.jpg", "not UTF-8"),
    case("data-info-folder-one-image", ["data", "info", "--data", "folder", "--data-root", "{TINYFOLDER}"], re.compile("(?i)images")),
    case("data-info-split-ratios-sum", ["data", "info", "--data", "ham10000", "--data-root", "{H}", "--split-ratios", "0.7,0.2,0.2"],
         "--split-ratios"),
    case("data-info-split-ratios-words", ["data", "info", "--data", "ham10000", "--data-root", "{H}", "--split-ratios", "a,b"],
         "--split-ratios"),
    case("data-info-split-ratios-on-official-split", ["data", "info", "--data-root", "{D}", "--split-ratios", "0.8,0.2"],
         "--split-ratios"),
    case("data-info-seed-negative", ["data", "info", "--data", "ham10000", "--data-root", "{H}", "--seed", "-1"], "--seed"),
]

USAGE = [  # click's own parsing: types, missing and unknown options
    case("usage-train-epochs-words", train("--epochs", "ten"), "--epochs"),
    case("usage-train-out-missing", ["train", "--data-root", "{D}", "--model", "skin_cnn"], "--out"),
    case("usage-train-option-typo", train("--epoch", "3"), "--epochs"),
    case("usage-evaluate-out-missing", ["evaluate", "--checkpoint", "{T}"], "--out"),
    case("usage-attack-method-missing", ["attack", "--checkpoint", "{T}", "--out", "{OUT}"], "--method"),
    case("usage-attack-checkpoint-missing", ["attack", "--method", "fgsm", "--out", "{OUT}"], "--checkpoint"),
    case("usage-attack-max-samples-words", attack("fgsm", "--max-samples", "all"), "--max-samples"),
    case("usage-defend-webp-quality-words", defend("llt", "--quality", "high"), "--quality"),
    case("usage-report-bootstrap-words", ["report", "{RUN}", "--bootstrap", "many"], "--bootstrap"),
    case("usage-command-typo", ["atack", "--method", "fgsm"], "atack"),
    case("usage-data-info-out", ["data", "info", "--out", "{OUT}"], "--out"),
    case("usage-run-recipe-missing", ["run"], re.compile("(?i)recipe")),
    case("usage-validate-recipe-missing", ["recipes", "validate"], re.compile("(?i)recipe")),
]


def import_(weights: str, *extra):
    return ["import", "--weights", weights, "--classes", ",".join(CLASSES), "--img-size", "28", "--data-root", "{D}",
            "--device", "cpu", "--out", "{OUT}", *extra]


def csv_data(*extra):
    return ["--data", "csv", "--data-root", "{H}", "--labels", "{PADCSV}", "--image-column", "img_id", *extra]


CSV_DATA = [  # issue 38: --data csv, a folder of images labelled by a CSV file
    case("train-data-csv-unknown-labels", train(*csv_data("--label-column", "diagnostic")), "ACK (", "NEV (", "SEK (",
         "--label-map NAME=CLASS"),
    case("train-data-csv-without-labels", train("--data", "csv", "--data-root", "{H}"), "--labels FILE.csv"),
    case("train-labels-for-another-dataset", train("--data", "ham10000", "--data-root", "{H}", "--labels", "{PADCSV}"),
         "--labels describe a CSV-labelled folder", "--data csv"),
    case("train-label-map-to-no-class", train(*csv_data("--label-column", "diagnostic", "--label-map", "NEV=nevus")),
         "--label-map maps to nevus"),
    case("train-data-csv-image-column-absent", train(*csv_data("--label-column", "diagnostic", "--image-column", "file")),
         "lacks column(s) file"),
    case("import-data-csv-one-hot-not-numbers", import_("{PT2}", *csv_data()), "not one-hot 0/1", "--label-column"),
]

IMPORT = [  # issue 38: imports that cannot go quietly wrong
    case("import-model-names-a-program", import_("{PT2}", "--model", "resnet50"), "--model resnet50", "torch.export",
         "drop --model"),
    case("import-state-key-for-a-program", import_("{PT2}", "--state-key", "state_dict"), "--state-key", "drop --state-key"),
    case("import-safetensors-truncated", import_("{SFTRUNC}", "--model", "skin_cnn"), "damaged safetensors", "truncated",
         "save it again"),
    case("import-safetensors-cut-in-its-header", import_("{SFHEAD}", "--model", "skin_cnn"), "damaged safetensors",
         "header alone"),
    case("import-torch-export-member-bad-crc", import_("{PT2CRC}"), "fails its CRC check", "save it again"),
    case("import-torchscript-member-bad-crc", import_("{TSCRC}"), "fails its CRC check"),
    case("import-pth-member-bad-crc", import_("{PTHCRC}", "--model", "skin_cnn"), "fails its CRC check"),
    case("import-training-checkpoint-with-ema", import_("{EMA}", "--model", "skin_cnn"), "2 state dicts (state_dict, "
         "state_dict_ema)", "--state-key"),
    case("import-state-key-absent", import_("{EMA}", "--model", "skin_cnn", "--state-key", "model"), "--state-key model",
         "state_dict, state_dict_ema"),
    case("import-plain-pickle-with-code", import_("{PICKLE}", "--model", "skin_cnn"), "pickles Python code"),
]

needs_onnx = pytest.mark.skipif(not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnx2torch")),
                                reason="needs the onnx extra: pip install 'skinart[onnx]'")
SCORES_ONLY = [  # issue 38: an ONNX model onnxruntime runs gives scores only; what needs its gradients is refused
    case("attack-pgd-on-a-scores-only-onnx-model", attack("pgd", checkpoint="{ONNXBB}"), "pgd reads the gradients",
         "gives scores only", "square, hopskipjump", "--threat transfer", marks=needs_onnx),
    case("attack-uap-on-a-scores-only-onnx-model", attack("uap", checkpoint="{ONNXBB}"), "uap reads the gradients",
         "square, hopskipjump", marks=needs_onnx),
    case("attack-pgd-adaptive-on-a-scores-only-onnx-model", attack("pgd", "--threat", "adaptive", checkpoint="{ONNXBB}"),
         "pgd reads the gradients", "square, hopskipjump", marks=needs_onnx),
    case("evaluate-attack-pgd-on-a-scores-only-onnx-model", threats("pgd", "--threat", "white-box", checkpoint="{ONNXBB}"),
         "pgd reads the gradients", "square, hopskipjump", marks=needs_onnx),
    case("defend-retrain-a-scores-only-onnx-model", defend("retrain", checkpoint="{ONNXBB}"), "retrain retrains the model",
         "cannot train", marks=needs_onnx),
    case("certify-attacks-a-scores-only-onnx-model", certify("--sigma", "0.25", "--max-samples", "5", checkpoint="{ONNXBB}"),
         "gives scores only", "--radii none", marks=needs_onnx),
]

CASES = TRAIN + EVALUATE + EVALUATE_ATTACK + ATTACK + DEFEND + RUN + RECIPES + REPORT + DATA_INFO + USAGE + CERTIFY + IMPORT + CSV_DATA + SCORES_ONLY


def test_there_are_well_over_a_hundred_rows_with_unique_ids():
    ids = [c.id for c in CASES]
    assert len(ids) >= 150 and len(set(ids)) == len(ids)


def test_the_validation_recipe_and_the_inputs_are_good(sources, tmp_path, request):
    """The rows fail for the one thing they break: their base recipe validates and their inputs are sound."""
    inputs = Inputs(tmp_path, sources, request)
    result = invoke("recipes", "validate", Recipe().make(inputs))
    assert result.exit_code == 0, result.output
    for key in ("T", "L", "R", "P", "T64"):
        assert (inputs.path(key) / "skinart.json").is_file()
    assert (inputs.path("A") / "adversarial.npz").is_file() and (inputs.path("RUN") / "plan.json").is_file()


@pytest.mark.parametrize("args, expect, memory", CASES)
def test_bad_input(sources, tmp_path, monkeypatch, request, args, expect, memory):
    monkeypatch.chdir(tmp_path)  # a default --out (runs/<name>) lands here and counts as written
    inputs = Inputs(tmp_path, sources, request)
    try:
        argv = [inputs.resolve(a) for a in args]
        out = inputs.path("OUT")
        before = tree_digest(tmp_path)
        with memory_cap() if memory else _nothing():
            result = invoke(*argv)
        after = tree_digest(tmp_path)
        hide = {str(tmp_path): "<tmp>", str(sources.base): "<src>", str(sources.data): "<data>"}
        problems = check(result, expect, before, after, out, hide)
        shown = (result.stderr or result.stdout or "").strip().splitlines()[:2]
        for path, name in hide.items():
            shown = [line.replace(path, name) for line in shown]
        print(result.exit_code, shown)  # pytest -rP shows what each row answers today
        exception = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
        assert not problems, (f"{'; '.join(problems)} || exit {result.exit_code}; output: {shown}"
                              + (f"; exception: {type(exception).__name__}: {str(exception)[:160]}" if exception else ""))
    finally:
        inputs.unlock()


@contextmanager
def _nothing():
    yield


def test_a_rerun_after_the_weights_were_replaced_is_refused_not_skipped(sources, tmp_path):
    """The same command into the same --out, the checkpoint's weights replaced in between: refused, the old results kept."""
    checkpoint, out = tmp_path / "cnn", tmp_path / "fgsm"
    shutil.copytree(sources.cnn, checkpoint)
    args = ("attack", "--method", "fgsm", "--checkpoint", checkpoint, "--data-root", sources.data, "--device", "cpu",
            "--max-samples", 10, "--out", out)
    _ok(*args)
    zero_last_weight(checkpoint / "model.safetensors")
    before = tree_digest(out)
    result = invoke(*args)
    assert result.exit_code == 2 and "skipped" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and HASHES.search(lines[0]) and str(checkpoint / "model.safetensors") in lines[0], lines
    assert tree_digest(out) == before


@pytest.mark.slow
def test_a_small_folder_dataset_trains_with_one_smaller_batch(tmp_path):
    """8 images per class: the training split is smaller than --batch-size, so it is one smaller batch."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    result = invoke("train", "--data", "folder", "--data-root", tmp_path / "images", "--model", "skin_cnn", "--epochs", 1,
                    "--batch-size", 64, "--device", "cpu", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr[-400:]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])


def test_pretrained_with_the_hub_unreachable_is_one_line_at_once(derma_subset, tmp_path, monkeypatch):
    """Wherever the suite runs: the hub's endpoint at a closed local port stands for a machine that cannot reach it."""
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    result = invoke("train", "--data-root", derma_subset, "--model", "resnet18", "--pretrained", "--epochs", 1,
                    "--device", "cpu", "--out", tmp_path / "run")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "127.0.0.1:9, which cannot be reached" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_every_progress_line_of_an_attacked_evaluation_says_what_it_is(sources, tmp_path, sanity_checks_afresh):
    """Piped stderr: no tqdm bar (its carriage returns glue lines together); each 'attacked' line names its attack."""
    result = invoke("evaluate", "--checkpoint", sources.base / "llt", "--data-root", sources.data, "--device", "cpu",
                    "--attack", "pgd", "--max-iter", 2, "--max-samples", 10, "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.stderr[-400:]
    assert "\r" not in result.stderr and "Batches" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if "attacked" in line]
    # white-box and adaptive craft; transfer on llt is the same network, so it scores white-box's images; 5 sanity checks
    assert len(progress) >= 7, result.stderr
    assert "pgd (transfer): the white-box attacker's images" in result.stderr, result.stderr
    unlabelled = [line for line in progress if not re.match(r"\s+(pgd|sanity check PGD-\d+ at eps [\d.]+/255): attacked", line)]
    assert not unlabelled, unlabelled


def test_the_combined_defence_summary_names_the_retrained_run(sources, trained, tmp_path):
    """--checkpoint beside --retrained is taken when it is the checkpoint the weights were retrained from."""
    result = invoke("defend", "--method", "combined", "--retrained", sources.base / "rt", "--checkpoint", trained,
                    "--data-root", sources.data, "--device", "cpu", "--out", tmp_path / "combined")
    assert result.exit_code == 0, result.stderr[-400:]
    assert f"combined on {sources.base / 'rt'}: clean test" in result.stdout and "None" not in result.stdout
