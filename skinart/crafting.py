"""Running ART attacks fast and in bounded memory, and the generate loops of evasion, universal and patch attacks.

What skinart changes in ART's attacks lives in subclasses of ART's classes, which the rows of `attacks.METHODS` build:

- every attack freezes the model's weights inside its own `generate` (`FrozenWeights` around ART's `generate`,
  `frozen_weights` in a `generate` of skinart's own): ART's `loss_gradient` otherwise computes every weight gradient
  too; the weights are trainable again when `generate` returns, so trainers (ART's `AdversarialTrainer`) can call it
  between their own steps;
- PGD and MIM run on `FastProjectedGradientDescentPyTorch`: a clamp for ART's L∞ projection and no closing
  success-rate log (two forward passes over the images per `generate`);
- ART's UAP and targeted UAP score each pass in batches, not one image at a time, and tell `on_pass`;
- C&W and HopSkipJump say on stderr when they start and end, with the images still standing (skinart.progress).

APGD, Square and AutoAttack have modules of their own (skinart.apgd, skinart.square, skinart.autoattack).

Each subclass gives ART's adversarials (tests/test_crafting.py). At import, every ART method a subclass overrides
must still exist, and the loops copied from ART must be those of the ART version they copy: an ART upgrade fails here,
loudly, until they are checked against it."""

from __future__ import annotations

import inspect
import random
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from skinart.progress import Announced, terminal
from skinart.toolbox import (
    ART_NUMPY_DTYPE, ART_VERSION, AdversarialPatchPyTorch, CarliniL2Method, CarliniLInfMethod, FastGradientMethod,
    HopSkipJump, MomentumIterativeMethod, ProjectedGradientDescent, ProjectedGradientDescentPyTorch, SquareAttack,
    TargetedUniversalPerturbation, UniversalPerturbation, check_and_transform_label_format, compute_success_array,
    get_labels_np_array, projection,
)

COPIED_FROM_ART = "1.20.1"  # the ART whose loops FastProjectedGradientDescentPyTorch and the pass-scored UAPs copy
SCORING_BATCH = 256  # batch size of the UAPs' per-pass scoring (ART scores one image at a time)


def check_overrides(mine: type, parent: type, *names: str, copied: bool = False, version: str = ART_VERSION) -> None:
    """Fail at import unless ART's `parent` still has each method of `names` that skinart's class `mine` overrides or
    calls, with the parameters of `mine`'s where `mine` overrides it; and, where `mine` copies ART's code (`copied`),
    unless ART is the version it was copied from."""
    for name in names:
        theirs = getattr(parent, name, None)
        if not callable(theirs):
            raise ImportError(f"ART {version}: {parent.__name__}.{name} is gone; skinart's {mine.__name__} overrides or "
                              f"calls it (skinart/crafting.py): port it to this ART")
        ours = getattr(mine, name, theirs)
        if ours is not theirs and list(inspect.signature(ours).parameters) != list(inspect.signature(theirs).parameters):
            raise ImportError(f"ART {version}: {parent.__name__}.{name}{inspect.signature(theirs)} no longer takes what "
                              f"skinart's {mine.__name__}.{name}{inspect.signature(ours)} takes: port it to this ART")
    if copied and version != COPIED_FROM_ART:
        raise ImportError(f"ART {version}: skinart's {mine.__name__} copies {parent.__name__}.{', '.join(names)} from ART "
                          f"{COPIED_FROM_ART}; compare with this ART's, then update COPIED_FROM_ART (skinart/crafting.py)")


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


