"""Where and how a run computes: the device (`--device`), what its numbers depend on besides its settings (the device's
name, torch's thread count, the torch/CUDA/cuDNN versions), and deterministic algorithms (`--deterministic`).

torch is imported inside the functions: the CLI imports this module (through `rundir`) to parse a command, and
`--help` answers before torch would have loaded."""

from __future__ import annotations

import os

from skinart.errors import SkinartError
from skinart.options import choose

DEVICES = ("auto", "cpu", "cuda")
# --precision -> the torch dtype torch.autocast computes in, by name (None: plain fp32, nothing wrapped; models.networks)
PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs to give the same sums on every run (NVIDIA's reproducibility notes)


def resolve_device(device: str) -> str:
    import torch

    choose(device, DEVICES, "device")
    if device == "cuda" and not torch.cuda.is_available():
        raise SkinartError("--device cuda asked for, but torch sees no CUDA device; use --device auto or cpu")
    return "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)


def check_precision(precision: str, device: str) -> None:
    """fp16 only on CUDA: older torch versions (the ones skinart's torch>=2.2 allows) turn CPU autocast at fp16 off with
    a warning and compute fp32, which a run would record as fp16; bf16 is the CPU's reduced precision."""
    if precision == "fp16" and resolve_device(device) == "cpu":
        raise SkinartError("--precision fp16 is for CUDA devices (on CPU, older torch versions compute fp32 under it); on "
                           "CPU use --precision bf16 or fp32")


def environment(device: str) -> dict:
    """What a run's numbers depend on besides its settings: the device's name, torch's thread count and version, and on
    CUDA the CUDA and cuDNN versions (a CPU run's numbers do not depend on them)."""
    import torch

    resolved = resolve_device(device)
    found = {"device": "cpu", "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if resolved == "cuda":
        found |= {"device": torch.cuda.get_device_name(), "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return found


def use_deterministic(on: bool) -> None:
    """Deterministic algorithms on or off for what runs next in this process (a recipe's steps share one): torch's
    switch (an op without a deterministic version then fails instead of varying), cuDNN's, and cuBLAS's workspace (read
    by cuBLAS when it starts: set here, before any model is built). Off, cuDNN benchmarks its algorithms instead."""
    import torch

    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on
