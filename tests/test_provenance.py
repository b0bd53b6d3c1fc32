"""A checkpoint's data: recorded (loader, root, fingerprint, training ids), used by default and verified by every
later command; other data only as an explicit external evaluation (every image test)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import invoke, lesion_images, write_ham10000, write_ham_subset
from skinart.data import CLASSES


def refused(result, out: Path, *fragments: str) -> None:
    """A bad input: exit code 2, one line on stderr naming the problem and the fix, nothing written."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.partial-*"))


def evaluate(checkpoint: Path, out: Path, *args):
    return invoke("evaluate", "--checkpoint", checkpoint, "--out", out, "--device", "cpu", *args)


def predicted_ids(run: Path) -> list[str]:
    with np.load(run / "predictions.npz") as f:
        return f["ids"].tolist()


@pytest.fixture(scope="module")
def ham_trained(ham_subset, tmp_path_factory) -> Path:
    """skin_cnn trained for one epoch on the HAM10000 subset at 28 px."""
    out = tmp_path_factory.mktemp("ham-runs") / "cnn"
    result = invoke("train", "--data", "ham10000", "--data-root", ham_subset, "--model", "skin_cnn", "--img-size", 28,
                    "--epochs", 1, "--batch-size", 32, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def ham_eval(ham_trained, ham_subset) -> Path:
    """The checkpoint evaluated on its test split with the root given explicitly."""
    out = ham_trained.parent / "eval-root"
    result = evaluate(ham_trained, out, "--data-root", ham_subset)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def external_folder(tmp_path_factory) -> Path:
    """A `folder`-layout dataset of only mel and nv: generated lesions under ids the HAM10000 folder does not hold."""
    root = tmp_path_factory.mktemp("external")
    rng = np.random.default_rng(1)
    labels = np.repeat([CLASSES.index("mel"), CLASSES.index("nv")], [6, 10])
    for i, (label, image) in enumerate(zip(labels, lesion_images(labels, 36, 48, rng))):
        (root / CLASSES[label]).mkdir(exist_ok=True)
        Image.fromarray(image).save(root / CLASSES[label] / f"ISIC_{8000000 + i:07d}.jpg", quality=95)
    return root


@pytest.mark.slow
def test_checkpoint_records_its_data_and_training_ids(ham_trained, ham_subset, ham_eval):
    meta = json.loads((ham_trained / "skinart.json").read_text())
    data = meta["data"]
    assert data["name"] == "ham10000" and data["root"] == str(ham_subset.resolve())
    assert data["img_size"] == 28 and data["resize"] == "crop" and data["split_ratios"] == [0.7, 0.15, 0.15] and data["seed"] == 0
    assert len(data["source_fingerprint"]) == 16
    assert meta["train_ids"] == "train_ids.json"
    train_ids = json.loads((ham_trained / "train_ids.json").read_text())
    assert train_ids == sorted(set(train_ids)) and len(train_ids) > 100
    assert not set(train_ids) & set(predicted_ids(ham_eval))


@pytest.mark.slow
def test_evaluate_without_data_root_uses_the_recorded_data(ham_trained, ham_eval, tmp_path, monkeypatch):
    """$SKINART_DATA points at other HAM10000 data; the checkpoint's own root wins, so the test split is the same."""
    write_ham10000(tmp_path / "elsewhere" / "ham10000", n=120, seed=1)
    monkeypatch.setenv("SKINART_DATA", str(tmp_path / "elsewhere"))
    out = tmp_path / "eval"
    result = evaluate(ham_trained, out)
    assert result.exit_code == 0, result.output
    assert predicted_ids(out) == predicted_ids(ham_eval)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["external"] is False and metrics["data"]["split"] == "test"
    assert metrics["data"]["source_fingerprint"] == json.loads((ham_trained / "skinart.json").read_text())["data"]["source_fingerprint"]


@pytest.mark.slow
def test_a_copy_of_the_data_has_the_same_fingerprint(ham_trained, ham_subset, ham_eval, tmp_path):
    """Fingerprints ignore where the files lie and their times: a copy elsewhere is the same data."""
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(ham_subset / "HAM10000_metadata.csv", copy)
    (copy / "images").mkdir()
    for image in (ham_subset / "images").iterdir():
        (copy / "images" / image.name).symlink_to(image.resolve())
    result = evaluate(ham_trained, tmp_path / "eval", "--data-root", copy)
    assert result.exit_code == 0, result.output
    assert predicted_ids(tmp_path / "eval") == predicted_ids(ham_eval)


@pytest.mark.slow
def test_other_data_are_refused_without_external(ham_trained, ham_subset, derma_subset, tmp_path):
    other = tmp_path / "other"
    with open(ham_subset / "HAM10000_metadata.csv", newline="") as f:
        write_ham_subset(list(csv.DictReader(f)), ham_subset / "images", other, per_class=10)
    out = tmp_path / "out" / "eval"
    refused(evaluate(ham_trained, out, "--data-root", other), out, "are not the ham10000 data", "--external")
    refused(evaluate(ham_trained, out, "--data", "dermamnist", "--data-root", derma_subset), out, "are not the ham10000 data",
            "--external")
    # the smaller subset holds images the checkpoint trained on: not a test set, even as external data
    refused(evaluate(ham_trained, out, "--data-root", other, "--external"), out, "are training images of")


@pytest.mark.slow
def test_external_evaluation_on_a_folder_of_images(ham_trained, external_folder, tmp_path):
    out = tmp_path / "ext"
    result = evaluate(ham_trained, out, "--external", "--data", "folder", "--data-root", external_folder)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["external"] is True
    assert metrics["data"] == {"name": "folder", "root": str(external_folder.resolve()), "img_size": 28, "resize": "crop",
                               "source_fingerprint": metrics["data"]["source_fingerprint"], "split": "all"}
    assert sum(map(sum, metrics["confusion_matrix"])) == 16  # every image, none split off
    assert {c: v["support"] for c, v in metrics["per_class"].items() if v["support"]} == {"mel": 6, "nv": 10}
    assert len(predicted_ids(out)) == 16
    # the same call without --external is refused, as are --external on the checkpoint's own data and with a split
    for args, fragment in (([], "--external"), (["--external"], "in-distribution"), (["--external", "--split", "val"], "drop --split"),
                           (["--external", "--attack", "fgsm"], "drop --attack")):
        bad = tmp_path / "bad" / "eval"
        data = ["--data", "folder", "--data-root", external_folder] if args != ["--external"] else []
        refused(evaluate(ham_trained, bad, *data, *args), bad, fragment)


@pytest.mark.slow
def test_training_ids_among_the_test_ids_are_refused(ham_trained, ham_eval, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(ham_trained, tampered)
    ids = json.loads((tampered / "train_ids.json").read_text())
    (tampered / "train_ids.json").write_text(json.dumps(ids[:-1] + predicted_ids(ham_eval)[:1]))
    out = tmp_path / "out" / "eval"
    refused(evaluate(tampered, out), out, "1 of the", "are training images of", "retrain")
    (tampered / "train_ids.json").unlink()
    refused(evaluate(tampered, out), out, "train_ids.json", "restore it or retrain")


@pytest.mark.slow
def test_a_checkpoint_from_before_provenance_still_evaluates(ham_trained, ham_subset, ham_eval, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(ham_trained, old)
    meta = json.loads((old / "skinart.json").read_text())
    meta["data"] = {k: v for k, v in meta["data"].items() if k not in ("root", "source_fingerprint")}
    meta["data"]["fingerprint"] = "0123456789abcdef"  # what it recorded then: a hash over file times, never reproducible
    del meta["train_ids"]
    (old / "skinart.json").write_text(json.dumps(meta))
    result = evaluate(old, tmp_path / "eval", "--data-root", ham_subset)
    assert result.exit_code == 0, result.output
    assert "cannot be verified" in result.stderr
    assert predicted_ids(tmp_path / "eval") == predicted_ids(ham_eval)


@pytest.mark.slow
def test_report_labels_external_rows(ham_trained, external_folder, tmp_path):
    recipe = {"name": "external", "seed": 0, "steps": [
        {"name": "own", "command": "evaluate", "params": {"checkpoint": str(ham_trained), "device": "cpu"}},
        {"name": "ext", "command": "evaluate", "params": {"checkpoint": str(ham_trained), "external": True, "data": "folder",
                                                          "data_root": str(external_folder), "device": "cpu"}},
        {"name": "report", "command": "report", "params": {"bootstrap": 0}},
    ]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = invoke("run", tmp_path / "r.yaml", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    rows = {r["task"]: r for r in json.loads((tmp_path / "run" / "report.json").read_text())["rows"]}
    assert rows["own"]["threat"] == "—" and rows["ext"]["threat"] == "external data: folder"
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| ext | cnn | clean | external data: folder |" in md
    assert "clean (external data: folder)" in md  # its own column beside the in-distribution one
