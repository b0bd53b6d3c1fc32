"""skinart: adversarial attacks and defences for dermatology classifiers, on top of ART and timm.

Nothing of skinart's lands under $HOME except its cache ($SKINART_CACHE, default ~/.cache/skinart): the
libraries that would write their own folders there at import (matplotlib's config and font cache, torch hub,
Hugging Face) are pointed into the cache here, before any of them loads; ART is handled in skinart.toolbox."""

import os
from pathlib import Path

__version__ = "0.1.0"


def cache_root() -> Path:
    return Path(os.environ.get("SKINART_CACHE") or Path.home() / ".cache" / "skinart")


for _variable, _folder in (("MPLCONFIGDIR", "matplotlib"), ("TORCH_HOME", "torch"), ("HF_HOME", "huggingface")):
    os.environ.setdefault(_variable, str(cache_root() / _folder))
