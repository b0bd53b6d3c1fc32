"""Each natural shift's function, bound from the name its row of `shifts.table.SHIFTS` gives, and `apply_shift`. The
table is pure data (the command checks read it without loading scipy); this module loads every shift family."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from skinart.errors import SkinartError
from skinart.options import choose
from skinart.shifts import artefacts, blur, digital, noise, occlusion
from skinart.shifts.draws import image_generators
from skinart.shifts.statistics import STATISTICS
from skinart.shifts.table import SEVERITIES, SHIFTS

_FAMILIES = {"artefacts": artefacts, "blur": blur, "digital": digital, "noise": noise, "occlusion": occlusion}


def _bound(name: str) -> Callable[[np.ndarray, object, Sequence[np.random.Generator] | None], np.ndarray]:
    family, _, function = SHIFTS[name].function.partition(".")
    return getattr(_FAMILIES[family], function)


# shift name -> its function; a row naming a function that does not exist fails here, at import
FUNCTIONS = {name: _bound(name) for name in SHIFTS}
assert all(len(row.parameters) == len(SEVERITIES) and row.statistic in STATISTICS for row in SHIFTS.values())


def apply_shift(images: np.ndarray, name: str, severity: int, seed: int, ids: Sequence) -> np.ndarray:
    """`images` (uint8 N×H×W×3, at the model's input size) under shift `name` at `severity` (0: unchanged).

    ids: one identity per image (an int or str: its index in the split, its image id). An image's corruption
    depends only on (seed, its id, name, severity), never on the rest of the batch, so it is the same for every
    model and batch size. Returns a new uint8 array of the same shape."""
    row = SHIFTS[choose(name, SHIFTS, "shift")]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4 and images.shape[3] == 3):
        raise ValueError(f"shifts take uint8 N×H×W×3 images, not {getattr(images, 'dtype', type(images))} "
                         f"{getattr(images, 'shape', '')}")
    if len(ids) != len(images):
        raise ValueError(f"{len(ids)} ids for {len(images)} images")
    if severity not in (0, *SEVERITIES):
        raise SkinartError(f"severity {severity} is outside 0-5")
    if severity == 0 or len(images) == 0:
        return images.copy()
    draws = image_generators(seed, name, ids) if row.random else None
    return FUNCTIONS[name](images, row.parameters[severity - 1], draws)
