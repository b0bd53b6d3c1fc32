"""Every ART name skinart uses, imported in one place, after ART's data folder is pointed at skinart's cache
(ART dumps deep-copied estimators there; DESIGN.md, ART traps). Modules take ART classes from here."""

from __future__ import annotations

import importlib
import os

from skinart import cache_root


def _import_art_config():
    """`art.config` writes <HOME>/.art/config.json when it is first imported: make that home skinart's cache."""
    home = os.environ.get("HOME")
    cache_root().mkdir(parents=True, exist_ok=True)  # ART falls back to /tmp when the folder is not writable
    os.environ["HOME"] = str(cache_root())
    try:
        return importlib.import_module("art.config")
    finally:
        if home is None:
            os.environ.pop("HOME")
        else:
            os.environ["HOME"] = home


_config = _import_art_config()
_DATA_PATH = os.environ.get("ART_DATA_PATH") or str(cache_root() / "art")
if _config.ART_DATA_PATH != _DATA_PATH:
    _config.set_data_path(_DATA_PATH)

# isort: off  (everything below must load after the data path is set)
from art import __version__ as ART_VERSION  # noqa: E402
from art.attacks.attack import EvasionAttack  # noqa: E402
from art.attacks.evasion import (  # noqa: E402
    AdversarialPatchPyTorch, AutoAttack, AutoProjectedGradientDescent, CarliniL2Method, CarliniLInfMethod, FastGradientMethod, HopSkipJump, MomentumIterativeMethod,
    ProjectedGradientDescent, SquareAttack, TargetedUniversalPerturbation, UniversalPerturbation,
)
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import ProjectedGradientDescentNumpy  # noqa: E402
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_pytorch import ProjectedGradientDescentPyTorch  # noqa: E402
from art.attacks.poisoning import PoisoningAttackBackdoor  # noqa: E402
from art.attacks.poisoning.perturbations import add_pattern_bd  # noqa: E402
from art.data_generators import PyTorchDataGenerator  # noqa: E402
from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense  # noqa: E402
from art.defences.preprocessor import FeatureSqueezing, JpegCompression, SpatialSmoothing  # noqa: E402
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch  # noqa: E402
from art.defences.trainer import AdversarialTrainer, AdversarialTrainerMadryPGD  # noqa: E402
from art.estimators.certification.randomized_smoothing import PyTorchMACER, PyTorchRandomizedSmoothing, PyTorchSmoothAdv  # noqa: E402
from art.estimators.certification.randomized_smoothing.randomized_smoothing import RandomizedSmoothingMixin  # noqa: E402
from art.estimators.classification import ClassifierMixin, PyTorchClassifier  # noqa: E402
from art.exceptions import EstimatorError  # noqa: E402
from art.estimators.estimator import BaseEstimator, LossGradientsMixin  # noqa: E402
from art.preprocessing.expectation_over_transformation.pytorch import EoTPyTorch  # noqa: E402
from art.utils import check_and_transform_label_format, compute_success_array, get_labels_np_array, projection, random_sphere  # noqa: E402

ART_NUMPY_DTYPE = _config.ART_NUMPY_DTYPE  # the float type ART's attacks compute in (float32)

__all__ = [
    "ART_NUMPY_DTYPE", "ART_VERSION", "ActivationDefence", "AdversarialPatchPyTorch", "AdversarialTrainer", "AdversarialTrainerMadryPGD", "AutoAttack",
    "AutoProjectedGradientDescent", "BaseEstimator", "CarliniL2Method", "ClassifierMixin",
    "CarliniLInfMethod", "EoTPyTorch", "EstimatorError", "EvasionAttack", "FastGradientMethod", "FeatureSqueezing", "HopSkipJump", "JpegCompression",
    "LossGradientsMixin", "MomentumIterativeMethod", "PoisoningAttackBackdoor", "PreprocessorPyTorch", "ProjectedGradientDescent",
    "ProjectedGradientDescentNumpy", "ProjectedGradientDescentPyTorch", "PyTorchClassifier", "PyTorchMACER",
    "PyTorchRandomizedSmoothing", "PyTorchSmoothAdv", "RandomizedSmoothingMixin",
    "PyTorchDataGenerator", "SpatialSmoothing", "SpectralSignatureDefense", "SquareAttack", "TargetedUniversalPerturbation",
    "UniversalPerturbation", "add_pattern_bd", "check_and_transform_label_format", "compute_success_array",
    "get_labels_np_array", "projection", "random_sphere",
]
