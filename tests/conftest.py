"""Shared fixtures. Data that tests need is generated at session start (`derma_subset`, `ham_subset`, the model
`trained` on it); the tests that need the real data (`shared_data`, `real_*`) read SKINART_DATA and skip cleanly without it.
What trains a model (a poisoning, a retraining) and more than one test reads is built once per session here (`*_run`);
a test reads it and writes only under its own folder.

The whole suite runs with HOME pointed at an empty folder and the cache in a temporary one, both set before
skinart is imported (it points other libraries' folders into the cache at import); HOME must be empty at the end."""

from __future__ import annotations

import atexit
import contextlib
import csv
import os
import shutil
import tempfile
from pathlib import Path

# Once per process: a second import of this file (as `tests.conftest`, once) found HOME already ours and used to point it
# at a new folder, which the guard below, watching the first, never saw: now it keeps the folders the guard watches.
# Each pytest-xdist worker gets folders of its own (it inherits the controller's environment): the first worker to
# finish would otherwise remove the cache the other still reads.
_OWNER = os.environ.get("PYTEST_XDIST_WORKER", "main")
if os.environ.get("SKINART_SUITE_HOME") != os.environ.get("HOME") or os.environ.get("SKINART_SUITE_OWNER") != _OWNER:
    os.environ["HOME"] = os.environ["SKINART_SUITE_HOME"] = tempfile.mkdtemp(prefix="skinart-home-")
    os.environ["SKINART_CACHE"] = tempfile.mkdtemp(prefix="skinart-cache-")
    os.environ["SKINART_SUITE_OWNER"] = _OWNER
_HOME, _CACHE = Path(os.environ["HOME"]), Path(os.environ["SKINART_CACHE"])


@atexit.register
def _remove_folders() -> None:
    """The cache, and HOME when empty (the guard below fails a session that leaves anything there): in the xdist
    controller too, which runs no session fixture."""
    shutil.rmtree(_CACHE, ignore_errors=True)
    with contextlib.suppress(OSError):
        _HOME.rmdir()


