"""ONNX models (the `onnx` extra): told from their bytes, converted to PyTorch so attacks have gradients. Parity of a
ResNet and an EfficientNet exported by torch.onnx.export: logits against onnxruntime's within 1e-5, the input gradient
against a finite difference through onnxruntime; imported and attacked. A graph that does not convert is imported to
run through onnxruntime, scores only: black-box and transfer attacks, gradient attacks refused in one line. Skipped
without the extra."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from skinart.data import CLASSES
from skinart.models.build import network
from skinart.models.checkpoint import Checkpoint
from skinart.models.model_files import detect_format
from skinart.errors import SkinartError
from skinart.models import programs
from skinart.models.programs import read_onnx

from helpers import export_onnx, invoke, unconvertible_onnx

# not imported here: onnxruntime fixes where it writes its telemetry when first imported, which skinart points into its cache
pytestmark = pytest.mark.skipif(not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnx2torch")),
                                reason="needs the onnx extra: pip install 'skinart[onnx]'")


@pytest.fixture(scope="module", params=["resnet18", "efficientnet_b0"])
def exported(request, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return export_onnx(timm.create_model(request.param, num_classes=7), tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")


def test_outputs_and_input_gradients_match_onnxruntime(exported, derma_subset):
    net, found = read_onnx(exported, img_size=28)
    import onnxruntime  # after skinart's own import of it (above)

    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(np.load(derma_subset)["test_images"][:8].transpose(0, 3, 1, 2), dtype=np.float32) / 255
    theirs = session.run(None, {"x": x})[0]
    inputs = torch.from_numpy(x).requires_grad_(True)
    ours = net(inputs)
    np.testing.assert_allclose(ours.detach().numpy(), theirs, atol=1e-5, rtol=0)
    assert found["onnxruntime_parity"] < 1e-5
    target = torch.from_numpy(theirs.argmin(1))
    grad, = torch.autograd.grad(nn.functional.cross_entropy(ours, target, reduction="sum"), inputs)

    def loss(images: np.ndarray) -> float:  # the same loss through onnxruntime, in float64 from its float32 logits
        z = session.run(None, {"x": images.astype(np.float32)})[0].astype(np.float64)
        z -= z.max(1, keepdims=True)
        return float(-(z[np.arange(len(z)), target.numpy()] - np.log(np.exp(z).sum(1))).sum())

    grad = grad.numpy().astype(np.float64)
    norm, h = np.linalg.norm(grad), 1e-3
    along = grad / norm  # along the gradient the directional derivative is |grad|
    assert abs((loss(x + h * along) - loss(x - h * along)) / (2 * h) - norm) <= 1e-2 * norm
    rng = np.random.default_rng(0)
    for _ in range(3):  # random unit directions: the central difference against grad . v, relative to |grad|
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        assert abs((loss(x + h * v) - loss(x - h * v)) / (2 * h) - float((grad * v).sum())) <= 1e-2 * norm


def test_onnx_is_told_from_its_bytes_not_its_name(exported, tmp_path):
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(exported.read_bytes())
    assert detect_format(str(renamed)) == "onnx"


@pytest.mark.slow
def test_an_onnx_model_is_imported_scores_as_onnxruntime_and_is_attacked(exported, derma_subset, tmp_path):
    result = invoke("import", "--weights", exported, "--classes", ",".join(CLASSES), "--img-size", 28, "--data-root",
                    derma_subset, "--out", tmp_path / "imported", "--device", "cpu")
    assert result.exit_code == 0, result.output
    meta = Checkpoint.load(tmp_path / "imported").meta
    assert meta.imported["format"] == "onnx" and meta.imported["converter"].startswith("onnx2torch")
    assert (tmp_path / "imported" / "model.onnx").read_bytes() == exported.read_bytes()
    result = invoke("attack", "--checkpoint", tmp_path / "imported", "--method", "pgd", "--eps", "8/255", "--max-iter", 5,
                    "--max-samples", 20, "--out", tmp_path / "pgd", "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "pgd" / "metrics.json").read_text())
    assert metrics["adversarial"]["accuracy"] <= metrics["clean"]["accuracy"]
    assert metrics["linf_max"] <= 8 / 255 + 1e-6


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7))


def import_onnx(path: Path, data: Path, out: Path):
    return invoke("import", "--weights", path, "--classes", ",".join(CLASSES), "--img-size", 28, "--data-root", data,
                  "--out", out, "--device", "cpu")


@pytest.fixture(scope="module")
def scores_only(derma_subset, tmp_path_factory) -> tuple[Path, Path, str]:
    """(the ONNX file, its checkpoint, the import's stderr): a small CNN whose graph onnx2torch does not convert
    (`helpers.unconvertible_onnx`), imported: onnxruntime runs it."""
    root = tmp_path_factory.mktemp("scores-only")
    path = unconvertible_onnx(small_net(), root / "shrink.onnx")
    result = import_onnx(path, derma_subset, root / "imported")
    assert result.exit_code == 0, result.output
    return path, root / "imported", result.stderr


def test_an_unconvertible_model_is_imported_to_run_through_onnxruntime_giving_scores_only(scores_only, derma_subset):
    path, imported, stderr = scores_only
    checkpoint = Checkpoint.load(imported)
    assert checkpoint.access == "scores" and checkpoint.meta.imported["runtime"].startswith("onnxruntime")
    assert "Shrink" in checkpoint.meta.imported["not_converted"]
    notes = [line for line in stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "square, hopskipjump" in notes[0] and "--threat transfer" in notes[0]
    import onnxruntime  # after skinart's own import of it

    x = np.ascontiguousarray(np.load(derma_subset)["test_images"][:9].transpose(0, 3, 1, 2), dtype=np.float32) / 255
    theirs = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        ours = network(checkpoint)(torch.from_numpy(x)).numpy()
        own = small_net().eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(ours, own, atol=1e-5, rtol=0)  # Shrink(0, 0) keeps the model's function


def test_a_gradient_attack_on_a_scores_only_model_is_one_line_naming_those_it_allows(scores_only, derma_subset, tmp_path):
    for threat in ("white-box", "adaptive"):
        result = invoke("attack", "--checkpoint", scores_only[1], "--method", "pgd", "--threat", threat, "--max-samples", 10,
                        "--data-root", derma_subset, "--out", tmp_path / threat, "--device", "cpu")
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert "pgd reads the gradients" in result.stderr and "square, hopskipjump" in result.stderr
        assert not (tmp_path / threat).exists()


def test_a_scores_only_model_is_attacked_by_square_and_by_transfer(scores_only, trained, derma_subset, tmp_path):
    for name, how in (("square", ["--method", "square", "--max-iter", 5]),
                      ("transfer", ["--method", "fgsm", "--threat", "transfer", "--source-checkpoint", trained])):
        result = invoke("attack", "--checkpoint", scores_only[1], *how, "--max-samples", 10, "--data-root", derma_subset,
                        "--out", tmp_path / name, "--device", "cpu")
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["adversarial"]["accuracy"] <= metrics["clean"]["accuracy"] and metrics["linf_max"] <= 8 / 255 + 1e-6


def test_an_evaluation_under_square_says_the_gradient_checks_were_not_run(scores_only, derma_subset, tmp_path):
    result = invoke("evaluate", "--checkpoint", scores_only[1], "--attack", "square", "--threat", "white-box", "--max-iter", 5,
                    "--max-samples", 10, "--data-root", derma_subset, "--out", tmp_path / "eval", "--device", "cpu")
    assert result.exit_code == 0, result.output
    sanity = json.loads((tmp_path / "eval" / "metrics.json").read_text())["sanity"]
    assert not sanity["unbounded"]["run"] and "gives scores only" in sanity["unbounded"]["reason"]


def test_an_exporter_opset_onnx2torch_lacks_is_imported_scores_only(derma_subset, tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7))
    path = export_onnx(net, tmp_path / "gelu.onnx")  # opset 20's Gelu: onnx2torch 1.5 has no converter for it
    result = import_onnx(path, derma_subset, tmp_path / "out")
    assert result.exit_code == 0, result.output
    meta = Checkpoint.load(tmp_path / "out").meta
    assert meta.imported["access"] == "scores" and "Gelu" in meta.imported["not_converted"]


def test_a_conversion_that_differs_from_onnxruntime_falls_back_to_onnxruntime(tmp_path, monkeypatch):
    monkeypatch.setattr(programs, "ONNX_PARITY", -1.0)  # every conversion differs by more than this
    net, found = read_onnx(export_onnx(small_net(), tmp_path / "small.onnx"), img_size=28)
    assert found["access"] == "scores" and "away from onnxruntime's" in found["not_converted"]
    with torch.no_grad():
        assert net(torch.rand(3, 3, 28, 28)).shape == (3, 7)


def test_a_checkpoint_converted_at_import_that_no_longer_converts_is_one_line(tmp_path):
    path = unconvertible_onnx(small_net(), tmp_path / "shrink.onnx")
    with pytest.raises(SkinartError, match="no longer converts to PyTorch as it did at import"):
        read_onnx(path, img_size=28, access="gradients")  # what a checkpoint of a converted model records
