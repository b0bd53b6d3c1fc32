"""skinart: adversarial attacks and defences for dermatology classifiers, on top of ART and timm."""

__version__ = "0.1.0"