for _variable in ("ART_DATA_PATH", "MPLCONFIGDIR", "TORCH_HOME", "HF_HOME"):  # skinart chooses these from the cache
    os.environ.pop(_variable, None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import invoke, write_dermamnist, write_ham10000, write_ham_subset  # noqa: E402

import skinart.toolbox  # noqa: E402, F401  ART's config into skinart's cache before any test module imports `art` itself


@pytest.fixture
def sanity_checks_afresh():
    """For a test about the gradient checks themselves (that they run, what they print, when they are reused): it starts
    as a fresh process does, without the checks other tests' evaluations ran. Every other test shares them as a recipe's
    steps do (`skinart.runs.threats._SANITY_RUN`: the same deployed model, test images, ε and seed give the same seeded
    numbers, so they run once per process)."""
    from skinart.runs import threats  # torch, timm, ART: imported by the tests that need them, not by every pytest process

    threats._SANITY_RUN.clear()


@pytest.fixture(autouse=True, scope="session")
def _nothing_under_home():
    """Nothing of skinart (nor of ART, matplotlib, torch) may land under $HOME."""
    yield
    left = sorted(str(p.relative_to(_HOME)) for p in _HOME.rglob("*"))
    shutil.rmtree(_CACHE, ignore_errors=True)
    assert left == [], f"written under $HOME: {left}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = os.environ.get("SKINART_DATA")
    if not root or not Path(root, "ham10000", "HAM10000_metadata.csv").is_file():
        pytest.skip("real data not found: set SKINART_DATA to the shared data folder (see data/README.md)")
    return Path(root)


@pytest.fixture(scope="session")
def ham_rows(shared_data) -> list[dict]:
    with open(shared_data / "ham10000" / "HAM10000_metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def ham_subset(tmp_path_factory) -> Path:
    """A generated HAM10000-layout folder (240 images of 7 classes, some lesions photographed twice)."""
    return write_ham10000(tmp_path_factory.mktemp("ham-generated"))


@pytest.fixture(scope="session")
def derma_subset(tmp_path_factory) -> Path:
    """A generated DermaMNIST-format npz (600/150/200 images at 28 px, HAM10000's class imbalance)."""
    return write_dermamnist(tmp_path_factory.mktemp("derma-generated") / "dermamnist.npz")


@pytest.fixture(scope="session")
def real_ham_subset(shared_data, ham_rows, tmp_path_factory) -> Path:
    """Whole lesions of every class of the real HAM10000, for tests that need real images."""
    root = tmp_path_factory.mktemp("ham-subset")
    write_ham_subset(ham_rows, shared_data / "ham10000" / "images_200x150", root)
    return root


@pytest.fixture(scope="session")
def real_derma_subset(shared_data, tmp_path_factory) -> Path:
    """The first samples of each official split of the real DermaMNIST-format npz, for tests that need real accuracy."""
    real = np.load(next((shared_data / "dermamnist").glob("*.npz")))
    sizes = {"train": 600, "val": 150, "test": 200}
    path = tmp_path_factory.mktemp("derma-subset") / "dermamnist.npz"
    np.savez(path, **{f"{s}_{k}": real[f"{s}_{k}"][:n] for s, n in sizes.items() for k in ("images", "labels")})
    return path


def train_cnn(data: Path, out: Path) -> Path:
    result = invoke("train", "--data", "dermamnist", "--data-root", data, "--model", "skin_cnn", "--epochs", 3,
                    "--batch-size", 32, "--lr", 3e-3, "--balance", "weights", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def trained(derma_subset, tmp_path_factory) -> Path:
    """The paper's small CNN trained for a few epochs on the generated npz (class-weighted, so it does not
    collapse onto nv and attacks have decisions to change)."""
    return train_cnn(derma_subset, tmp_path_factory.mktemp("runs") / "cnn")


@pytest.fixture(scope="session")
def real_trained(real_derma_subset, tmp_path_factory) -> Path:
    """The same CNN on the real subset, for what depends on real images (how far label-flip poisoning moves a model:
    on the generated lesions a class is too distinct for 90 % flipped labels to move it)."""
    return train_cnn(real_derma_subset, tmp_path_factory.mktemp("runs") / "real-cnn")


def _ok(*args) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.stderr[-2000:])


@pytest.fixture(scope="session")
def flip_run(trained, derma_subset, tmp_path_factory) -> Path:
    """`trained` poisoned by flipping 30 % of nv to bkl and retrained for 2 epochs: a poisoned run (test_bad_inputs' {P})
    and the uninterrupted poisoning that test_resume's interrupted one must equal."""
    out = tmp_path_factory.mktemp("runs") / "flip"
    _ok("attack", "--method", "poison-flip", "--source-class", "nv", "--target-class", "bkl", "--fraction", "0.3",
        "--retrain-epochs", 2, "--checkpoint", trained, "--data-root", derma_subset, "--device", "cpu", "--out", out)
    return out


@pytest.fixture(scope="session")
def madry_run(trained, derma_subset, tmp_path_factory) -> Path:
    """`trained` retrained by Madry's PGD training (2 epochs, 2 PGD steps at ε 2/255): a defended checkpoint (test_defences)
    and the uninterrupted training that test_resume's interrupted one must equal."""
    out = tmp_path_factory.mktemp("runs") / "madry"
    _ok("defend", "--method", "madry", "--eps", "2/255", "--max-iter", 2, "--retrain-epochs", 2, "--checkpoint", trained,
        "--data-root", derma_subset, "--device", "cpu", "--out", out)
    return out


@pytest.fixture(scope="session")
def retrain_run(trained, derma_subset, tmp_path_factory) -> Path:
    """`trained` retrained for an epoch on 40 % extra adversarial copies (FGSM and 3-step PGD): the retrained checkpoint
    that test_defences checks and combines, and test_bad_inputs' {R}."""
    out = tmp_path_factory.mktemp("runs") / "retrain"
    _ok("defend", "--method", "retrain", "--attacks", "fgsm,pgd", "--ratio", 0.4, "--retrain-epochs", 1, "--max-iter", 3,
        "--checkpoint", trained, "--data-root", derma_subset, "--device", "cpu", "--out", out)
    return out


@pytest.fixture(scope="session")
def real_flip_run(real_trained, real_derma_subset, tmp_path_factory) -> Path:
    """`real_trained` poisoned by flipping 90 % of nv to bkl and retrained for 3 epochs: how far the flip moves a model
    (test_attacks) and what the poison detectors find (test_defences)."""
    out = tmp_path_factory.mktemp("runs") / "real-flip"
    _ok("attack", "--method", "poison-flip", "--source-class", "nv", "--target-class", "bkl", "--fraction", 0.9,
        "--retrain-epochs", 3, "--checkpoint", real_trained, "--data-root", real_derma_subset, "--device", "cpu", "--out", out)
    return out


def pytest_collection_modifyitems(items):
    """Modules with a test marked slow first, in file order otherwise: under `make test`'s two workers (pytest-xdist,
    a module to a worker, `--no-loadscope-reorder`) the long end-to-end modules, the README's above all, start at once
    instead of after the many short ones, so both workers end together."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
