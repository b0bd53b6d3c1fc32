"""--precision: the wrapped model computed under torch.autocast gives fp32's answers (bf16 on CPU here; CUDA's fp16 and
bf16 in the CUDA tests), and the attacks' gradients stay honest under it (the sanity checks run on bf16)."""

import json

import numpy as np
import pytest
import torch

from helpers import invoke

from skinart.models.checkpoint import Checkpoint
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.models.networks import predict
from skinart.attacks.sanity import gradient_checks
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed

EPS = 4 / 255


@pytest.fixture(scope="module")
def test_split(trained, derma_subset):
    test = checkpoint_dataset(Checkpoint.load(trained), data_root=str(derma_subset)).splits["test"]
    return to_model_input(test.images), test.labels


def checks(trained, test_split, precision: str) -> dict:
    return gradient_checks(deployed(Checkpoint.load(trained), "cpu", precision=precision), *test_split, EPS, steps=2)


def test_bf16_predicts_as_fp32_and_pgd_accuracy_stays_within_two_points(trained, test_split):
    fp32, bf16 = (predict(deployed(Checkpoint.load(trained), "cpu", precision=p), test_split[0]) for p in ("fp32", "bf16"))
    assert not np.array_equal(fp32, bf16)  # bf16 really ran: its probabilities differ in the last digits
    assert np.mean(fp32.argmax(1) == bf16.argmax(1)) >= 0.99
    pgd = {p: checks(trained, test_split, p)["values"]["sweep"][str(EPS)] for p in ("fp32", "bf16")}
    assert pgd["fp32"] < np.mean(fp32.argmax(1) == test_split[1])  # the attack lowers accuracy at all
    assert abs(pgd["fp32"] - pgd["bf16"]) <= 0.02, pgd


def test_the_sanity_checks_pass_under_bf16(trained, test_split):
    found = checks(trained, test_split, "bf16")
    assert [name for name in ("unbounded", "more_steps", "noise", "eps_monotone") if found[name]["fired"]] == [], found


def test_an_unknown_precision_is_refused_in_one_line(trained):
    with pytest.raises(SkinartError, match=r"unknown --precision 'fp8'; choose one of fp32, bf16, fp16"):
        deployed(Checkpoint.load(trained), "cpu", precision="fp8")


def test_fp16_reaching_a_cpu_classifier_is_refused_in_one_line(trained):
    """Given or inherited (a retraining takes its checkpoint's training precision): never fp16 recorded for an fp32
    computation, as older torch versions' CPU autocast would give."""
    with pytest.raises(SkinartError, match=r"^--precision fp16 is for CUDA devices .*; on CPU use --precision bf16 or fp32$"):
        deployed(Checkpoint.load(trained), "cpu", precision="fp16")


def test_logits_come_back_as_fp32(trained, test_split):
    model = deployed(Checkpoint.load(trained), "cpu", precision="bf16").model
    assert model(torch.from_numpy(test_split[0][:4])).dtype == torch.float32


@pytest.mark.slow
def test_train_at_bf16_is_recorded_and_never_skips_an_fp32_run(derma_subset, tmp_path):
    args = ("train", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 1, "--out", tmp_path / "run", "--device", "cpu")
    result = invoke(*args, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "bf16"
    again = invoke(*args)  # fp32 at the same --out: another run, refused rather than skipped
    assert again.exit_code == 2 and "already holds a different run" in again.stderr


def test_train_refuses_an_unknown_precision(derma_subset, tmp_path):
    result = invoke("train", "--data-root", derma_subset, "--model", "skin_cnn", "--out", tmp_path / "run", "--precision", "fp8")
    assert result.exit_code == 2 and "unknown --precision 'fp8'; choose one of fp32, bf16, fp16" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [("attack", "--method", "fgsm", "--max-samples", 16), ("evaluate",)])
def test_attack_and_evaluate_at_bf16_are_recorded_and_never_skip_an_fp32_run(trained, derma_subset, tmp_path, command):
    args = (*command, "--checkpoint", trained, "--data-root", derma_subset, "--out", tmp_path / "run", "--device", "cpu")
    result = invoke(*args, "--precision", "bf16")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"
    again = invoke(*args)  # fp32 at the same --out: another run, refused rather than skipped
    assert again.exit_code == 2 and "already holds a different run" in again.stderr


def test_attack_refuses_an_unknown_precision_before_any_work(trained, tmp_path):
    result = invoke("attack", "--method", "fgsm", "--checkpoint", trained, "--out", tmp_path / "run", "--precision", "fp8")
    assert result.exit_code == 2 and "unknown --precision 'fp8'; choose one of fp32, bf16, fp16" in result.stderr
    assert not (tmp_path / "run").exists()
