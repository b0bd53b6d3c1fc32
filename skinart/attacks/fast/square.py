"""Square Attack on a fast path: ART's L∞ `SquareAttack` (the same random squares from numpy's generator, the same
acceptance, the same float32 candidates) with one forward pass per query over the images not yet fooled, on float32
torch tensors on the model's device; ART predicts every image, then the margins of the standing ones, then the
candidates (three passes per query), in float64. tests/test_autoattack.py shows it gives ART's adversarials."""

from __future__ import annotations

import math

import numpy as np
import torch

from skinart.attacks.fast.torch_model import TorchModel, where_rows
from skinart.attacks.fast.overrides import FrozenWeights, check_overrides
from skinart.attacks.progress import Announced, bar, terminal
from skinart.toolbox import ART_NUMPY_DTYPE, PyTorchClassifier, SquareAttack, check_and_transform_label_format


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{i≠y} z_i: Square's loss (ART's `_get_logits_diff` wherever the image is still classified as y)."""
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return logits.gather(1, labels[:, None])[:, 0] - others.max(1).values


class FastSquareAttack(SquareAttack):
    r"""Square Attack, 'Square Attack: a query-efficient black-box adversarial attack via random search'
    [https://arxiv.org/abs/1912.00049] (Andriushchenko et al., ECCV 2020): ART's `SquareAttack`, its L∞ loop on the fast
    path the module says (L2, or a criterion or loss of one's own, runs ART's loop; ART's L1 returns the images
    unchanged). Distance: L∞ (or L2). Arguments: ART's (norm "inf", adv_criterion and loss None: a misclassification
    and ART's margin, max_iter 100 queries, eps 0.3, p_init 0.8, nb_restarts 1, batch_size 128, verbose: a bar,
    default when stderr is a terminal)."""

    attack_params = SquareAttack.attack_params + ["name"]
    _estimator_requirements = (PyTorchClassifier,)  # its fast path reads the classifier's internals (TorchModel)
    name = "Square"

    def __init__(self, estimator, norm="inf", adv_criterion=None, loss=None, max_iter: int = 100, eps: float = 0.3,
                 p_init: float = 0.8, nb_restarts: int = 1, batch_size: int = 128, verbose: bool | None = None):
        super().__init__(estimator, norm=norm, adv_criterion=adv_criterion, loss=loss, max_iter=max_iter, eps=eps, p_init=p_init,
                         nb_restarts=nb_restarts, batch_size=batch_size, verbose=terminal() if verbose is None else verbose)
        self._own_criteria = adv_criterion is not None or loss is not None  # given: ART's loop applies them

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        if self.norm not in (np.inf, "inf") or self._own_criteria or not self.estimator.channels_first or x.ndim != 4:
            return super().generate(x, y, **kwargs)
        model = TorchModel(self.estimator, self.batch_size)
        x_t = torch.from_numpy(x.astype(ART_NUMPY_DTYPE)).to(model.device)
        labels = model.logits(x_t).argmax(1) if y is None else \
            torch.from_numpy(check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes).argmax(1)).to(model.device)
        x_adv = x_t.clone()
        for _ in range(self.nb_restarts):
            rows = (model.logits(x_adv).argmax(1) == labels).nonzero()[:, 0]
            if not len(rows):
                break
            self._restart(model, x, x_t, x_adv, rows, labels)
        return x_adv.cpu().numpy()

    def _restart(self, model: TorchModel, x: np.ndarray, x_t: torch.Tensor, x_adv: torch.Tensor, rows: torch.Tensor,
                 labels: torch.Tensor) -> None:
        """One of ART's restarts on the images `rows` still standing: vertical stripes from the clean images, then the
        random squares; `x_adv` updated in place. Candidates are computed as ART computes them (float64, rounded to
        float32 once), on the square's pixels only."""
        lo, hi = (float(v) for v in self.estimator.clip_values)
        clean, y = x[rows.cpu().numpy()], labels[rows]
        stripes = np.random.choice([-1, 1], size=(len(clean), clean.shape[1], 1, clean.shape[3]))
        new = torch.from_numpy(np.clip(clean + self.eps * stripes, lo, hi).astype(ART_NUMPY_DTYPE)).to(x_t.device)
        before, logits = margins(model.logits(x_t[rows]), y), model.logits(new)
        after = margins(logits, y)
        better = after < before
        current = where_rows(better, new, x_t[rows])
        margin = torch.where(better, after, before)
        x_adv[rows] = current
        keep = ~(better & (logits.argmax(1) != y))
        rows, current, margin, y = rows[keep], current[keep], margin[keep], y[keep]
        low, high = x_t[rows] - self.eps, x_t[rows] + self.eps  # ART's bounds, float32
        height, width = x.shape[2:]
        with bar(self.max_iter, self.name, self.verbose) as progress:
            for i_iter in range(self.max_iter):
                if not len(rows):
                    break
                side = max(int(round(math.sqrt(self._get_percentage_of_elements(i_iter) * height * width))), 1)
                top, left = np.random.randint(0, height - side), np.random.randint(0, width - side)
                step = torch.from_numpy(np.random.choice([-2 * self.eps, 2 * self.eps], size=[x.shape[1], 1, 1])).to(x_t.device)
                square = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
                candidate = current.clone()  # ART clamps every pixel: the stripes may lie an ulp outside its bounds
                candidate[square] = torch.minimum(torch.maximum(current[square].double() + step, low[square].double()),
                                                  high[square].double()).clamp(lo, hi).float()
                candidate = torch.minimum(torch.maximum(candidate, low), high).clamp(lo, hi)
                logits = model.logits(candidate)
                after = margins(logits, y)
                better = after < margin
                current, margin = where_rows(better, candidate, current), torch.where(better, after, margin)
                done = better & (logits.argmax(1) != y)
                x_adv[rows[done]] = current[done]
                rows, current, margin, y, low, high = (v[~done] for v in (rows, current, margin, y, low, high))
                progress.update(1)
                progress.set_postfix(standing=len(rows), refresh=False)
        x_adv[rows] = current


class FrozenSquareAttack(FrozenWeights, Announced, FastSquareAttack):
    """The `square` row: `FastSquareAttack`, weights frozen (skinart.attacks.fast.overrides), announced (skinart.attacks.progress)."""

    announced_as = "square"


check_overrides(FastSquareAttack, SquareAttack, "_get_percentage_of_elements", "_check_params")
check_overrides(FastSquareAttack, SquareAttack, "generate", copied=True)
