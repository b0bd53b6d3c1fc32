"""`skinart import`: a model an outside team trained in plain PyTorch (its own class order, its mean/std applied outside
the network), saved as a state dict, TorchScript and a torch.export program, becomes a checkpoint whose predictions,
metrics and attacks are those of the team's own pipeline; binary models (one logit or two) are attacked; a wrong import
is refused in one line, or warned of."""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score
from torch import nn

from skinart.models.checkpoint import Checkpoint
from skinart.data import CLASSES
from skinart.models.networks import predict
from skinart.rundir import EXPORTED_FILE, METRICS_FILE, SCRIPTED_FILE, WEIGHTS_FILE
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed

from helpers import invoke

ORDER = ("nv", "mel", "bkl", "bcc", "akiec", "vasc", "df")  # the outside team's own output order
MEAN, STD = (0.6, 0.5, 0.55), (0.2, 0.25, 0.2)
MALIGNANT = ("akiec", "bcc", "mel")


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """The team's preprocessing, outside its network."""
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _as_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, loss) -> nn.Module:
    """The team's own training loop: Adam, batches of 50, no skinart anywhere."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(epochs):
        for i in range(0, len(x), 50):
            optimizer.zero_grad()
            loss(net(_normalise(x[i : i + 50])), y[i : i + 50]).backward()
            optimizer.step()
    return net.eval()


def _save_all(net: nn.Module, folder: Path, stem: str) -> dict[str, Path]:
    """The three ways a team saves a model: state dict (torch.save and safetensors), TorchScript, torch.export."""
    paths = {"state-dict": folder / f"{stem}.pth", "safetensors": folder / f"{stem}.safetensors",
             "torchscript": folder / f"{stem}.ts", "torch.export": folder / f"{stem}.pt2"}
    torch.save(net.state_dict(), paths["state-dict"])
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(paths["safetensors"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates TorchScript
        torch.jit.save(torch.jit.script(net), paths["torchscript"])
    example = (torch.rand(2, 3, 28, 28),)
    torch.export.save(torch.export.export(net, example, dynamic_shapes=({0: torch.export.Dim("batch")},)), paths["torch.export"])
    return paths


@pytest.fixture(scope="module")
def foreign(derma_subset, tmp_path_factory):
    """A torchvision ResNet-18 trained in plain PyTorch on the subset's training images, its outputs in ORDER."""
    data = np.load(derma_subset)
    x = _as_input(data["train_images"])
    y = torch.tensor([ORDER.index(CLASSES[label]) for label in data["train_labels"].ravel()])
    weights = torch.tensor(np.bincount(y.numpy(), minlength=7) + 1.0).float().reciprocal() ** 0.5
    torch.manual_seed(0)
    # two threads whatever the machine's cores: a weak model (3 epochs) whose weights move with the thread count would
    # mix up other classes (with one thread bkl and df), and the import check's tests read which
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        net = _fit(torchvision.models.resnet18(num_classes=7), x, y, epochs=3,
                   loss=lambda z, t: nn.functional.cross_entropy(z, t, weight=weights / weights.mean()))
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("outside-team")
    return net, _save_all(net, folder, "resnet18")


def _import(weights: Path, out: Path, root: Path, classes=ORDER, *extra) -> object:
    return invoke("import", "--weights", weights, "--classes", ",".join(classes), "--img-size", 28, "--mean",
                  ",".join(map(str, MEAN)), "--std", ",".join(map(str, STD)), "--data", "dermamnist", "--data-root", root,
                  "--out", out, "--device", "cpu", *extra)


@pytest.fixture(scope="module")
def imported(foreign, derma_subset, tmp_path_factory) -> dict[str, Path]:
    """The ResNet imported from each of its files (state dicts with --model resnet18: torchvision's names are timm's)."""
    runs = tmp_path_factory.mktemp("imported")
    outs = {}
    for fmt, path in foreign[1].items():
        outs[fmt] = runs / fmt
        model = ("--model", "resnet18") if fmt in ("state-dict", "safetensors") else ()
        result = _import(path, outs[fmt], derma_subset, ORDER, *model)
        assert result.exit_code == 0, result.output
        assert "validation split, 150 images: accuracy" in result.stdout and "predicted: akiec" in result.stdout
    return outs


