"""APGD on a fast path: ART's `AutoProjectedGradientDescent` step by step, with the images kept as float32 torch
tensors on the model's device between the model's passes (`torch_model.TorchModel`: the estimator's logits and input
gradients on such tensors).

What differs from ART's loop: one forward-backward pass per iteration where ART makes a gradient pass and a separate
loss pass (the gradient at the next point comes with its loss; a checkpoint's return to the best point takes the
gradient stored with it), the DLR loss batched (ART loops over images), and each image left as soon as a point fools it
(ART iterates every image to the end and keeps only its last point: an image fooled on the way and lost again counts
for skinart, not for ART). With `n_target_classes` it is Croce & Hein's APGD-T. tests/test_autoattack.py shows it
gives ART's adversarial decisions on a small model from the same seed (and, run to the end, ART's adversarials)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

from skinart.attacks.fast.overrides import check_overrides
from skinart.attacks.fast.torch_model import TorchModel, where_rows
from skinart.attacks.progress import bar, terminal
from skinart.toolbox import (
    ART_NUMPY_DTYPE, AutoProjectedGradientDescent, EvasionAttack, PyTorchClassifier, check_and_transform_label_format,
    projection, random_sphere,
)


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's difference of logits ratio (eq. 6), batched: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)."""
    top = logits.sort(dim=1).values
    z_y = logits.gather(1, y[:, None])[:, 0]
    z_i = torch.where(logits.argmax(1) == y, top[:, -2], top[:, -1])
    return -(z_y - z_i) / (top[:, -1] - top[:, -3] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Croce & Hein's targeted DLR (eq. 7), its sign turned to be minimised: (z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)."""
    top = logits.sort(dim=1).values
    z_y, z_t = logits.gather(1, y[:, None])[:, 0], logits.gather(1, target[:, None])[:, 0]
    return (z_y - z_t) / (top[:, -1] - 0.5 * (top[:, -3] + top[:, -4]) + 1e-12)


def apgd_checkpoints(max_iter: int) -> list[int]:
    """ART's (and the paper's) checkpoints w_j, computed as ART computes them (the same float rounding)."""
    w = [0, 0.22]
    while w[-1] + max(w[-1] - w[-2] - 0.03, 0.06) <= 1:
        w.append(w[-1] + max(w[-1] - w[-2] - 0.03, 0.06))
    return [math.ceil(p * max_iter) for p in w]


@dataclass(frozen=True)
class APGDState:
    """The images of one APGD batch still running, row by row: their index in the batch (`rows`), start, labels or
    targets, APGD-T group, and the iteration's variables of Croce & Hein's Algorithm 1: the point x_k and the one
    before it, the step size η (per image), the loss and gradient at x_k, the best point so far with its loss, gradient
    and predecessor, the count of improving steps, and η and the best loss at the last checkpoint."""

    rows: torch.Tensor
    x_init: torch.Tensor
    labels: torch.Tensor | None
    targets: torch.Tensor | None
    group: torch.Tensor | None
    x_k: torch.Tensor
    eta: torch.Tensor
    f_0: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    f_max: torch.Tensor | None = None
    x_max: torch.Tensor | None = None
    grad_max: torch.Tensor | None = None
    x_max_prev: torch.Tensor | None = None
    count: torch.Tensor | None = None
    eta_w: torch.Tensor | None = None
    f_max_w: torch.Tensor | None = None
    x_prev: torch.Tensor | None = None

    def kept(self, keep: torch.Tensor) -> APGDState:
        """The state of the rows where `keep` holds."""
        return replace(self, **{f.name: getattr(self, f.name)[keep] for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor) and getattr(self, f.name).ndim})


