"""AutoAttack counted as Croce & Hein count it: each sub-attack of the "standard" version in turn on the images still
classified correctly, any misclassification within ε a success in every pass, its adversarial kept.

ART's `AutoAttack` differs in what it counts: its targeted pass counts an image only when it reaches that pass's
target (an image pushed into a third class stays "robust" and its adversarial is thrown away), and it attacks the same
images again for every target and every loss. skinart keeps ART's class (its parameters, its checks) and replaces
`generate`; the sub-attacks are skinart's fast APGD and Square (skinart.attacks.fast.apgd, skinart.attacks.fast.square)."""

from __future__ import annotations

import time

import numpy as np

from skinart.attacks.fast.overrides import check_overrides, frozen_weights
from skinart.attacks.loops import one_hot
from skinart.errors import SkinartError
from skinart.attacks.fast.apgd import FastAutoProjectedGradientDescent
from skinart.attacks.progress import say
from skinart.attacks.fast.square import FastSquareAttack
from skinart.toolbox import ART_NUMPY_DTYPE, AutoAttack

FAB_T = "not in ART 1.20.1"


def standard_schedule(classifier, *, eps: float, norm, max_iter: int, nb_random_init: int, square_max_iter: int,
                      batch_size: int, verbose: bool | None) -> tuple[list, dict[str, str]]:
    """(the sub-attacks of AutoAttack "standard" for this classifier, in order; those of the original that do not run,
    and why). The original's APGD-T attacks the 9 classes of highest logit after the image's own; here at most
    classes − 1. Its losses need classes: DLR 3, targeted DLR 4 (the original only warns, then fails on an index)."""
    classes = classifier.nb_classes
    apgd = {"norm": norm, "eps": eps, "eps_step": 2 * eps, "max_iter": max_iter, "nb_random_init": nb_random_init,
            "batch_size": batch_size, "verbose": verbose}
    attacks = [FastAutoProjectedGradientDescent(classifier, loss_type="cross_entropy", **apgd)]
    not_run = {"FAB-T": FAB_T}
    if classes >= 4:
        attacks.append(FastAutoProjectedGradientDescent(classifier, loss_type="difference_logits_ratio", targeted=True,
                                                        n_target_classes=min(9, classes - 1), **apgd))
    elif classes == 3:  # the untargeted DLR loss is defined: the original's first version ran APGD-DLR
        attacks.append(FastAutoProjectedGradientDescent(classifier, loss_type="difference_logits_ratio", **apgd))
        not_run["APGD-T"] = "the targeted DLR loss needs 4 classes; untargeted APGD-DLR runs in its place"
    else:
        not_run["APGD-T"] = ("DLR losses need 3 classes or more; targeted APGD-CE towards the only other class would "
                             "be APGD-CE again (the same loss up to its sign)")
    attacks.append(FastSquareAttack(classifier, norm=norm, eps=eps, max_iter=square_max_iter, p_init=0.8, nb_restarts=1,
                                    batch_size=batch_size, verbose=verbose))
    return attacks, not_run


def name(attack) -> str:
    """A sub-attack's name as the paper writes it (APGD-CE, APGD-T, Square), else its class."""
    return getattr(attack, "name", type(attack).__name__)


def budget(attack) -> str:
    """A sub-attack's budget in words."""
    if isinstance(attack, FastSquareAttack):
        return f"{attack.max_iter} queries"
    starts = f", {attack.nb_random_init} starts" if getattr(attack, "nb_random_init", 1) > 1 else ""
    targets = f"{attack.n_target_classes} targets × " if getattr(attack, "n_target_classes", None) else ""
    return f"{targets}{getattr(attack, 'max_iter', '?')} iterations{starts}"


