"""The smoothed classifier: ART's `PyTorchRandomizedSmoothing` over a skinart classifier, its certification batched
across images (`BatchedRandomizedSmoothing`), the Clopper–Pearson bound by scipy, the decision rules whose votes are
counted (the class, the malignant decision at the operating point) and `certified`, ART's certificate from counts.

Noise is added to [0, 1] pixels. ART adds it after its own preprocessing in `fit` and before it in `certify` and
`predict`, so mean/std must stay inside the network (skinart's `Normalize` layer, ART's `preprocessing=None`) for
training and certification to see the same noise: `smoothed` refuses any ART preprocessing."""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from scipy.stats import beta, norm

from skinart.attacks.fast.overrides import check_overrides
from skinart.errors import SkinartError
from skinart.toolbox import PyTorchClassifier, PyTorchRandomizedSmoothing

Rule = Callable[[torch.Tensor], torch.Tensor]  # logits -> one decision index per row


def clopper_pearson_lower(successes, trials: int, alpha: float):
    """The one-sided (1 − α) Clopper–Pearson lower bound on a binomial proportion: what ART computes with statsmodels'
    `proportion_confint(successes, trials, alpha=2α, method="beta")[0]` (statsmodels is no dependency of skinart or
    ART). 0 for 0 successes, as there."""
    successes = np.asarray(successes)
    bound = beta.ppf(alpha, np.maximum(successes, 1), trials - successes + 1)
    return np.where(successes > 0, bound, 0.0)


