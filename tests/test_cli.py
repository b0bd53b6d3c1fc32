"""The commands end to end on generated data (small DermaMNIST-format npz, the paper's small CNN, few epochs)."""

import inspect
import json
import os
import re
import subprocess
import sys
import typing

import numpy as np
import pytest
import typer
from helpers import invoke

from skinart.cli import app
from skinart.metrics import p_malignant, threshold_metrics
from skinart.options import finite_float
from skinart.rundir import RESUME_FILE


def test_train_writes_a_checkpoint_run(trained):
    assert {"model.safetensors", "skinart.json", "config.json", "history.json", "training_curves.png"} <= {p.name for p in trained.iterdir()}
    history = json.loads((trained / "history.json").read_text())
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    # the generated lesions are learnable (chance: 1/7), so attacks on this model have right decisions to change
    assert max(epoch["val_macro_recall"] for epoch in history) > 0.5
    assert {"val_accuracy", "val_macro_recall", "val_loss"} <= set(history[0])
    meta = json.loads((trained / "skinart.json").read_text())
    assert meta["img_size"] == 28 and meta["model"] == "skin_cnn"
    assert meta["best_epoch"] == max(range(3), key=lambda i: history[i]["val_macro_recall"]) + 1
    assert not list(trained.parent.glob(".*partial*"))


def test_evaluate_writes_exactly_the_design_metrics(trained, derma_subset, tmp_path):
    out = tmp_path / "eval"
    result = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "macro_recall", "macro_specificity", "per_class", "confusion_matrix", "binary"} <= set(metrics)
    assert set(metrics["binary"]) == {"accuracy", "sensitivity", "specificity", "ppv", "npv", "fnr", "confusion_matrix"}
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == 200  # the whole test subset
    assert metrics["accuracy"] == pytest.approx(sum(cm[i][i] for i in range(7)) / 200)
    for name in ("confusion_matrix.png", "confusion_matrix_binary.png", "metrics.md", "predictions.npz"):
        assert (out / name).stat().st_size > 0
    # the same command again is skipped; another malignant set is another run and is refused without --overwrite
    again = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", out)
    assert again.exit_code == 0 and "skipped" in again.stderr
    other = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", out, "--malignant", "mel,nv,bcc,akiec")
    assert other.exit_code == 2 and "--overwrite" in other.stderr
    replaced = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", out,
                      "--malignant", "mel,nv,bcc,akiec", "--overwrite")
    assert replaced.exit_code == 0
    thesis = json.loads((out / "metrics.json").read_text())["binary"]["confusion_matrix"]
    assert sum(thesis[1]) > sum(metrics["binary"]["confusion_matrix"][1])  # nv now counts as cancerous


@pytest.mark.slow
def test_failed_run_leaves_nothing_behind(derma_subset, tmp_path, monkeypatch):
    import skinart.training.loop

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(skinart.training.loop, "plot_training_curves", broken)
    out = tmp_path / "run"
    result = invoke("train", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 1, "--out", out)
    assert result.exit_code != 0
    _only_the_finished_epochs_are_kept(tmp_path)


def _only_the_finished_epochs_are_kept(folder):
    """What a training that failed after its epochs leaves: its resume folder (one whole file), nothing else."""
    left = list(folder.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".run.resume-"), left
    assert [p.name for p in left[0].iterdir()] == [RESUME_FILE]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "resnet19"], "unknown model 'resnet19'"),
        (["train", "--img-size", "0"], "--img-size must be positive"),
        (["train", "--img-size", "100000"], "--img-size 100000: 950 images need at least"),  # refused before allocating
        (["train", "--epochs", "0"], "--epochs must be at least 1"),
        (["train", "--balance", "smote"], "unknown --balance 'smote'"),
        (["train", "--malignant", "mel,cancer"], "unknown class(es) cancer"),
        (["train", "--split-ratios", "0.9,0.2"], "bad split ratios"),
        (["train", "--weights", "/nonexistent/w.safetensors"], "weights file"),
        (["train", "--data", "imagenet"], "unknown dataset 'imagenet'"),
    ],
)
def test_bad_train_input_is_one_line_and_writes_nothing(derma_subset, tmp_path, args, message):
    out = tmp_path / "run"
    result = invoke(*args, "--data-root", derma_subset, "--out", out, "--epochs" if "--epochs" not in args else "--seed", 1)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_evaluate_input(tmp_path, trained):
    result = invoke("evaluate", "--checkpoint", tmp_path, "--out", tmp_path / "eval")
    assert result.exit_code == 2 and "not a skinart checkpoint" in result.stderr
    result = invoke("evaluate", "--checkpoint", trained, "--out", tmp_path / "eval", "--split", "holdout")
    assert result.exit_code == 2 and "split 'holdout' does not exist" in result.stderr
    assert not (tmp_path / "eval").exists()


