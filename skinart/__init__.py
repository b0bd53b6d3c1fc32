"""skinart: adversarial attacks and defences for dermatology classifiers, on top of ART and timm.

Nothing of skinart's lands under $HOME except its cache ($SKINART_CACHE, default ~/.cache/skinart): the
libraries that would write their own folders there at import (matplotlib's config and font cache, torch hub,
Hugging Face) are pointed into the cache here, before any of them loads; ART is handled in skinart.toolbox. OpenMP
threads wait passively (below), also set before torch loads."""

import os
from pathlib import Path

__version__ = "0.1.0"


def cache_root() -> Path:
    return Path(os.environ.get("SKINART_CACHE") or Path.home() / ".cache" / "skinart")


for _variable, _folder in (("MPLCONFIGDIR", "matplotlib"), ("TORCH_HOME", "torch"), ("HF_HOME", "huggingface")):
    os.environ.setdefault(_variable, str(cache_root() / _folder))

# torch computes on CPU in libgomp's threads, which by default spin while they wait for each other. On a shared machine
# (another job holding a core) every small parallel region of an attack's query loop then waits for a thread that is
# not running while the others spin: skinart's attacks ran 10-20x slower beside one other job, and 90x slower forward
# passes were measured beside several (benchmarks/threads_under_load.py). Waiting passively (sleeping) avoids it. libgomp
# reads this when torch loads it, so it is set here, before any torch import; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