def _evaluate(checkpoint: Path, out: Path, *extra) -> dict:
    result = invoke("evaluate", "--checkpoint", checkpoint, "--out", out, "--device", "cpu", *extra)
    assert result.exit_code == 0, result.output
    return json.loads((out / METRICS_FILE).read_text())


def _flat(value, path: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}[{i}]").items()}
    return {path: value}


def _numbers(metrics: dict) -> dict:
    """What a metrics.json reports (without the keys naming the run), flat: every number by its key path."""
    return _flat({k: metrics[k] for k in ("accuracy", "macro_recall", "macro_specificity", "per_class", "confusion_matrix",
                                          "binary", "auroc", "binary_at_threshold")})


@pytest.mark.slow
def test_clean_predictions_are_the_teams_own_in_every_format(foreign, imported):
    net = foreign[0]
    first = Checkpoint.load(imported["state-dict"])
    test = checkpoint_dataset(first, split="test").splits["test"]
    with torch.no_grad():
        theirs = torch.softmax(net(_normalise(_as_input(test.images))), 1).numpy()[:, [ORDER.index(c) for c in CLASSES]]
    for fmt, out in imported.items():
        checkpoint = Checkpoint.load(out)
        ours = predict(deployed(checkpoint, "cpu"), test.images)
        assert np.array_equal(ours.argmax(1), theirs.argmax(1)), fmt
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=fmt)
        meta = json.loads((out / "skinart.json").read_text())
        kept = {"torch.export": EXPORTED_FILE, "torchscript": SCRIPTED_FILE}.get(fmt, WEIGHTS_FILE)
        assert (out / kept).is_file()
        assert meta["imported"]["trained_by"] == "outside skinart"
        assert meta["imported"]["sha256"] == hashlib.sha256(foreign[1][fmt].read_bytes()).hexdigest()
        assert meta["imported"]["outputs"] == list(ORDER) and meta["classes"] == list(CLASSES)
        assert meta["operating_point"]["chosen_on"] == "val" and meta["train_ids"] is None
        assert meta["imported"]["format"] == ("state-dict" if fmt == "safetensors" else fmt)


@pytest.mark.slow
def test_every_format_gives_identical_metrics_each_saying_its_training_data_is_unknown(imported, tmp_path):
    metrics = {fmt: _evaluate(out, tmp_path / fmt) for fmt, out in imported.items()}
    reference = _numbers(metrics["state-dict"])
    for fmt, m in metrics.items():
        assert _numbers(m) == pytest.approx(reference, abs=1e-6), fmt
        assert m["training_data"] == "training data unknown: overlap with the evaluation images not checked"
        assert "training data unknown" in (tmp_path / fmt / "metrics.md").read_text()


class _Permuted(nn.Module):
    def __init__(self, net: nn.Module, order: list[int]):
        super().__init__()
        self.net, self.order = net, order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, self.order]


@pytest.mark.slow
def test_permuting_the_outputs_with_classes_changes_no_metric(foreign, imported, derma_subset, tmp_path):
    order = [3, 0, 6, 1, 5, 2, 4]
    scripted = tmp_path / "permuted.pt2"
    torch.export.save(torch.export.export(_Permuted(foreign[0], order).eval(), (torch.rand(2, 3, 28, 28),),
                                          dynamic_shapes=({0: torch.export.Dim("batch")},)), scripted)
    result = _import(scripted, tmp_path / "permuted", derma_subset, [ORDER[i] for i in order])
    assert result.exit_code == 0, result.output
    permuted = _evaluate(tmp_path / "permuted", tmp_path / "permuted-eval")
    original = _evaluate(imported["torch.export"], tmp_path / "original-eval")
    assert _numbers(permuted) == pytest.approx(_numbers(original), abs=1e-6)


