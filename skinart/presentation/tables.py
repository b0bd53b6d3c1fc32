"""Markdown tables of one run: clean metrics, clean vs attacked, one attack under several threat models."""

from __future__ import annotations

from skinart.data import SMALL_GROUP
from skinart.metrics import MASKING_GAP, MIN_INTERVAL_IMAGES

FOOTER = "\n\n(all values in %; binary: malignant = positive)\n"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def threat_label(threat: str, access: str = "gradients") -> str:
    """The threat model as a reader should see it: a query attack on the evaluated model is black-box,
    not white-box, though it attacks the same model (DESIGN.md threat models)."""
    if access == "gradients":
        return threat
    return f"{'black-box' if threat == 'white-box' else threat}, {access} only"


BINARY = ("accuracy", "sensitivity", "specificity", "ppv", "npv", "fnr")
NO_THRESHOLD = ("no operating point: the checkpoint stores no threshold for this malignant set (trained before skinart "
                "chose one, or another --malignant); argmax only")


def decisions(m: dict) -> list[tuple[str, dict]]:
    """(decision, binary metrics): at argmax, and at the stored operating point when there is one."""
    at = m.get("binary_at_threshold")
    return [("argmax", m["binary"])] + ([(f"p_malignant ≥ {at['threshold']:.4g}", at)] if at else [])


def provenance_lines(metrics: dict) -> list[str]:
    """A model trained outside skinart says so above its numbers: its training data are unknown, and what the check of
    its import on the validation split found (a suspect import is never shown as an ordinary model); an attack of shifted
    images says that its clean numbers are theirs; a smoothed classifier says what its predictions are (`smoothed_lines`)."""
    lines = [f"> {metrics['training_data']}", ""] if metrics.get("training_data") else []
    if metrics.get("shift"):
        lines += [f"> clean = the test images under {metrics['shift']} severity {metrics['severity']} (corrupted as `evaluate "
                  "--shift` corrupts them), unattacked; attacked = those images attacked", ""]
    check = metrics.get("import_check")
    if check:
        where = f"import check ({check['split']} split, {check['images']} images)"
        lines += [f"> {where}: SUSPECT: {check['warning']}" if check["verdict"] == "suspect" else
                  f"> {where}: plausible: balanced accuracy {check['balanced_accuracy']:.3f}, above chance "
                  f"({check['chance']:.3f}); no other naming of the outputs recalls the classes better", ""]
    return lines + smoothed_lines(metrics)


def smoothed_lines(metrics: dict) -> list[str]:
    """What a smoothed classifier's predictions are (σ, n, seed), and the EOT of an attack on it."""
    smoothed = metrics.get("smoothed_classifier")
    if not smoothed:
        return []
    eot = metrics.get("smoothing_eot")
    eot = f"; the attack's gradients averaged over {eot} noisy copies (EOT)" if eot else ""
    return [f"> smoothed classifier: σ {smoothed['sigma']:g}, n {smoothed['n']}, seed {smoothed['seed']}: each prediction "
            f"the majority of n noisy copies, p_malignant the share of them voting a malignant class{eot}", ""]


def outside_lines(metrics: dict) -> list[str]:
    """A model with outputs the data lack (ISIC 2019's scc, unk): how often it chose one, every time an error."""
    outside = metrics.get("predicted_outside_data")
    if not outside:
        return []
    shares = ", ".join(f"{c} {pct(s)}" for c, s in outside.items())
    return ["", f"predicted as classes the data lack (each an error; a malignant one counts in p_malignant): {shares} %"]


def _binary_table(halves: dict[str, dict]) -> list[str]:
    """One row per set of images and decision: argmax beside the operating point, the same columns."""
    lines = ["| images | decision | binary accuracy | sensitivity | specificity | PPV | NPV | FNR |", "|---|---|---|---|---|---|---|---|"]
    for name, m in halves.items():
        lines += [f"| {name} | {decision} | " + " | ".join(pct(b[k]) for k in BINARY) + " |" for decision, b in decisions(m)]
    if not any(m.get("binary_at_threshold") for m in halves.values()):
        lines += ["", NO_THRESHOLD]
    return lines


def _multiclass_table(halves: dict[str, dict]) -> list[str]:
    lines = ["| images | accuracy | macro recall | macro specificity | AUROC |", "|---|---|---|---|---|"]
    for name, m in halves.items():
        lines.append(f"| {name} | " + " | ".join(pct(m.get(k)) for k in ("accuracy", "macro_recall", "macro_specificity", "auroc")) + " |")
    return lines


def split_label(metrics: dict) -> str:
    """The images a clean evaluation scored: its split (test by default: defences score it), or external data."""
    data = metrics.get("data") or {}
    return f"external {data.get('name', 'data')}" if metrics.get("external") else data.get("split") or "test"


