"""Models handed over as programs, whose own code is their architecture: a torch.export program, a TorchScript archive,
an ONNX graph converted to PyTorch (the `onnx` extra: onnx2torch) so every attack has its gradients, its outputs
checked against onnxruntime's on the same images before it is trusted, or, where it does not convert, run by
onnxruntime itself (scores without gradients: black-box attacks only). A program with a fixed batch size is fed in
chunks of it; none can be put in train mode."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skinart import cache_root
from skinart.errors import SkinartError

ONNX_EXTRA = "pip install 'skinart[onnx]' (onnx, onnxruntime, onnx2torch)"
ONNX_OPSET_FALLBACK = 17  # the newest opset onnx2torch 1.5 converts every operator of (its registry lags the exporters')
ONNX_PARITY = 1e-4  # the largest difference from onnxruntime's logits (relative to their scale) a conversion may show
RUNTIME_ACCESS = "scores"  # what an attacker reads of a model onnxruntime runs (attacks.table's `access` column)


class ProgramModule(nn.Module):
    """A program as a module: `shape` its input's sizes (ints where fixed, None where dynamic), fed in chunks of its
    batch size when that is fixed; it cannot be put in train mode."""

    def __init__(self, program: nn.Module, shape: tuple, what: str):
        super().__init__()
        self.program, self.shape, self.what = program, tuple(shape), what
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

    def train(self, mode: bool = True) -> ProgramModule:
        if mode:
            raise SkinartError(f"{self.what} cannot be put in train mode, so it cannot be retrained; import its state dict "
                               "with --model to retrain it, or defend it with a preprocessing defence")
        return self


def read_exported(path: Path, **_) -> tuple[nn.Module, dict]:
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise SkinartError(f"{path} is not a torch.export program torch {torch.__version__} reads ({first_line(e)}); "
                           "save it again with torch.export.save") from None
    user = set(program.graph_signature.user_inputs)
    inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user]
    if len(inputs) != 1:
        raise SkinartError(f"the torch.export program takes {len(inputs)} inputs; skinart feeds it one batch of images: "
                           "export a model whose forward takes one NCHW tensor")
    shape = [n if isinstance(n, int) else None for n in inputs[0].meta["val"].shape]  # dynamic sizes are symbols
    return ProgramModule(program.module(), shape, "a torch.export program"), {}


def read_scripted(path: Path, **_) -> tuple[nn.Module, dict]:
    try:
        with warnings.catch_warnings():  # torch 2.14 marks TorchScript deprecated; reading it still works
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu").eval(), {}
    except Exception as e:
        raise SkinartError(f"{path} is not a TorchScript archive torch {torch.__version__} reads ({first_line(e)}); "
                           "save it again with torch.jit.save, or torch.export.save") from None


def read_onnx(path: Path, *, img_size: int | None = None, access: str | None = None, **_) -> tuple[nn.Module, dict]:
    """An ONNX model converted to PyTorch, its logits checked against onnxruntime's on seeded images; where it does not
    convert (or converts wrongly), the model run by onnxruntime itself: scores without gradients. `access` is what its
    checkpoint recorded (None at import: try to convert). What the checkpoint records: the converter, the opset converted
    at, the largest difference from onnxruntime; or the runtime, `access` scores and why it did not convert."""
    onnx, onnx2torch, onnxruntime = _onnx_libraries(path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        raise SkinartError(f"{path} is not an ONNX model onnx {onnx.__version__} reads ({first_line(e)}); export it again") from None
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise SkinartError(f"the ONNX model takes {len(inputs)} inputs; skinart feeds it one batch of images: export a "
                           "model whose graph takes one NCHW tensor")
    shape = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
    with _runtime_cache():
        session = onnxruntime.InferenceSession(str(path), _session_options(onnxruntime), providers=["CPUExecutionProvider"])
    runtime = ProgramModule(RuntimeProgram(session, inputs[0].name), shape, "an ONNX model run by onnxruntime")
    if access == RUNTIME_ACCESS:
        return runtime, {}
    try:
        net, opset = _converted(model, onnx2torch, shape)
        parity = _parity(net, session, inputs[0].name, [s or d for s, d in zip(shape, (4, 3, img_size or 64, img_size or 64))])
        if parity > ONNX_PARITY:
            raise NotConverted(f"its converted logits are {parity:.2g} away from onnxruntime's, relative to their scale; at "
                               f"most {ONNX_PARITY:g} is accepted")
    except NotConverted as e:
        if access is not None:  # the checkpoint was written with the converted model: its gradients are not to be lost quietly
            raise SkinartError(f"{path} no longer converts to PyTorch as it did at import ({e}); use onnx2torch "
                               f"{version('onnx2torch')} as then, or import the model again") from None
        return runtime, {"runtime": f"onnxruntime {version('onnxruntime')}", "access": RUNTIME_ACCESS, "not_converted": str(e)}
    return net, {"converter": f"onnx2torch {version('onnx2torch')}", "opset": opset, "onnxruntime_parity": parity,
                 "access": "gradients"}


class NotConverted(Exception):
    """Why an ONNX model does not convert to PyTorch faithfully: its message is the reason the checkpoint records."""


class RuntimeProgram(nn.Module):
    """An ONNX model run by an onnxruntime session, numpy in and out: its scores on the input's device, no gradients
    (an attack that differentiates it is refused here, in one line, should a check before have missed it)."""

    def __init__(self, session, name: str):
        super().__init__()
        self.session, self.name = session, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise SkinartError("an ONNX model run by onnxruntime gives scores only, no gradients: attack it with an attack "
                               "that reads scores or labels (square, hopskipjump), or by transfer from another model")
        z = self.session.run(None, {self.name: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(z).to(x.device)


def _onnx_libraries(path: Path) -> tuple:
    """onnx, onnx2torch and onnxruntime (the `onnx` extra), imported only for an ONNX model."""
    try:
        import onnx
        import onnx2torch

        with _runtime_cache():
            import onnxruntime
    except ImportError:
        raise SkinartError(f"{path} is an ONNX model, which skinart reads with onnx, onnx2torch and onnxruntime: "
                           f"{ONNX_EXTRA}") from None
    return onnx, onnx2torch, onnxruntime


def _session_options(onnxruntime):
    """onnxruntime computing on as many threads as torch does (its own default: every core)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return options


