"""The training loop's bookkeeping: what history.json records is what the network trained on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from skinart.training.batches import AUGMENTATIONS, TrainBatches
from skinart.data import Split
from skinart.models.networks import create_model, data_config, wrap
from skinart.runs.retrain import madry_trainer
from skinart.training.loop import _LoggedLoss


def test_madry_train_loss_counts_training_steps_not_the_attack_s_loss_evaluations():
    """Madry's trainer runs PGD (max_iter loss evaluations with gradients, network in eval mode) before each training
    step; only the training step's loss belongs in the epoch's train_loss (it once also took the 5 PGD losses)."""
    torch.manual_seed(0)
    net = create_model("skin_cnn")
    mean, std = data_config(net)
    loss = _LoggedLoss(net)
    classifier = wrap(net, 28, mean, std, "cpu", loss=loss, optimizer=torch.optim.SGD(net.parameters(), lr=0.01))
    x = np.random.default_rng(0).random((16, 3, 28, 28), dtype=np.float32)
    y = np.eye(7, dtype=np.float32)[np.arange(16) % 7]
    trainer = madry_trainer({"max_iter": 5, "eps": 2 / 255, "eps_step": 1 / 255})(classifier)
    trainer.fit(x, y, nb_epochs=1, batch_size=8)
    assert loss.steps == 2  # two batches of 8: two training steps


def _split(n: int = 40, size: int = 16):
    rng = np.random.default_rng(0)
    return Split(images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), labels=np.arange(n) % 7,
                 groups=np.arange(n), ids=np.arange(n).astype(str))


def test_one_loader_for_the_whole_training_draws_as_a_loader_per_epoch_did():
    """The pipeline keeps one DataLoader for every epoch and converts uint8 batches after batching; on CPU its
    shuffles and augmentations must be those of the loader rebuilt every epoch, from the same generator, that converted
    each image to float in the dataset (the code before it), so a seed trains to the same weights."""
    split, indices = _split(), np.arange(40)
    torch.manual_seed(3)
    batches = TrainBatches(split, indices, "full", 16, 7, batch_size=16, seed=5, device="cpu")
    ours = [[(x.clone(), y.clone()) for x, y in batches.epoch().iterator] for _ in range(2)]
    transform, generator, eye = v2.Compose(AUGMENTATIONS["full"](16)), torch.Generator().manual_seed(5), torch.eye(7)

    class Converted(torch.utils.data.Dataset):  # the old dataset: float conversion per image, one-hot labels
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return (transform(torch.from_numpy(split.images[i]).permute(2, 0, 1)).float().div_(255), eye[split.labels[i]])

    torch.manual_seed(3)
    theirs = [list(DataLoader(Converted(), batch_size=16, shuffle=True, generator=generator, drop_last=True)) for _ in range(2)]
    assert [len(e) for e in ours] == [2, 2]
    for epoch_ours, epoch_theirs in zip(ours, theirs):
        for (x, y), (x_old, y_old) in zip(epoch_ours, epoch_theirs):
            assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
            assert torch.equal(x, x_old) and torch.equal(y, y_old)
    assert not torch.equal(ours[0][0][0], ours[1][0][0])  # a new shuffle and new draws every epoch


def test_the_loss_is_read_once_an_epoch_as_the_mean_of_its_steps():
    torch.manual_seed(0)
    net = create_model("skin_cnn").train()
    loss = _LoggedLoss(net)
    logits, target = torch.randn(3, 8, 7, requires_grad=True), torch.randint(0, 7, (3, 8))
    values = [float(loss(logits[i], target[i]).detach()) for i in range(3)]
    assert loss.epoch_mean() == pytest.approx(np.mean(values), rel=1e-12)
    assert loss.steps == 0 and np.isnan(loss.epoch_mean())  # the next epoch starts from nothing
