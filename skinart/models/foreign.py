"""Models trained outside skinart (`skinart import`): which format a file holds, found from its bytes; its network read
without unpickling code (a torch.export program, a TorchScript archive, a state dict for a timm architecture, a timm
hub model); the model's outputs named in its own order and mapped to the data's classes by name; and `ForeignNet`,
which gives the network's outputs the checkpoint's class order (one logit z becomes the two logits [0, z])."""

from __future__ import annotations

import logging
import pickle
import warnings
import zipfile
from pathlib import Path

import timm
import torch
from safetensors.torch import load_model
from torch import nn

from skinart.data import CLASSES
from skinart.errors import SkinartError
from skinart.models.networks import check_model_name, hub_unreachable
from skinart.options import parse_malignant
from skinart.rundir import EXPORTED_FILE, SCRIPTED_FILE, WEIGHTS_FILE
from skinart.models.weights import COUNTER

TRAINED_BY = "outside skinart"
TRAINING_DATA_UNKNOWN = "training data unknown: overlap with the evaluation images not checked"
BINARY = ("benign", "malignant")
# format -> the file a checkpoint keeps it in: programs and archives as given (their code is their architecture), state
# dicts (and hub models) as the safetensors of the wrapped network
FILES = {"torch.export": EXPORTED_FILE, "torchscript": SCRIPTED_FILE, "state-dict": WEIGHTS_FILE, "hf-hub": WEIGHTS_FILE}
TRAINABLE = ("state-dict", "hf-hub")  # a timm architecture skinart can rebuild, retrain and save
_GIVE = "pass a torch.export .pt2, a TorchScript archive, a .safetensors/.pth state dict (with --model) or hf-hub:ORG/NAME"


def detect_format(spec: str) -> str:
    """The format of a --weights value, from the file's bytes (never its name alone, never by unpickling it)."""
    if spec.startswith("hf-hub:"):
        return "hf-hub"
    path = Path(spec)
    if not path.is_file():
        raise SkinartError(f"--weights {spec} does not exist; {_GIVE}")
    with open(path, "rb") as f:
        head = f.read(16)
    size = int.from_bytes(head[:8], "little")
    if len(head) > 8 and head[8:9] == b"{" and 0 < size < path.stat().st_size:
        return "state-dict"  # safetensors: an 8-byte header length, then its JSON
    leaves = {n.split("/", 1)[-1] for n in zipfile.ZipFile(path).namelist()} if zipfile.is_zipfile(path) else set()
    if "archive_format" in leaves:
        return "torch.export"
    if "constants.pkl" in leaves or any(n.startswith("code/") for n in leaves):
        return "torchscript"
    if "data.pkl" in leaves or head[:1] == b"\x80":  # torch.save (zip or legacy pickle): read with weights_only
        return "state-dict"
    if path.suffix.lower() == ".onnx":
        raise SkinartError(f"--weights {path}: ONNX is not imported (no converter here keeps the gradients attacks need); "
                           "export the model with torch.export.save (.pt2) and import that")
    raise SkinartError(f"--weights {path} is not a model file (not torch.export, TorchScript, safetensors or torch.save); {_GIVE}")


def parse_outputs(text: str, malignant: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], dict | None]:
    """(the model's outputs in its own order, the checkpoint's classes, the data's classes -> the checkpoint's, or None
    when they are the same): every class by name, or a binary model (benign,malignant or one logit: malignant)."""
    outputs = tuple(n.strip().lower() for n in str(text).split(",") if n.strip())
    if len(set(outputs)) != len(outputs) or not outputs:
        raise SkinartError(f"--classes {text!r}: name each of the model's outputs once, in its own order, e.g. mel,nv,bcc,akiec,bkl,df,vasc")
    if set(outputs) in ({"malignant"}, set(BINARY)):
        return outputs, BINARY, {c: "malignant" if c in malignant else "benign" for c in CLASSES}
    unknown = [n for n in outputs if n not in CLASSES]
    if unknown:
        raise SkinartError(f"--classes names {', '.join(unknown)}, which the data do not have; name the outputs with "
                           f"{', '.join(CLASSES)} (or benign,malignant, or malignant for one logit)")
    if len(outputs) != len(CLASSES):
        missing = [c for c in CLASSES if c not in outputs]
        raise SkinartError(f"--classes lists {len(outputs)} of the {len(CLASSES)} classes (missing {', '.join(missing)}); a model "
                           "is compared on every class of the data, or as binary: benign,malignant (or malignant, one logit)")
    return outputs, CLASSES, None


def parse_channels(text: str | None, option: str, default: float) -> tuple[float, ...]:
    """--mean/--std: three numbers (RGB) applied to [0, 1] pixels; none given: the identity."""
    if text is None:
        return (default,) * 3
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise SkinartError(f"{option} {text!r} is not three numbers; write e.g. {option} 0.485,0.456,0.406") from None
    if len(values) != 3 or (option == "--std" and min(values) <= 0):
        raise SkinartError(f"{option} {text!r}: give three numbers, one per RGB channel{' (each > 0)' if option == '--std' else ''}")
    return values


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


