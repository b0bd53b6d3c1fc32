"""An ART PyTorchClassifier's logits and input gradients on torch tensors kept on its device, for the fast attack
paths (APGD, Square): one forward pass where ART's numpy round trips make several."""

from __future__ import annotations

import torch

from skinart.attacks.fast.overrides import check_attributes, check_overrides
from skinart.toolbox import PyTorchClassifier


class TorchModel:
    """An ART PyTorchClassifier's logits on torch tensors, in eval mode, its preprocessing applied as ART's `predict`
    and `loss_gradient` apply it (in torch when all of it is torch; else in numpy, with ART's BPDA gradient)."""

    def __init__(self, estimator, batch_size: int):
        if getattr(estimator, "postprocessing_defences", None):
            raise ValueError("the fast attack paths do not apply postprocessing defences")
        self.estimator, self.device, self.batch_size = estimator, estimator._device, batch_size
        self.framework = estimator.all_framework_preprocessing
        estimator._model.train(mode=False)  # once: ART's predict sets it on every call (a walk over every module)

    def _input(self, x: torch.Tensor, grad: bool):
        if self.framework:
            return self.estimator._apply_preprocessing(x, y=None, fit=False, no_grad=not grad)[0]
        processed = self.estimator._apply_preprocessing(x.detach().cpu().numpy(), y=None, fit=False)[0]
        return torch.from_numpy(processed).to(self.device).requires_grad_(grad)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if not len(x):
                return x.new_zeros((0, self.estimator.nb_classes))
            return torch.cat([self.estimator._model(self._input(x[i : i + self.batch_size], False))[-1]
                              for i in range(0, len(x), self.batch_size)])

    def loss_gradient(self, x: torch.Tensor, loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, per-image loss, gradient of each image's loss) at `x` from one forward-backward pass."""
        leaf = x.detach().requires_grad_(True)
        inputs = self._input(leaf, True)
        logits = self.estimator._model(inputs)[-1]
        value = loss(logits)
        grad = torch.autograd.grad(value.sum(), leaf if self.framework else inputs)[0]
        if not self.framework:  # ART's backward through numpy preprocessors (BPDA)
            grad = torch.from_numpy(self.estimator._apply_preprocessing_gradient(x.detach().cpu().numpy(), grad.cpu().numpy()))
        return logits.detach(), value.detach(), grad.to(self.device)


def where_rows(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *[1] * (a.ndim - 1)), a, b)


check_overrides(TorchModel, PyTorchClassifier, "_apply_preprocessing", "_apply_preprocessing_gradient")
check_attributes(TorchModel, PyTorchClassifier, "_device", "_model", "all_framework_preprocessing")
