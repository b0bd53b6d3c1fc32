"""What a model file holds, told from its bytes and checked before anything in it is trusted: a safetensors file whose
header promises every byte it describes, a zip archive (torch.export, TorchScript, torch.save) whose every member
passes its CRC, an ONNX protobuf; and a state dict read without unpickling code (safetensors by its bytes whatever
its name, else torch.load with weights_only=True), the one state dict of a training checkpoint chosen by key."""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from timm.models import clean_state_dict

from skinart.errors import SkinartError
from skinart.models.import_options import GIVE, HUB_PREFIXES

_ZIP_MAGIC = b"PK\x03\x04"
# ONNX's ModelProto starts with ir_version (field 1, varint) followed by another of its fields (producer_name,
# producer_version, domain, model_version, doc_string, graph, opset_import: tags 0x12 0x1a 0x22 0x28 0x32 0x3a 0x42)
_ONNX_NEXT_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42}


def detect_format(spec: str) -> str:
    """The format of a --weights value, from the file's bytes (never its name, never by unpickling it), refusing a file
    that is damaged (a truncated safetensors, an archive member failing its CRC) in one line."""
    if spec.startswith(HUB_PREFIXES):
        return spec.split(":", 1)[0]
    path = Path(spec)
    if not path.is_file():
        raise SkinartError(f"--weights {spec} does not exist; {GIVE}")
    with open(path, "rb") as f:
        head = f.read(16)
    if safetensors_header(path, head) is not None:
        return "state-dict"
    if head.startswith(_ZIP_MAGIC):
        return _archive_format(path)
    if head[:1] == b"\x80":  # a legacy torch.save or a plain pickle: read with weights_only
        return "state-dict"
    if _looks_onnx(head):
        return "onnx"
    raise SkinartError(f"--weights {path} is not a model file (not torch.export, TorchScript, ONNX, safetensors or torch.save); {GIVE}")


def safetensors_header(path: Path, head: bytes) -> dict | None:
    """A safetensors file's header (None when the bytes are not safetensors), refused in one line when the file is
    shorter or longer than its header says (a truncated download) or the header is not its JSON."""
    size = int.from_bytes(head[:8], "little")
    total = path.stat().st_size
    if len(head) <= 8 or head[8:9] != b"{" or size == 0:
        return None
    if size >= total:
        raise SkinartError(f"--weights {path} is a damaged safetensors file: its header alone should be {size} bytes, the "
                           f"file has {total} (truncated); copy or save it again")
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(size))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        raise SkinartError(f"--weights {path} is a damaged safetensors file (its header is not readable JSON); "
                           "copy or save it again") from None
    if total != 8 + size + end:
        raise SkinartError(f"--weights {path} is a damaged safetensors file: {total} bytes where its header describes "
                           f"{8 + size + end} (truncated or cut short in a copy); copy or save it again")
    return header


def _archive_format(path: Path) -> str:
    """torch.export, TorchScript or torch.save, once every member of the zip archive has passed its CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            leaves = {n.split("/", 1)[-1] for n in archive.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise SkinartError(f"--weights {path} is a damaged zip archive ({_first(e)}); copy or save it again") from None
    if bad is not None:
        raise SkinartError(f"--weights {path} is damaged: its member {bad} fails its CRC check; copy or save it again")
    if "archive_format" in leaves:
        return "torch.export"
    if "constants.pkl" in leaves or any(n.startswith("code/") for n in leaves):
        return "torchscript"
    if "data.pkl" in leaves:  # torch.save's zip format
        return "state-dict"
    raise SkinartError(f"--weights {path} is a zip archive but not a model (not torch.export, TorchScript or torch.save); {GIVE}")


def _looks_onnx(head: bytes) -> bool:
    """ONNX's protobuf header: field 1 (ir_version, a small varint), then another ModelProto field."""
    return len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS


def read_state_dict(path: Path, state_key: str | None = None) -> tuple[dict[str, torch.Tensor], str | None]:
    """(the state dict, the key it was under in a training checkpoint, or None): safetensors when its bytes say so, else
    torch.load(weights_only=True), which unpickles no code. A checkpoint holding several state dicts (weights and
    their EMA, say) is refused unless `state_key` names one."""
    with open(path, "rb") as f:
        head = f.read(16)
    if safetensors_header(path, head) is not None:
        try:
            found = load_file(str(path))
        except SafetensorError as e:
            raise SkinartError(f"--weights {path} is a damaged safetensors file ({_first(e)}); copy or save it again") from None
    else:
        found = _unpickle_weights(path)
    if _is_state_dict(found):
        if state_key is not None:
            raise SkinartError(f"--state-key {state_key}: {path} is one state dict, not a checkpoint holding several; drop --state-key")
        return clean_state_dict(found), None
    candidates = [k for k, v in found.items() if _is_state_dict(v)] if isinstance(found, dict) else []
    if not candidates:
        raise SkinartError(f"{path} holds no state dict of tensors; save model.state_dict() and import that")
    if state_key is None and len(candidates) > 1:
        raise SkinartError(f"{path} holds {len(candidates)} state dicts ({', '.join(candidates)}); choose the weights to import "
                           f"with --state-key (e.g. --state-key {candidates[0]})")
    key = state_key if state_key is not None else candidates[0]
    if key not in candidates:
        raise SkinartError(f"--state-key {key}: {path} holds the state dict(s) {', '.join(candidates)}; choose one of them")
    return clean_state_dict(found[key]), key


def _unpickle_weights(path: Path):
    """torch.load with weights_only=True (tensors and plain values only; never code), torch's own warnings silenced:
    the refusal below is the one line a user sees."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, AttributeError, TypeError) as e:
        code = isinstance(e, pickle.UnpicklingError) or "weights only" in str(e).lower() or "weights_only" in str(e)
        raise SkinartError(f"{path} pickles Python code (e.g. a whole model saved with torch.save(model)), which skinart never "
                           "unpickles; save model.state_dict() (or torch.export the model) and import that" if code else
                           f"cannot read {path} as a state dict ({_first(e)}); {GIVE}") from None


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _first(e: Exception) -> str:
    return (str(e).strip().splitlines() or [e.__class__.__name__])[0][:120]
