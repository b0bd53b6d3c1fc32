"""Certified-accuracy curves and their figure. A curve is the share of images certified for their true class (or,
for the malignant decision, certified malignant) with an L2 radius of at least r, at r = 0 and at every radius where
it drops; each point also gives the L∞ ball that L2 ball contains at the input size, r/√d."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def share_at(radius: np.ndarray, hit: np.ndarray, r: float) -> float:
    """The share of all images that are hits (certified for the right answer) with radius ≥ r (abstentions miss)."""
    return float(np.mean(hit & (radius >= r))) if len(hit) else float("nan")


def curve(radius: np.ndarray, hit: np.ndarray, dim: int) -> list[dict]:
    """(L2, L∞, share) at 0 and at each distinct radius of a hit: the step function exactly."""
    points = np.unique(np.concatenate([[0.0], radius[hit]]))
    return [{"l2": float(r), "linf": float(r / math.sqrt(dim)), "share": share_at(radius, hit, r)} for r in points]


def _steps(points: list[dict]) -> tuple[list[float], list[float]]:
    """A curve as a step line (each share holds up to and including its radius: matplotlib's where="pre") that drops
    to 0 after its last radius."""
    x = [p["l2"] for p in points]
    y = [100 * p["share"] for p in points]
    return x + [x[-1]], y + [0.0]


def plot_certified(panels: dict[str, dict[str, list[dict]]], empirical: list[dict], dim: int, path: Path, title: str) -> Path:
    """One panel per entry (a dict of curves by label, drawn as steps); the first also marks the empirical robust
    accuracy at each attacked radius. A top axis gives each L2 radius's inner L∞ ball, r/√d, in /255."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.9), squeeze=False)
    for i, (ax, (name, curves)) in enumerate(zip(axes[0], panels.items())):
        for label, points in curves.items():
            ax.step(*_steps(points), where="pre", label=label)
        if i == 0 and empirical:
            ax.plot([e["l2"] for e in empirical], [100 * e["empirical_robust_accuracy"] for e in empirical], "o--",
                    color="tab:red", label="left by PGD+EOT (upper bound)")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("L2 radius (pixels in [0, 1])")
        ax.set_ylabel("% of images")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        top = ax.secondary_xaxis("top", functions=(lambda r: r * 255 / math.sqrt(dim), lambda v: v * math.sqrt(dim) / 255))
        top.set_xlabel(f"L∞ ball inside it (/255; r/√d, d = {dim})", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _at(points: list[dict], r: float) -> float:
    """A curve's share at radius r: that of its first point at or beyond r (an image certified at radius p counts for
    every r ≤ p), 0 beyond its last."""
    return next((p["share"] for p in points if p["l2"] >= r - 1e-12), 0.0)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def certify_markdown(m: dict, title: str) -> str:
    """metrics.md of a certify run: the settings, abstentions, how small the L∞ ball of an L2 certificate is, and per
    radius (0 and each attacked one) the certified accuracy beside what the attack left and the malignant decision."""
    dim, largest = m["input_dim"], m["largest_certifiable_l2"]
    binary = m["malignant_decision"]
    lines = [f"# {title}", "",
             f"σ {m['sigma']:g} on [0, 1] pixels, n = {m['n']} (selection n0 = {m['n0']}), α = {m['alpha']:g}, "
             f"{m['images']} test images of d = {dim} values.", "",
             f"- abstained: {_pct(m['abstained'])} %; certified accuracy at radius 0 (the smoothed classifier's accuracy, "
             f"abstentions wrong): {_pct(m['certified_accuracy_at_0'])} %; where it did not abstain: "
             f"{_pct(m['accuracy_where_not_abstained'])} %",
             f"- the largest radius {m['n']} votes can certify: L2 {largest:.3f}, whose inner L∞ ball is "
             f"{m['largest_certifiable_linf'] * 255:.2f}/255 (r/√d): L∞ attacks at 8/255 lie far outside every certificate here",
             "", "| L2 radius | inner L∞ (/255) | certified accuracy | left by PGD+EOT | malignant certified malignant | "
             "benign certified benign |", "|---|---|---|---|---|---|"]
    empirical = {e["l2"]: e["empirical_robust_accuracy"] for e in m["empirical"]}
    for r in [0.0, *empirical]:
        shares = [_at(binary[k], r) if binary["threshold"] is not None else None
                  for k in ("malignant_certified_malignant", "benign_certified_benign")]
        lines.append(f"| {r:g} | {r * 255 / math.sqrt(dim):.2f} | {_pct(_at(m['certified_accuracy_curve'], r))} | "
                     f"{_pct(empirical.get(r)) if r else '—'} | {_pct(shares[0])} | {_pct(shares[1])} |")
    if binary["threshold"] is None:
        lines += ["", f"No malignant decision certified: {binary['why_none']}."]
    else:
        lines += ["", *(f"For {_pct(_at(binary['malignant_certified_malignant'], r))} % of the {binary['malignant_images']} "
                        f"malignant images no perturbation of L2 norm < {r:g} can hide them (t = {binary['threshold']:.4g}: "
                        f"{binary.get('rule', 'p_malignant ≥ t, smoothed')})." for r in empirical)]
    return "\n".join(lines) + "\n\n(all values in %; certificates hold with probability 1 − α each)\n"
