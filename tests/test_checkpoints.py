"""The checkpoint object: skinart.json read once per checkpoint a run involves, weights verified against their recorded
sha256 whenever they are loaded, metadata that skinart did not write refused in one line."""

from __future__ import annotations

import builtins
import io
import json
import shutil

import pytest

from skinart.models.checkpoint import Checkpoint
from skinart.rundir import META_FILE, WEIGHTS_FILE

from helpers import invoke


@pytest.fixture
def meta_reads(monkeypatch):
    """Counts every opening of a skinart.json for reading, whichever way it is opened (open, Path.read_text)."""
    reads = []
    real_open = io.open

    def counting_open(file, mode="r", *args, **kwargs):
        if str(file).endswith(META_FILE) and not any(m in mode for m in "wax+"):
            reads.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return reads


@pytest.fixture
def retrained(trained, tmp_path):
    """A checkpoint marked as retrained (same weights): what `defend --method combined` takes, without the training."""
    out = tmp_path / "retrained"
    out.mkdir()
    Checkpoint.load(trained).derive(out, defence={"method": "retrain", "source": str(trained.resolve())})
    return out


def test_combined_reads_its_one_checkpoint_once(retrained, derma_subset, tmp_path, meta_reads):
    result = invoke("defend", "--method", "combined", "--retrained", retrained, "--data-root", derma_subset,
                    "--out", tmp_path / "combined", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert meta_reads == [str(retrained / META_FILE)]
    assert Checkpoint.load(tmp_path / "combined").meta.preprocessing[0]["name"] == "llt"


def test_a_transfer_attack_reads_each_of_its_two_checkpoints_once(trained, retrained, derma_subset, tmp_path, meta_reads):
    result = invoke("attack", "--method", "fgsm", "--checkpoint", retrained, "--source-checkpoint", trained,
                    "--data-root", derma_subset, "--max-samples", 20, "--out", tmp_path / "transfer", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert sorted(meta_reads) == sorted([str(retrained / META_FILE), str(trained / META_FILE)])


def test_weights_changed_after_writing_are_refused_naming_both_hashes(trained, derma_subset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    weights = bytearray((copy / WEIGHTS_FILE).read_bytes())
    weights[-1] ^= 0xFF  # one flipped byte of the last tensor: still a readable file, other weights
    (copy / WEIGHTS_FILE).write_bytes(bytes(weights))
    recorded = json.loads((copy / META_FILE).read_text())["weights_sha256"]
    before = sorted(p.name for p in copy.iterdir())
    result = invoke("attack", "--method", "fgsm", "--checkpoint", copy, "--data-root", derma_subset, "--max-samples", 10,
                    "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(copy / WEIGHTS_FILE) in lines[0] and recorded[:16] in lines[0], result.stderr
    assert not (tmp_path / "out").exists() and sorted(p.name for p in copy.iterdir()) == before


def test_metadata_without_its_weights_hash_is_refused_in_one_line(trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    meta = json.loads((copy / META_FILE).read_text())
    del meta["weights_sha256"]
    (copy / META_FILE).write_text(json.dumps(meta))
    result = invoke("evaluate", "--checkpoint", copy, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 2 and "lacks weights_sha256" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_metadata_round_trips_unknown_keys(trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    meta = json.loads((copy / META_FILE).read_text())
    (copy / META_FILE).write_text(json.dumps({**meta, "written_by_a_newer_skinart": [1, 2]}))
    out = tmp_path / "derived"
    out.mkdir()
    derived = Checkpoint.load(copy).derive(out, preprocessing=({"name": "llt", "quality": 60},))
    again = json.loads((out / META_FILE).read_text())
    assert again["written_by_a_newer_skinart"] == [1, 2] and again["weights_sha256"] == meta["weights_sha256"]
    assert again["preprocessing"] == [{"name": "llt", "quality": 60}] and derived.meta == Checkpoint.load(out).meta
