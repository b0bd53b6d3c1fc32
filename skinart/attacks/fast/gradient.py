"""ART's gradient attacks (FGSM, PGD, MIM, C&W), HopSkipJump and the adversarial patch, each with the estimator's
weights frozen inside `generate` (`FrozenWeights`); PGD and MIM on `FastProjectedGradientDescentPyTorch` (a clamp for
ART's L∞ projection, no closing success-rate log). Each gives ART's adversarials (tests/test_crafting.py)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from skinart.attacks.fast.overrides import FrozenWeights, check_attributes, check_overrides
from skinart.attacks.progress import Announced
from skinart.attacks.progress import terminal
from skinart.toolbox import (
    ART_NUMPY_DTYPE, AdversarialPatchPyTorch, CarliniL2Method, CarliniLInfMethod, FastGradientMethod, HopSkipJump,
    MomentumIterativeMethod, ProjectedGradientDescent, ProjectedGradientDescentPyTorch, SquareAttack, compute_success_array,
)


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
check_attributes(FastProjectedGradientDescentPyTorch, ProjectedGradientDescentPyTorch, "_batch_id")


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
check_attributes(FastPyTorchPath, ProjectedGradientDescent, "_attack")
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
