"""Shared fixtures. Tests that need the real data read SKINART_DATA and skip cleanly without it.

The whole suite runs with HOME pointed at an empty folder and the cache in a temporary one, both set before
skinart is imported (it points other libraries' folders into the cache at import); HOME must be empty at the end."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="skinart-home-"))
_CACHE = Path(tempfile.mkdtemp(prefix="skinart-cache-"))
os.environ.update(HOME=str(_HOME), SKINART_CACHE=str(_CACHE))
for _variable in ("ART_DATA_PATH", "MPLCONFIGDIR", "TORCH_HOME", "HF_HOME"):  # skinart chooses these from the cache
    os.environ.pop(_variable, None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from skinart.cli import app  # noqa: E402


def invoke(*args):
    """Run the skinart command in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, [str(a) for a in args])


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


def write_ham_subset(rows: list[dict], images: Path, target: Path, per_class: int = 30) -> list[dict]:
    """A HAM10000-layout folder with whole lesions of every class (images linked, not copied)."""
    chosen, count = [], {}
    by_lesion: dict[str, list[dict]] = {}
    for r in rows:
        by_lesion.setdefault(r["lesion_id"], []).append(r)
    for lesion_rows in by_lesion.values():
        dx = lesion_rows[0]["dx"]
        if count.get(dx, 0) < per_class:
            chosen += lesion_rows
            count[dx] = count.get(dx, 0) + len(lesion_rows)
    (target / "images").mkdir(parents=True)
    for r in chosen:
        (target / "images" / f"{r['image_id']}.jpg").symlink_to(images / f"{r['image_id']}.jpg")
    with open(target / "HAM10000_metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return chosen


@pytest.fixture(scope="session")
def ham_subset(shared_data, ham_rows, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ham-subset")
    write_ham_subset(ham_rows, shared_data / "ham10000" / "images_200x150", root)
    return root


@pytest.fixture(scope="session")
def derma_subset(shared_data, tmp_path_factory) -> Path:
    """The first samples of each official split of the real DermaMNIST-format npz."""
    real = np.load(next((shared_data / "dermamnist").glob("*.npz")))
    sizes = {"train": 600, "val": 150, "test": 200}
    path = tmp_path_factory.mktemp("derma-subset") / "dermamnist.npz"
    np.savez(path, **{f"{s}_{k}": real[f"{s}_{k}"][:n] for s, n in sizes.items() for k in ("images", "labels")})
    return path


@pytest.fixture(scope="session")
def trained(derma_subset, tmp_path_factory) -> Path:
    """The paper's small CNN trained for a few epochs on the real subset (class-weighted, so it does not
    collapse onto nv and attacks have decisions to change)."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    result = invoke("train", "--data", "dermamnist", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 3,
                    "--batch-size", 32, "--lr", 3e-3, "--balance", "weights", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out
