"""`skinart evaluate --attack`: one attack under several threat models side by side (one attack sub-run each),
with the robustness flags (transfer overstating robustness, gradient masking by a preprocessor) and the sanity checks
of Carlini et al. 2019 (`sanity.py`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from skinart.attacks.config import OBJECTIVES, AttackConfig, objective_words
from skinart.attacks.objective import attacked_images, decision_head
from skinart.attacks.table import METHODS, THREATS, reads
from skinart.models.checkpoint import Checkpoint
from skinart.compute import environment
from skinart.attacks.loops import sample_indices
from skinart.errors import SkinartError
from skinart.metrics import robustness_flags
from skinart.presentation.tables import threats_markdown
from skinart.rundir import METRICS_FILE, METRICS_MD, RunDir, RunOptions, resolved, seed_everything, write_json
from skinart.runs.attack import attack_run, check_crafting, crafting_identity, objective_threshold, test_inputs, transfer_source
from skinart.runs.scoring import shift_record, shift_settings
from skinart.shifts.config import ImageShift, under
from skinart.attacks.sanity import SANITY_SAMPLES, gradient_checks, gradient_checks_not_run, summary, table_checks
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def check_threats(methods: list[str], checkpoint: Checkpoint, threats: tuple[str, ...], source_checkpoint: Path | None) -> None:
    """Before any sub-run crafts anything: the transfer source, and each method under each threat model reading no more
    than the model it crafts on gives."""
    if source_checkpoint and "transfer" not in threats:
        raise SkinartError("--source-checkpoint is for --threat transfer (or all), the model a transfer attacker crafts on; drop it or add --threat transfer")
    source = transfer_source(checkpoint, source_checkpoint) if "transfer" in threats else None
    for method in methods:
        for threat in threats:
            check_crafting(method, threat, checkpoint, source)


def threats_run(cfg: AttackConfig, checkpoint: Checkpoint, out: Path, options: RunOptions, *, threats: tuple[str, ...] = THREATS,
                source_checkpoint: Path | None = None, gradient_sanity: bool = True, shift: ImageShift | None = None,
                by: str | None = None) -> dict | None:
    """The sub-runs `out/<threat>/` and their summary table in `out/metrics.json`; `gradient_sanity` False leaves the
    gradient checks to the caller (a worst case over several attacks runs them once). `shift` and `by` go to every
    sub-run (`attack_run`)."""
    check_threats([cfg.method], checkpoint, threats, source_checkpoint)
    objective_threshold(cfg, checkpoint, checkpoint.malignant_names(options.malignant))  # refused before anything is written
    run = RunDir("threats", out, options, inputs=[source_checkpoint], checkpoint=checkpoint,
                 data=options.data_ref(), attack=cfg.__dict__, threats=list(threats), source_checkpoint=resolved(source_checkpoint),
                 malignant=options.malignant, gradient_sanity=gradient_sanity, seed=cfg.seed,
                 **shift_settings(shift, by))
    if run.done:
        return None
    with run.staged() as tmp:
        crafted: dict = {}  # one crafting per distinct attacker (attack.crafting_identity)
        runs = {t: attack_run(cfg, checkpoint, tmp / t, options, source_checkpoint=source_checkpoint if t == "transfer" else None,
                              threat=t, crafted=crafted, shift=shift, by=by) for t in threats}
        table = {t: table_row(m) for t, m in runs.items()}
        preprocessed, measure = bool(checkpoint.meta.preprocessing), OBJECTIVES[cfg.objective].measure
        checks = {**(sanity_gradients(cfg, checkpoint, options, out, shift) if gradient_sanity else {}),
                  **table_checks(table, preprocessed, measure)}
        metrics = {"kind": "threats", **checkpoint.provenance(), "method": cfg.method, **objective_record(cfg), **shift_record(shift), "threats": table,
                   **robustness_flags(table, preprocessed, measure), "sanity": summary(checks)}
        write_json(tmp / METRICS_FILE, metrics)
        (tmp / METRICS_MD).write_text(threats_markdown(metrics, f"{cfg.method} on {checkpoint}{under(shift)}{objective_words(cfg.objective)}"))
    return metrics


# the gradient checks this process has run: what decides them (`_sanity_key`) -> (checks, the run they were run for)
_SANITY_RUN: dict[str, tuple[dict, Path]] = {}


def objective_record(cfg: AttackConfig) -> dict:
    """What a run of attacks says of its objective: its name, the test images it attacked (all, malignant, benign) and
    the table's column it lowers, which the sanity checks and robustness flags compare."""
    objective = OBJECTIVES[cfg.objective]
    return {"objective": cfg.objective, "attacked_images": objective.attacked, "measure": objective.measure}