def _plain_pgd(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step: float, steps: int) -> torch.Tensor:
    """L∞ PGD as the team would write it (no random start), on [0, 1] images through its own normalisation."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(net(_normalise(adv)), y)
        grad, = torch.autograd.grad(loss, adv)
        adv = torch.clamp(torch.min(torch.max(adv.detach() + step * grad.sign(), x - eps), x + eps), 0, 1)
    return adv


@pytest.mark.slow
def test_pgd_on_the_imported_model_agrees_with_a_plain_pytorch_reference(foreign, imported, tmp_path):
    net = foreign[0]
    result = invoke("attack", "--checkpoint", imported["state-dict"], "--method", "pgd", "--eps", "2/255", "--eps-step", "1/510",
                    "--max-iter", 10, "--out", tmp_path / "pgd", "--device", "cpu")
    assert result.exit_code == 0, result.output
    ours = json.loads((tmp_path / "pgd" / METRICS_FILE).read_text())
    test = checkpoint_dataset(Checkpoint.load(imported["state-dict"]), split="test").splits["test"]
    x, y = _as_input(test.images), torch.tensor([ORDER.index(CLASSES[label]) for label in test.labels])
    adv = _plain_pgd(net, x, y, 2 / 255, 0.5 / 255, 10)
    with torch.no_grad():
        clean, attacked = [(net(_normalise(v)).argmax(1) == y).double().mean().item() for v in (x, adv)]
    assert ours["clean"]["accuracy"] == pytest.approx(clean, abs=1e-9)
    assert attacked < clean - 0.05  # the reference attack bites, so agreeing with it means something
    assert abs(ours["adversarial"]["accuracy"] - attacked) <= 0.01


def _tiny_cnn(outputs: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, outputs))


@pytest.mark.slow
@pytest.mark.parametrize("classes", [("malignant",), ("malignant", "benign")], ids=["one-logit", "two-logits"])
def test_binary_models_are_attacked_by_fgsm_pgd_and_autoattack(classes, derma_subset, tmp_path):
    data = np.load(derma_subset)
    x, malignant = _as_input(data["train_images"]), torch.tensor(np.isin(data["train_labels"].ravel(), [0, 1, 4]))
    if len(classes) == 1:
        y, loss = malignant.float(), lambda z, t: nn.functional.binary_cross_entropy_with_logits(z[:, 0], t, pos_weight=torch.tensor(3.0))
    else:  # the team's own order: malignant first
        y, loss = (~malignant).long(), lambda z, t: nn.functional.cross_entropy(z, t, weight=torch.tensor([3.0, 1.0]))
    net = _fit(_tiny_cnn(len(classes)), x, y, epochs=6, loss=loss)
    path = tmp_path / "binary.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(4, 3, 28, 28),)), path)  # a fixed batch of 4: fed in chunks
    result = _import(path, tmp_path / "binary", derma_subset, classes, "--malignant", ",".join(MALIGNANT))
    assert result.exit_code == 0, result.output
    checkpoint = Checkpoint.load(tmp_path / "binary")
    assert checkpoint.classes == ("benign", "malignant") and checkpoint.meta.malignant == ("malignant",)
    test = checkpoint_dataset(checkpoint, split="test").splits["test"]
    assert np.array_equal(test.labels, np.isin(np.load(derma_subset)["test_labels"].ravel(), [0, 1, 4]).astype(int))
    with torch.no_grad():
        z = net(_normalise(_as_input(test.images)))
    theirs = torch.sigmoid(z[:, 0]) if len(classes) == 1 else torch.softmax(z, 1)[:, 0]
    np.testing.assert_allclose(predict(deployed(checkpoint, "cpu"), test.images)[:, 1], theirs.numpy(), atol=1e-5)
    for method, extra in (("fgsm", ()), ("pgd", ("--max-iter", 5)), ("autoattack", ("--param", "max_iter=5", "--param", "square_max_iter=20", "--max-samples", 20))):
        result = invoke("attack", "--checkpoint", tmp_path / "binary", "--method", method, "--eps", "8/255", *extra,
                        "--malignant", ",".join(MALIGNANT), "--out", tmp_path / method, "--device", "cpu")
        assert result.exit_code == 0, f"{method}: {result.output}"
        m = json.loads((tmp_path / method / METRICS_FILE).read_text())
        assert list(m["adversarial"]["per_class"]) == ["benign", "malignant"] and m["clean"]["auroc"] is not None
        assert m["adversarial"]["accuracy"] <= m["clean"]["accuracy"] and "training_data" in m


ISIC2019 = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")  # an ISIC 2019 model's outputs, as it names them


@pytest.mark.slow
def test_an_isic_2019_model_is_scored_on_the_datas_classes_its_scc_an_error_and_malignant(derma_subset, tmp_path):
    data = np.load(derma_subset)
    own = [ISIC2019.index({"akiec": "AK"}.get(CLASSES[label], CLASSES[label].upper())) for label in data["train_labels"].ravel()]
    net = _fit(_tiny_cnn(8), _as_input(data["train_images"]), torch.tensor(own), epochs=6, loss=nn.functional.cross_entropy)
    with torch.no_grad():  # scc never a label here: its bias raised until it wins on a tenth of the images, as it would
        z = net(_normalise(_as_input(data["train_images"])))
        net[-1].bias[7] += float(torch.quantile(z[:, :7].max(1).values - z[:, 7], 0.1))
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      tmp_path / "isic2019.pt2")
    result = _import(tmp_path / "isic2019.pt2", tmp_path / "imported", derma_subset, ISIC2019)
    assert result.exit_code == 0, result.output
    checkpoint = Checkpoint.load(tmp_path / "imported")
    assert checkpoint.classes == (*CLASSES, "scc") and checkpoint.meta.malignant == ("akiec", "bcc", "mel", "scc")
    metrics = _evaluate(tmp_path / "imported", tmp_path / "evaluated")
    test = checkpoint_dataset(checkpoint, split="test").splits["test"]
    with torch.no_grad():
        theirs = torch.softmax(net(_normalise(_as_input(test.images))), 1).numpy()[:, [ISIC2019.index(n) for n in ("AK", "BCC", "BKL", "DF", "MEL", "NV", "VASC", "SCC")]]
    predicted = theirs.argmax(1)
    assert 0 < np.mean(predicted == 7) == pytest.approx(metrics["predicted_outside_data"]["scc"])
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == test.labels))  # an scc prediction is never right
    assert metrics["per_class"]["scc"]["support"] == 0 and len(metrics["confusion_matrix"]) == 8
    malignant = np.isin(test.labels, [0, 1, 4])
    assert metrics["auroc"] == pytest.approx(roc_auc_score(malignant, theirs[:, [0, 1, 4, 7]].sum(1)))
    assert "predicted as classes the data lack" in (tmp_path / "evaluated" / "metrics.md").read_text()
    result = invoke("attack", "--checkpoint", tmp_path / "imported", "--method", "pgd", "--eps", "8/255", "--max-iter", 5,
                    "--out", tmp_path / "pgd", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "scc" in json.loads((tmp_path / "pgd" / METRICS_FILE).read_text())["adversarial"]["predicted_outside_data"]


@pytest.mark.slow
def test_a_melanoma_against_the_rest_model_gets_binary_metrics_with_mel_positive(derma_subset, tmp_path):
    data = np.load(derma_subset)
    mel = torch.tensor(data["train_labels"].ravel() == CLASSES.index("mel")).float()
    net = _fit(_tiny_cnn(1), _as_input(data["train_images"]), mel, epochs=6,
               loss=lambda z, t: nn.functional.binary_cross_entropy_with_logits(z[:, 0], t, pos_weight=torch.tensor(4.0)))
    torch.export.save(torch.export.export(net, (torch.rand(2, 3, 28, 28),), dynamic_shapes=({0: torch.export.Dim("batch")},)),
                      tmp_path / "mel.pt2")
    result = _import(tmp_path / "mel.pt2", tmp_path / "imported", derma_subset, ("mel",))
    assert result.exit_code == 0, result.output
    checkpoint = Checkpoint.load(tmp_path / "imported")
    assert checkpoint.classes == ("other", "mel") and checkpoint.meta.malignant == ("mel",)
    metrics = _evaluate(tmp_path / "imported", tmp_path / "evaluated")
    test = checkpoint_dataset(checkpoint, split="test").splits["test"]
    assert np.array_equal(test.labels, (np.load(derma_subset)["test_labels"].ravel() == CLASSES.index("mel")).astype(int))
    with torch.no_grad():
        theirs = torch.sigmoid(net(_normalise(_as_input(test.images)))[:, 0]).numpy()
    assert list(metrics["per_class"]) == ["other", "mel"] and metrics["malignant"] == ["mel"]
    assert metrics["auroc"] == pytest.approx(roc_auc_score(test.labels, theirs))
    assert metrics["binary"]["sensitivity"] == pytest.approx(np.mean(theirs[test.labels == 1] > 0.5))
    result = invoke("attack", "--checkpoint", tmp_path / "imported", "--method", "fgsm", "--eps", "8/255", "--out",
                    tmp_path / "fgsm", "--device", "cpu")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_torch_export_program_is_defended_by_preprocessing_and_refused_retraining_in_one_line(imported, tmp_path):
    result = invoke("defend", "--checkpoint", imported["torch.export"], "--method", "retrain", "--out", tmp_path / "rt", "--device", "cpu")
    assert result.exit_code == 2 and not (tmp_path / "rt").exists()
    assert result.stderr.count("\n") == 1 and "cannot train" in result.stderr and "--model" in result.stderr
    result = invoke("defend", "--checkpoint", imported["torch.export"], "--method", "llt", "--out", tmp_path / "llt", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llt" / EXPORTED_FILE).is_file() and Checkpoint.load(tmp_path / "llt").meta.imported["format"] == "torch.export"


@pytest.mark.slow
def test_a_wrong_class_order_is_warned_of_in_one_line(foreign, derma_subset, tmp_path):
    result = _import(foreign[1]["torchscript"], tmp_path / "reversed", derma_subset, ORDER[::-1])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "--classes" in warning[0] and "recalled better by another naming" in warning[0]
    # its report: nothing to report from the import alone; then the failed check on every row of the model's runs
    result = invoke("report", tmp_path / "reversed", "--out", tmp_path / "report")
    assert result.exit_code == 2 and "nothing to report" in result.stderr and not (tmp_path / "report").exists()
    _evaluate(tmp_path / "reversed", tmp_path / "clean")
    assert invoke("attack", "--method", "fgsm", "--checkpoint", tmp_path / "reversed", "--max-samples", 20, "--out",
                  tmp_path / "fgsm", "--device", "cpu").exit_code == 0
    assert invoke("report", tmp_path / "reversed", "--out", tmp_path / "report", "--bootstrap", 0).exit_code == 0
    md = (tmp_path / "report" / "report.md").read_text()
    verdict = f"import check: SUSPECT: {warning[0].removeprefix('warning: ')}"
    table = md.split("## Training data and import check")[1].split("\n## ")[0]
    assert [line.split(" | ")[-1] for line in table.splitlines() if line.startswith(("| clean", "| fgsm"))] == [verdict + " |"] * 2
    assert f"- reversed: {verdict}" in md.split("## Findings")[1]


@pytest.mark.slow
def test_a_state_dict_is_read_by_its_bytes_and_one_of_a_training_checkpoint_chosen_by_key(foreign, imported, derma_subset, tmp_path):
    net, paths = foreign
    renamed = tmp_path / "weights.pth"  # safetensors bytes under a torch.save name
    renamed.write_bytes(paths["safetensors"].read_bytes())
    state = net.state_dict()
    halved = {k: v / 2 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"epoch": 3, "state_dict": state, "state_dict_ema": halved, "optimizer": {"lr": 0.1}}, tmp_path / "last.pth")
    weights = Checkpoint.load(imported["safetensors"]).meta.weights_sha256
    for name, path, extra, key in (("renamed", renamed, (), None), ("chosen", tmp_path / "last.pth", ("--state-key", "state_dict"), "state_dict")):
        result = _import(path, tmp_path / name, derma_subset, ORDER, "--model", "resnet18", *extra)
        assert result.exit_code == 0, result.output
        checkpoint = Checkpoint.load(tmp_path / name)
        assert checkpoint.meta.weights_sha256 == weights and checkpoint.meta.imported["state_key"] == key
    result = _import(tmp_path / "last.pth", tmp_path / "ema", derma_subset, ORDER, "--model", "resnet18", "--state-key", "state_dict_ema")
    assert result.exit_code == 0, result.output
    assert Checkpoint.load(tmp_path / "ema").meta.weights_sha256 != weights


def _swapped(order: tuple[str, ...], a: str, b: str) -> list[str]:
    return [{a: b, b: a}.get(c, c) for c in order]


@pytest.mark.slow
def test_the_import_check_is_kept_in_the_checkpoint_and_shown_by_every_evaluation(foreign, imported, derma_subset, tmp_path):
    right = Checkpoint.load(imported["torchscript"]).meta.imported["check"]
    assert right["verdict"] == "plausible" and right["warning"] is None and right["recalled_best_by"] == {}
    result = _import(foreign[1]["torchscript"], tmp_path / "swapped", derma_subset, _swapped(ORDER, "mel", "bkl"))
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "mel by the output named bkl" in warning[0] and "--classes" in warning[0], result.stderr
    check = Checkpoint.load(tmp_path / "swapped").meta.imported["check"]
    assert check["verdict"] == "suspect" and check["recalled_best_by"] == {"bkl": "mel", "mel": "bkl"}
    metrics = _evaluate(tmp_path / "swapped", tmp_path / "evaluated")
    assert metrics["import_check"] == check
    assert f"SUSPECT: {check['warning']}" in (tmp_path / "evaluated" / "metrics.md").read_text()
    _evaluate(imported["torchscript"], tmp_path / "right")
    assert "plausible" in (tmp_path / "right" / "metrics.md").read_text()


@pytest.mark.slow
def test_the_owners_threshold_is_recorded_as_given(foreign, derma_subset, tmp_path):
    result = _import(foreign[1]["torchscript"], tmp_path / "given", derma_subset, ORDER, "--threshold", 0.3)
    assert result.exit_code == 0, result.output
    point = Checkpoint.load(tmp_path / "given").meta.operating_point
    assert point["threshold"] == 0.3 and point["chosen_on"] == "given at import (the model's owner)"
    assert "operating point p_malignant ≥ 0.3 (given at import" in result.stdout


def _bad_files(foreign, folder: Path) -> dict[str, Path]:
    net, paths = foreign
    files = {"pickled": folder / "whole-model.pth", "text": folder / "notes.pth", "extra": folder / "extra.pth"}
    torch.save(net, files["pickled"])  # the whole module: unpickling it would run code
    files["text"].write_text("not a model\n")
    torch.save({**net.state_dict(), "head.weight": torch.zeros(3)}, files["extra"])
    return {**paths, **files}


BAD = {
    "pickle with code": (("pickled", "resnet18", ORDER, 28), "pickles Python code"),
    "not a model": (("text", "resnet18", ORDER, 28), "is not a model file"),
    "wrong architecture": (("state-dict", "resnet34", ORDER, 28), "missing tensors (first 'layer1.2."),
    "unexpected keys": (("extra", "resnet18", ORDER, 28), "0 missing tensors (none), 1 unexpected (first 'head.weight')"),
    "shape mismatch": (("state-dict", "resnet18", ("benign", "malignant"), 28), "'fc.weight' is (7, 512) in the file but (2, 512)"),
    "no architecture": (("state-dict", None, ORDER, 28), "name it with --model"),
    "unknown class": (("torch.export", None, ORDER[:6] + ("cancer",), 28), "names cancer, which are no class"),
    "an extra class in place of one": (("torch.export", None, ORDER[:6] + ("scc",), 28), "lists 6 of the 7 classes (missing df)"),
    "missing class": (("torch.export", None, ORDER[:6], 28), "lists 6 of the 7 classes (missing df)"),
    "too many outputs named": (("torchscript", None, ("benign", "malignant"), 28), "outputs of shape (7,) per image, but --classes names 2"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_wrong_import_is_one_line_exit_2_and_writes_nothing(case, foreign, derma_subset, tmp_path):
    files = _bad_files(foreign, tmp_path)
    (which, model, classes, size), expected = BAD[case]
    before = hashlib.sha256(files[which].read_bytes()).hexdigest()
    result = invoke("import", "--weights", files[which], "--classes", ",".join(classes), "--img-size", size,
                    *(("--model", model) if model else ()), "--data-root", derma_subset, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() and hashlib.sha256(files[which].read_bytes()).hexdigest() == before


def test_a_plain_pickle_with_code_is_one_line_with_no_torch_warning_before_it(derma_subset, tmp_path):
    with open(tmp_path / "model.pkl", "wb") as f:  # a whole module through plain pickle: unpickling it runs code
        pickle.dump(nn.Linear(3, 7), f)
    with warnings.catch_warnings(record=True) as shown:  # what a terminal would show above the error
        warnings.simplefilter("always")
        result = invoke("import", "--weights", tmp_path / "model.pkl", "--model", "resnet18", "--classes", ",".join(ORDER),
                        "--img-size", 28, "--data-root", derma_subset, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "pickles Python code" in result.stderr
    assert [str(w.message)[:80] for w in shown] == []


def test_offline_hub_model_is_one_line(derma_subset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("import", "--weights", "hf-hub:timm/resnet18.a1_in1k", "--classes", ",".join(ORDER), "--img-size", 28,
                    "--data-root", derma_subset, "--out", tmp_path / "hub", "--device", "cpu")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "Hugging Face hub" in result.stderr
    assert not (tmp_path / "hub").exists()


@pytest.mark.slow
def test_a_recipe_imports_the_model_and_replays_steps_on_it_with_a_report(foreign, derma_subset, tmp_path):
    recipe = {
        "name": "theirs", "seed": 0,
        "data": {"loader": "dermamnist", "root": str(derma_subset), "malignant": list(MALIGNANT)},
        "model": {"import": str(foreign[1]["torch.export"]), "classes": list(ORDER), "img_size": 28, "mean": list(MEAN), "std": list(STD)},
        "steps": [
            {"name": "import", "command": "import", "params": {"device": "cpu"}},
            {"name": "clean", "command": "evaluate", "params": {"checkpoint": "import", "device": "cpu"}},
            {"name": "fgsm", "command": "attack", "params": {"checkpoint": "import", "method": "fgsm", "eps": "2/255", "device": "cpu"}},
            {"name": "llt", "command": "defend", "params": {"checkpoint": "import", "method": "llt", "device": "cpu"}},
            {"name": "report", "command": "report", "params": {"bootstrap": 50}},
        ],
    }
    path = tmp_path / "theirs.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    result = invoke("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Training data" in report and report.count("training data unknown: overlap with the evaluation images not checked") == 3
    assert Checkpoint.load(tmp_path / "run" / "import").meta.imported["format"] == "torch.export"


def test_a_recipe_cannot_set_an_option_twice(tmp_path):
    recipe = {"name": "twice", "model": {"import": "theirs.pt2", "weights": "other.pth"}, "steps": []}
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = invoke("recipes", "validate", path)
    assert result.exit_code == 2 and "sets the same option" in result.stderr
