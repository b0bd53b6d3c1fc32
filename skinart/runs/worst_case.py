"""`skinart evaluate --attack a,b,c`: several attacks at one budget on the same seeded test images, each under the
threat models (a threats sub-run each), and the per-image worst case over them (robust accuracy), with the health
metrics under the worst case and the sanity checks run once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinart.attack_config import AttackConfig
from skinart.runs.attack import THREATS
from skinart.checkpoints import read_checkpoint_meta
from skinart.errors import SkinartError
from skinart.metrics import operating_threshold, worst_case_metrics
from skinart.options import parse_malignant
from skinart.presentation.tables import worst_case_markdown
from skinart.rundir import Run, data_ref, resolved, write_json
from skinart.sanity import summary
from skinart.runs.threats import table_row, check_threats, sanity_gradients, threats_run


def worst_case_run(cfgs: list[AttackConfig], checkpoint: Path, out: Path, threats: tuple[str, ...] = THREATS,
                   source_checkpoint: Path | None = None, data: str | None = None, data_root: str | None = None,
                   malignant: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """The sub-runs `out/<method>/` and, in `out/metrics.json`, each attack's table, the worst case per threat model
    (`worst_case`, its full metrics under `worst_case_metrics`) and the sanity checks."""
    meta = read_checkpoint_meta(checkpoint)
    check_threats(meta, threats, source_checkpoint)
    run = Run("worst_case", out, overwrite, inputs=[source_checkpoint], checkpoint=checkpoint, meta=meta, data=data_ref(data, data_root),
              attacks=[c.__dict__ for c in cfgs], threats=list(threats), source_checkpoint=resolved(source_checkpoint), malignant=malignant)
    if run.done:
        return None
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(meta["classes"]))
    with run.staged() as tmp:
        runs = {c.method: threats_run(c, checkpoint, tmp / c.method, threats, source_checkpoint, data, data_root, malignant,
                                      device, overwrite, gradient_sanity=False) for c in cfgs}
        full = {t: _worst(tmp, [c.method for c in cfgs], t, meta, malignant_names) for t in threats}
        checks = sanity_gradients(cfgs[0], checkpoint, meta, data, data_root, device)
        for method, m in runs.items():
            checks.update({f"{name} ({method})": check for name, check in m["sanity"].items() if name != "fired"})
        metrics = {"kind": "worst_case", "methods": list(runs), "attacks": {method: m["threats"] for method, m in runs.items()},
                   "worst_case": {t: table_row(m) for t, m in full.items()},
                   "worst_case_metrics": {t: m["adversarial"] for t, m in full.items()}, "sanity": summary(checks)}
        write_json(tmp / "metrics.json", metrics)
        (tmp / "metrics.md").write_text(worst_case_markdown(metrics, f"{', '.join(runs)} on {checkpoint}: worst case"))
    return metrics


def _worst(tmp: Path, methods: list[str], threat: str, meta: dict, malignant: list[str]) -> dict:
    """The worst case under one threat model from the attack sub-runs' saved probabilities, shaped like an attack run's
    metrics (clean accuracy, the worst-case metrics as `adversarial`, the share of decisions some attack changed)."""
    saved = [np.load(tmp / method / threat / "adversarial.npz") for method in methods]
    ids, labels, clean = saved[0]["ids"], saved[0]["labels"], saved[0]["clean_probabilities"]
    if any(not np.array_equal(s["ids"], ids) for s in saved):
        raise SkinartError("the attacks scored different test images, so no per-image worst case exists; report this as a bug")
    probs = [s["adversarial_probabilities"] for s in saved]
    threshold = operating_threshold(meta.get("operating_point"), malignant)
    worst = worst_case_metrics(labels, probs, tuple(meta["classes"]), tuple(malignant), threshold)
    changed = np.any(np.stack([p.argmax(1) for p in probs]) != clean.argmax(1), axis=0)
    return {"clean": {"accuracy": float(np.mean(clean.argmax(1) == labels))}, "adversarial": worst, "fooling_rate": float(changed.mean())}