def _sanity_key(checkpoint: Checkpoint, options: RunOptions, eps: float, seed: int, objective: str, malignant: list[str],
                shift: ImageShift | None) -> str:
    """What decides the gradient checks: the deployed model (network and preprocessors, as the adaptive attacker sees
    it), the test split and its shift, ε, the seed, the objective (at the operating point of the malignant set) and how
    the run computes."""
    return json.dumps([crafting_identity("adaptive", checkpoint, None, True), options.data_ref(checkpoint.data_name()),
                       checkpoint.meta.data, eps, seed, objective, malignant, environment(options.device), options.precision,
                       options.deterministic, shift and asdict(shift)], sort_keys=True)


def sanity_gradients(cfg: AttackConfig, checkpoint: Checkpoint, options: RunOptions, out: Path, shift: ImageShift | None = None) -> dict:
    """The gradient checks on a seeded sample of the test split, attacked through the deployed (defended) model at the
    evaluation's L∞ ε (PGD's default for an unbounded or L2 attack: the checks are L∞). Under an objective the sample is
    of the images it attacks and PGD attacks their decision at the operating point (the check's accuracy is then the
    sensitivity or specificity at t). With `shift` the sample is of the shifted test images the attack attacks. Seeded, so the same checks in one process (a recipe's steps evaluating one model
    at one ε) run once and are reused, saying so."""
    if not reads("pgd", checkpoint.access):
        return gradient_checks_not_run(f"PGD reads gradients and {checkpoint} gives {checkpoint.access} only")
    linf = cfg.params.get("norm", "inf") == "inf"
    eps = (cfg.budget if linf else None) or METHODS["pgd"].defaults["eps"]
    malignant = checkpoint.malignant_names(options.malignant)
    key = _sanity_key(checkpoint, options, eps, cfg.seed, cfg.objective, malignant, shift)
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
    print(f"sanity checks: PGD on {len(keep)} {'' if head is None else objective.attacked + ' '}test images"
          f"{under(shift)} through the deployed model"
          f"{'' if head is None else ', on the decision at t'}", file=sys.stderr)
    seed_everything(cfg.seed)
    what = "accuracy" if head is None else objective.measure.replace("_at_threshold", " at t")
    checks = gradient_checks(classifier, test_inputs(test, keep, shift, cfg.seed), labels, eps, seed=cfg.seed, what=what)
    _SANITY_RUN[key] = (dict(checks), out)
    return checks


def table_row(m: dict) -> dict:
    """One threat model's line: accuracy, the binary metrics at argmax and at the stored operating point (None without one)."""
    adversarial, at = m["adversarial"], m["adversarial"].get("binary_at_threshold") or {}
    return {"clean_accuracy": m["clean"]["accuracy"], "accuracy": adversarial["accuracy"],
            **{k: adversarial["binary"][k] for k in ("sensitivity", "npv", "fnr")},
            **{f"{k}_at_threshold": at.get(k) for k in ("sensitivity", "specificity", "npv", "fnr")}, "fooling_rate": m["fooling_rate"]}
