"""A training interrupted after an epoch resumes from the run's resume folder when the same command runs again, to the
same numbers, bit for bit, as a training never interrupted (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import invoke

import skinart.training.batches
from skinart.models.checkpoint import Checkpoint
from skinart.rundir import RESUME_FILE, RunOptions
from skinart.runs.train import train_run
from skinart.training.loop import TrainConfig
from skinart.models.build import network

CFG = dict(model="skin_cnn", epochs=2, batch_size=64, lr=3e-3, augment="full", balance="oversample", seed=1)


def _numbers(out) -> tuple[list[dict], dict]:
    history = [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((out / "history.json").read_text())]
    return history, network(Checkpoint.load(out)).state_dict()


def _machine_lost_at_epoch(monkeypatch, epoch: int) -> list:
    """Every epoch started from now on, counted; the `epoch`-th fails (the machine goes away as it starts)."""
    started, whole_epoch = [], skinart.training.batches.TrainBatches.epoch

    def counted(self):
        started.append(1)
        if len(started) == epoch:
            raise RuntimeError("injected failure")
        return whole_epoch(self)

    monkeypatch.setattr(skinart.training.batches.TrainBatches, "epoch", counted)
    return started


def _same_as_uninterrupted(runs, whole) -> None:
    history, weights = _numbers(runs / "cut")
    whole_history, whole_weights = _numbers(whole)
    assert history == whole_history
    assert all(torch.equal(weights[k], whole_weights[k]) for k in whole_weights)
    assert list(runs.iterdir()) == [runs / "cut"]  # the resume folder is gone once done


@pytest.mark.slow
def test_a_training_interrupted_after_an_epoch_resumes_to_the_numbers_of_one_never_interrupted(derma_subset, tmp_path,
                                                                                               monkeypatch):
    options = RunOptions(data="dermamnist", data_root=str(derma_subset), device="cpu")
    train_run(TrainConfig(**CFG), tmp_path / "whole", options)
    started = _machine_lost_at_epoch(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="injected failure"):
        train_run(TrainConfig(**CFG), tmp_path / "runs" / "cut", options)
    kept = list((tmp_path / "runs").glob(".cut.resume-*"))
    assert len(kept) == 1 and (kept[0] / RESUME_FILE).is_file() and not (tmp_path / "runs" / "cut").exists()
    train_run(TrainConfig(**CFG), tmp_path / "runs" / "cut", options)  # the same command again
    assert len(started) == 3  # the rerun trained epoch 2 only
    _same_as_uninterrupted(tmp_path / "runs", tmp_path / "whole")


@pytest.mark.slow
@pytest.mark.parametrize("command, whole", [
    (("attack", "--method", "poison-flip", "--source-class", "nv", "--target-class", "bkl", "--fraction", "0.3"), "flip_run"),
    (("defend", "--method", "madry", "--eps", "2/255", "--max-iter", "2"), "madry_run"),
], ids=["poison", "madry"])
def test_a_retraining_interrupted_after_an_epoch_resumes_to_the_numbers_of_one_never_interrupted(trained, derma_subset, tmp_path,
                                                                                                 monkeypatch, request, command, whole):
    """Poisoning and Madry's adversarial training retrain for as many epochs as a training: they resume the same way. The
    uninterrupted run is the session's (conftest: the same command, 2 epochs), which other tests read as well."""
    args = (*command, "--retrain-epochs", 2, "--checkpoint", trained, "--data-root", derma_subset, "--device", "cpu")
    whole = request.getfixturevalue(whole)
    started = _machine_lost_at_epoch(monkeypatch, 2)
    assert invoke(*args, "--out", tmp_path / "runs" / "cut").exit_code != 0
    assert len(list((tmp_path / "runs").glob(".cut.resume-*"))) == 1
    resumed = invoke(*args, "--out", tmp_path / "runs" / "cut")
    assert resumed.exit_code == 0 and "resuming after epoch 1" in resumed.stderr, resumed.stderr
    assert len(started) == 3  # the rerun trained epoch 2 only
    _same_as_uninterrupted(tmp_path / "runs", whole)


@pytest.mark.slow
def test_a_changed_option_keeps_the_earlier_progress_until_the_new_run_has_an_epoch(derma_subset, tmp_path, monkeypatch):
    """Two epochs of a training are kept while a run with one option changed fails before its first epoch ends (one line
    says where they are); once the new run has an epoch of its own, they go."""
    args = ("train", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 3, "--device", "cpu", "--out", tmp_path / "run")

    def lost_at_epoch(epoch: int, *changed):
        with monkeypatch.context() as patched:
            _machine_lost_at_epoch(patched, epoch)
            result = invoke(*args, *changed)
        assert "injected failure" in str(result.exception), result.output
        return result

    lost_at_epoch(3)  # two epochs finished
    [earlier] = tmp_path.glob(".run.resume-*")
    changed = lost_at_epoch(1, "--lr", "0.002")
    assert (earlier / RESUME_FILE).is_file()
    said = [line for line in changed.stderr.splitlines() if str(earlier) in line]
    assert len(said) == 1 and "different config" in said[0] and "starts afresh" in said[0], changed.stderr
    lost_at_epoch(2, "--lr", "0.002")  # its first epoch finished
    assert not earlier.exists() and len(list(tmp_path.glob(".run.resume-*"))) == 1
