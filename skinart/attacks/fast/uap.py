"""ART's UAP and targeted UAP with each pass scored in batches (ART scores one image at a time), the weights frozen,
skinart's sub-attackers, and `on_pass` told after every pass. `_passes` copies ART 1.20.1's `generate` loop."""

from __future__ import annotations

import random
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from skinart.attacks.fast.gradient import FrozenFastGradientMethod, FrozenProjectedGradientDescent
from skinart.attacks.fast.overrides import check_attributes, check_overrides, frozen_weights
from skinart.toolbox import (
    TargetedUniversalPerturbation, UniversalPerturbation, check_and_transform_label_format, get_labels_np_array, projection,
)

SCORING_BATCH = 256  # batch size of the UAPs' per-pass scoring (ART scores one image at a time)


# ---------------------------------------------------------------------------------------------- universal perturbations

SUB_ATTACKERS = {"fgsm": FrozenFastGradientMethod, "pgd": FrozenProjectedGradientDescent}


class PassScored:
    """Mixin for ART's UAPs (listed before the ART class): `generate` runs the class's `_passes` (ART's loop, copied)
    with the weights frozen; the sub-attacker, named by `attacker`, is skinart's class (`SUB_ATTACKERS`) where
    skinart has one; and `on_pass(pass, rate)`, when set, is told after every pass over the fit images the rate its
    stopping rule reads: the fit fooling rate, targeted the share of fit images at the target."""

    on_pass: Callable[[int, float], None] | None = None

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        with frozen_weights(self.estimator):
            return self._passes(x, y)

    def _get_attack(self, a_name: str, params: dict | None = None):
        if a_name not in SUB_ATTACKERS:
            return super()._get_attack(a_name, params)
        attack = SUB_ATTACKERS[a_name](self.estimator)
        if params:
            attack.set_params(**params)
        return attack

    def _scored(self, x: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x + noise clipped, the model's decisions on it): ART scores a pass with `predict(x_adv, batch_size=1)`,
        one image at a time; here in batches (the model in eval mode: the same decisions, but for float ties)."""
        x_adv = x + noise
        if getattr(self.estimator, "clip_values", None) is not None:
            x_adv = np.clip(x_adv, *self.estimator.clip_values)
        return x_adv, np.argmax(self.estimator.predict(x_adv, batch_size=SCORING_BATCH), axis=1)

    def _tell(self, n: int, fooling_rate: float) -> None:
        if self.on_pass is not None:
            self.on_pass(n, float(fooling_rate))


class PassScoredUniversalPerturbation(PassScored, UniversalPerturbation):
    """ART's UAP (Moosavi-Dezfooli et al. 2017), weights frozen, sub-attacker and pass scoring as `PassScored` says.
    `_passes` is ART 1.20.1's `generate` (the same random order, updates and stopping rule), its per-pass scoring
    batched."""

    def _passes(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        if y is not None:
            y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)
        if y is None:  # the model's own predictions as the labels to move away from
            y = get_labels_np_array(self.estimator.predict(x, batch_size=self.batch_size))
        if self.estimator.nb_classes == 2 and y.shape[1] == 1:
            raise ValueError("This attack has not yet been tested for binary classification with a single output classifier.")
        y_index = np.argmax(y, axis=1)
        noise, fooling_rate, nb_iter = np.zeros_like(x[[0]]), 0.0, 0
        attacker = self._get_attack(self.attacker, self.attacker_params)
        pbar = tqdm(total=self.max_iter, desc="Universal perturbation", disable=not self.verbose)
        while fooling_rate < 1.0 - self.delta and nb_iter < self.max_iter:
            order = random.sample(range(len(x)), len(x))  # ART's order: Python's `random`
            for ex, original_label, label in zip(x[order], y_index[order], y[order]):
                x_i = ex[None, ...]
                current_label = np.argmax(self.estimator.predict(x_i + noise)[0])
                if current_label == original_label:  # not fooled yet: the sub-attacker's step, kept if it fools
                    adv_xi = attacker.generate(x_i + noise, y=label[None])
                    if current_label != np.argmax(self.estimator.predict(adv_xi)[0]):
                        noise = projection(adv_xi - x_i, self.eps, self.norm)
            nb_iter += 1
            pbar.update(1)
            x_adv, y_adv = self._scored(x, noise)
            fooling_rate = np.sum(y_index != y_adv) / len(x)
            self._tell(nb_iter, fooling_rate)
        pbar.close()
        self._fooling_rate, self._converged, self._noise = fooling_rate, nb_iter < self.max_iter, noise
        return x_adv


class PassScoredTargetedUniversalPerturbation(PassScored, TargetedUniversalPerturbation):
    """ART's targeted UAP (Hirano & Takemoto 2020), weights frozen, sub-attacker and pass scoring as `PassScored`
    says. `_passes` is ART 1.20.1's `generate`, its clean predictions and per-pass scoring batched."""

    def _passes(self, x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        if y is None:
            raise ValueError("Labels `y` cannot be None.")
        if self.estimator.nb_classes == 2 and y.shape[1] == 1:
            raise ValueError("This attack has not yet been tested for binary classification with a single output classifier.")
        noise, fooling_rate, targeted_success_rate, nb_iter = np.zeros_like(x[[0]]), 0.0, 0.0, 0
        attacker = self._get_attack(self.attacker, self.attacker_params)
        clean = np.argmax(self.estimator.predict(x, batch_size=SCORING_BATCH), axis=1)  # ART: batch_size=1
        target_index = np.argmax(y, axis=1)
        while targeted_success_rate < 1.0 - self.delta and nb_iter < self.max_iter:
            order = random.sample(range(len(x)), len(x))
            for ex, target_label, label in zip(x[order], target_index[order], y[order]):
                x_i = ex[None, ...]
                if np.argmax(self.estimator.predict(x_i + noise)[0]) != target_label:  # not at the target yet
                    adv_xi = attacker.generate(x_i + noise, y=label[None])
                    if np.argmax(self.estimator.predict(adv_xi)[0]) == target_label:
                        noise = projection(adv_xi - x_i, self.eps, self.norm)
            nb_iter += 1
            x_adv, y_adv = self._scored(x, noise)
            fooling_rate = np.sum(clean != y_adv) / len(x)
            targeted_success_rate = np.sum(y_adv == target_index) / len(x)
            self._tell(nb_iter, targeted_success_rate)
        self.fooling_rate, self.targeted_success_rate = fooling_rate, targeted_success_rate
        self.converged, self.noise = nb_iter < self.max_iter, noise
        return x_adv


for _mine, _art_class in ((PassScoredUniversalPerturbation, UniversalPerturbation),
                          (PassScoredTargetedUniversalPerturbation, TargetedUniversalPerturbation)):
    check_overrides(_mine, _art_class, "_get_attack")
    check_overrides(_mine, _art_class, "generate", copied=True)
check_attributes(PassScoredUniversalPerturbation, UniversalPerturbation, "_fooling_rate", "_converged", "_noise")
