"""`skinart evaluate --attack a,b,c`: several attacks at one budget on the same seeded test images, each under the
threat models (a threats sub-run each), and the per-image worst case over them (robust accuracy), with the health
metrics under the worst case and the sanity checks run once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinart.attacks.config import AttackConfig, objective_words
from skinart.attacks.table import THREATS
from skinart.runs.attack import objective_threshold
from skinart.models.checkpoint import Checkpoint
from skinart.errors import SkinartError
from skinart.metrics import worst_case_choice, worst_case_metrics
from skinart.presentation.tables import worst_case_markdown
from skinart.rundir import ADVERSARIAL_FILE, METRICS_FILE, METRICS_MD, RunDir, RunOptions, resolved, write_json
from skinart.attacks.sanity import summary
from skinart.runs.scoring import shift_record, shift_settings, write_per_image
from skinart.shifts.config import ImageShift, under
from skinart.runs.threats import table_row, check_threats, objective_record, sanity_gradients, threats_run


def worst_case_run(cfgs: list[AttackConfig], checkpoint: Checkpoint, out: Path, options: RunOptions, *,
                   threats: tuple[str, ...] = THREATS, source_checkpoint: Path | None = None, shift: ImageShift | None = None,
                   by: str | None = None) -> dict | None:
    """The sub-runs `out/<method>/` and, in `out/metrics.json`, each attack's table, the worst case per threat model
    (`worst_case`, its full metrics under `worst_case_metrics`) and the sanity checks; `shift` and `by` go to every
    sub-run (the worst case itself is not split into subgroups: each attack's sub-runs are)."""
    check_threats([c.method for c in cfgs], checkpoint, threats, source_checkpoint)
    malignant = checkpoint.malignant_names(options.malignant)
    objective_threshold(cfgs[0], checkpoint, malignant)  # refused before anything is written
    run = RunDir("worst_case", out, options, inputs=[source_checkpoint], checkpoint=checkpoint,
                 data=options.data_ref(), attacks=[c.__dict__ for c in cfgs], threats=list(threats),
                 source_checkpoint=resolved(source_checkpoint), malignant=options.malignant, seed=cfgs[0].seed,
                 **shift_settings(shift, by))
    if run.done:
        return None
    by_decision = cfgs[0].objective != "accuracy"
    with run.staged() as tmp:
        runs = {c.method: threats_run(c, checkpoint, tmp / c.method, options, threats=threats, source_checkpoint=source_checkpoint,
                                      gradient_sanity=False, shift=shift, by=by) for c in cfgs}
        full = {t: _worst(tmp, [c.method for c in cfgs], t, checkpoint, malignant, by_decision, shift) for t in threats}
        checks = sanity_gradients(cfgs[0], checkpoint, options, out, shift)
        for method, m in runs.items():
            checks.update({f"{name} ({method})": check for name, check in m["sanity"].items() if name != "fired"})
        metrics = {"kind": "worst_case", **checkpoint.provenance(), "methods": list(runs), **objective_record(cfgs[0]),
                   **shift_record(shift), "attacks": {method: m["threats"] for method, m in runs.items()},
                   "worst_case": {t: table_row(m) for t, m in full.items()},
                   "worst_case_metrics": {t: m["adversarial"] for t, m in full.items()}, "sanity": summary(checks)}
        write_json(tmp / METRICS_FILE, metrics)
        (tmp / METRICS_MD).write_text(worst_case_markdown(metrics, f"{', '.join(runs)} on {checkpoint}{under(shift)}: worst case{objective_words(cfgs[0].objective)}"))
    return metrics


def _worst(tmp: Path, methods: list[str], threat: str, checkpoint: Checkpoint, malignant: list[str], by_decision: bool,
           shift: ImageShift | None) -> dict:
    """The worst case under one threat model from the attack sub-runs' saved probabilities, shaped like an attack run's
    metrics (clean accuracy, the worst-case metrics as `adversarial`, the share of decisions some attack changed); with
    `by_decision` (an objective) the attack named for each image in per_image.csv is the one that moved its p_malignant
    furthest (the metrics at t take that p_malignant in either case)."""
    saved = [np.load(tmp / method / threat / ADVERSARIAL_FILE) for method in methods]
    ids, labels, clean = saved[0]["ids"], saved[0]["labels"], saved[0]["clean_probabilities"]
    if any(not np.array_equal(s["ids"], ids) for s in saved):
        raise SkinartError("the attacks scored different test images, so no per-image worst case exists; report this as a bug")
    probs = [s["adversarial_probabilities"] for s in saved]
    worst = worst_case_metrics(labels, probs, checkpoint.classes, tuple(malignant), checkpoint.threshold(malignant))
    chosen, pred, p = worst_case_choice(labels, probs, [checkpoint.classes.index(c) for c in malignant], by_decision)
    # norms left empty: the clean images are not saved beside the sub-runs, and the chosen attack's own file has them
    (tmp / threat).mkdir(exist_ok=True)  # the worst case under each threat model: <out>/<threat>/per_image.csv
    write_per_image(tmp / threat, ids=ids, labels=labels, classes=list(checkpoint.classes), malignant=malignant, clean_probs=clean,
                    attacked=(pred, p), attack=[methods[i] for i in chosen], shift=shift)
    changed = np.any(np.stack([p.argmax(1) for p in probs]) != clean.argmax(1), axis=0)
    return {"clean": {"accuracy": float(np.mean(clean.argmax(1) == labels))}, "adversarial": worst, "fooling_rate": float(changed.mean())}
