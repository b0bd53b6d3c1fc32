"""Training a base classifier for smoothing through ART's classes (`VARIANTS`: Gaussian noise, SmoothAdv, MACER), as
skinart's training loop takes a trainer: each batch of an epoch goes through the class's own `fit`, which adds the
noise. `ESTIMATORS` binds each row's ART class name to the class that runs it (SmoothAdv: `L2SmoothAdv`)."""

from __future__ import annotations

from typing import Callable

from skinart.attacks.fast.overrides import check_attributes
from skinart.certification.smoothing import check_pixel_space
from skinart.certification.table import VARIANTS
from skinart.toolbox import PyTorchClassifier, PyTorchMACER, PyTorchRandomizedSmoothing, PyTorchSmoothAdv, ProjectedGradientDescent


class L2SmoothAdv(PyTorchSmoothAdv):
    """ART's `PyTorchSmoothAdv` with the L2 attack of Salman et al. 2019. ART's attacks each noisy batch with an L∞ PGD
    of ε = `epsilon` (1.0 by default: the whole pixel range) and step 0.1, and its warm-up writes `attack.norm`, which
    the PGD inside `ProjectedGradientDescent` never reads. Here each of its `num_steps` calls moves the images by
    ε / num_steps in L2 (one step of PGD in a ball of that radius), so the perturbation it trains on stays within ε.
    The warm-up still writes only the unread `norm`: none, as in ART."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        step = self.epsilon / self.num_steps
        self.attack = ProjectedGradientDescent(self.attack.estimator, norm=2, eps=step, eps_step=step, max_iter=1, verbose=False)


check_attributes(L2SmoothAdv, PyTorchSmoothAdv, "attack", "epsilon", "num_steps")

# each VARIANTS row's ART class name -> the class that trains it
ESTIMATORS = {"PyTorchRandomizedSmoothing": PyTorchRandomizedSmoothing, "PyTorchSmoothAdv": L2SmoothAdv, "PyTorchMACER": PyTorchMACER}


class NoiseTraining:
    """An ART smoothed classifier in the place of an ART trainer (`training.loop.train`'s `trainer`): `fit_generator`
    runs the estimator's `fit` (noise of σ on the [0, 1] pixels, or MACER's loss) on each batch of skinart's loader, so
    augmentation, validation, the best epoch and resuming stay the loop's."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit_generator(self, generator, nb_epochs: int = 1) -> None:
        for _ in range(nb_epochs):
            for x, y in generator.iterator:  # float images in [0, 1] and one-hot labels, on the device
                self.estimator.fit(x.cpu().numpy(), y.cpu().numpy(), batch_size=len(x), nb_epochs=1)


def noise_trainer(variant: str, sigma: float) -> Callable[[PyTorchClassifier], NoiseTraining]:
    """The trainer of a `VARIANTS` row at σ: ART's class over the classifier's own model, loss and optimiser (so the
    weights it trains are the checkpoint's), with the row's defaults."""
    row = VARIANTS[variant]

    def make(classifier: PyTorchClassifier) -> NoiseTraining:
        check_pixel_space(classifier)
        estimator = ESTIMATORS[row.art_class](
            model=classifier.model, loss=classifier.loss, input_shape=classifier.input_shape, nb_classes=classifier.nb_classes,
            optimizer=classifier.optimizer, clip_values=classifier.clip_values, preprocessing=None,
            device_type="gpu" if classifier.device.type == "cuda" else "cpu", scale=sigma, **row.defaults)
        return NoiseTraining(estimator)

    return make