class ExportedModule(nn.Module):
    """A torch.export program as a module: fed in chunks of its batch size when it was exported with a fixed one; it
    cannot be put in train mode."""

    def __init__(self, program):
        super().__init__()
        self.program = program.module()
        user = set(program.graph_signature.user_inputs)
        inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
        if len(inputs) != 1:
            raise SkinartError(f"the torch.export program takes {len(inputs)} inputs; skinart feeds it one batch of images: "
                               "export a model whose forward takes one NCHW tensor")
        self.shape = tuple(inputs[0].meta["val"].shape)  # its fixed sizes are ints, its dynamic ones symbols
        self.batch = self.shape[0] if isinstance(self.shape[0], int) else None
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.batch is None:
            return self.program(x)
        chunks = []
        for part in torch.split(x, self.batch):
            pad = self.batch - len(part)
            padded = torch.cat([part, part[-1:].expand(pad, *part.shape[1:])]) if pad else part
            chunks.append(self.program(padded)[: len(part)])
        return torch.cat(chunks)

    def train(self, mode: bool = True) -> ExportedModule:
        if mode:
            raise SkinartError("a torch.export program cannot be put in train mode, so it cannot be retrained; import its "
                               "state dict with --model to retrain it, or defend it with a preprocessing defence")
        return self


def _exported(path: Path, **_) -> nn.Module:
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise SkinartError(f"{path} is not a torch.export program torch {torch.__version__} reads ({_first(e)}); "
                           "save it again with torch.export.save") from None
    return ExportedModule(program)


def _scripted(path: Path, **_) -> nn.Module:
    try:
        with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; reading it still works
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise SkinartError(f"{path} is not a TorchScript archive torch {torch.__version__} reads ({_first(e)}); "
                           "save it again with torch.jit.save, or torch.export.save") from None


def _state_dict(path: Path, *, model: str | None, n_outputs: int) -> nn.Module:
    if not model:
        raise SkinartError(f"{path} is a state dict: weights without an architecture; name it with --model (a timm name, "
                           "e.g. resnet18: torchvision's ResNets share timm's tensor names)")
    check_model_name(model)
    try:
        state = timm.models.load_state_dict(str(path))  # safetensors, or torch.load(weights_only=True): never code
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as e:
        code = "weights_only" in str(e) or "weights only" in str(e).lower() or isinstance(e, pickle.UnpicklingError)
        raise SkinartError(f"{path} pickles Python code (e.g. a whole model saved with torch.save(model)), which skinart never "
                           "unpickles; save model.state_dict() (or torch.export the model) and import that" if code else
                           f"cannot read {path} as a state dict ({_first(e)}); {_GIVE}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SkinartError(f"{path} holds no state dict of tensors; save model.state_dict() and import that")
    net = timm.create_model(model, num_classes=n_outputs)
    fit_state(net, state, f"{path.name}", f"{model} with {n_outputs} output(s)")
    return net


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


def _hub(spec: str, **_) -> nn.Module:
    host = hub_unreachable(spec.removeprefix("hf-hub:"))
    if host:
        raise SkinartError(f"cannot fetch {spec} from the Hugging Face hub: {host} cannot be reached from here and it is not "
                           "in the cache; save its weights where the hub is reachable and import the file with --model")
    logging.disable(logging.WARNING)  # huggingface_hub logs each failed request: the error below is the one line
    try:
        return timm.create_model(spec, pretrained=True)
    except Exception as e:  # offline, unknown repository, gated model: many types
        raise SkinartError(f"cannot fetch {spec} from the Hugging Face hub ({e.__class__.__name__}); offline, save its weights "
                           "where the hub is reachable and import the file with --model") from None
    finally:
        logging.disable(logging.NOTSET)


def stored_network(weights: Path, imported: dict, *, model: str, classes: tuple[str, ...]) -> ForeignNet:
    """An imported checkpoint's network: its kept program or archive, or its architecture with the saved safetensors
    (the wrapped network's, so retrained weights load the same way)."""
    outputs = tuple(imported["outputs"])
    if imported["format"] not in TRAINABLE:  # the file is the architecture
        return ForeignNet(read_network(str(weights), imported["format"], model=None, n_outputs=len(outputs)), outputs, classes)
    net = ForeignNet(timm.create_model(model, num_classes=len(outputs)), outputs, classes)
    try:
        load_model(net, str(weights))
    except Exception as e:
        raise SkinartError(f"{weights} does not fit model {model} ({_first(e)}); import the model again") from None
    return net


def binary_malignant(option: str, labels: dict[str, str], where: str) -> list[str]:
    """A binary model's malignant output named by the data's classes it stands for (the ones mapped to it at import);
    any other set is refused: the model's outputs cannot be remapped after import."""
    mapped = sorted(c for c, m in labels.items() if m == "malignant")
    if sorted(parse_malignant(option, CLASSES)) != mapped:
        raise SkinartError(f"--malignant {option}: {where} is a binary model whose malignant output stands for "
                           f"{', '.join(mapped)} (its import's --malignant); drop --malignant, or import it again with this one")
    return ["malignant"]


READERS = {"torch.export": _exported, "torchscript": _scripted, "state-dict": _state_dict, "hf-hub": _hub}


def read_network(spec: str, fmt: str, *, model: str | None, n_outputs: int) -> nn.Module:
    """The network a --weights value holds, as its format is read."""
    return READERS[fmt](spec if fmt == "hf-hub" else Path(spec), model=model, n_outputs=n_outputs)


def _first(e: Exception) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0][:120]
