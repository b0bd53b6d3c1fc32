"""The training loop's bookkeeping: what history.json records is what the network trained on."""

from __future__ import annotations

import numpy as np
import torch

from skinart.models import create_model, data_config, wrap
from skinart.runs.retrain import madry_trainer
from skinart.training import _LoggedLoss


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
