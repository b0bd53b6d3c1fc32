"""The adaptive attacker through every preprocessing defence: it differentiates through the deployed chain (BPDA), with
EOT over flips only where ART can run it (a chain wholly in PyTorch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skinart.attacks import build
from skinart.checkpoints import Checkpoint
from skinart.models import wrap
from skinart.preprocessing import PREPROCESSOR_DEFAULTS, EoTFlips, adaptive_chain
from skinart.rundir import ADVERSARIAL_FILE, METRICS_FILE

from helpers import invoke


@pytest.mark.parametrize("defence", ["jpeg", "smoothing", "squeeze"])
def test_the_adaptive_attacker_runs_through_numpy_preprocessors(trained, derma_subset, tmp_path, defence):
    """jpeg, smoothing and squeeze are ART numpy preprocessors: EOT (a PyTorch preprocessor) cannot join them, and
    once did, crashing the first prediction with NotImplementedError."""
    defended = tmp_path / defence
    defended.mkdir()
    entry = {"name": defence, **PREPROCESSOR_DEFAULTS}
    Checkpoint.load(trained).derive(defended, preprocessing=(entry,), defence={"method": defence, "source": str(trained)})
    assert not any(isinstance(p, EoTFlips) for p in adaptive_chain([entry]))
    result = invoke("attack", "--method", "fgsm", "--eps", "8/255", "--checkpoint", defended, "--threat", "adaptive",
                    "--data-root", derma_subset, "--max-samples", 16, "--out", tmp_path / "attack", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "attack" / METRICS_FILE).read_text())
    assert metrics["threat_model"] == "adaptive" and 0 < metrics["linf_max"] <= 8 / 255 + 1e-6
    saved = np.load(tmp_path / "attack" / ADVERSARIAL_FILE)
    assert saved["adversarial"].shape[0] == 16


def test_webp_flip_gets_eot_over_flips():
    chain = adaptive_chain([{"name": "llt", **PREPROCESSOR_DEFAULTS}])
    assert isinstance(chain[-1], EoTFlips) and len(chain) == 2
    assert len(adaptive_chain([{"name": "llt", **PREPROCESSOR_DEFAULTS}], eot=False)) == 1


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_eot_does_not_multiply_the_batch_the_model_sees(method):
    """EOT repeats each image of a batch once per sample: the attack's batch is divided by the samples, so the model
    sees at most the batch asked for (128 rows, not 512: at 224 px the difference is tens of GB)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    net.num_classes = 3
    classifier = wrap(net, 8, (0.5,) * 3, (0.25,) * 3, device="cpu", preprocessing_defences=[EoTFlips(nb_samples=4)])
    rows = []
    net.register_forward_hook(lambda _module, inputs, _output: rows.append(len(inputs[0])))
    attack = build(method, classifier, {"eps": 8 / 255}, {"batch_size": 128, "max_iter": 2} if method == "pgd" else {"batch_size": 128})
    x = np.random.default_rng(0).random((300, 3, 8, 8), dtype=np.float32)
    adv = attack.generate(x, np.eye(3, dtype=np.float32)[np.arange(300) % 3])
    assert attack.batch_size == 32 and max(rows) == 128
    assert np.abs(adv - x).max() <= 8 / 255 + 1e-6 and np.abs(adv - x).max() > 0
