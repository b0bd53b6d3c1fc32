"""The report's Natural shift section: per run and shift, the operating point's fate over the severities (a summary
line each, naming the severities where sensitivity at the stored threshold falls below what sampling explains), then
every shift × severity line."""

from __future__ import annotations

from skinart.presentation.tables import pct


def _interval(ci: list | None) -> str:
    return f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else ""


def shift_findings(entries: list[dict]) -> list[str]:
    """One sentence per run and shift whose sensitivity at t falls below the clean sensitivity's lower 95 % bound."""
    found = []
    for (task, name), mine in _by_run_and_shift(entries).items():
        below = [e for e in mine if e["clean_floor"] is not None and e["sensitivity_at_threshold"] is not None
                 and e["sensitivity_at_threshold"] < e["clean_floor"]]
        if below:
            worst = min(below, key=lambda e: e["sensitivity_at_threshold"])
            restore = "" if worst["restoring_threshold"] is None else f"; t = {worst['restoring_threshold']:.4g} would restore it"
            found.append(f"{task} ({worst['data']}): under {name} sensitivity at the stored t = {worst['threshold']:.4g} falls "
                         f"from {pct(mine[0]['clean_sensitivity'])} to {pct(worst['sensitivity_at_threshold'])} at severity "
                         f"{worst['severity']} (target {pct(worst['target'])}; below the clean lower bound {pct(worst['clean_floor'])} "
                         f"at severities {', '.join(str(e['severity']) for e in below)}){restore}")
    return found


def _by_run_and_shift(entries: list[dict]) -> dict[tuple[str, str], list[dict]]:
    clean = {e["task"]: e for e in entries if e["shift"] == "clean"}
    grouped: dict[tuple[str, str], list[dict]] = {}
    for e in entries:
        if e["shift"] != "clean":
            grouped.setdefault((e["task"], e["shift"]), []).append(
                {**e, "clean_sensitivity": clean[e["task"]]["sensitivity_at_threshold"]})
    return grouped


def shift_tables(entries: list[dict]) -> list[tuple[str, list[str], list[list[str]], tuple[str, ...]]]:
    """(title, header, lines, notes): the per-shift summary, then every line."""
    if not entries:
        return []
    summary = []
    for (task, name), mine in _by_run_and_shift(entries).items():
        sensitivity = [e["sensitivity_at_threshold"] for e in mine if e["sensitivity_at_threshold"] is not None]
        errors = [e["relative_balanced_error"] for e in mine if e["relative_balanced_error"] is not None]
        summary.append([task, name, mine[0]["shift_kind"], pct(mine[0]["clean_sensitivity"]),
                        pct(sum(sensitivity) / len(sensitivity)) if sensitivity else "n/a",
                        pct(min(sensitivity)) if sensitivity else "n/a",
                        pct(sum(e["balanced_accuracy"] for e in mine) / len(mine)),
                        f"{sum(errors) / len(errors):+.2f}" if errors else "n/a"])
    lines = [[e["task"], e["shift"], str(e["severity"]), pct(e["sensitivity_at_threshold"]) + _interval(e["sensitivity_ci"]),
              pct(e["specificity_at_threshold"]), pct(e["balanced_accuracy"]), pct(e["auroc"]),
              "—" if e["restoring_threshold"] is None else f"{e['restoring_threshold']:.4g}"] for e in entries]
    reading = ("At each checkpoint's stored threshold t (never re-chosen); severity 0 is clean; relative balanced error "
               "= (BE_shift − BE_clean) / BE_clean, BE = 1 − balanced accuracy, averaged over the severities run.")
    return [("Natural shift: the operating point over the severities (per shift)",
             ["run", "shift", "kind", "sensitivity @t clean", "mean over severities", "worst", "balanced accuracy (mean)",
              "relative balanced error (mean)"], summary, (reading,)),
            ("Natural shift: every shift × severity",
             ["run", "shift", "severity", "sensitivity @t [95% CI]", "specificity @t", "balanced accuracy", "AUROC",
              "t restoring the target (reported, not used)"], lines, ())]
