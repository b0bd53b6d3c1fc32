"""Training batches: augmentation per image on the batch's device, and the same training whatever loads the batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import skinart.batches
from skinart.batches import AUGMENTATIONS, augment
from skinart.data import load_dataset
from skinart.training import TrainConfig, _LoggedLoss, train


def _same_image(n: int = 16, side: int = 28) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).repeat(n, 1, 1, 1)


@pytest.mark.parametrize("name", ["flip", "rotate", "full"])
def test_each_image_draws_its_own_augmentation_and_a_seed_repeats_them(name):
    x = _same_image()
    out = augment(x, AUGMENTATIONS[name], torch.Generator().manual_seed(1))
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) >= (4 if name == "flip" else 16)  # flips: 4 views in all; a rotation: one per image
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, augment(x, AUGMENTATIONS[name], torch.Generator().manual_seed(1)))


def test_flips_are_exact_pixel_flips():
    x = torch.rand(32, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    out = augment(x, AUGMENTATIONS["flip"], torch.Generator().manual_seed(1))
    views = [lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.flip(-1).flip(-2)]
    assert all(any(torch.equal(o, view(i)) for view in views) for o, i in zip(out, x))


def test_the_epoch_loss_is_the_mean_of_the_training_steps_read_once():
    net = torch.nn.Linear(4, 3)
    loss = _LoggedLoss(net)
    x, y = torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8))
    steps = [loss(net(x[i]), y[i]).item() for i in range(2)]
    assert loss.steps == 2
    assert loss.epoch_mean() == pytest.approx(np.mean(steps), rel=1e-6)
    assert loss.steps == 0  # the next epoch starts afresh


@pytest.fixture(scope="module")
def small(derma_subset):
    return load_dataset("dermamnist", derma_subset)


def _trained(dataset, tmp_path, workers: int, monkeypatch) -> tuple[list[dict], dict]:
    monkeypatch.setattr(skinart.batches, "loader_workers", lambda device: workers)
    cfg = TrainConfig(model="skin_cnn", epochs=2, batch_size=64, augment="full", seed=3)
    result = train(dataset, cfg, tmp_path / f"w{workers}", device="cpu")
    history = [{k: v for k, v in record.items() if k != "seconds"} for record in result["history"]]
    return history, result["checkpoint"].network().state_dict()


def test_a_training_is_the_same_numbers_with_any_number_of_loader_workers(small, tmp_path, monkeypatch):
    history, weights = _trained(small, tmp_path, 0, monkeypatch)
    history_2, weights_2 = _trained(small, tmp_path, 2, monkeypatch)
    assert history == history_2
    assert all(torch.equal(weights[k], weights_2[k]) for k in weights)