def chosen_here_lines(metrics: dict) -> list[str]:
    """On the validation split a threshold chosen for a target sensitivity meets it by construction: say so."""
    here = metrics.get("operating_point_here") or {}
    if split_label(metrics) != "val" or here.get("target_sensitivity") is None:
        return []
    return [f"> val: the split the stored threshold was chosen on, for sensitivity {pct(here['target_sensitivity'])}: its "
            "numbers at t meet the target by construction and test nothing; evaluate --split test for a test of them", ""]


def metrics_markdown(metrics: dict, title: str) -> str:
    """Multi-class metrics (and the AUROC of p_malignant), the binary ones at argmax and at the operating point, per class,
    labelled by the split or data they were measured on."""
    halves = {split_label(metrics): metrics}
    lines = [f"# {title}", "", *provenance_lines(metrics), *chosen_here_lines(metrics), *_multiclass_table(halves),
             *outside_lines(metrics), "",
             *_binary_table(halves), "", "| class | recall | specificity | precision | support |", "|---|---|---|---|---|"]
    for name, c in metrics["per_class"].items():
        lines.append(f"| {name} | {pct(c['recall'])} | {pct(c['specificity'])} | {pct(c['precision'])} | {c['support']} |")
    return "\n".join(lines + operating_point_lines(metrics.get("operating_point_here"))) + FOOTER


def operating_point_lines(here: dict | None) -> list[str]:
    """Whether the stored threshold keeps its promise on these images, and what would restore it (never used)."""
    if not here or here["sensitivity"] is None:
        return []
    ci = here["restoring_threshold_ci"]
    restore = "" if here["restoring_threshold"] is None else (
        f"; t = {here['restoring_threshold']:.4g}" + (f" (95 % CI {ci[0]:.4g}–{ci[1]:.4g})" if ci else "") +
        f" would restore {pct(here['target_sensitivity'])} here (reported, not used)")
    chosen = "was given by the model's owner" if here["target_sensitivity"] is None else \
        f"was chosen for sensitivity {pct(here['target_sensitivity'])} on validation data"
    return ["", f"Operating point: the stored t = {here['threshold']:.4g} {chosen}; here it gives {pct(here['sensitivity'])}{restore}."]


_GAP_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "sensitivity_at_threshold": "sensitivity @ t",
              "specificity_at_threshold": "specificity @ t"}


def _with_ci(value: float | None, ci: list[float] | None) -> str:
    return pct(value) + (f" ({pct(ci[0])}–{pct(ci[1])})" if ci else "")


def subgroup_markdown(subgroups: dict, whole: dict | None = None) -> str:
    """The metrics per group of `evaluate --by` (`runs.subgroups.subgroup_metrics` with its `by`), small groups flagged,
    then the whole's row (`whole`: its metrics, when given) and the largest gap of each metric between the groups."""
    by = subgroups["by"]
    lines = [f"## By {by}", "", f"| {by} | images | accuracy (95 % CI) | balanced accuracy (95 % CI) | AUROC (95 % CI) | "
             "sensitivity @ t (95 % CI) | specificity @ t | FNR @ t |", "|---|---|---|---|---|---|---|---|"]
    rows = {f"{name} ⚑" if g["small"] else name: g for name, g in subgroups["groups"].items()}
    if whole is not None:  # its point values only: the clean evaluation bootstraps no interval of its own
        rows["**all**"] = {**whole, "images": sum(c["support"] for c in whole["per_class"].values()), "ci": {}}
    for name, g in rows.items():
        at, ci = g["binary_at_threshold"] or {}, g["ci"]
        lines.append(f"| {name} | {g['images']} | {_with_ci(g['accuracy'], ci.get('accuracy'))} | "
                     f"{_with_ci(g['macro_recall'], ci.get('macro_recall'))} | {_with_ci(g['auroc'], ci.get('auroc'))} | "
                     f"{_with_ci(at.get('sensitivity'), ci.get('sensitivity_at_threshold'))} | {pct(at.get('specificity'))} | "
                     f"{pct(at.get('fnr'))} |")
    lines += ["", f"⚑ fewer than {SMALL_GROUP} images: shown, but too few to compare. A number with under {MIN_INTERVAL_IMAGES} "
              f"images behind it has no interval; a gap is between known groups (not unknown) with at least {SMALL_GROUP} "
              "images behind the metric (malignant ones for a sensitivity, benign ones for a specificity). "
              "@ t: at the stored threshold.", ""]
    for metric, gap in subgroups["largest_gap"].items():
        lines.append(f"- largest gap in {_GAP_NAMES[metric]}: " + gap_words(gap))
    return "\n".join(lines) + "\n"


def gap_words(gap: dict | None) -> str:
    """A largest gap between subgroups in words: its points and which group lies above (none where they are equal)."""
    if gap is None:
        return f"n/a (fewer than two known groups with ≥ {SMALL_GROUP} images behind it)"
    high, low = gap["between"]
    return f"{gap['points']:.1f} points ({f'{high} above {low}' if gap['points'] else f'{high} and {low} equal'})"