def sample_indices(n: int, cap: int | None, seed: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Sorted seeded sample of at most `cap` indices (of those where `mask` holds)."""
    pool = np.arange(n) if mask is None else np.flatnonzero(mask)
    if cap is None or cap >= len(pool):
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, cap, replace=False))


# ---------------------------------------------------------------------------------------------- frozen weights


@contextmanager
def frozen_weights(classifier) -> Iterator[None]:
    """The weights of `classifier`'s torch model that are trainable made untrainable for a block, then trainable again
    (those already frozen stay so, which makes it nest)."""
    model = getattr(classifier, "model", None)
    frozen = [p for p in model.parameters() if p.requires_grad] if isinstance(model, torch.nn.Module) else []
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


class FrozenWeights:
    """Mixin for an ART attack whose `generate` is ART's (listed before the ART class; a class that defines its own
    `generate` freezes inside it with `frozen_weights`): `generate` runs with the estimator's weights frozen. ART's
    `loss_gradient` differentiates the loss with respect to the input, and torch computes every weight gradient too
    while the weights are trainable: the same input gradient at a fraction of the cost. The weights thaw when
    `generate` returns, so a trainer that trains between attacks (ART's `AdversarialTrainer`) can use the attack."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "generate" in vars(cls):  # it would replace this generate: the attack would run with trainable weights
            raise TypeError(f"{cls.__name__} defines generate: freeze in it with frozen_weights, not with FrozenWeights")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs):
        with frozen_weights(self.estimator):
            return super().generate(x, y, **kwargs)


# ---------------------------------------------------------------------------------------------- FGSM, PGD, MIM


class FrozenFastGradientMethod(FrozenWeights, FastGradientMethod):
    """ART's FGSM, weights frozen (`FrozenWeights`). Its `generate` is ART's own: with `num_random_init` ≥ 2 ART
    keeps, of the random starts, the one with the best success rate over the batch (`compute_success`), so that
    computation decides the answer and is not skipped; with 0 or 1 starts ART computes no success rate at all."""


class FastProjectedGradientDescentPyTorch(ProjectedGradientDescentPyTorch):
    """ART's PyTorch PGD (the implementation behind `ProjectedGradientDescent` and `MomentumIterativeMethod` for a
    `PyTorchClassifier`), with two slow paths replaced:

    - `_projection`: ART builds a float64 ε array the size of the batch at every step; for a scalar ε and the L∞
      ball a clamp is the same projection (the same float32 numbers: both round ε to float32 once);
    - `generate`: ART's, copied from ART 1.20.1, without its closing `logger.info` of the success rate, which costs
      two forward passes over all the images. The success of each random restart (`compute_success_array`) still
      decides which restart is kept, as in ART."""

    @staticmethod
    def _projection(values: torch.Tensor, eps, norm_p, *, suboptimal: bool = True) -> torch.Tensor:
        if norm_p in (np.inf, "inf") and np.ndim(eps) == 0:
            return values.clamp(-float(eps), float(eps))
        return ProjectedGradientDescentPyTorch._projection(values, eps, norm_p, suboptimal=suboptimal)

    @classmethod
    def like(cls, attack: ProjectedGradientDescentPyTorch) -> FastProjectedGradientDescentPyTorch:
        """This class with the parameters of ART's `attack`."""
        return cls(attack.estimator, norm=attack.norm, eps=attack.eps, eps_step=attack.eps_step, decay=attack.decay,
                   max_iter=attack.max_iter, targeted=attack.targeted, num_random_init=attack.num_random_init,
                   batch_size=attack.batch_size, random_eps=attack.random_eps, summary_writer=attack.summary_writer or False,
                   verbose=attack.verbose)

    def _batch_eps(self, x: np.ndarray, start: int, stop: int):
        """ε and its step for the batch x[start:stop] (per-sample arrays sliced, as ART does)."""
        if isinstance(self.eps, np.ndarray) and isinstance(self.eps_step, np.ndarray) \
                and len(self.eps.shape) == len(x.shape) and self.eps.shape[0] == x.shape[0]:
            return self.eps[start:stop], self.eps_step[start:stop]
        return self.eps, self.eps_step

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        mask = self._get_mask(x, **kwargs)
        self._check_compatibility_input_and_eps(x=x)
        self._random_eps()
        targets = self._set_targets(x, y)
        columns = [x, targets]
        if mask is not None:  # a mask per image is sliced, a shared one repeated for every image (as ART does)
            columns.append(mask if len(mask.shape) == len(x.shape) else np.broadcast_to(mask, (len(x), *mask.shape)))
        # ART's DataLoader, kept: starting its iterator draws one number from torch's generator, which the flips of
        # an adaptive attacker's EOT draw from too; without it the same seed gives other flips than ART's
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*(torch.from_numpy(np.asarray(c, dtype=ART_NUMPY_DTYPE))
                                                                              for c in columns)),
                                             batch_size=self.batch_size, shuffle=False, drop_last=False)
        adv_x = x.astype(ART_NUMPY_DTYPE)
        for batch_id, batch_all in enumerate(tqdm(loader, desc="PGD - Batches", leave=False, disable=not self.verbose)):
            self._batch_id = batch_id
            start, stop = batch_id * self.batch_size, (batch_id + 1) * self.batch_size
            batch, labels, mask_batch = batch_all[0], batch_all[1], batch_all[2] if mask is not None else None
            eps, eps_step = self._batch_eps(x, start, stop)
            for restart in range(max(1, self.num_random_init)):
                adversarial = self._generate_batch(x=batch, targets=labels, mask=mask_batch, eps=eps, eps_step=eps_step)
                if restart == 0:
                    adv_x[start:stop] = adversarial
                else:  # a later restart replaces the images it fools (untargeted) or sends to the target (targeted)
                    success = compute_success_array(self.estimator, batch, labels, adversarial, self.targeted,
                                                    batch_size=self.batch_size)
                    adv_x[start:stop][success] = adversarial[success]
        if self.summary_writer is not None:
            self.summary_writer.reset()
        return adv_x


