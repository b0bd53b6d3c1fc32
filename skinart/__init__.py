"""skinart: adversarial attacks and defences for dermatology classifiers, on top of ART and timm."""

__version__ = "0.1.0"


class SkinartError(Exception):
    """A problem with the user's input: the CLI prints it as one line and exits non-zero."""