def shares_table(shares: dict[str, dict | None]) -> list[str]:
    """The share of the images predicted as each class, one row per set of images (clean, attacked)."""
    classes = list(next(s for s in shares.values() if s))
    lines = ["| predicted as | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    return lines + [f"| {name} | " + " | ".join(pct(s[c]) for c in classes) + " |" for name, s in shares.items() if s]


def attack_markdown(metrics: dict, title: str) -> str:
    """Clean vs attacked rows in the seeds' layout (model performance, then health at argmax and at the operating point,
    the same threshold for both)."""
    halves = {"clean": metrics["clean"], "adversarial": metrics["adversarial"]}
    lines = [f"# {title}", "", *provenance_lines(metrics), *_multiclass_table(halves), "", *_binary_table(halves)]
    rates = ("fooling_rate", "error_rate", "success_rate", "targeted_success_rate", "targeted_rate_clean")
    lines += ["", " · ".join(f"{r.replace('_', ' ')} {pct(metrics[r])}" for r in rates if r in metrics)]
    if metrics.get("linf_max") is not None:
        lines.append(f"measured perturbation: L∞ max {metrics['linf_max'] * 255:.2f}/255, L2 mean {metrics['l2_mean']:.4f}")
    if metrics.get("predicted_shares"):  # where a universal perturbation sends the images
        lines += ["", *shares_table(metrics["predicted_shares"])]
    return "\n".join(lines) + FOOTER


_THREAT_COLUMNS = ("clean_accuracy", "accuracy", "sensitivity", "npv", "fnr", "sensitivity_at_threshold", "specificity_at_threshold",
                   "npv_at_threshold", "fnr_at_threshold", "fooling_rate")


def _threat_table(rows: dict[str, dict], first: str) -> list[str]:
    """One line per (label -> threat table row): accuracy and the health metrics at argmax and at the operating point."""
    lines = [f"| {first} | clean accuracy | accuracy | sensitivity | NPV | FNR | sensitivity @t | specificity @t "
             "| NPV @t | FNR @t | fooling rate |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {label} | " + " | ".join(pct(row.get(k)) for k in _THREAT_COLUMNS) + " |" for label, row in rows.items()]
    return lines + ["", "@t: at the checkpoint's stored operating point (p_malignant ≥ its threshold), the same under every threat model"]


def _sanity_lines(sanity: dict | None) -> list[str]:
    """The sanity checks (Carlini et al. 2019), one line each: fired, passed or not run, and why."""
    if not sanity:
        return []
    checks = [(name, c) for name, c in sanity.items() if isinstance(c, dict) and "fired" in c]
    return ["", "Sanity checks (Carlini et al. 2019):", ""] + [
        f"- {name}: {c['reason']}" if not c.get("run", True) else  # its reason starts with "not run"
        f"- {name}: {'**FIRED**' if c['fired'] else 'passed'}: {c['reason']}" for name, c in checks]


def threats_markdown(metrics: dict, title: str) -> str:
    """One attack under several threat models side by side, with the two robustness flags in words and the sanity checks."""
    lines = [f"# {title}", "", *provenance_lines(metrics)] + _threat_table(metrics["threats"], "threat model")
    measure = metrics.get("measure", "accuracy").replace("_at_threshold", " at t")  # what the flags compared (an objective's)
    if metrics["gradient_masking_suspected"]:
        lines += ["", f"**likely gradient masking**: the adaptive attack (through the preprocessor) leaves {measure} more than "
                  f"{MASKING_GAP:.0%} below the attack that ignores it; the preprocessor's robustness comes from hiding gradients."]
    if metrics.get("robustness_overstated"):
        lines += ["", f"**transfer overstates robustness**: the adaptive attack's {measure} is more than {MASKING_GAP:.0%} below "
                  "the transfer attack's; the number under the thesis's protocol (attacks crafted on the source model) "
                  "is not the defence's robustness."]
    return "\n".join(lines + _sanity_lines(metrics.get("sanity"))) + FOOTER


def worst_case_markdown(metrics: dict, title: str) -> str:
    """Each attack under each threat model, then the per-image worst case over the attacks, and the sanity checks."""
    rows = {f"{method} ({threat})": row for method, table in metrics["attacks"].items() for threat, row in table.items()}
    rows.update({f"**worst case** ({threat})": row for threat, row in metrics["worst_case"].items()})
    lines = [f"# {title}", "", *provenance_lines(metrics)] + _threat_table(rows, "attack (threat model)") + [
        "", "worst case: an image counts as correct only if every attack leaves it correct (robust accuracy); its decision "
        "is the one of the attack that hurts it most"]
    return "\n".join(lines + _sanity_lines(metrics.get("sanity"))) + FOOTER
