"""The guard over every skinart class that overrides or copies ART internals, and frozen weights.

`check_overrides` runs at import beside each such class: every ART method or attribute it overrides, calls or reads
must still exist (with the parameters of skinart's override), and code copied from ART must be that ART version's. An
ART upgrade therefore fails at import, loudly, until each class is checked against it."""

from __future__ import annotations

import inspect
import re
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from skinart.toolbox import ART_VERSION

COPIED_FROM_ART = "1.20.1"  # the ART whose loops the fast classes copy (PGD's generate, the UAPs' generate)


def check_overrides(mine: type, parent: type, *names: str, copied: bool = False, version: str = ART_VERSION) -> None:
    """Fail at import unless ART's `parent` still has each method of `names` that skinart's class `mine` overrides or
    calls, with the parameters of `mine`'s where `mine` overrides it; and, where `mine` copies ART's code (`copied`),
    unless ART is the version it was copied from."""
    for name in names:
        theirs = getattr(parent, name, None)
        if not callable(theirs):
            raise ImportError(f"ART {version}: {parent.__name__}.{name} is gone; skinart's {mine.__name__} overrides or "
                              f"calls it (skinart/attacks/fast/): port it to this ART")
        ours = getattr(mine, name, theirs)
        if ours is not theirs and list(inspect.signature(ours).parameters) != list(inspect.signature(theirs).parameters):
            raise ImportError(f"ART {version}: {parent.__name__}.{name}{inspect.signature(theirs)} no longer takes what "
                              f"skinart's {mine.__name__}.{name}{inspect.signature(ours)} takes: port it to this ART")
    if copied and version != COPIED_FROM_ART:
        raise ImportError(f"ART {version}: skinart's {mine.__name__} copies {parent.__name__}.{', '.join(names)} from ART "
                          f"{COPIED_FROM_ART}; compare with this ART's, then update COPIED_FROM_ART (skinart/attacks/fast/)")


def check_attributes(mine: type, parent: type, *names: str, version: str = ART_VERSION) -> None:
    """Fail at import unless each attribute of `names` that skinart's class `mine` reads or sets on an ART object is
    still ART's: a class attribute or property of `parent`, or assigned as `self.<name>` in the code of a class of
    `parent`'s MRO (instance attributes exist only once an object is built)."""
    for name in names:
        if hasattr(parent, name):
            continue
        sources = [inspect.getsource(c) for c in parent.__mro__ if c.__module__.startswith("art.")]
        if not any(re.search(rf"\bself\.{re.escape(name)}\s*(:[^=]+)?=", s) for s in sources):
            raise ImportError(f"ART {version}: {parent.__name__} no longer has {name}; skinart's {mine.__name__} reads or "
                              f"sets it (skinart/attacks/fast/): port it to this ART")


# ---------------------------------------------------------------------------------------------- frozen weights


@contextmanager
def frozen_weights(classifier) -> Iterator[None]:
    """The weights of `classifier`'s torch model that are trainable made untrainable for a block, then trainable again
    (those already frozen stay so, which makes it nest)."""
    model = getattr(classifier, "model", None)
    frozen = [p for p in model.parameters() if p.requires_grad] if isinstance(model, torch.nn.Module) else []
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


class FrozenWeights:
    """Mixin for an ART attack whose `generate` is ART's (listed before the ART class; a class that defines its own
    `generate` freezes inside it with `frozen_weights`): `generate` runs with the estimator's weights frozen. ART's
    `loss_gradient` differentiates the loss with respect to the input, and torch computes every weight gradient too
    while the weights are trainable: the same input gradient at a fraction of the cost. The weights thaw when
    `generate` returns, so a trainer that trains between attacks (ART's `AdversarialTrainer`) can use the attack."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "generate" in vars(cls):  # it would replace this generate: the attack would run with trainable weights
            raise TypeError(f"{cls.__name__} defines generate: freeze in it with frozen_weights, not with FrozenWeights")

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs):
        with frozen_weights(self.estimator):
            return super().generate(x, y, **kwargs)
