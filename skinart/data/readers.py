"""`read_source`: a dataset by name, read by its reader (labels, groups, image locations; no pixels)."""

from __future__ import annotations

from pathlib import Path

from skinart.data.catalog import DATASETS, default_root
from skinart.data.csv_labels import OPTION_NAMES, read_csv_source
from skinart.data.dermamnist import read_dermamnist
from skinart.data.sources import Source, read_folder, read_ham10000, read_isic2018
from skinart.errors import SkinartError
from skinart.options import choose


def _check_name(name: str) -> dict:
    return DATASETS[choose(name, DATASETS, "dataset")]


_READERS = {"ham10000": read_ham10000, "isic2018": read_isic2018, "folder": read_folder}



def _root(name: str, root: str | Path | None) -> Path | None:
    return Path(root).expanduser() if root else default_root(name)



def is_present(name: str, root: str | Path | None = None) -> bool:
    """Whether dataset `name` is where `read_source` looks, found without reading or downloading anything."""
    _check_name(name)
    found = _root(name, root)
    return found is not None and found.exists()



def read_source(name: str, root: str | Path | None = None, img_size: int | None = None, options: dict | None = None) -> Source:
    """Read labels, groups and image locations (no pixels) of dataset `name`; `options` are --data csv's."""
    spec = _check_name(name)
    root = _root(name, root)
    given = [OPTION_NAMES[k] for k, v in (options or {}).items() if v and k in OPTION_NAMES]
    if name != "csv" and given:
        raise SkinartError(f"{', '.join(given)} describe a CSV-labelled folder: pass --data csv, or drop them for --data {name}")
    if name == "dermamnist":
        return read_dermamnist(root, spec, img_size)
    if root is None:
        raise SkinartError(f"no data for --data {name}: pass --data-root DIR or set SKINART_DATA to a folder holding {spec['subdir']}/")
    return read_csv_source(root, options) if name == "csv" else _READERS[name](root, spec)
