"""On a CUDA GPU (benchmarks/gpu_check.sh runs these with `pytest -m cuda`): the attacks' gradients under bf16 and fp16,
and deterministic reruns. Skipped, with the reason, where torch sees no GPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import invoke

from skinart.training.batches import TrainBatches
from skinart.models.checkpoint import Checkpoint
from skinart.attacks.loops import one_hot
from skinart.data import Split, to_model_input
from skinart.models.provenance import checkpoint_dataset
from skinart.models.build import network
from skinart.defences.deployed import deployed

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                   reason="needs a CUDA GPU (torch sees none); run benchmarks/gpu_check.sh on one")]
EPS = 4 / 255


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_attack_gradients_are_finite_and_nonzero_at_low_precision(trained, derma_subset, precision):
    checkpoint = Checkpoint.load(trained)
    test = checkpoint_dataset(checkpoint, data_root=str(derma_subset)).splits["test"]
    x, y = to_model_input(test.images[:64]), one_hot(test.labels[:64], len(checkpoint.classes))
    gradients = deployed(checkpoint, "cuda", precision=precision).loss_gradient(x, y)
    assert np.isfinite(gradients).all() and (np.abs(gradients).sum(axis=(1, 2, 3)) > 0).all()


def _run(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output


@pytest.fixture
def deterministic_off_after():
    yield
    torch.use_deterministic_algorithms(False)  # the runs switched it on for this process


def test_deterministic_reruns_give_the_same_weights_and_adversarials(derma_subset, tmp_path, deterministic_off_after):
    for name in ("a", "b"):
        _run("train", "--data-root", derma_subset, "--model", "resnet18", "--epochs", 2, "--augment", "full",
             "--precision", "bf16", "--deterministic", "--device", "cuda", "--out", tmp_path / name)
        _run("attack", "--method", "pgd", "--checkpoint", tmp_path / name, "--data-root", derma_subset, "--max-samples", 64,
             "--deterministic", "--device", "cuda", "--out", tmp_path / f"{name}-pgd")
    a, b = (network(Checkpoint.load(tmp_path / name)).state_dict() for name in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    adversarial = [np.load(tmp_path / f"{name}-pgd" / "adversarial.npz") for name in ("a", "b")]
    assert all(np.array_equal(adversarial[0][k], adversarial[1][k]) for k in adversarial[0].files)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["deterministic"] and config["device"] == torch.cuda.get_device_name() and config["cudnn"]


def test_training_batches_reach_the_gpu_as_float_from_pinned_uint8_and_workers():
    rng = np.random.default_rng(0)
    split = Split(images=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), labels=np.arange(64) % 7,
                  groups=np.arange(64), ids=np.arange(64).astype(str))
    batches = TrainBatches(split, np.arange(64), "rotate", 32, 7, batch_size=16, seed=0, device="cuda")
    assert batches.num_workers > 0 and batches.pin_memory and batches.persistent_workers
    for _ in range(2):  # the same loader, and its workers, serve every epoch
        got = list(batches.epoch().iterator)
        assert len(got) == 4
        assert all(x.is_cuda and x.dtype == torch.float32 and y.is_cuda and y.shape == (16, 7) for x, y in got)
        assert all(0 <= float(x.min()) and float(x.max()) <= 1 for x, _ in got)
