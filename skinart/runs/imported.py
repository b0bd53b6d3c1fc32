"""`skinart import`: a model trained outside skinart written as an ordinary checkpoint directory (its file, sha256 and
format recorded, its training data unknown), its operating point given by its owner or chosen on the validation split,
and the validation split scored at once so a wrong import (class order, normalisation, input size) shows."""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from skinart.attacks.table import readable
from skinart.models.checkpoint import CheckpointMeta, save_checkpoint
from skinart.data import LesionDataset, load_dataset
from skinart.errors import SkinartError
from skinart.models.foreign import (
    HUBS, TRAINED_BY, TRAINING_DATA_UNKNOWN, TRAINABLE, ForeignNet, architecture, check_options, read_network,
)
from skinart.models.import_options import ImportConfig, parse_outputs
from skinart.models.model_files import detect_format
from skinart.metrics import choose_threshold, classification_metrics, p_malignant, prediction_shares
from skinart.models.networks import data_config, predict, wrap
from skinart.rundir import METRICS_FILE, RunDir, RunOptions, resolved, write_json
from skinart.models.weights import file_sha256
from skinart.runs.import_check import import_check


def _probe(net: torch.nn.Module, cfg: ImportConfig, outputs: tuple[str, ...]) -> None:
    """One forward pass on two blank images: the model must take 3×S×S and give one logit per named output."""
    fixed = getattr(net, "shape", (None,))[1:]  # a program (torch.export, ONNX) exported at a fixed image size
    if any(isinstance(n, int) and n != want for n, want in zip(fixed, (3, cfg.img_size, cfg.img_size))):
        raise SkinartError(f"{net.what} takes {'×'.join(map(str, fixed))} images, not 3×{cfg.img_size}×{cfg.img_size}: "
                           "give --img-size the side it was exported at")
    try:
        with torch.no_grad():
            shape = tuple(net.eval()(torch.zeros(2, 3, cfg.img_size, cfg.img_size)).shape)
    except SkinartError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:120]
        raise SkinartError(f"the model does not take 3×{cfg.img_size}×{cfg.img_size} images ({first}); give the side it was "
                           "trained at with --img-size") from None
    if shape not in ((2, len(outputs)),) + (((2,),) if len(outputs) == 1 else ()):
        raise SkinartError(f"the model gives outputs of shape {shape[1:]} per image, but --classes names {len(outputs)}: "
                           "list every output, in the model's own order")


def _operating_point(cfg: ImportConfig, val, probs: np.ndarray, classes: tuple[str, ...], malignant: list[str]) -> dict | None:
    """The owner's threshold (recorded as given), else the one chosen on the validation split for the target sensitivity."""
    idx = [classes.index(m) for m in malignant]
    if cfg.threshold is not None:
        return {"threshold": cfg.threshold, "chosen_on": "given at import (the model's owner)", "malignant": malignant}
    target = cfg.target_sensitivity or 0.90
    chosen = choose_threshold(val.labels, p_malignant(probs, idx), idx, target)
    if chosen is None:
        print("note: the validation split lacks malignant or benign images: no operating point is chosen", file=sys.stderr)
        return None
    return {"threshold": chosen["threshold"], "target_sensitivity": target, "chosen_on": "val", "malignant": malignant,
            "val_sensitivity": chosen["sensitivity"], "val_specificity": chosen["specificity"]}


def import_summary(result: dict, out: Path) -> str:
    """What the command prints: where the checkpoint is, and the validation numbers that show a wrong import."""
    shares = ", ".join(f"{c} {s:.1%}" for c, s in result["predicted_shares"].items())
    point = result["operating_point"]
    at = "" if point is None else f"; operating point p_malignant ≥ {point['threshold']:.4g} ({point['chosen_on']})"
    return (f"checkpoint {out} ({result['format']}, trained {TRAINED_BY}): validation split, {result['images']} images: accuracy "
            f"{result['accuracy']:.3f}, balanced accuracy {result['macro_recall']:.3f}, AUROC "
            f"{'n/a' if result['auroc'] is None else format(result['auroc'], '.3f')}{at}\npredicted: {shares}")