def test_out_directory_with_foreign_files_is_refused(derma_subset, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("train", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 1, "--out", tmp_path)
    assert result.exit_code == 2 and "not a skinart run" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_data_info(derma_subset):
    result = invoke("data", "info", "--data", "dermamnist", "--data-root", derma_subset)
    assert result.exit_code == 0
    assert "600" in result.stdout and "groups shared between splits: 0" in result.stdout


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_leaves_nothing(derma_subset, tmp_path, monkeypatch):
    import skinart.training.loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(skinart.training.loop, "plot_training_curves", interrupted)
    command = ("train", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 1, "--out", tmp_path / "run")
    result = invoke(*command)
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == "error: interrupted; nothing half-written was left: run the same command again to resume"
    _only_the_finished_epochs_are_kept(tmp_path)
    monkeypatch.undo()
    result = invoke(*command)  # the same command again: no epoch trained twice, and the resume folder goes
    assert result.exit_code == 0 and "resuming after epoch 1" in result.stderr
    assert not re.search(r"^epoch 1 ", result.stderr, re.M), result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_version_and_a_usage_mistake_is_one_line():
    assert invoke("--version").stdout.strip().startswith("skinart ")
    result = invoke("train", "--epochs", "many", "--out", "x")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1 and "--epochs" in result.stderr


def _at_threshold(labels, probs, meta):
    """The binary metrics at the checkpoint's stored threshold, recomputed from saved probabilities."""
    malignant_idx = [meta["classes"].index(c) for c in meta["operating_point"]["malignant"]]
    return threshold_metrics(labels, p_malignant(probs, malignant_idx), meta["operating_point"]["threshold"], malignant_idx)


def test_the_operating_point_is_chosen_on_val_and_kept_by_evaluate_and_attack(trained, derma_subset, tmp_path):
    meta = json.loads((trained / "skinart.json").read_text())
    point = meta["operating_point"]
    assert point["chosen_on"] == "val" and point["target_sensitivity"] == 0.9 and meta["train_config"]["target_sensitivity"] == 0.9
    assert point["val_sensitivity"] >= 0.9 and 0 <= point["val_specificity"] <= 1 and sorted(point["malignant"]) == ["akiec", "bcc", "mel"]
    result = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", tmp_path / "eval", "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    saved = np.load(tmp_path / "eval" / "predictions.npz")
    assert metrics["binary_at_threshold"] == _at_threshold(saved["labels"], saved["probabilities"], meta)
    assert metrics["binary_at_threshold"]["threshold"] == point["threshold"] and 0 <= metrics["auroc"] <= 1
    assert "p_malignant ≥" in (tmp_path / "eval" / "metrics.md").read_text()
    assert (tmp_path / "eval" / "roc.png").stat().st_size > 0  # the clean ROC, its operating point marked
    result = invoke("attack", "--method", "fgsm", "--checkpoint", trained, "--data-root", derma_subset, "--max-samples", 40,
                    "--out", tmp_path / "fgsm", "--device", "cpu")
    assert result.exit_code == 0, result.output
    attacked = json.loads((tmp_path / "fgsm" / "metrics.json").read_text())
    saved = np.load(tmp_path / "fgsm" / "adversarial.npz")
    for half, key in (("clean", "clean_probabilities"), ("adversarial", "adversarial_probabilities")):
        assert attacked[half]["binary_at_threshold"] == _at_threshold(saved["labels"], saved[key], meta), half  # never re-chosen
    assert (tmp_path / "fgsm" / "roc.png").stat().st_size > 0
    # another malignant set than the threshold's: argmax only, never a made-up threshold
    result = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", tmp_path / "thesis", "--malignant", "akiec,bcc,mel,nv")
    assert result.exit_code == 0 and json.loads((tmp_path / "thesis" / "metrics.json").read_text())["binary_at_threshold"] is None


def test_target_sensitivity_is_checked(derma_subset, tmp_path):
    result = invoke("train", "--data-root", derma_subset, "--model", "skin_cnn", "--target-sensitivity", 0, "--out", tmp_path / "t")
    assert result.exit_code == 2 and "--target-sensitivity must be in (0, 1]" in result.stderr and not (tmp_path / "t").exists()


HEAVY = ("torch", "timm", "art", "sklearn", "matplotlib", "scipy")


def test_importing_the_cli_loads_no_heavy_library():
    """`skinart --help`, `--version` and a refused option need only the signatures: torch, timm and ART (seconds to
    import) load where a command runs. A fresh interpreter: this one has imported them all."""
    code = f"import sys, skinart.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(given, expected):
    """Spinning OpenMP threads made attacks 10-20x slower beside another job (benchmarks/threads_under_load.py): skinart
    asks libgomp to wait passively, before torch loads it (a fresh interpreter: libgomp reads it once)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    code = "import sys, skinart.cli; assert 'torch' not in sys.modules; import os; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == expected, out.stdout + out.stderr


@pytest.mark.parametrize("command", ["train", "import", "evaluate", "attack", "defend", "certify", "report", "run",
                                     "recipes validate", "data info"])
def test_help_fits_80_columns_with_every_option_name_whole(command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERMINAL_WIDTH", "80")
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in result.stdout and "<bool>" not in result.stdout
    shown = set(re.findall(r"--[a-z][a-z0-9-]*", result.stdout))
    cmd = typer.main.get_command(app)
    for word in command.split():
        cmd = cmd.commands[word]
    declared = {opt for param in cmd.params for opt in param.opts + param.secondary_opts if opt.startswith("--")}
    assert declared and declared <= shown, declared - shown  # every option of the command, each name whole


def _callbacks(typer_app: typer.Typer):
    for info in typer_app.registered_commands:
        yield inspect.unwrap(info.callback)
    for group in typer_app.registered_groups:
        yield from _callbacks(group.typer_instance)


def test_every_float_option_parses_with_the_finite_float_parser():
    """inf, nan and 1e999 are refused as click parses every float option of every command (and every recipe value for
    one), through the one parser: an option added with a plain float would take them."""
    parsers = {}
    for command in _callbacks(app):
        for name, hint in typing.get_type_hints(command, include_extras=True).items():
            if typing.get_origin(hint) is typing.Annotated and float in (hint.__origin__, *typing.get_args(hint.__origin__)):
                parsers[f"{command.__name__} --{name}"] = hint.__metadata__[0].parser
    assert len(parsers) >= 11 and all(parser is finite_float for parser in parsers.values()), parsers
