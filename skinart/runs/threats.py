"""`skinart evaluate --attack`: one attack under several threat models side by side (one attack sub-run each),
with the robustness flags (transfer overstating robustness, gradient masking by a preprocessor) and the sanity checks
of Carlini et al. 2019 (`sanity.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from skinart.attacks.config import AttackConfig
from skinart.attacks.table import METHODS, THREATS
from skinart.models.checkpoint import Checkpoint
from skinart.compute import environment
from skinart.attacks.loops import sample_indices
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.metrics import robustness_flags
from skinart.presentation.tables import threats_markdown
from skinart.rundir import METRICS_FILE, METRICS_MD, RunDir, RunOptions, resolved, seed_everything, write_json
from skinart.runs.attack import attack_run, crafting_identity, transfer_source
from skinart.attacks.sanity import SANITY_SAMPLES, gradient_checks, summary, table_checks
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def check_threats(checkpoint: Checkpoint, threats: tuple[str, ...], source_checkpoint: Path | None) -> None:
    if source_checkpoint and "transfer" not in threats:
        raise SkinartError("--source-checkpoint is for --threat transfer (or all), the model a transfer attacker crafts on; drop it or add --threat transfer")
    if "transfer" in threats:
        transfer_source(checkpoint, source_checkpoint)  # before any sub-run crafts anything


def threats_run(cfg: AttackConfig, checkpoint: Checkpoint, out: Path, options: RunOptions, *, threats: tuple[str, ...] = THREATS,
                source_checkpoint: Path | None = None, gradient_sanity: bool = True) -> dict | None:
    """The sub-runs `out/<threat>/` and their summary table in `out/metrics.json`; `gradient_sanity` False leaves the
    gradient checks to the caller (a worst case over several attacks runs them once)."""
    check_threats(checkpoint, threats, source_checkpoint)
    run = RunDir("threats", out, options, inputs=[source_checkpoint], checkpoint=checkpoint,
                 data=options.data_ref(), attack=cfg.__dict__, threats=list(threats), source_checkpoint=resolved(source_checkpoint),
                 malignant=options.malignant, gradient_sanity=gradient_sanity, seed=cfg.seed)
    if run.done:
        return None
    with run.staged() as tmp:
        crafted: dict = {}  # one crafting per distinct attacker (attack.crafting_identity)
        runs = {t: attack_run(cfg, checkpoint, tmp / t, options, source_checkpoint=source_checkpoint if t == "transfer" else None,
                              threat=t, crafted=crafted) for t in threats}
        table = {t: table_row(m) for t, m in runs.items()}
        preprocessed = bool(checkpoint.meta.preprocessing)
        checks = {**(sanity_gradients(cfg, checkpoint, options, out) if gradient_sanity else {}), **table_checks(table, preprocessed)}
        metrics = {"kind": "threats", **checkpoint.provenance(), "method": cfg.method, "threats": table, **robustness_flags(table, preprocessed),
                   "sanity": summary(checks)}
        write_json(tmp / METRICS_FILE, metrics)
        (tmp / METRICS_MD).write_text(threats_markdown(metrics, f"{cfg.method} on {checkpoint}"))
    return metrics


# the gradient checks this process has run: what decides them (`_sanity_key`) -> (checks, the run they were run for)
_SANITY_RUN: dict[str, tuple[dict, Path]] = {}


def _sanity_key(checkpoint: Checkpoint, options: RunOptions, eps: float, seed: int) -> str:
    """What decides the gradient checks: the deployed model (network and preprocessors, as the adaptive attacker sees
    it), the test split, ε, the seed and how the run computes."""
    return json.dumps([crafting_identity("adaptive", checkpoint, None, True), options.data_ref(checkpoint.data_name()),
                       checkpoint.meta.data, eps, seed, environment(options.device), options.precision, options.deterministic],
                      sort_keys=True)


def sanity_gradients(cfg: AttackConfig, checkpoint: Checkpoint, options: RunOptions, out: Path) -> dict:
    """The gradient checks on a seeded sample of the test split, attacked through the deployed (defended) model at the
    evaluation's L∞ ε (PGD's default for an unbounded or L2 attack: the checks are L∞). Seeded, so the same checks in
    one process (a recipe's steps evaluating one model at one ε) run once and are reused, saying so."""
    linf = cfg.params.get("norm", "inf") == "inf"
    eps = (cfg.budget if linf else None) or METHODS["pgd"].defaults["eps"]
    key = _sanity_key(checkpoint, options, eps, cfg.seed)
    if key in _SANITY_RUN:
        checks, first = _SANITY_RUN[key]
        print(f"sanity checks: those run for {first} (the same deployed model, test images, ε and seed)", file=sys.stderr)
        return dict(checks)  # a copy: a caller adds its own checks
    test = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root).splits["test"]
    keep = sample_indices(len(test), SANITY_SAMPLES, cfg.seed)
    classifier = deployed(checkpoint, options.device, precision=options.precision)
    print(f"sanity checks: PGD on {len(keep)} test images through the deployed model", file=sys.stderr)
    seed_everything(cfg.seed)
    checks = gradient_checks(classifier, to_model_input(test.images[keep]), test.labels[keep], eps, seed=cfg.seed)
    _SANITY_RUN[key] = (dict(checks), out)
    return checks


def table_row(m: dict) -> dict:
    """One threat model's line: accuracy, the binary metrics at argmax and at the stored operating point (None without one)."""
    adversarial, at = m["adversarial"], m["adversarial"].get("binary_at_threshold") or {}
    return {"clean_accuracy": m["clean"]["accuracy"], "accuracy": adversarial["accuracy"],
            **{k: adversarial["binary"][k] for k in ("sensitivity", "npv", "fnr")},
            **{f"{k}_at_threshold": at.get(k) for k in ("sensitivity", "specificity", "npv", "fnr")}, "fooling_rate": m["fooling_rate"]}