check_overrides(FastProjectedGradientDescentPyTorch, ProjectedGradientDescentPyTorch, "_projection", "_generate_batch", "_get_mask",
                "_check_compatibility_input_and_eps", "_random_eps", "_set_targets")
check_overrides(FastProjectedGradientDescentPyTorch, ProjectedGradientDescentPyTorch, "generate", copied=True)


class FastPyTorchPath:
    """Mixin for ART's PGD dispatcher (`ProjectedGradientDescent` and its subclass `MomentumIterativeMethod`), listed
    before it: where ART picks its PyTorch implementation, this picks `FastProjectedGradientDescentPyTorch` with the same
    parameters. (For a classifier with non-PyTorch preprocessing ART picks its NumPy implementation, kept as it is.)
    `verbose` (ART's bar) defaults to whether stderr is a terminal: in a log, a bar's carriage returns glue lines."""

    def __init__(self, *args, verbose: bool | None = None, **kwargs):
        super().__init__(*args, verbose=terminal() if verbose is None else verbose, **kwargs)
        if type(self._attack) is ProjectedGradientDescentPyTorch:
            self._attack = FastProjectedGradientDescentPyTorch.like(self._attack)


class FrozenProjectedGradientDescent(FrozenWeights, FastPyTorchPath, ProjectedGradientDescent):
    """ART's PGD, weights frozen (`FrozenWeights`), on `FastProjectedGradientDescentPyTorch` (`FastPyTorchPath`)."""


class FrozenMomentumIterativeMethod(FrozenWeights, FastPyTorchPath, MomentumIterativeMethod):
    """ART's MIM (PGD with momentum), weights frozen, on `FastProjectedGradientDescentPyTorch`."""


check_overrides(FrozenWeights, ProjectedGradientDescent, "generate")
check_overrides(FrozenWeights, MomentumIterativeMethod, "generate")


# ---------------------------------------------------------------------------------------------- the other evasion attacks, the patch


class FrozenCarliniL2Method(FrozenWeights, Announced, CarliniL2Method):
    """ART's Carlini & Wagner L2, weights frozen, announced (skinart.progress)."""

    announced_as = "cw"


class FrozenCarliniLInfMethod(FrozenWeights, Announced, CarliniLInfMethod):
    """ART's Carlini & Wagner L∞, weights frozen, announced."""

    announced_as = "cw-linf"


class FrozenHopSkipJump(FrozenWeights, Announced, HopSkipJump):
    """ART's HopSkipJump (labels only), weights frozen, announced."""

    announced_as = "hopskipjump"


class FrozenAdversarialPatchPyTorch(FrozenWeights, AdversarialPatchPyTorch):
    """ART's adversarial patch, weights frozen while the patch is trained."""


