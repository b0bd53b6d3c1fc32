"""ONNX models (the `onnx` extra): told from their bytes, converted to PyTorch so attacks have gradients. Parity of a
ResNet and an EfficientNet exported by torch.onnx.export: logits against onnxruntime's within 1e-5, the input gradient
against a finite difference through onnxruntime; imported and attacked; a graph that does not convert refused in one
line. Skipped without the extra."""

from __future__ import annotations

import json
import warnings
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from skinart.data import CLASSES
from skinart.models.checkpoint import Checkpoint
from skinart.models.model_files import detect_format
from skinart.models.programs import read_onnx

from helpers import invoke

# not imported here: onnxruntime fixes where it writes its telemetry when first imported, which skinart points into its cache
pytestmark = pytest.mark.skipif(not all(find_spec(m) for m in ("onnx", "onnxruntime", "onnx2torch")),
                                reason="needs the onnx extra: pip install 'skinart[onnx]'")


def export(net: nn.Module, path: Path, side: int = 28) -> Path:
    """torch.onnx.export as a team would call it: a dynamic batch, the default opset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.14 deprecates the TorchScript-based exporter it still ships
        torch.onnx.export(net.eval(), (torch.rand(2, 3, side, side),), str(path), dynamo=False, input_names=["x"],
                          output_names=["z"], dynamic_axes={"x": {0: "batch"}, "z": {0: "batch"}})
    return path


@pytest.fixture(scope="module", params=["resnet18", "efficientnet_b0"])
def exported(request, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return export(timm.create_model(request.param, num_classes=7), tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")


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


def test_a_graph_that_does_not_convert_is_one_line(derma_subset, tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7))
    path = export(net, tmp_path / "gelu.onnx")  # opset 20's Gelu: onnx2torch 1.5 has no converter for it
    result = invoke("import", "--weights", path, "--classes", ",".join(CLASSES), "--img-size", 28, "--data-root",
                    derma_subset, "--out", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "does not convert to PyTorch" in result.stderr and "torch.export" in result.stderr
    assert not (tmp_path / "out").exists()
