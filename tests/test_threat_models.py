"""The adaptive attacker through every preprocessing defence: it differentiates through the deployed chain (BPDA), with
EOT over flips only where ART can run it (a chain wholly in PyTorch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skinart.checkpoints import Checkpoint
from skinart.preprocessing import PREPROCESSOR_DEFAULTS, EoTFlips, adaptive_chain
from skinart.rundir import ADVERSARIAL_FILE, METRICS_FILE

from tests.conftest import invoke


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
