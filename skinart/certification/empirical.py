"""The empirical side beside the certificate: ART's PGD in an L2 ball on the smoothed classifier itself, each gradient
averaged over noise draws (EOT: ART's `loss_gradient` with `sampling`), the attacked images judged by the smoothed
classifier's majority vote. What the attack leaves is an upper bound on robust accuracy, the certificate a lower one:
`check_bounds` refuses a certificate above it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skinart.attacks.fast.overrides import FrozenWeights
from skinart.attacks.loops import one_hot
from skinart.certification.smoothing import BatchedRandomizedSmoothing, class_rule
from skinart.errors import SkinartError
from skinart.toolbox import ProjectedGradientDescentNumpy


class FrozenProjectedGradientDescentNumpy(FrozenWeights, ProjectedGradientDescentNumpy):
    """ART's numpy PGD, weights frozen (`FrozenWeights`). Numpy, not the PyTorch PGD that `ProjectedGradientDescent`
    picks for a PyTorchClassifier: that one hands `loss_gradient` tensors, which ART's smoothed `loss_gradient` cannot
    take (it calls torch.from_numpy on them)."""


@dataclass(frozen=True)
class EmpiricalBound:
    """At one L2 radius: which images the smoothed classifier still gets right under the attack (right on the clean
    image as well), the largest L2 the attack moved an image, and what the attacked majority votes were."""

    radius: float
    robust: np.ndarray
    l2_max: float
    attacked_prediction: np.ndarray


def attack_smoothed(attacked: BatchedRandomizedSmoothing, x: np.ndarray, labels: np.ndarray, radius: float, steps: int,
                    batch_size: int) -> np.ndarray:
    """PGD from the clean images inside the L2 ball of `radius`, step 2·radius/steps (Salman et al. 2019), on the
    loss of the smoothed classifier: the log of the softmax averaged over `attacked.sample_size` noise draws."""
    attack = FrozenProjectedGradientDescentNumpy(attacked, norm=2, eps=radius, eps_step=2 * radius / steps, max_iter=steps,
                                                 num_random_init=0, batch_size=max(1, batch_size // attacked.sample_size),
                                                 verbose=False)
    return attack.generate(x, one_hot(labels, attacked.nb_classes))


def empirical_bounds(certifier: BatchedRandomizedSmoothing, attacked: BatchedRandomizedSmoothing, x: np.ndarray,
                     labels: np.ndarray, *, clean_correct: np.ndarray, radii: tuple[float, ...], steps: int, votes: int,
                     batch_size: int) -> list[EmpiricalBound]:
    """At each radius, the images whose smoothed prediction (the majority of `votes` noisy copies, drawn by the
    certifier) stays right under the attack; an image wrong when clean (`clean_correct` False) is never robust."""
    bounds = []
    for radius in radii:
        adversarial = attack_smoothed(attacked, x, labels, radius, steps, batch_size)
        tally = certifier.vote_counts(adversarial, (votes,), {"class": (class_rule, certifier.nb_classes)}, batch_size)
        predicted = tally["class"][:, 0].argmax(1)
        l2 = np.linalg.norm((adversarial - x).reshape(len(x), -1), axis=1)
        bounds.append(EmpiricalBound(radius=radius, robust=clean_correct & (predicted == labels),
                                     l2_max=float(l2.max(initial=0.0)), attacked_prediction=predicted))
    return bounds


def check_bounds(rows: list[dict]) -> None:
    """Refuse rows (radius, certified and empirical accuracy, the attack's largest L2) where the certificate exceeds
    what the attack left, or where the attack left its L2 ball: either number would then be wrong."""
    for row in rows:
        if row["l2_max"] > row["l2"] * (1 + 1e-4) + 1e-6:
            raise SkinartError(f"the attack at L2 {row['l2']:g} moved an image by {row['l2_max']:.4f}, beyond its radius: "
                               "nothing was written; report this as a bug")
        if row["certified_accuracy"] > row["empirical_robust_accuracy"]:
            raise SkinartError(f"certified accuracy {row['certified_accuracy']:.3f} at L2 {row['l2']:g} exceeds the "
                               f"{row['empirical_robust_accuracy']:.3f} the attack left: a lower bound above an upper bound "
                               "is a bug (or a certificate that failed, chance α); nothing was written")