@contextmanager
def _runtime_cache():
    """onnxruntime 1.32 writes a telemetry database under $XDG_CACHE_HOME (default ~/.cache) when its first session
    starts: into skinart's cache instead, the user's own setting restored after."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache_root() / "onnxruntime")
    try:
        yield
    finally:
        if before is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = before


def _converted(model, onnx2torch, shape: list) -> tuple[nn.Module, int]:
    """onnx2torch's module at the model's own opset, else at the newest opset every operator converts at."""
    from onnx import version_converter

    model = _without_identities(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    try:
        converted = onnx2torch.convert(model)
    except NotImplementedError as first:
        reason = first_line(first)
        try:
            converted, opset = onnx2torch.convert(version_converter.convert_version(model, ONNX_OPSET_FALLBACK)), ONNX_OPSET_FALLBACK
        except Exception:
            raise NotConverted(f"{reason}, also at opset {ONNX_OPSET_FALLBACK}") from None
    return ProgramModule(converted.eval(), shape, "a converted ONNX model"), opset


def _without_identities(model):
    """The graph with each Identity node's output read from its input (PyTorch's exporter shares equal initializers
    through Identity nodes, which onnx2torch's converters do not follow)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.output[0] not in outputs}
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            while name in alias:
                name = alias[name]
            node.input[i] = name
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _parity(net: nn.Module, session, name: str, sizes: list[int]) -> float:
    """The largest difference between the converted model's logits and onnxruntime's on seeded uniform images of these
    sizes, relative to the logits' scale."""
    x = np.random.default_rng(0).random(sizes, dtype=np.float32)
    theirs = session.run(None, {name: x})[0]
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    if ours.shape != theirs.shape:
        return float("inf")
    return float(np.abs(ours - theirs).max() / (np.abs(theirs).max() + 1))


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0][:120]
