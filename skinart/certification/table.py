"""Randomized smoothing as a table: every smoothed classifier ART trains is a row of `VARIANTS` (the ART class by name,
its defaults in ART's keyword names, what it needs), and `CertifyConfig` holds a certification's options with their
checks. Pure data: the option checks (`skinart.commands.checks`) read it without importing torch or ART; the classes
are resolved in `skinart.certification.smoothing`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from skinart.data import BALANCE_METHODS
from skinart.errors import SkinartError
from skinart.options import choose


@dataclass(frozen=True)
class Variant:
    """One way to train a base classifier for smoothing: ART's class (by name, in `skinart.toolbox`) and the keyword
    arguments skinart sets beyond σ (`scale`); every certification is ART's `certify`, whichever trained the model."""

    art_class: str
    paper: str
    help: str
    defaults: dict = field(default_factory=dict)
    needs: tuple[str, ...] = ("sigma",)  # the options it cannot run without


VARIANTS: dict[str, Variant] = {
    # each training batch with Gaussian noise of σ added to the [0, 1] pixels (ART's `fit`)
    "gaussian": Variant("PyTorchRandomizedSmoothing", "Cohen, Rosenfeld & Kolter, ICML 2019 (arXiv:1902.02918)",
                        "training under Gaussian noise of σ"),
    # PGD on the smoothed classifier's loss inside an L2 ball of ε around each noisy image, then training on it
    "smoothadv": Variant("PyTorchSmoothAdv", "Salman et al., NeurIPS 2019 (arXiv:1906.04584)",
                         "adversarial training of the smoothed classifier (SmoothAdv)",
                         defaults={"epsilon": 0.5, "num_steps": 2, "num_noise_vec": 1, "warmup": 1}),
    # cross-entropy of the noise-averaged softmax plus a hinge on the certified radius of the correct images
    "macer": Variant("PyTorchMACER", "Zhai et al., ICLR 2020 (arXiv:2001.02378)",
                     "certified-radius maximisation (MACER)",
                     defaults={"beta": 16.0, "gamma": 8.0, "lmbda": 12.0, "gaussian_samples": 16}),
}

CERTIFY_DEFAULTS = {"n": 1000, "n0": 100, "alpha": 0.001}  # Cohen et al. use n = 100,000 on ImageNet
# how every command predicts through a checkpoint trained under noise: the majority of n noisy copies (their vote shares
# as its probabilities), each attack's gradient averaged over `eot` copies, the noise from `seed`. n = 100 keeps a clean
# evaluation of 2,000 images at 28 px to 200,000 forward passes (minutes on 2 CPU cores); --smoothing-n sets it
SMOOTHED_PREDICTION = {"n": 100, "eot": 16, "seed": 0}


def smoothing_of(defence: dict | None, n: int | None = None) -> dict | None:
    """How a checkpoint's `defence` (its metadata) makes it a smoothed classifier: σ, the noise samples per prediction
    (`n` when given, else those it records), per attack gradient and the seed; None for a checkpoint without σ."""
    if not defence or defence.get("sigma") is None:
        return None
    settings = {"sigma": defence["sigma"], **SMOOTHED_PREDICTION, **defence.get("prediction", {})}
    return {**settings, "n": n or settings["n"]}


def check_sigma(sigma: float) -> None:
    if not 0 < sigma <= 1:
        raise SkinartError(f"--sigma {sigma} is outside (0, 1]: it is the noise's standard deviation on [0, 1] pixels, "
                           "e.g. --sigma 0.25")


@dataclass(frozen=True)
class NoiseTrainingConfig:
    """`skinart defend --method randomized-smoothing`: the variant (a `VARIANTS` row), σ, the epochs of fine-tuning
    and the class balance (default: the checkpoint's own training's), and the noise samples each prediction of the
    checkpoint it writes takes (`SMOOTHED_PREDICTION`)."""

    variant: str = "gaussian"
    sigma: float = 0.25
    epochs: int | None = None
    balance: str | None = None  # training.config's --balance (None: the checkpoint's own training's)
    n: int = SMOOTHED_PREDICTION["n"]  # noise samples per prediction, recorded in the checkpoint

    def check(self) -> None:
        choose(self.variant, VARIANTS, "--variant")
        check_sigma(self.sigma)
        if self.balance is not None:
            choose(self.balance, BALANCE_METHODS, "--balance")
        for name, value in (("--retrain-epochs", self.epochs), ("--smoothing-n", self.n)):
            if value is not None and value < 1:
                raise SkinartError(f"{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class CertifyConfig:
    """`skinart certify`: the noise σ (None: the checkpoint's own), Cohen's n (estimation), n0 (selection) and α, the
    images (a seeded sample of the test split), the L2 radii the smoothed classifier is attacked at (None: σ/2, σ,
    3σ/2, 2σ; empty: no attack), the attack's steps and the noise samples each of its gradients averages (EOT), and the
    noisy rows per forward pass."""

    sigma: float | None = None
    n: int = CERTIFY_DEFAULTS["n"]
    n0: int = CERTIFY_DEFAULTS["n0"]
    alpha: float = CERTIFY_DEFAULTS["alpha"]
    max_samples: int | None = None
    seed: int = 0
    radii: tuple[float, ...] | None = None
    attack_steps: int = 10
    eot: int = 16
    batch_size: int = 1024

    def check(self) -> None:
        if self.sigma is not None:
            check_sigma(self.sigma)
        for name in ("n", "n0", "attack_steps", "eot", "batch_size"):
            if getattr(self, name) < 1:
                raise SkinartError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.alpha < 0.5:
            raise SkinartError(f"--alpha {self.alpha} is outside (0, 0.5): it is the chance that a certificate is wrong, "
                               "e.g. --alpha 0.001")
        if self.alpha ** (1 / self.n) < 0.5:  # even n votes of n leave the lower bound under 1/2: every image abstains
            raise SkinartError(f"--n {self.n} cannot certify anything at --alpha {self.alpha} (all {self.n} votes for one "
                               f"class bound its probability below 1/2); give --n {math.ceil(math.log(self.alpha) / math.log(0.5))} or more")
        if self.max_samples is not None and self.max_samples < 1:
            raise SkinartError(f"--max-samples must be at least 1, got {self.max_samples}")
        if any(not 0 < r <= 10 for r in self.radii or ()):
            raise SkinartError(f"--radii {','.join(map(str, self.radii))}: each L2 radius must be in (0, 10] "
                               "(in [0, 1] pixel units), e.g. --radii 0.12,0.25,0.5")

    def attack_radii(self, sigma: float) -> tuple[float, ...]:
        """The L2 radii the smoothed classifier is attacked at: those given, else σ/2, σ, 3σ/2 and 2σ."""
        return self.radii if self.radii is not None else tuple(round(k * sigma, 6) for k in (0.5, 1.0, 1.5, 2.0))


def parse_radii(text: str | None) -> tuple[float, ...] | None:
    """--radii: comma-separated L2 radii ("none" or "" for no attack); None when not given."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(sorted({float(r) for r in text.split(",")}))
    except ValueError:
        raise SkinartError(f"--radii {text!r}: give L2 radii separated by commas, e.g. 0.12,0.25,0.5 (none: no attack)") from None
