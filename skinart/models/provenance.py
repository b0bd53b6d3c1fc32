"""A checkpoint's data, checked: the data it was trained on (its recorded loader and root, verified by fingerprint),
split with its own settings, its test images never ones it trained on; or, explicitly, an external test set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from skinart.data import LesionDataset, Source, Split, dataset_of, read_data
from skinart.errors import SkinartError
from skinart.models.checkpoint import Checkpoint
from skinart.rundir import METRICS_FILE, TRAIN_IDS_FILE


def checkpoint_dataset(checkpoint: Checkpoint, *, data: str | None = None, data_root: str | None = None, split: str = "test",
                       external: bool = False, split_external: bool = False, data_options: dict | None = None) -> LesionDataset:
    """The data the checkpoint was trained on (its recorded loader and root unless `data`/`data_root` name others,
    which must then hold the same data), split with its own settings (ratios, seed, resize), so its test images are
    never ones it trained on. With `external`: a whole other dataset, every image of it test, or with `split_external`
    split as the checkpoint's own data were (a threshold re-chosen on one split, judged on another). `data_options`:
    --data csv's labels file and columns (default: the recorded ones, for the checkpoint's own loader)."""
    trained_on, img_size = checkpoint.meta.data, checkpoint.meta.img_size
    name, root = _data_location(checkpoint, data, data_root)
    options = data_options or (trained_on.get("options") if name == trained_on["name"] else None)
    source = read_data(name, root, img_size, options)
    _check_provenance(checkpoint, source, external)
    if external and not split_external:
        _check_threshold_unseen(checkpoint, source)
    ratios = None if external and not split_external else tuple(trained_on["split_ratios"])
    dataset = dataset_of(source, img_size=img_size, resize=trained_on["resize"], split_ratios=ratios, seed=trained_on["seed"])
    if checkpoint.meta.labels:
        dataset = dataset.relabelled(checkpoint.classes, checkpoint.meta.labels)
    if split not in dataset.splits:
        raise SkinartError(f"split '{split}' does not exist for {source.name} with these ratios; choose one of {', '.join(dataset.splits)}")
    _check_disjoint(checkpoint, dataset.splits["test"])
    return dataset


def _data_location(checkpoint: Checkpoint, data: str | None, data_root: str | None) -> tuple[str, str | None]:
    """(loader, root) as given, else the checkpoint's recorded ones, not $SKINART_DATA's default (a checkpoint
    written before roots were recorded gets that default, as it always did)."""
    trained_on = checkpoint.meta.data
    name = checkpoint.data_name(data)
    recorded = trained_on.get("root") if name == trained_on["name"] else None
    if data_root or recorded is None:
        return name, data_root
    if not Path(recorded).exists():
        raise SkinartError(f"the {name} data {checkpoint} was trained on are no longer at {recorded}; "
                           "pass --data-root where they are now (their fingerprint is checked)")
    return name, recorded


def _check_provenance(checkpoint: Checkpoint, source: Source, external: bool) -> None:
    """The data must be the checkpoint's own (the same fingerprint: the same images, labels and lesions, read by any
    loader, e.g. HAM10000 as --data csv), or, for an external evaluation, not."""
    trained_on = checkpoint.meta.data
    recorded = trained_on.get("source_fingerprint")
    if recorded is None:
        print(f"note: {checkpoint} predates recorded data provenance, so its data cannot be verified; retrain it to "
              "record them", file=sys.stderr)
        return
    same = source.fingerprint == recorded
    if same and external:
        raise SkinartError(f"--external scores other data, but these are the {source.name} data {checkpoint} was trained on "
                           "(its test split is the in-distribution evaluation); drop --external, or name another dataset")
    if not same and not external:
        raise SkinartError(f"the {source.name} data at {source.root} are not the {trained_on['name']} data {checkpoint} was "
                           f"trained on (at {trained_on['root']}); drop --data/--data-root to use those, or pass --external "
                           "(`skinart evaluate`) to score these as an external test set")


def _check_threshold_unseen(checkpoint: Checkpoint, source: Source) -> None:
    """Every image of external data is scored, so none may be one its threshold was re-chosen on."""
    chosen_on = (checkpoint.meta.operating_point or {}).get("data") or {}
    if chosen_on.get("source_fingerprint") == source.fingerprint:
        raise SkinartError(f"{checkpoint}'s threshold was re-chosen on the {chosen_on['split']} split of these {source.name} "
                           "data, so scoring all of them grades it on images it was fitted to; its metrics on their "
                           f"held-out test split are in {checkpoint.path / METRICS_FILE}")


def _check_disjoint(checkpoint: Checkpoint, test: Split) -> None:
    """No image scored as test may be one the checkpoint trained on (none recorded: nothing to check)."""
    if checkpoint.train_ids is None:
        return
    shared = np.intersect1d(test.ids.astype(str), checkpoint.train_ids)
    if shared.size:
        raise SkinartError(f"{len(shared)} of the {len(test)} test images (first: {shared[0]}) are training images of "
                           f"{checkpoint} (its {TRAIN_IDS_FILE}); score images it did not train on, or retrain it")