def certified(select: np.ndarray, estimate: np.ndarray, n: int, sigma: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """ART's certificate (`RandomizedSmoothingMixin.certify`) from vote counts, shape (images, decisions): the class
    most voted in the selection draws, abstaining (-1, radius 0) where its lower bound in the n estimation draws is
    under 1/2, else certified with L2 radius σ·Φ⁻¹(lower bound)."""
    chosen = select.argmax(1)
    lower = clopper_pearson_lower(estimate[np.arange(len(chosen)), chosen], n, alpha)
    abstain = lower < 0.5
    return np.where(abstain, -1, chosen), np.where(abstain, 0.0, sigma * norm.ppf(np.where(abstain, 0.5, lower)))


def certified_share(select: np.ndarray, estimate: np.ndarray, n: int, sigma: float, alpha: float,
                    threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The decision "the share of noisy copies voting malignant is ≥ t" certified from vote counts (benign, malignant;
    shape (images, 2)): the side the selection draws give, kept where the Clopper–Pearson lower bound of its share in
    the n estimation draws clears its threshold (t malignant, 1 − t benign), with L2 radius σ·(Φ⁻¹(bound) − Φ⁻¹(its
    threshold)), since Φ⁻¹ of any smoothed share is 1/σ-Lipschitz (Salman et al. 2019, Lemma 2); else abstaining (-1).
    At t = 1/2 it is `certified`."""
    malignant = select[:, 1] >= threshold * select.sum(1)
    bound = clopper_pearson_lower(np.where(malignant, estimate[:, 1], estimate[:, 0]), n, alpha)
    side = np.where(malignant, threshold, 1 - threshold)
    kept = bound >= side
    radius = sigma * (norm.ppf(np.where(kept, bound, 0.5)) - norm.ppf(side))
    return np.where(kept, malignant.astype(int), -1), np.where(kept, radius, 0.0)


def class_rule(logits: torch.Tensor) -> torch.Tensor:
    """The base classifier's class (np.argmax's first maximum, as ART counts)."""
    return logits.argmax(1)


def malignant_class_rule(malignant_idx: list[int]) -> Rule:
    """1 (malignant) where the base classifier's class is malignant, else 0: the votes whose share is a smoothed
    classifier's p_malignant."""
    return lambda logits: torch.isin(logits.argmax(1), torch.tensor(malignant_idx, device=logits.device)).long()


def malignant_rule(malignant_idx: list[int], threshold: float) -> Rule:
    """The binary decision at the operating point: 1 (malignant) where p_malignant ≥ t (metrics.p_malignant's sum of
    the malignant classes' probabilities), else 0 (benign)."""
    return lambda logits: (logits.softmax(1)[:, malignant_idx].sum(1) >= threshold).long()


class BatchedRandomizedSmoothing(PyTorchRandomizedSmoothing):
    """ART's `PyTorchRandomizedSmoothing`, with:

    - `certify` batched: ART predicts each image's n0 + n noisy copies on their own, image after image; here the
      copies of several images share each forward pass of `batch_size` rows (ART's answers: tests/test_certify.py);
    - its noise drawn by torch from its own generator (`seed`), in calls of at most `draw_rows` rows, by ART's
      per-image loop (`_noisy_samples`) and the batched one alike, so that for a seed both see the same noise
      (numpy's legacy normal, ART's, took 18 s for 11,000 rows of 28 px on this machine; torch 0.3 s);
    - the lower confidence bound by scipy (`clopper_pearson_lower`), not statsmodels;
    - `loss_gradient` averaging over noise (ART's `sampling=True`: the gradient of the log of the softmax averaged over
      `sample_size` noisy copies) unless told otherwise: ART's attacks pass no keywords, and without it ART
      differentiates the base classifier, not the smoothed one; it takes torch tensors too (ART's PyTorch PGD hands
      them) and sends at most `draw_rows` noisy copies through the network at once;
    - `predict` giving the log of each class's share of the votes of `votes` noisy copies (their softmax is the
      vote shares: what skinart scores as probabilities), batched like `certify`, with no abstention (ART's answers
      zeros where a binomial test at α cannot separate the top two classes; the majority decides here, the first
      class of a tie, as np.argmax).
    """

    def __init__(self, *args, seed: int = 0, draw_rows: int = 1024, votes: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # ART's `sample_size` sets the copies of a gradient (and of certify's selection); `votes` those of a prediction
        self.draw_rows, self.seed, self.votes = draw_rows, seed, votes or self.sample_size
        self.noise = torch.Generator(device=self.device).manual_seed(seed)

    def _draw_into(self, block: torch.Tensor) -> torch.Tensor:
        """`block` filled with Gaussian noise of σ: one call of torch's generator (ART's loop and the batched one make
        the same calls in the same order, so for a seed they draw the same noise)."""
        return torch.randn(block.shape, generator=self.noise, out=block).mul_(self.scale)

    def _blocks(self, rows: int) -> Iterator[int]:
        """The sizes of the calls that draw `rows` noisy rows: at most `draw_rows` each."""
        return (min(self.draw_rows, rows - start) for start in range(0, rows, self.draw_rows))

    def _noisy_samples(self, x: np.ndarray, n: int | None = None) -> np.ndarray:
        blocks = self._blocks(self.sample_size if n is None else n)
        noise = torch.cat([self._draw_into(torch.empty((m, *self.input_shape), device=self.device)) for m in blocks])
        return np.expand_dims(x, 0) + noise.cpu().numpy()

    def _lower_confidence_bound(self, n_class_samples: int, n_total_samples: int) -> float:
        return float(clopper_pearson_lower(n_class_samples, n_total_samples, self.alpha))

    def loss_gradient(self, x, y, training_mode: bool = False, **kwargs):
        if not kwargs.setdefault("sampling", True):
            return super().loss_gradient(x, y, training_mode=training_mode, **kwargs)
        as_numpy = [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in (x, y)]
        step = max(1, self.draw_rows // self.sample_size)  # images whose noisy copies fit one forward pass
        gradient = np.concatenate([super(BatchedRandomizedSmoothing, self).loss_gradient(
            as_numpy[0][i : i + step], as_numpy[1][i : i + step], training_mode=training_mode, **kwargs)
            for i in range(0, len(as_numpy[0]), step)])
        return torch.from_numpy(gradient).to(x.device) if isinstance(x, torch.Tensor) else gradient

    def predict(self, x: np.ndarray, batch_size: int = 128, verbose: bool = False, **kwargs) -> np.ndarray:
        shares = self.vote_counts(x, (self.votes,), {"class": (class_rule, self.nb_classes)}, self.draw_rows)["class"][:, 0]
        with np.errstate(divide="ignore"):  # log 0 = -inf: a class no copy voted for gets probability 0
            return np.log(shares / self.votes).astype(np.float32)

    def vote_counts(self, x: np.ndarray, draws: tuple[int, ...], rules: dict[str, tuple[Rule, int]],
                    batch_size: int = 1024) -> dict[str, np.ndarray]:
        """Per rule (a function of the logits and its number of decisions), the votes of each image's noisy copies:
        shape (images, len(draws), decisions), `draws[k]` copies in the k-th set (certify: n0 to select, n to
        estimate). Images are drawn in order, each set after the one before, as ART's loop draws them."""
        sets = len(draws)
        counts = {name: torch.zeros(len(x) * sets * width, dtype=torch.long, device=self.device)
                  for name, (_, width) in rules.items()}
        # one buffer for every batch (fresh tensors per batch cost a page fault per page: a third of the time on CPU)
        rows = torch.empty((batch_size + self.draw_rows, *self.input_shape), device=self.device)
        owner = torch.empty(len(rows), dtype=torch.long, device=self.device)  # each row's image × sets + set
        filled = 0
        for i, image in enumerate(torch.from_numpy(np.asarray(x, dtype=np.float32)).to(self.device)):
            for k, size in enumerate(draws):
                for m in self._blocks(size):
                    self._draw_into(rows[filled : filled + m]).add_(image)
                    owner[filled : filled + m] = i * sets + k
                    filled += m
                    if filled >= batch_size:
                        self._count(rows[:filled], owner[:filled], rules, counts)
                        filled = 0
        if filled:
            self._count(rows[:filled], owner[:filled], rules, counts)
        return {name: c.view(len(x), sets, -1).cpu().numpy() for name, c in counts.items()}

    def _count(self, rows: torch.Tensor, owner: torch.Tensor, rules: dict[str, tuple[Rule, int]], counts: dict) -> None:
        """Add the votes of `rows` (noisy copies; `owner`: whose) to `counts`, rule by rule."""
        self.model.eval()
        with torch.inference_mode():
            logits = self.model(rows)
        for name, (rule, width) in rules.items():
            counts[name] += torch.bincount(owner * width + rule(logits), minlength=len(counts[name]))

    def certify(self, x: np.ndarray, n: int, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        votes = self.vote_counts(x, (self.sample_size, n), {"class": (class_rule, self.nb_classes)}, batch_size)["class"]
        return certified(votes[:, 0], votes[:, 1], n, self.scale, self.alpha)


def smoothing_record(classifier) -> dict:
    """What metrics.json says of a smoothed classifier's predictions (σ, n, seed: their vote shares are its
    probabilities, p_malignant the share of copies voting a malignant class; eot: the copies each gradient averages);
    nothing for another classifier."""
    if not isinstance(classifier, BatchedRandomizedSmoothing):
        return {}
    return {"smoothed_classifier": {"sigma": classifier.scale, "n": classifier.votes, "eot": classifier.sample_size,
                                    "seed": classifier.seed,
                                    "probabilities": "vote shares of the n noisy copies' base classes",
                                    "p_malignant": "share of the n noisy copies whose base class is malignant"}}


check_overrides(BatchedRandomizedSmoothing, PyTorchRandomizedSmoothing, "_noisy_samples", "_lower_confidence_bound",
                "loss_gradient", "predict", "certify")


def check_pixel_space(classifier: PyTorchClassifier) -> None:
    """Refuse ART preprocessing (mean/std, a preprocessing defence): ART adds the noise after it when training and
    before it when certifying, so only a classifier without any (skinart's `wrap`: mean/std its network's first layer)
    sees the same noise on [0, 1] pixels in both."""
    if classifier.preprocessing_operations:
        names = ", ".join(type(p).__name__ for p in classifier.preprocessing_operations)
        raise SkinartError(f"randomized smoothing needs the noise on [0, 1] pixels before any preprocessing, and this "
                           f"classifier has ART preprocessing ({names}); certify the undefended checkpoint (mean/std "
                           "belong inside the network, as `skinart train` writes it)")


def smoothed(classifier: PyTorchClassifier, *, sigma: float, sample_size: int, alpha: float = 0.001, seed: int = 0,
             batch_size: int = 1024, votes: int | None = None) -> BatchedRandomizedSmoothing:
    """`classifier` as ART's smoothed classifier with noise σ on [0, 1] pixels, sharing its model, loss and optimiser
    (`check_pixel_space` first): `sample_size` noisy copies per gradient, `votes` per prediction (default the same)."""
    check_pixel_space(classifier)
    return BatchedRandomizedSmoothing(
        model=classifier.model, loss=classifier.loss, input_shape=classifier.input_shape, nb_classes=classifier.nb_classes,
        optimizer=classifier.optimizer, clip_values=classifier.clip_values, preprocessing=None,
        device_type="gpu" if classifier.device.type == "cuda" else "cpu", sample_size=sample_size, scale=sigma, alpha=alpha,
        seed=seed, draw_rows=batch_size, votes=votes)
