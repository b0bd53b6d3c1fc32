"""Splits: the official one where a source has it, else lesion-grouped and class-stratified."""

from __future__ import annotations

import warnings

import numpy as np

from skinart.errors import SkinartError
from skinart.data.catalog import SPLIT_NAMES, cached_array
from skinart.data.sources import Source


def parse_ratios(text: str | None) -> tuple[float, ...]:
    """'0.7,0.15,0.15' -> train/val/test shares; two numbers mean train/test."""
    if text is None:
        return (0.7, 0.15, 0.15)
    fix = "--split-ratios takes 2 or 3 shares in (0, 1) that sum to 1, e.g. 0.7,0.15,0.15"
    try:
        ratios = tuple(float(r) for r in str(text).split(","))
    except ValueError as e:
        raise SkinartError(f"cannot read split ratios '{text}'; {fix}") from e
    if len(ratios) not in (2, 3) or any(not 0 < r < 1 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise SkinartError(f"bad split ratios '{text}'; {fix}")
    return ratios


def split_indices(labels: np.ndarray, groups: np.ndarray, ratios: tuple[float, ...], seed: int) -> dict[str, np.ndarray]:
    """Lesion-grouped, class-stratified split by scikit-learn's StratifiedGroupKFold.

    The held-out splits are carved off one at a time (test, then val), each as one fold of
    round(remaining share / its share) folds; no group ever lands in two splits.
    """
    from sklearn.model_selection import StratifiedGroupKFold  # here: scikit-learn takes a second to import, the CLI parses first

    names = ("train", "val", "test") if len(ratios) == 3 else ("train", "test")
    assign = np.zeros(len(labels), dtype=np.int64)
    rest, share_left = np.arange(len(labels)), 1.0
    for i in range(len(ratios) - 1, 0, -1):
        k = min(max(2, round(share_left / ratios[i])), len(np.unique(groups[rest])))
        with warnings.catch_warnings():  # tiny subsets: rare classes with fewer members than folds
            warnings.filterwarnings("ignore", message="The least populated class")
            try:
                folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                _, held = next(folds.split(rest, labels[rest], groups[rest]))
            except ValueError as e:  # fewer lesions than splits
                raise SkinartError(f"cannot split {len(labels)} images in {len(np.unique(groups))} lesion groups into "
                                   f"{len(ratios)} parts ({e}); add images") from None
        assign[rest[held]] = i
        rest, share_left = np.delete(rest, held), share_left - ratios[i]
    return {n: np.flatnonzero(assign == i) for i, n in enumerate(names)}


def source_splits(source: Source, ratios: tuple[float, ...], seed: int, use_cache: bool = True) -> dict[str, np.ndarray]:
    """The official split where the source has one, else `split_indices` (cached: it takes seconds)."""
    if source.official_split is not None:
        return {s: np.flatnonzero(source.official_split == s) for s in SPLIT_NAMES}
    key = f"split:{source.name}:{source.fingerprint}:{ratios}:{seed}"
    names = ("train", "val", "test") if len(ratios) == 3 else ("train", "test")

    def build() -> np.ndarray:
        parts = split_indices(source.labels, source.groups, ratios, seed)
        assign = np.empty(len(source.labels), dtype=np.int64)
        for i, n in enumerate(names):
            assign[parts[n]] = i
        return assign

    assign = cached_array(f"{source.name}-split", key, build, use_cache)
    return {n: np.flatnonzero(assign == i) for i, n in enumerate(names)}
