"""Run directories: config.json + outputs, written under a temporary name and renamed when complete,
so an interrupted step leaves nothing half-written and a re-run with the same config is skipped."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from skinart import SkinartError

CONFIG_FILE = "config.json"


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def needs_run(out: Path, config: dict, overwrite: bool) -> bool:
    """False when `out` already holds this very run; raises when it holds another one."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return True
    if not out.is_dir():
        raise SkinartError(f"--out {out} is a file; choose a directory path")
    config_path = out / CONFIG_FILE
    try:
        same = json.loads(config_path.read_text()).get("config_hash") == config_hash(config)
    except (OSError, ValueError, AttributeError):
        same = False
    if same and not overwrite:
        return False
    if not overwrite:
        what = "a different run" if config_path.is_file() else "files that are not a skinart run"
        raise SkinartError(f"output directory {out} already holds {what}; pass --overwrite to replace it or choose another --out")
    return True


@contextmanager
def staged(out: Path, config: dict) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success write config.json and swap it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for leftover in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):  # from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        write_json(tmp / CONFIG_FILE, {"config_hash": config_hash(config), **config})
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