def import_run(cfg: ImportConfig, out: Path, options: RunOptions) -> dict | None:
    """Read the model (refused in one line before anything is written), write the checkpoint into `out` and score the
    validation split; None when `out` already holds this import."""
    outputs = cfg.check(options.malignant)[0]
    fmt = detect_format(cfg.weights)
    check_options(fmt, cfg.weights, model=cfg.model, state_key=cfg.state_key)
    sha256 = None if fmt in HUBS else file_sha256(cfg.weights)
    run = RunDir("import", out, options, data=options.data_ref(img_size=cfg.img_size, resize=cfg.resize),
                 imported=asdict(cfg), sha256=sha256, malignant=options.malignant)
    if run.done:
        return None
    inner, found = read_network(cfg.weights, fmt, model=cfg.model, n_outputs=len(outputs) if outputs else None,
                                state_key=cfg.state_key, 
                                img_size=cfg.img_size)
    model = architecture(cfg.model, fmt, inner, cfg.weights)
    cfg = _own_defaults(cfg, found)
    outputs, classes, labels, malignant, mean, std = cfg.check(options.malignant)
    _probe(inner, cfg, outputs)
    if cfg.mean is None and fmt in TRAINABLE:  # a timm architecture's own normalisation (a hub model's, from its config)
        mean, std = data_config(inner)
        found["normalisation"] = f"{model}'s own in timm" if fmt == "state-dict" else "the model's own config"
        if fmt == "state-dict":
            print(f"note: no --mean/--std: {model}'s own normalisation in timm is used (mean {','.join(f'{m:g}' for m in mean)}, "
                  f"std {','.join(f'{v:g}' for v in std)}); pass --mean 0,0,0 --std 1,1,1 for a model taking [0, 1] pixels",
                  file=sys.stderr)
    dataset = load_dataset(options.data, options.data_root, img_size=cfg.img_size, resize=cfg.resize, options=options.data_options)
    dataset = dataset.relabelled(classes, labels) if labels else dataset
    net = ForeignNet(inner, outputs, classes)
    meta = CheckpointMeta(
        model=model, written_by="skinart import",
        classes=classes, img_size=cfg.img_size, mean=mean, std=std, malignant=malignant, data=dataset.settings(), labels=labels,
        imported={"trained_by": TRAINED_BY, "file": cfg.weights if fmt in HUBS else resolved(cfg.weights),
                  "sha256": sha256, "format": fmt, "outputs": list(outputs), "training_data": TRAINING_DATA_UNKNOWN, **found})
    result = _write(cfg, out=out, run=run, net=net, dataset=dataset, options=options, malignant=malignant, meta=meta)
    if "not_converted" in found:
        print(f"note: {access_note(cfg.weights, found)}", file=sys.stderr)
    return result


def access_note(weights: str, found: dict) -> str:
    """What an attacker can do to a model that gives no gradients, from the attack table: the threat models left."""
    access = found["access"]
    return (f"{weights} does not convert to PyTorch ({found['not_converted']}), so onnxruntime runs it and it gives {access} "
            f"only: attacks on it are {', '.join(readable(access))} (white-box, or adaptive through preprocessing defences), "
            "or any attack crafted on another model (--threat transfer --source-checkpoint); it cannot be retrained")


def _own_defaults(cfg: ImportConfig, found: dict) -> ImportConfig:
    """--classes and --img-size, when not given, from what a hub or local-dir model says of itself (its label_names when
    they name skin-lesion classes, its input size)."""
    names, size = found.get("label_names"), found.get("input_size")
    if cfg.classes is None and not names:
        raise SkinartError(f"{cfg.weights} names no outputs (no label_names in its config): give them with --classes, in its own order")
    if cfg.img_size is None and not size:
        raise SkinartError(f"{cfg.weights} gives no input size in its config: give the side it takes with --img-size")
    if cfg.classes is None:
        try:
            parse_outputs(",".join(names), None)
        except SkinartError:
            raise SkinartError(f"{cfg.weights}'s label_names ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}) are no "
                               "skin-lesion classes: name its outputs with --classes, in its own order") from None
    return replace(cfg, classes=cfg.classes or ",".join(names), img_size=cfg.img_size or int(size[-1]))


def _write(cfg: ImportConfig, *, out: Path, run: RunDir, net: ForeignNet, dataset: LesionDataset, options: RunOptions,
           malignant: list[str], meta: CheckpointMeta) -> dict:
    """Score the validation split, choose the operating point and write the checkpoint with the validation metrics."""
    val = dataset.splits.get("val")
    if val is None or not len(val):
        raise SkinartError(f"{dataset.name} has no validation split to check the import on; give data with one (--data)")
    classifier = wrap(net.eval(), cfg.img_size, meta.mean, meta.std, options.device)
    probs = predict(classifier, val.images)
    point = _operating_point(cfg, val, probs, dataset.classes, malignant)
    metrics = classification_metrics(val.labels, probs.argmax(1), classes=dataset.classes, malignant=malignant, probs=probs,
                                     threshold=None if point is None else point["threshold"])
    shares = prediction_shares(probs.argmax(1), dataset.classes)
    check = import_check(val.labels, probs.argmax(1), dataset.classes)
    kept = None if meta.imported["format"] in TRAINABLE else Path(cfg.weights)
    with run.staged() as tmp:  # the check's verdict kept in the checkpoint: every evaluation of the model shows it
        checkpoint = save_checkpoint(tmp, net, replace(meta, operating_point=point, imported={**meta.imported, "check": check}),
                                     kept=kept)
        result = {"kind": "import", **checkpoint.provenance(), "format": meta.imported["format"], "split": "val",
                  "images": len(val), "predicted_shares": shares, "warning": check["warning"], "operating_point": point, **metrics}
        write_json(tmp / METRICS_FILE, result)
    if check["warning"]:
        print(f"warning: {check['warning']}", file=sys.stderr)
    return result
