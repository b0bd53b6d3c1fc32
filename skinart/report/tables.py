"""Markdown tables of one run: clean metrics, clean vs attacked, one attack under several threat models."""

from __future__ import annotations

from skinart.metrics import MASKING_GAP

FOOTER = "\n\n(all values in %; binary: malignant = positive)\n"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def threat_label(threat: str, access: str = "gradients") -> str:
    """The threat model as a reader should see it: a query attack on the evaluated model is black-box,
    not white-box, though it attacks the same model (DESIGN.md threat models)."""
    if access == "gradients":
        return threat
    return f"{'black-box' if threat == 'white-box' else threat}, {access} only"


def metrics_markdown(metrics: dict, title: str) -> str:
    b = metrics["binary"]
    lines = [
        f"# {title}",
        "",
        "| accuracy | macro recall | macro specificity | binary accuracy | sensitivity | specificity | PPV | NPV | FNR |",
        "|---|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(pct(v) for v in (
            metrics["accuracy"], metrics["macro_recall"], metrics["macro_specificity"], b["accuracy"],
            b["sensitivity"], b["specificity"], b["ppv"], b["npv"], b["fnr"],
        )) + " |",
        "",
        "| class | recall | specificity | precision | support |",
        "|---|---|---|---|---|",
    ]
    for name, c in metrics["per_class"].items():
        lines.append(f"| {name} | {pct(c['recall'])} | {pct(c['specificity'])} | {pct(c['precision'])} | {c['support']} |")
    return "\n".join(lines) + FOOTER


def attack_markdown(metrics: dict, title: str) -> str:
    """Clean vs attacked rows in the seeds' layout (model performance, then health)."""
    lines = [
        f"# {title}", "",
        "| images | accuracy | macro recall | macro specificity | sensitivity | NPV | FNR |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ("clean", "adversarial"):
        m, b = metrics[row], metrics[row]["binary"]
        lines.append(f"| {row} | " + " | ".join(pct(v) for v in (
            m["accuracy"], m["macro_recall"], m["macro_specificity"], b["sensitivity"], b["npv"], b["fnr"])) + " |")
    rates = ("fooling_rate", "error_rate", "success_rate", "targeted_success_rate", "targeted_rate_clean")
    lines += ["", " · ".join(f"{r.replace('_', ' ')} {pct(metrics[r])}" for r in rates if r in metrics)]
    if metrics.get("linf_max") is not None:
        lines.append(f"measured perturbation: L∞ max {metrics['linf_max'] * 255:.2f}/255, L2 mean {metrics['l2_mean']:.4f}")
    return "\n".join(lines) + FOOTER


def threats_markdown(metrics: dict, title: str) -> str:
    """One attack under several threat models side by side, with the two robustness flags in words."""
    lines = [f"# {title}", "", "| threat model | clean accuracy | accuracy | sensitivity | NPV | FNR | fooling rate |", "|---|---|---|---|---|---|---|"]
    for threat, row in metrics["threats"].items():
        lines.append(f"| {threat} | " + " | ".join(pct(row[k]) for k in ("clean_accuracy", "accuracy", "sensitivity", "npv", "fnr", "fooling_rate")) + " |")
    if metrics["gradient_masking_suspected"]:
        lines += ["", f"**likely gradient masking**: the adaptive attack (through the preprocessor) leaves accuracy more than "
                  f"{MASKING_GAP:.0%} below the attack that ignores it; the preprocessor's robustness comes from hiding gradients."]
    if metrics.get("robustness_overstated"):
        lines += ["", f"**transfer overstates robustness**: the adaptive attack's accuracy is more than {MASKING_GAP:.0%} below "
                  "the transfer attack's; the number under the thesis's protocol (attacks crafted on the source model) "
                  "is not the defence's robustness."]
    return "\n".join(lines) + FOOTER