class StandardAutoAttack(AutoAttack):
    r"""AutoAttack, 'Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks'
    [https://arxiv.org/abs/2003.01690] (Croce & Hein, ICML 2020), version "standard", counted as the original counts it.

    Distance: L∞ (default) or L2; ε in [0, 1] pixel units.
    Arguments: eps (8/255), norm ("inf"; 2), max_iter (APGD iterations, 100), nb_random_init (APGD starts, 1),
    square_max_iter (Square queries, 5000), batch_size (128), verbose (bars; default when stderr is a terminal).
    What runs (`standard_schedule`), each on the images still classified correctly: APGD-CE; APGD-T (targeted DLR
    towards the min(9, classes − 1) classes of highest clean logit in turn; with 3 classes untargeted APGD-DLR, with 2
    none); FAB-T does not (not in ART); Square (p_init 0.8, one restart). APGD's first step is 2ε. After `generate`,
    `report` holds the images each pass attacked and left standing (summed over calls)."""

    attack_params = AutoAttack.attack_params + ["not_run"]

    def __init__(self, estimator, eps: float = 8 / 255, norm="inf", max_iter: int = 100, nb_random_init: int = 1,
                 square_max_iter: int = 5000, batch_size: int = 128, verbose: bool | None = None):
        if norm not in ("inf", np.inf, 2):
            raise SkinartError(f"autoattack: --param norm={norm} is not offered (ART's Square has no L1 search: it "
                               "returns the images unchanged); use norm=inf or norm=2")
        attacks, self.not_run = standard_schedule(estimator, eps=eps, norm=norm, max_iter=max_iter, nb_random_init=nb_random_init,
                                                  square_max_iter=square_max_iter, batch_size=batch_size, verbose=verbose)
        super().__init__(estimator, norm=norm, eps=eps, eps_step=2 * eps, attacks=attacks, batch_size=batch_size,
                         targeted=any(a.targeted for a in attacks))
        self.report: dict = {}

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        """Adversarials of `x` (`y`: true labels, one-hot or indices; else the model's predictions): the clean image
        where every pass leaves it correct (or it starts misclassified), else the first pass's fooling image."""
        if kwargs.get("mask") is not None:
            raise ValueError("skinart's AutoAttack takes no mask")
        x = x.astype(ART_NUMPY_DTYPE)
        with frozen_weights(self.estimator):
            predicted = self.estimator.predict(x, batch_size=self.batch_size).argmax(1)
            labels = predicted if y is None else (y.argmax(1) if y.ndim == 2 else y.astype(int))
            return self._passes(x, labels, predicted == labels)

    def _passes(self, x: np.ndarray, labels: np.ndarray, standing: np.ndarray) -> np.ndarray:
        adv, passes, correct = x.copy(), [], int(standing.sum())
        plan = ", ".join(f"{name(a)} ({budget(a)})" for a in self.attacks)
        say(f"autoattack: {len(x)} images, {standing.sum()} classified correctly; {plan}; not run: {', '.join(self.not_run)}")
        for attack in self.attacks:
            rows, start = np.flatnonzero(standing), time.perf_counter()
            if len(rows):
                say(f"  {name(attack)}: {budget(attack)} on {len(rows)} images")
                out = attack.generate(x[rows], one_hot(labels[rows], self.estimator.nb_classes))
                predicted = self.estimator.predict(out, batch_size=self.batch_size).argmax(1)
                fooled = (predicted != labels[rows]) & self._within(out, x[rows])
                adv[rows[fooled]], standing[rows[fooled]] = out[fooled], False
                say(f"  {name(attack)}: {standing.sum()} of {len(rows)} still standing ({time.perf_counter() - start:.0f} s)")
            passes.append({"attack": name(attack), "budget": budget(attack), "attacked": len(rows),
                           "standing": int(standing.sum()), "seconds": round(time.perf_counter() - start, 2)})
        self._tally(len(x), correct, passes)
        return adv

    def _within(self, adv: np.ndarray, x: np.ndarray) -> np.ndarray:
        """ART's test that a sub-attack kept to ε (its relative tolerance 1e-4)."""
        order = np.inf if self.norm == "inf" else self.norm
        return (1 - 1e-4) * np.linalg.norm((adv - x).reshape(len(x), -1), axis=1, ord=order) <= self.eps

    def _tally(self, images: int, correct: int, passes: list[dict]) -> None:
        if not self.report:
            self.report = {"images": images, "correct": correct, "passes": passes}
            return
        self.report["images"] += images
        self.report["correct"] += correct
        for total, one in zip(self.report["passes"], passes):
            for key in ("attacked", "standing", "seconds"):
                total[key] = round(total[key] + one[key], 2)


check_overrides(StandardAutoAttack, AutoAttack, "generate", "_check_params")
