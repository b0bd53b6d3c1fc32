"""The metadata of each image where a source has them (HAM10000's sex, age, localisation and diagnosis type, and
DermaMNIST's through its map to HAM10000) and the subgroups `evaluate --by` scores them in."""

from __future__ import annotations

import numpy as np

from skinart.errors import SkinartError

# our name: the HAM10000 metadata CSV's column
COLUMNS = {"sex": "sex", "age": "age", "site": "localization", "dx_type": "dx_type"}
SUBGROUPS = ("sex", "age", "site")
UNKNOWN = "unknown"
SEXES = ("male", "female")
# HAM10000 records ages rounded to 5 years (0, 5, …, 85), so the edges sit on multiples of 5. Fifteen-year bins from 30
# to 75 separate the ages at which melanoma and the keratinocyte cancers (akiec, bcc) become common, and keep each bin
# above 30 images in a 15 % test split of HAM10000 (in the whole set: <30 659, 30–44 2202, 45–59 3495, 60–74 2290,
# ≥75 1312 images, 57 of unknown age); the few images under 30 and from 75 on are pooled at either end.
AGE_BINS = ((30, "<30"), (45, "30–44"), (60, "45–59"), (75, "60–74"), (np.inf, "≥75"))
SMALL_GROUP = 30  # a group under this many images is shown but flagged, and left out of the largest gap
MAP_FILE = "dermamnist_split_to_ham10000.csv"  # beside a DermaMNIST npz: each (split, index) -> its HAM10000 image_id
_ORDER = {name: i for i, name in enumerate(SEXES + tuple(label for _, label in AGE_BINS))}


def metadata_columns(rows: list[dict[str, str]], columns) -> dict[str, np.ndarray] | None:
    """Our metadata of each row of a HAM10000 metadata CSV holding `columns` ('' where a row has no value, e.g. an
    image a map leaves out); None when it holds none of sex, age and localization."""
    present = {ours: theirs for ours, theirs in COLUMNS.items() if theirs in columns}
    if not any(ours in present for ours in SUBGROUPS):
        return None
    return {ours: np.array([(row.get(theirs) or "").strip() for row in rows]) for ours, theirs in present.items()}


def subgroups(metadata: dict[str, np.ndarray] | None, by: str, data: str) -> np.ndarray:
    """Each image's group under `by` (sex, age bin or site; unknown where the metadata are missing or unreadable)."""
    if metadata is None or by not in metadata:
        raise SkinartError(f"--by {by}: the {data} data carry no {by} of their images; evaluate HAM10000 data (or DermaMNIST "
                           f"with {MAP_FILE} beside its npz and HAM10000_metadata.csv beside it or in ../ham10000/), or drop --by")
    return np.array([_GROUPERS[by](value) for value in metadata[by]])


def _sex(value: str) -> str:
    return value.lower() if value.lower() in SEXES else UNKNOWN


def _age(value: str) -> str:
    try:
        age = float(value)
    except ValueError:
        return UNKNOWN
    return next((label for edge, label in AGE_BINS if age < edge), UNKNOWN)  # NaN is below no edge


def _site(value: str) -> str:
    return value or UNKNOWN


_GROUPERS = {"sex": _sex, "age": _age, "site": _site}


def group_order(groups: np.ndarray) -> list[str]:
    """The groups present, in reading order: sexes and age bins in theirs, sites alphabetically, unknown last."""
    return sorted(set(groups.tolist()), key=lambda g: (g == UNKNOWN, _ORDER.get(g, len(_ORDER)), g))