class FastAutoProjectedGradientDescent(AutoProjectedGradientDescent):
    r"""APGD, 'Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks'
    [https://arxiv.org/abs/2003.01690] (Croce & Hein, ICML 2020): ART's `AutoProjectedGradientDescent` on the fast path
    the module says. Distance: L∞, L2 or L1 (ART's rescaling projection). Arguments: ART's (norm, eps 0.3, eps_step
    0.1, max_iter 100, targeted False, nb_random_init 5, batch_size 32, loss_type "cross_entropy" or
    "difference_logits_ratio", verbose: a bar per batch, default when stderr is a terminal), and n_target_classes
    (None: ART's attack; k: APGD-T, y the true labels, each image attacked towards the k classes of highest clean logit
    after its own in turn, targeted DLR of eq. 7 or targeted CE, until any misclassification, as the original counts).
    The estimator's own loss is not offered (ART's loss_type None)."""

    attack_params = AutoProjectedGradientDescent.attack_params + ["n_target_classes", "name"]
    _estimator_requirements = (PyTorchClassifier,)  # TorchModel reads its internals

    def __init__(self, estimator, norm="inf", eps: float = 0.3, eps_step: float = 0.1, max_iter: int = 100,
                 targeted: bool = False, nb_random_init: int = 5, batch_size: int = 32, loss_type: str = "cross_entropy",
                 verbose: bool | None = None, n_target_classes: int | None = None):
        if loss_type not in ("cross_entropy", "difference_logits_ratio"):
            raise ValueError(f"loss_type {loss_type!r}: skinart's APGD takes cross_entropy or difference_logits_ratio")
        if n_target_classes is not None and not (targeted and 0 < n_target_classes < estimator.nb_classes):
            raise ValueError(f"n_target_classes {n_target_classes}: APGD-T is targeted, with 1 to classes − 1 targets")
        EvasionAttack.__init__(self, estimator=estimator)  # ART's __init__ wraps a second classifier for its losses
        self.norm, self.eps, self.eps_step, self.max_iter, self.targeted = norm, eps, eps_step, max_iter, targeted
        self.nb_random_init, self.batch_size, self.loss_type = nb_random_init, batch_size, loss_type
        self.verbose, self.n_target_classes = terminal() if verbose is None else verbose, n_target_classes
        self.stop_early = True  # False: every image runs to the end and keeps its last point, as in ART (tests)
        self._check_params()

    @property
    def name(self) -> str:
        return "APGD-T" if self.n_target_classes else "APGD-" + ("CE" if self.loss_type == "cross_entropy" else "DLR")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        if kwargs.get("mask") is not None:
            raise ValueError("skinart's APGD takes no mask")
        model = TorchModel(self.estimator, self.batch_size)
        x_t = torch.from_numpy(x.astype(ART_NUMPY_DTYPE)).to(model.device)
        if y is None:
            if self.targeted and not self.n_target_classes:
                raise ValueError("Target labels `y` need to be provided for a targeted attack.")
            y_t = model.logits(x_t).argmax(1)
        else:
            y = check_and_transform_label_format(y, nb_classes=self.estimator.nb_classes)
            y_t = torch.from_numpy(y.argmax(1)).to(model.device)
        if self.n_target_classes:
            return self._towards_targets(model, x_t, y_t).cpu().numpy()
        labels, targets = (None, y_t) if self.targeted else (y_t, None)
        return self._restarts(model, x_t, labels, targets)[0].cpu().numpy()

    def _towards_targets(self, model: TorchModel, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """APGD-T: each image correctly classified attacked towards the 2nd, 3rd, … highest clean logit, all targets of
        an image run side by side (one batch: the original runs them in turn on the images still correct) and an
        image leaves as soon as one of them fools it. Each (image, target) run is the original's, so the images
        fooled are those the original fools (from other random starts), in about n_target_classes times fewer passes."""
        order, adv = model.logits(x).argsort(dim=1, descending=True), x.clone()
        images = (order[:, 0] == labels).nonzero()[:, 0]
        rows = images.repeat_interleave(self.n_target_classes)
        targets = order[images, 1 : self.n_target_classes + 1].flatten()
        out, fooled = self._restarts(model, x[rows], labels[rows], targets, groups=rows)
        for row in fooled.nonzero()[:, 0].flip(0).tolist():  # an image fooled on several targets keeps the first's
            adv[rows[row]] = out[row]
        return adv

    def _fooled(self, logits: torch.Tensor, labels, targets) -> torch.Tensor:
        return logits.argmax(1) == targets if labels is None else logits.argmax(1) != labels

    def _loss(self, logits: torch.Tensor, labels, targets) -> torch.Tensor:
        if self.loss_type == "cross_entropy":
            return F.cross_entropy(logits, labels if targets is None else targets, reduction="none")
        if labels is not None and targets is not None:
            return dlr_targeted(logits, labels, targets)
        return dlr(logits, labels if targets is None else targets)

    def _restarts(self, model: TorchModel, x: torch.Tensor, labels, targets, groups=None) -> tuple[torch.Tensor, torch.Tensor]:
        """ART's `generate` loop: each restart predicts every image, draws random starts for those not yet fooled
        (numpy, as ART) and runs them in batches. Rows of one `groups` id (APGD-T's targets of one image) leave
        together when one is fooled. (adversarials, fooled)."""
        x_adv, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        pick = (lambda v, r: None if v is None else v[r])
        done = (lambda: fooled) if groups is None else (lambda: torch.isin(groups, groups[fooled]))
        for _ in range(max(1, self.nb_random_init)):
            fooled = self._fooled(model.logits(x_adv), labels, targets)
            rows = (~done()).nonzero()[:, 0]
            if not len(rows):
                break
            starts = torch.from_numpy(self._random_start(x_adv[rows].cpu().numpy(), x[rows].cpu().numpy())).to(x.device)
            for b in range(0, len(rows), self.batch_size):
                part, start = rows[b : b + self.batch_size], starts[b : b + self.batch_size]
                left = ~done()[part]  # not already fooled through another row of its group
                x_adv[part[left]], fooled[part[left]] = self._run(model, start[left], x[part[left]], pick(labels, part[left]),
                                                                  pick(targets, part[left]), pick(groups, part[left]))
        return x_adv, fooled

    def _random_start(self, x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
        noise = random_sphere(len(x), int(np.prod(x.shape[1:])), self.eps, self.norm).reshape(x.shape).astype(ART_NUMPY_DTYPE)
        start = x_adv + noise
        if self.estimator.clip_values is not None:
            start = np.clip(start, *self.estimator.clip_values)
        return x + projection(start - x, self.eps, self.norm)

    def _project(self, x: torch.Tensor, x_init: torch.Tensor) -> torch.Tensor:
        """x_init + the projection of x − x_init onto the ε ball (ART's `projection`, rescaling for L1 and L2)."""
        delta = x - x_init
        if self.norm in (np.inf, "inf"):
            return x_init + delta.clamp(-self.eps, self.eps)
        norms = delta.flatten(1).norm(p=float(self.norm), dim=1).view(-1, *[1] * (x.ndim - 1))
        return x_init + delta * torch.where(norms > 0, (self.eps / norms).clamp(max=1), torch.zeros_like(norms))

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.estimator.clip_values is None else x.clamp(*map(float, self.estimator.clip_values))

    def _direction(self, grad: torch.Tensor) -> torch.Tensor:
        grad = -grad if self.targeted else grad
        if self.norm in (np.inf, "inf"):
            return grad.sign()
        norms = grad.flatten(1).norm(p=float(self.norm), dim=1).view(-1, *[1] * (grad.ndim - 1))
        return grad / (norms + 10e-8)

    def _evaluate(self, model: TorchModel, x: torch.Tensor, s: APGDState):
        return model.loss_gradient(x, lambda logits: self._loss(logits, s.labels, s.targets))

    def _run(self, model: TorchModel, x_k: torch.Tensor, x_init: torch.Tensor, labels, targets, groups=None):
        """ART's APGD iterations on one batch from its starts `x_k`: (points, fooled). Fooled images keep their first
        fooling point (`stop_early`; else their last point, if it fools, as ART), the others their start."""
        n, device = len(x_k), x_k.device
        out, fooled = x_k.clone(), torch.zeros(n, dtype=torch.bool, device=device)
        s = APGDState(rows=torch.arange(n, device=device), x_init=x_init, labels=labels, targets=targets, group=groups,
                      x_k=x_k, eta=torch.full((n, *[1] * (x_k.ndim - 1)), self.eps_step, dtype=x_k.dtype, device=device))
        logits, f_0, grad = self._evaluate(model, x_k, s)
        s = self._settle(replace(s, f_0=f_0, grad=grad), logits, x_k, out, fooled)
        x_1 = self._project(self._clip(s.x_k + s.eta * self._direction(s.grad)), s.x_init)
        logits, f_1, grad_1 = self._evaluate(model, x_1, s)
        better = f_1 >= s.f_0  # ART compares ≥ at the first step of targeted runs too
        s = replace(s, f_max=torch.where(better, f_1, s.f_0), x_max=where_rows(better, x_1, s.x_k),
                    grad_max=where_rows(better, grad_1, s.grad), x_max_prev=s.x_init, count=better.int(),
                    eta_w=s.eta.clone(), f_max_w=s.f_0, x_prev=s.x_k, x_k=x_1, grad=grad_1)
        s = self._settle(s, logits, x_1, out, fooled)
        checkpoints = apgd_checkpoints(self.max_iter)
        with bar(self.max_iter, self.name, self.verbose) as progress:
            progress.update(1)
            for k in range(1, self.max_iter):
                if not len(s.rows):
                    break
                s, stop = self._iterate(model, s, out, fooled, k, checkpoints)
                progress.update(1)
                if stop:
                    break
        if not self.stop_early and len(s.rows):
            self._settle(s, model.logits(s.x_k), s.x_k, out, fooled, final=True)
        return out, fooled

    def _iterate(self, model: TorchModel, s: APGDState, out, fooled, k: int, checkpoints: list[int]) -> tuple[APGDState, bool]:
        """One APGD iteration k ≥ 1 (ART's else-branch, in the same float32 operations), then a checkpoint's step-size
        halving and return to the best point. (state, stop: ART's break when every loss is exactly 0)."""
        z = self._project(self._clip(s.x_k + s.eta * self._direction(s.grad)), s.x_init)
        x_k = s.x_k
        x_next = self._project(self._clip(x_k + 0.75 * (z - x_k) + (1 - 0.75) * (x_k - s.x_prev)), s.x_init)
        logits, f, grad = self._evaluate(model, x_next, s)
        if (f == 0.0).all():
            return self._settle(replace(s, x_k=x_next), logits, x_next, out, fooled), True
        better = f < s.f_max if self.targeted else f > s.f_max
        s = replace(s, count=s.count + better.int(), x_max=where_rows(better, x_next, s.x_max),
                    x_max_prev=where_rows(better, x_k, s.x_max_prev), f_max=torch.where(better, f, s.f_max),
                    grad_max=where_rows(better, grad, s.grad_max), x_prev=x_k, x_k=x_next, grad=grad)
        if k in checkpoints:
            since = k - checkpoints[checkpoints.index(k) - 1]
            halve = (s.count < 0.75 * since) | ((s.eta_w == s.eta).flatten() & (s.f_max_w == s.f_max))
            eta = where_rows(halve, s.eta / 2, s.eta)
            s = replace(s, eta=eta, x_k=where_rows(halve, s.x_max, s.x_k), x_prev=where_rows(halve, s.x_max_prev, s.x_prev),
                        grad=where_rows(halve, s.grad_max, s.grad), count=torch.zeros_like(s.count),
                        eta_w=eta.clone(), f_max_w=s.f_max.clone())
        return self._settle(s, logits, x_next, out, fooled), False

    def _settle(self, s: APGDState, logits: torch.Tensor, point: torch.Tensor, out, fooled, final: bool = False) -> APGDState:
        """Record the images `point` fools (its logits given) into `out`/`fooled` and drop them from the state
        (`stop_early`); at the `final` check, every image's last point."""
        if not (self.stop_early or final):
            return s
        hit = self._fooled(logits, s.labels, s.targets)
        out[s.rows[hit]], fooled[s.rows[hit]] = point[hit], True
        return s.kept(~(hit if s.group is None else torch.isin(s.group, s.group[hit])))


# a rewrite of ART's loop, not a copy (tests/test_autoattack.py compares the answers): only the names are checked
check_overrides(FastAutoProjectedGradientDescent, AutoProjectedGradientDescent, "_check_params", "generate")