for _art_class in (FastGradientMethod, CarliniL2Method, CarliniLInfMethod, SquareAttack, HopSkipJump, AdversarialPatchPyTorch):
    check_overrides(FrozenWeights, _art_class, "generate")


# ---------------------------------------------------------------------------------------------- universal perturbations

SUB_ATTACKERS = {"fgsm": FrozenFastGradientMethod, "pgd": FrozenProjectedGradientDescent}


class PassScored:
    """Mixin for ART's UAPs (listed before the ART class): `generate` runs the class's `_passes` (ART's loop, copied)
    with the weights frozen; the sub-attacker, named by `attacker`, is skinart's class (`SUB_ATTACKERS`) where
    skinart has one; and `on_pass(pass, fit fooling rate)`, when set, is told after every pass over the fit images."""

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
            self._tell(nb_iter, fooling_rate)
        self.fooling_rate, self.targeted_success_rate = fooling_rate, targeted_success_rate
        self.converged, self.noise = nb_iter < self.max_iter, noise
        return x_adv


for _mine, _art_class in ((PassScoredUniversalPerturbation, UniversalPerturbation),
                          (PassScoredTargetedUniversalPerturbation, TargetedUniversalPerturbation)):
    check_overrides(_mine, _art_class, "_get_attack")
    check_overrides(_mine, _art_class, "generate", copied=True)


# ---------------------------------------------------------------------------------------------- generate loops


def craft_evasion(attack, classifier, x: np.ndarray, y: np.ndarray, *, what: str | None = None, chunk: int = 512) -> np.ndarray:
    """ART `generate` over chunks (bounded memory, visible progress); `y` true labels or targets, one-hot. Each progress
    line says `what` is crafted (default: the attack's ART class)."""
    adv = np.empty_like(x)
    start = time.perf_counter()
    for i in range(0, len(x), chunk):
        adv[i : i + chunk] = attack.generate(x[i : i + chunk], y[i : i + chunk])
        print(f"  {what or _art_name(attack)}: attacked {min(i + chunk, len(x))}/{len(x)} images "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return adv


def _art_name(attack) -> str:
    """The ART class a skinart attack subclasses (FrozenProjectedGradientDescent: ProjectedGradientDescent)."""
    return next(c.__name__ for c in type(attack).__mro__ if c.__module__.startswith("art."))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set for a block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_universal(attack, x_fit: np.ndarray, *, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Fit a universal perturbation on `x_fit` (untargeted: against the model's own predictions), printing the fit
    fooling rate the attack reports after every pass (its `on_pass`: ART's UAPs as `PassScored`, or skinart's SGD UAP).

    On one torch thread: ART's UAP predicts and differentiates one image at a time, where torch's intra-op threads
    cost more than they save (on a busy 2-core machine a batch-of-one gradient took 545 ms with 2 threads, 9 ms with
    1); the SGD UAP's batches of 32 small images also ran 3-6x faster on 1 thread than 2."""
    y = None if target is None else one_hot(np.full(len(x_fit), target), n_classes)
    by_pass, start = [], time.perf_counter()

    def on_pass(n: int, fooling: float) -> None:
        by_pass.append(round(fooling, 4))
        print(f"  pass {n}/{attack.max_iter}: fit fooling rate {fooling:.3f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    attack.on_pass = on_pass
    with torch_threads(1):
        attack.generate(x_fit, y)
    info = {"fit_samples": len(x_fit), "fit_fooling_rate": float(attack.fooling_rate), "fit_passes": len(by_pass),
            "fit_fooling_by_pass": by_pass, "fit_seconds": round(time.perf_counter() - start, 2)}
    if target is not None:
        info["fit_targeted_success_rate"] = float(attack.targeted_success_rate)
    return attack.noise.astype(np.float32), info


def fit_patch(attack, x_fit: np.ndarray, *, labels: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Train the patch on `x_fit` (targeted: towards `target`; untargeted: away from the true labels)."""
    y = one_hot(labels if target is None else np.full(len(x_fit), target), n_classes)
    start = time.perf_counter()
    patch, _ = attack.generate(x_fit, y)
    return patch.astype(np.float32), {"fit_samples": len(x_fit), "fit_seconds": round(time.perf_counter() - start, 2)}
