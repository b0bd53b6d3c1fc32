"""The adaptive attacker through every preprocessing defence: it differentiates through the deployed chain (BPDA), with
EOT over flips only where ART can run it (a chain wholly in PyTorch)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from skinart.attacks.factories import build
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import wrap
from skinart.defences.preprocessors import EoTFlips, adaptive_chain
from skinart.defences.table import PREPROCESSOR_DEFAULTS
from skinart.rundir import ADVERSARIAL_FILE, METRICS_FILE
from skinart.runs import attack as attack_run_module
from skinart.runs import threats

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


def test_threat_models_whose_attacker_is_the_same_craft_once(trained, derma_subset, tmp_path, monkeypatch):
    """llt keeps its source's weights, so its white-box (oblivious) and transfer attackers differentiate the same network:
    the images are crafted once and scored twice, with the numbers a transfer attack run on its own gives."""
    llt = tmp_path / "llt"
    llt.mkdir()
    # the entry `defend --method llt` writes (so an evaluation of another llt copy of `trained` shares its gradient checks)
    Checkpoint.load(trained).derive(llt, preprocessing=({"name": "llt", **PREPROCESSOR_DEFAULTS},), defence={"method": "llt", "source": str(trained)})
    craftings = []
    craft = attack_run_module._craft
    monkeypatch.setattr(attack_run_module, "_craft", lambda *a, **k: craftings.append(a[0].method) or craft(*a, **k))
    budget = ("--eps", "8/255", "--eps-step", "2/255", "--max-iter", 3, "--data-root", derma_subset, "--device", "cpu")
    result = invoke("evaluate", "--checkpoint", llt, "--attack", "pgd", "--threat", "all", "--source-checkpoint", trained,
                    "--max-samples", 24, *budget, "--out", tmp_path / "threats")
    assert result.exit_code == 0, result.stderr
    assert len(craftings) == 2  # white-box (= transfer) and adaptive
    runs = {t: json.loads((tmp_path / "threats" / t / METRICS_FILE).read_text()) for t in ("white-box", "transfer", "adaptive")}
    assert runs["transfer"]["same_images_as"] == "white-box" and "same_images_as" not in runs["adaptive"]
    alone = invoke("attack", "--method", "pgd", "--checkpoint", llt, "--source-checkpoint", trained, "--threat", "transfer",
                   "--max-samples", 24, *budget, "--out", tmp_path / "transfer")
    assert alone.exit_code == 0, alone.stderr
    single = json.loads((tmp_path / "transfer" / METRICS_FILE).read_text())
    assert single["adversarial"] == runs["transfer"]["adversarial"] and single["linf_max"] == runs["transfer"]["linf_max"]
    assert np.array_equal(np.load(tmp_path / "transfer" / ADVERSARIAL_FILE)["adversarial"],
                          np.load(tmp_path / "threats" / "transfer" / ADVERSARIAL_FILE)["adversarial"])


def test_the_same_gradient_checks_in_one_process_run_once(trained, derma_subset, tmp_path, monkeypatch, sanity_checks_afresh):
    """A recipe evaluates one model at one ε in several steps (the quickstart: the worst case over FGSM and PGD, then
    with AutoAttack): the seeded gradient checks are the same numbers, so the second step reuses the first's and says
    so; another ε runs its own."""
    calls = []
    checks = threats.gradient_checks
    monkeypatch.setattr(threats, "gradient_checks", lambda *a, **k: calls.append(a[3]) or checks(*a, **k))
    budget = ("--checkpoint", trained, "--threat", "white-box", "--max-iter", 2, "--max-samples", 16, "--data-root", derma_subset,
              "--device", "cpu")
    first = invoke("evaluate", "--attack", "fgsm,pgd", "--eps", "8/255", *budget, "--out", tmp_path / "worst")
    second = invoke("evaluate", "--attack", "pgd", "--eps", "8/255", *budget, "--out", tmp_path / "pgd")
    other = invoke("evaluate", "--attack", "pgd", "--eps", "4/255", *budget, "--out", tmp_path / "pgd4")
    assert first.exit_code == second.exit_code == other.exit_code == 0, first.stderr + second.stderr + other.stderr
    assert calls == [8 / 255, 4 / 255]
    assert f"sanity checks: those run for {tmp_path / 'worst'} (the same deployed model" in second.stderr
    sanity = {name: json.loads((tmp_path / name / METRICS_FILE).read_text())["sanity"] for name in ("worst", "pgd")}
    gradient = ("unbounded", "more_steps", "noise", "eps_monotone")
    assert all(sanity["pgd"][c] == sanity["worst"][c] for c in gradient), sanity
