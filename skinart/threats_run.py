"""`skinart evaluate --attack`: one attack under several threat models side by side (one attack sub-run each),
with the robustness flags (transfer overstating robustness, gradient masking by a preprocessor)."""

from __future__ import annotations

from pathlib import Path

from skinart.attack_config import AttackConfig
from skinart.attack_run import THREATS, attack_run, transfer_source
from skinart.checkpoints import read_checkpoint_meta
from skinart.errors import SkinartError
from skinart.metrics import robustness_flags
from skinart.report.tables import threats_markdown
from skinart.runs import Run, data_ref, resolved, write_json


def threats_run(cfg: AttackConfig, checkpoint: Path, out: Path, threats: tuple[str, ...] = THREATS,
                source_checkpoint: Path | None = None, data: str | None = None, data_root: str | None = None,
                malignant: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """The sub-runs `out/<threat>/` and their summary table in `out/metrics.json`."""
    meta = read_checkpoint_meta(checkpoint)
    if source_checkpoint and "transfer" not in threats:
        raise SkinartError("--source-checkpoint is for --threat transfer (or all), the model a transfer attacker crafts on; drop it or add --threat transfer")
    if "transfer" in threats:
        transfer_source(meta, source_checkpoint)  # before any sub-run crafts anything
    run = Run("threats", out, overwrite, inputs=[source_checkpoint], checkpoint=checkpoint, meta=meta, data=data_ref(data, data_root), attack=cfg.__dict__,
              threats=list(threats), source_checkpoint=resolved(source_checkpoint), malignant=malignant)
    if run.done:
        return None
    with run.staged() as tmp:
        runs = {t: attack_run(cfg, checkpoint, tmp / t, data, data_root, source_checkpoint if t == "transfer" else None,
                              malignant, device, overwrite, t) for t in threats}
        table = {t: _table_row(m) for t, m in runs.items()}
        metrics = {"kind": "threats", "method": cfg.method, "threats": table, **robustness_flags(table, bool(meta.get("preprocessing")))}
        write_json(tmp / "metrics.json", metrics)
        (tmp / "metrics.md").write_text(threats_markdown(metrics, f"{cfg.method} on {checkpoint}"))
    return metrics


def _table_row(m: dict) -> dict:
    """One threat model's line: accuracy, the binary metrics at argmax and at the stored operating point (None without one)."""
    adversarial, at = m["adversarial"], m["adversarial"].get("binary_at_threshold") or {}
    return {"clean_accuracy": m["clean"]["accuracy"], "accuracy": adversarial["accuracy"],
            **{k: adversarial["binary"][k] for k in ("sensitivity", "npv", "fnr")},
            **{f"{k}_at_threshold": at.get(k) for k in ("sensitivity", "specificity", "npv", "fnr")}, "fooling_rate": m["fooling_rate"]}
