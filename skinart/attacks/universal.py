"""The batched stochastic-gradient universal perturbation, which ART lacks: one shared δ trained like a weight, by
sign-gradient steps over mini-batches of the fit images, instead of ART's pass over them one image at a time. An ART
`EvasionAttack` like the others (parameters checked and set as ART's are), weights frozen while it runs."""

from __future__ import annotations

from typing import Callable

import numpy as np

from skinart.attacks.fast.overrides import frozen_weights
from skinart.toolbox import BaseEstimator, ClassifierMixin, EvasionAttack, LossGradientsMixin


class SGDUniversalPerturbation(EvasionAttack):
    r"""
    Stochastic-gradient universal adversarial perturbation, from 'Universal Adversarial Training'
    [https://arxiv.org/abs/1811.11304] (Shafahi et al., AAAI 2020, Algorithm 1 with sign steps).

    Distance Measure : Linf

    Arguments:
        classifier (ART classifier): the model attacked; its `loss_gradient` (preprocessing defences and their BPDA or
            EOT included) gives the gradients and its `predict` the decisions.
        eps (float): maximum perturbation, in [0, 1] pixel units. (Default: 8/255)
        eps_step (float): the step of each sign-gradient update of δ. (Default: 1/255)
        max_iter (int): maximum passes (epochs) over the fit images. (Default: 20)
        delta (float): stop once the fit fooling rate (targeted: success rate) reaches 1 - delta. (Default: 0.1)
        batch_size (int): fit images per update of δ. (Default: 32)
        patience (int): end the fit after this many passes in a row without a better δ. (Default: 5)
        targeted (bool): descend the loss of the target labels given to `generate` instead of ascending the loss of
            the model's clean predictions. (Default: False)

    Shape:
        - generate(x, y): x (N, C, H, W) in [0, 1]; y one-hot targets (targeted) or None. Returns x + δ, clipped.
        - noise: δ, (1, C, H, W), with |δ| ≤ eps.

    Only the images that δ does not fool yet add their gradient to a step: Shafahi et al. clip the loss for the same
    reason (fooled images with an ever growing loss would otherwise steer δ). The δ kept is the one with the highest
    fit fooling rate (targeted: share of fit images at the target) seen at the end of a pass, counting no δ at all as
    a candidate (so the δ kept never does worse on the fit images than none), and a pass that does not improve on it
    halves the step: sign steps of a fixed size do not settle; after `patience` such passes in a row the fit ends (a
    goal out of reach at this ε).
    """

    attack_params = EvasionAttack.attack_params + ["eps", "eps_step", "max_iter", "delta", "batch_size", "patience", "targeted"]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, ClassifierMixin)

    def __init__(self, classifier, eps: float = 8 / 255, eps_step: float = 1 / 255, max_iter: int = 20, delta: float = 0.1,
                 batch_size: int = 32, patience: int = 5, targeted: bool = False):
        super().__init__(estimator=classifier)
        self.eps, self.eps_step, self.max_iter = eps, eps_step, max_iter
        self.delta, self.batch_size, self.patience, self.targeted = delta, batch_size, patience, targeted
        self.on_pass: Callable[[int, float], None] | None = None  # told (pass, its goal: fit fooling or target rate) each pass
        self.noise = self.fooling_rate = self.targeted_success_rate = None
        self._check_params()

    def _check_params(self) -> None:
        super()._check_params()
        if not (self.eps > 0 and self.eps_step > 0):
            raise ValueError("eps and eps_step must be positive")
        if not (isinstance(self.max_iter, int) and self.max_iter > 0 and isinstance(self.batch_size, int) and self.batch_size > 0
                and isinstance(self.patience, int) and self.patience > 0):
            raise ValueError("max_iter, batch_size and patience must be positive integers")
        if not 0 <= self.delta <= 1:
            raise ValueError("delta must be in [0, 1]")

    def _decisions(self, x: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.estimator.predict(np.clip(x + noise, 0.0, 1.0), batch_size=256).argmax(1)

    def _step(self, x: np.ndarray, y: np.ndarray, noise: np.ndarray, step: float) -> np.ndarray:
        """One sign-gradient step of δ on a mini-batch, projected back to the ε ball."""
        x_adv = np.clip(x + noise, 0.0, 1.0)
        active = (self._decisions(x, noise) == y.argmax(1)) != self.targeted  # not yet fooled (targeted: not yet at target)
        if not active.any():
            return noise
        grad = self.estimator.loss_gradient(x_adv[active], y[active]).sum(0, keepdims=True)
        return np.clip(noise + (-1 if self.targeted else 1) * step * np.sign(grad), -self.eps, self.eps).astype(np.float32)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **_) -> np.ndarray:
        with frozen_weights(self.estimator):  # only δ is trained: no weight gradients
            return self._fit(x, y)

    def _fit(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        clean = self._decisions(x, 0.0)
        labels = y if y is not None else np.eye(self.estimator.nb_classes, dtype=np.float32)[clean]
        noise, step, stale = np.zeros_like(x[:1]), self.eps_step, 0
        start = np.mean(clean == labels.argmax(1)) if self.targeted else 0.0
        best = (start, noise, 0.0, start)  # no δ: a pass that does no better on the fit images than none is not kept
        for n in range(1, self.max_iter + 1):
            order = np.random.permutation(len(x))
            for i in range(0, len(x), self.batch_size):
                batch = order[i : i + self.batch_size]
                noise = self._step(x[batch], labels[batch], noise, step)
            now = self._decisions(x, noise)
            fooling, hit = float(np.mean(now != clean)), float(np.mean(now == labels.argmax(1)))
            goal = hit if self.targeted else fooling
            if goal > best[0]:
                best, stale = (goal, noise, fooling, hit), 0
            else:  # sign steps of a fixed size circle around a good δ: a pass that found no better one halves the step
                step, stale = step / 2, stale + 1
            if self.on_pass:
                self.on_pass(n, goal)
            if goal >= 1 - self.delta or stale == self.patience:
                break
        _, self.noise, self.fooling_rate, hit = best
        self.targeted_success_rate = hit if self.targeted else None
        return np.clip(x + self.noise, 0.0, 1.0)
