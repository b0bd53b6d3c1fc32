"""Models trained outside skinart (`skinart import`): which format a file holds, found from its bytes; its network read
without unpickling code (a torch.export program, a TorchScript archive, a state dict for a timm architecture, a timm
hub model); the model's outputs named in its own order and mapped to the data's classes by name; and `ForeignNet`,
which gives the network's outputs the checkpoint's class order (one logit z becomes the two logits [0, z])."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import timm
import torch
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_model
from torch import nn

from skinart.data import CLASSES
from skinart.errors import SkinartError
from skinart.models.model_files import read_state_dict
from skinart.models.networks import check_model_name, hub_unreachable
from skinart.models.programs import first_line, read_exported, read_onnx, read_scripted
from skinart.options import parse_malignant
from skinart.rundir import EXPORTED_FILE, ONNX_FILE, SCRIPTED_FILE, WEIGHTS_FILE
from skinart.models.weights import COUNTER

TRAINED_BY = "outside skinart"
TRAINING_DATA_UNKNOWN = "training data unknown: overlap with the evaluation images not checked"
# format -> the file a checkpoint keeps it in: programs and archives as given (their code is their architecture), state
# dicts (and hub models) as the safetensors of the wrapped network
FILES = {"torch.export": EXPORTED_FILE, "torchscript": SCRIPTED_FILE, "onnx": ONNX_FILE, "state-dict": WEIGHTS_FILE,
         "hf-hub": WEIGHTS_FILE, "local-dir": WEIGHTS_FILE}
TRAINABLE = ("state-dict", "hf-hub", "local-dir")  # a timm architecture skinart can rebuild, retrain and save
HUBS = ("hf-hub", "local-dir")  # models that bring their own config (timm's hf-hub: and local-dir: prefixes)


def check_options(fmt: str, spec: str, *, model: str | None, state_key: str | None) -> None:
    """--model names a state dict's architecture and --state-key the state dict inside a training checkpoint: a program
    or archive is its own architecture, so naming another one there would only be recorded, never checked."""
    if model and fmt not in TRAINABLE:
        raise SkinartError(f"--model {model}: {spec} is a {fmt} file, whose own code is its architecture (recorded as "
                           f"{fmt}:{Path(spec).name}); drop --model")
    if state_key and fmt != "state-dict":
        raise SkinartError(f"--state-key {state_key} chooses a state dict inside a training checkpoint, and {spec} is a {fmt} "
                           "model; drop --state-key")


def architecture(model: str | None, fmt: str, inner: nn.Module, spec: str) -> str:
    """The name the checkpoint records for the network: --model for a state dict, a hub model's own architecture
    (--model, if given, must be it), else the format and file name."""
    if fmt in HUBS:
        own = getattr(inner, "pretrained_cfg", {}).get("architecture")
        if model and model != own:
            raise SkinartError(f"--model {model}: {spec} is a {own}; drop --model (a hub model names its architecture)")
        return own
    return model or f"{fmt}:{Path(spec).name}"


class ForeignNet(nn.Module):
    """An imported network with its outputs in the checkpoint's class order; a single logit z becomes [0, z] (softmax
    gives the sigmoid). Its state dict is the network's own under `net.`."""

    def __init__(self, net: nn.Module, outputs: tuple[str, ...], classes: tuple[str, ...]):
        super().__init__()
        self.net, self.single = net, len(outputs) == 1
        self.order = None if self.single else [outputs.index(c) for c in classes]
        self.num_classes = len(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        if self.single:
            z = z.reshape(len(x), 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z[:, self.order]


def _state_dict(path: Path, *, model: str | None, n_outputs: int, state_key: str | None = None, **_) -> tuple[nn.Module, dict]:
    if not model:
        raise SkinartError(f"{path} is a state dict: weights without an architecture; name it with --model (a timm name, "
                           "e.g. resnet18: torchvision's ResNets share timm's tensor names)")
    check_model_name(model)
    state, key = read_state_dict(path, state_key)
    net = timm.create_model(model, num_classes=n_outputs)
    fit_state(net, state, f"{path.name}", f"{model} with {n_outputs} output(s)")
    return net, {"state_key": key}


def fit_state(net: nn.Module, state: dict, what: str, target: str) -> None:
    """Load `state` into `net` strictly (BatchNorm's batch counters aside), refusing in one line what does not fit."""
    own = net.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(COUNTER)]
    unexpected = [k for k in state if k not in own]
    fix = "name the architecture the weights were saved from with --model, and its outputs with --classes"
    if missing or unexpected:
        first = lambda keys: f"first '{keys[0]}'" if keys else "none"  # noqa: E731
        raise SkinartError(f"{what} does not fit {target}: {len(missing)} missing tensors ({first(missing)}), {len(unexpected)} "
                           f"unexpected ({first(unexpected)}); {fix}")
    wrong = [k for k in state if state[k].shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise SkinartError(f"{what} does not fit {target}: '{k}' is {tuple(state[k].shape)} in the file but "
                           f"{tuple(own[k].shape)} in the model ({len(wrong)} tensors differ); {fix}")
    net.load_state_dict(state, strict=False)


def _hub(spec: str, **_) -> tuple[nn.Module, dict]:
    if spec.startswith("hf-hub:") and (host := hub_unreachable(spec.removeprefix("hf-hub:"))):
        raise SkinartError(f"cannot fetch {spec} from the Hugging Face hub: {host} cannot be reached from here and it is not "
                           "in the cache; save its weights where the hub is reachable and import the file with --model")
    logging.disable(logging.WARNING)  # huggingface_hub logs each failed request: the error below is the one line
    try:
        net = timm.create_model(spec, pretrained=True)
    except Exception as e:  # offline, unknown repository, gated model, a folder without config.json: many types
        raise SkinartError(f"cannot read {spec} ({e.__class__.__name__}: {first_line(e)}); offline, save its weights where "
                           "the hub is reachable and import the file with --model") from None
    finally:
        logging.disable(logging.NOTSET)
    return net, hub_metadata(spec, net)


def hub_metadata(spec: str, net: nn.Module) -> dict:
    """What a hub or local-dir model says of itself (its config.json, timm's pretrained_cfg), recorded and used as the
    import's defaults: its output names, input size, the arguments it was built with, and the hub revision read."""
    cfg = getattr(net, "pretrained_cfg", {}) or {}
    config = _config_file(spec)
    about = json.loads(config.read_text()) if config else {}
    revision = config.parent.name if config and spec.startswith("hf-hub:") else None  # .../snapshots/<commit>/config.json
    return {"label_names": list(cfg.get("label_names") or []) or None, "input_size": list(cfg.get("input_size") or []) or None,
            "model_args": {k: v for k, v in (about.get("model_args") or {}).items() if k != "num_classes"}, "revision": revision}


def _config_file(spec: str) -> Path | None:
    """A hub model's config.json as cached, or a local-dir model's."""
    if spec.startswith("local-dir:"):
        found = Path(spec.removeprefix("local-dir:")).expanduser() / "config.json"
    else:
        found = try_to_load_from_cache(spec.removeprefix("hf-hub:"), "config.json")
    return Path(found) if isinstance(found, (str, Path)) and Path(found).is_file() else None


def stored_network(weights: Path, imported: dict, *, model: str, classes: tuple[str, ...], img_size: int | None = None) -> ForeignNet:
    """An imported checkpoint's network: its kept program or archive, or its architecture with the saved safetensors
    (the wrapped network's, so retrained weights load the same way)."""
    outputs = tuple(imported["outputs"])
    if imported["format"] not in TRAINABLE:  # the file is the architecture
        inner = read_network(str(weights), imported["format"], model=None, n_outputs=len(outputs), img_size=img_size,
                             access=imported.get("access", "gradients"))[0]
        return ForeignNet(inner, outputs, classes)
    net = ForeignNet(timm.create_model(model, num_classes=len(outputs), **imported.get("model_args") or {}), outputs, classes)
    try:
        load_model(net, str(weights))
    except Exception as e:
        raise SkinartError(f"{weights} does not fit model {model} ({first_line(e)}); import the model again") from None
    return net


def binary_malignant(option: str, labels: dict[str, str], where: str, positive: str = "malignant") -> list[str]:
    """A binary model's positive output named by the data's classes it stands for (the ones mapped to it at import);
    any other set is refused: the model's outputs cannot be remapped after import."""
    mapped = sorted(c for c, m in labels.items() if m == positive)
    if sorted(parse_malignant(option, CLASSES)) != mapped:
        raise SkinartError(f"--malignant {option}: {where} is a binary model whose {positive} output stands for "
                           f"{', '.join(mapped)} (as imported); drop --malignant, or import it again with this one")
    return [positive]


READERS = {"torch.export": read_exported, "torchscript": read_scripted, "onnx": read_onnx, "state-dict": _state_dict,
           "hf-hub": _hub, "local-dir": _hub}


def read_network(spec: str, fmt: str, *, model: str | None, n_outputs: int, state_key: str | None = None,
                 img_size: int | None = None, access: str | None = None) -> tuple[nn.Module, dict]:
    """The network a --weights value holds, as its format is read, and what the reading found that the checkpoint records
    (the key of the state dict taken from a training checkpoint; an ONNX model's conversion, or that onnxruntime runs it:
    `access`, what an attacker reads of it, is given back when the checkpoint is read)."""
    return READERS[fmt](spec if fmt in HUBS else Path(spec), model=model, n_outputs=n_outputs, state_key=state_key,
                        img_size=img_size, access=access)

