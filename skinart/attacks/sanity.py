"""The sanity checks of "On Evaluating Adversarial Robustness" (Carlini et al. 2019) that every attacked evaluation
runs and reports: each a flag (`fired`: the evaluation looks broken) and a one-line reason. The gradient checks attack
a seeded sample of test images with a plain PGD (no random start, so a difference comes from what the check varies)
through the model as it is deployed; the table checks read the threat models' table of the evaluation itself."""

from __future__ import annotations

import numpy as np

from skinart.attacks.factories import build
from skinart.attacks.loops import craft_evasion, one_hot
from skinart.metrics import MASKING_GAP, robustness_flags
from skinart.models.networks import predict

SANITY_SAMPLES = 64  # test images the gradient checks attack (seeded): enough to see 0 % vs 30 %, cheap on 2 cores
SANITY_STEPS = 10  # k: PGD steps of the gradient checks (check 2 runs 5k)
UNBOUNDED_MAX = 0.05  # at ε = 1 PGD can paint any image: more accuracy than this means the gradients lead nowhere
TOLERANCE = 0.03  # accuracy that may rise by chance between two attacks on the same sample (~2 of 64 images)


def _check(fired: bool, reason: str, run: bool = True) -> dict:
    return {"fired": bool(fired), "reason": reason, "run": run}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _pgd_accuracy(classifier, x: np.ndarray, labels: np.ndarray, eps: float, steps: int) -> float:
    """Accuracy under L∞ PGD of `steps` steps of ε/4 from the clean image."""
    attack = build("pgd", classifier, {"eps": eps, "eps_step": eps / 4, "max_iter": steps, "num_random_init": 0}, {"verbose": False})
    adv = craft_evasion(attack, classifier, x, one_hot(labels, classifier.nb_classes),
                        what=f"sanity check PGD-{steps} at eps {eps * 255:.3g}/255")
    return float(np.mean(predict(classifier, adv).argmax(1) == labels))


def _noise_accuracy(classifier, x: np.ndarray, labels: np.ndarray, eps: float, seed: int) -> float:
    noise = np.random.default_rng(seed).uniform(-eps, eps, x.shape).astype(np.float32)
    return float(np.mean(predict(classifier, np.clip(x + noise, 0, 1)).argmax(1) == labels))


def sweep_epsilons(eps: float) -> list[float]:
    """ε/4, ε/2, ε and 1 (the unbounded point of check 1), ascending and without repeats."""
    return sorted({min(e, 1.0) for e in (eps / 4, eps / 2, eps, 1.0)})


def gradient_checks(classifier, x: np.ndarray, labels: np.ndarray, eps: float, steps: int = SANITY_STEPS, seed: int = 0,
                    what: str = "accuracy") -> dict:
    """Checks 1, 2, 3 (against noise) and 4 on images `x` attacked through `classifier`: PGD-k over an ε sweep up to
    ε = 1, PGD-5k at ε, uniform noise in [−ε, ε]. Their accuracies are kept under `values`. `what` names that accuracy
    in the reasons (an objective's decision model: the sensitivity or specificity at t of the images it attacks)."""
    sweep = {e: _pgd_accuracy(classifier, x, labels, e, steps) for e in sweep_epsilons(eps)}
    at_eps, unbounded = sweep[eps], sweep[1.0]
    longer = _pgd_accuracy(classifier, x, labels, eps, 5 * steps)
    noise = _noise_accuracy(classifier, x, labels, eps, seed)
    rises = [(a, b) for a, b in zip(sweep, list(sweep)[1:]) if sweep[b] > sweep[a] + TOLERANCE]
    curve = ", ".join(f"{e * 255:.3g}/255: {_pct(a)}" for e, a in sweep.items())
    return {
        "unbounded": _check(unbounded > UNBOUNDED_MAX, f"PGD-{steps} at ε=1 leaves {_pct(unbounded)} {what} "
                            f"({'more than' if unbounded > UNBOUNDED_MAX else 'at most'} {_pct(UNBOUNDED_MAX)}"
                            f"{': gradients likely masked' if unbounded > UNBOUNDED_MAX else ''})"),
        "more_steps": _check(longer > at_eps + TOLERANCE, f"PGD-{5 * steps} {_pct(longer)} vs PGD-{steps} {_pct(at_eps)} at ε"
                             + (f": more iterations raise {what}, the attack has not converged or follows bad gradients"
                                if longer > at_eps + TOLERANCE else "")),
        "noise": _check(at_eps > noise + TOLERANCE, f"PGD-{steps} {_pct(at_eps)} vs uniform noise {_pct(noise)} at ε"
                        + (": the white-box attack does worse than random noise" if at_eps > noise + TOLERANCE else "")),
        "eps_monotone": _check(bool(rises), f"{what} over ε ({curve})"
                               + (": rises with ε" if rises else " does not rise with ε")),
        "values": {"images": len(x), "steps": steps, "eps": eps, "sweep": {str(e): a for e, a in sweep.items()},
                   "pgd_5k": longer, "noise": noise},
    }


def gradient_checks_not_run(reason: str) -> dict:
    """Checks 1, 2, 3 (against noise) and 4 where PGD cannot run (a model that gives no gradients), each saying why."""
    return {name: _check(False, f"not run: {reason}", run=False) for name in ("unbounded", "more_steps", "noise", "eps_monotone")}


def table_checks(table: dict, preprocessed: bool, measure: str = "accuracy") -> dict:
    """Check 3 against transfer (white-box `measure` at most the transfer attack's: accuracy, or what an objective
    lowers) and check 5 (the robustness flags) from the threat models' table of one attack; a check without its threat
    models says so and does not fire."""
    if "white-box" in table and "transfer" in table:
        white, transfer = table["white-box"][measure], table["transfer"][measure]
        fired = white > transfer + TOLERANCE
        check3 = _check(fired, f"white-box {_pct(white)} vs transfer {_pct(transfer)}"
                        + (": the attack on the model itself does worse than one crafted on another" if fired else ""))
    else:
        check3 = _check(False, "not run: needs the white-box and transfer threat models", run=False)
    flags = robustness_flags(table, preprocessed, measure)
    raised = [name for name, value in flags.items() if value]
    check5 = _check(bool(raised), f"{', '.join(raised)} (adaptive more than {MASKING_GAP:.0%} below another threat model)"
                    if raised else "gradient_masking_suspected and robustness_overstated not raised")
    return {"transfer": check3, "flags": check5}


def summary(checks: dict) -> dict:
    """The checks with the list of those that fired (empty: the evaluation passed every check)."""
    fired = [name for name, check in checks.items() if isinstance(check, dict) and check.get("fired")]
    return {**checks, "fired": fired}


def sanity_label(sanity: dict | None) -> str:
    """The report's column: ok, or the checks that fired."""
    if not sanity:
        return "—"
    return "ok" if not sanity["fired"] else "FIRED: " + ", ".join(sanity["fired"])
