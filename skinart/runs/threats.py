"""`skinart evaluate --attack`: one attack under several threat models side by side (one attack sub-run each),
with the robustness flags (transfer overstating robustness, gradient masking by a preprocessor) and the sanity checks
of Carlini et al. 2019 (`sanity.py`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from skinart.attacks.config import OBJECTIVES, AttackConfig, objective_words
from skinart.attacks.objective import attacked_images, decision_head
from skinart.attacks.table import METHODS, THREATS
from skinart.models.checkpoint import Checkpoint
from skinart.compute import environment
from skinart.attacks.loops import sample_indices
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.metrics import robustness_flags
from skinart.presentation.tables import threats_markdown
from skinart.rundir import METRICS_FILE, METRICS_MD, RunDir, RunOptions, resolved, seed_everything, write_json
from skinart.runs.attack import attack_run, crafting_identity, objective_threshold, transfer_source
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
    objective_threshold(cfg, checkpoint, checkpoint.malignant_names(options.malignant))  # refused before anything is written
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
        preprocessed, measure = bool(checkpoint.meta.preprocessing), OBJECTIVES[cfg.objective].measure
        checks = {**(sanity_gradients(cfg, checkpoint, options, out) if gradient_sanity else {}), **table_checks(table, preprocessed, measure)}
        metrics = {"kind": "threats", **checkpoint.provenance(), "method": cfg.method, **objective_record(cfg), "threats": table,
                   **robustness_flags(table, preprocessed, measure), "sanity": summary(checks)}
        write_json(tmp / METRICS_FILE, metrics)
        (tmp / METRICS_MD).write_text(threats_markdown(metrics, f"{cfg.method} on {checkpoint}{objective_words(cfg.objective)}"))
    return metrics


# the gradient checks this process has run: what decides them (`_sanity_key`) -> (checks, the run they were run for)
_SANITY_RUN: dict[str, tuple[dict, Path]] = {}


def objective_record(cfg: AttackConfig) -> dict:
    """What a run of attacks says of its objective: its name, the test images it attacked (all, malignant, benign) and
    the table's column it lowers, which the sanity checks and robustness flags compare."""
    objective = OBJECTIVES[cfg.objective]
    return {"objective": cfg.objective, "attacked_images": objective.attacked, "measure": objective.measure}


def _sanity_key(checkpoint: Checkpoint, options: RunOptions, eps: float, seed: int, objective: str, malignant: list[str]) -> str:
    """What decides the gradient checks: the deployed model (network and preprocessors, as the adaptive attacker sees
    it), the test split, ε, the seed, the objective (at the operating point of the malignant set) and how the run computes."""
    return json.dumps([crafting_identity("adaptive", checkpoint, None, True), options.data_ref(checkpoint.data_name()),
                       checkpoint.meta.data, eps, seed, objective, malignant, environment(options.device), options.precision,
                       options.deterministic], sort_keys=True)


def sanity_gradients(cfg: AttackConfig, checkpoint: Checkpoint, options: RunOptions, out: Path) -> dict:
    """The gradient checks on a seeded sample of the test split, attacked through the deployed (defended) model at the
    evaluation's L∞ ε (PGD's default for an unbounded or L2 attack: the checks are L∞). Under an objective the sample is
    of the images it attacks and PGD attacks their decision at the operating point (the check's accuracy is then the
    sensitivity or specificity at t). Seeded, so the same checks in one process (a recipe's steps evaluating one model
    at one ε) run once and are reused, saying so."""
    linf = cfg.params.get("norm", "inf") == "inf"
    eps = (cfg.budget if linf else None) or METHODS["pgd"].defaults["eps"]
    malignant = checkpoint.malignant_names(options.malignant)
    key = _sanity_key(checkpoint, options, eps, cfg.seed, cfg.objective, malignant)
    if key in _SANITY_RUN:
        checks, first = _SANITY_RUN[key]
        print(f"sanity checks: those run for {first} (the same deployed model, test images, ε and seed)", file=sys.stderr)
        return dict(checks)  # a copy: a caller adds its own checks
    objective, malignant_idx = OBJECTIVES[cfg.objective], [checkpoint.classes.index(c) for c in malignant]
    head = decision_head(cfg.objective, malignant_idx, objective_threshold(cfg, checkpoint, malignant))
    test = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root).splits["test"]
    keep = sample_indices(len(test), SANITY_SAMPLES, cfg.seed, attacked_images(objective, test.labels, malignant_idx))
    labels = test.labels[keep] if head is None else np.full(len(keep), objective.decision)
    classifier = deployed(checkpoint, options.device, precision=options.precision, head=head, samples=options.smoothing_n)
    print(f"sanity checks: PGD on {len(keep)} {'' if head is None else objective.attacked + ' '}test images through the "
          f"deployed model{'' if head is None else ', on the decision at t'}", file=sys.stderr)
    seed_everything(cfg.seed)
    what = "accuracy" if head is None else objective.measure.replace("_at_threshold", " at t")
    checks = gradient_checks(classifier, to_model_input(test.images[keep]), labels, eps, seed=cfg.seed, what=what)
    _SANITY_RUN[key] = (dict(checks), out)
    return checks


def table_row(m: dict) -> dict:
    """One threat model's line: accuracy, the binary metrics at argmax and at the stored operating point (None without one)."""
    adversarial, at = m["adversarial"], m["adversarial"].get("binary_at_threshold") or {}
    return {"clean_accuracy": m["clean"]["accuracy"], "accuracy": adversarial["accuracy"],
            **{k: adversarial["binary"][k] for k in ("sensitivity", "npv", "fnr")},
            **{f"{k}_at_threshold": at.get(k) for k in ("sensitivity", "specificity", "npv", "fnr")}, "fooling_rate": m["fooling_rate"]}
