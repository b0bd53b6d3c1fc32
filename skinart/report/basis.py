"""What each row of a report stands on, read from its run's config and the checkpoints it names: the data and split
it scored (test / val / train / external DATA; the split the checkpoint's threshold was chosen on says so, since
there the sensitivity at t is the target by construction), and for a model imported from elsewhere (or a defence
built on one) the verdict of the import's own check of its validation split."""

from __future__ import annotations

import json
from pathlib import Path

from skinart.presentation.tables import pct
from skinart.rundir import CONFIG_FILE, META_FILE, METRICS_FILE

CHOSEN_HERE = "where t was chosen"
LINEAGE = 8  # checkpoints followed back to an import (a defence of a retraining of an import is three)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _source(where: Path) -> Path | None:
    """The checkpoint a run read (a defence: the one it defends), by the path its config records."""
    named = _json(where / CONFIG_FILE).get("checkpoint")
    return Path(named["path"]) if isinstance(named, dict) and named.get("path") else None


def _scored_checkpoint(where: Path) -> Path | None:
    """The checkpoint a run's rows score: the run itself when it wrote one (defend, poison), else the one it read."""
    return where if (where / META_FILE).is_file() else _source(where)


def data_label(where: Path) -> str:
    """'dermamnist test', 'dermamnist val, where t was chosen', 'external isic2018': what a run's rows scored."""
    data = _json(where / CONFIG_FILE).get("data") or {}
    name = data.get("name") or "its own data"
    if data.get("external"):
        return f"external {name}"
    split = data.get("split") or "test"  # attacks, defences and shifts score the test split
    checkpoint = _scored_checkpoint(where)
    chosen = (_json(checkpoint / META_FILE).get("operating_point") or {}).get("chosen_on") if checkpoint else None
    return f"{name} {split}" + (f", {CHOSEN_HERE}" if split == chosen else "")


def import_check(where: Path) -> str | None:
    """The verdict of `skinart import`'s check of the model a run's rows score, or None for a model skinart trained:
    the check the checkpoint keeps (an import's, inherited by the defences and retrainings built on it), else, for an
    import that kept none, its own run's warning (found back through the checkpoints built on it)."""
    checkpoint = _scored_checkpoint(where)
    kept = (_json(checkpoint / META_FILE).get("imported") or {}).get("check") if checkpoint else None
    if isinstance(kept, dict):
        return _verdict(kept.get("warning"), f"balanced accuracy {pct(kept.get('balanced_accuracy'))}% on {kept.get('images')} "
                        f"{kept.get('split', 'val')} images, above chance ({pct(kept.get('chance'))}%), and no other naming "
                        "of the outputs recalls the classes better")
    for _ in range(LINEAGE):
        if checkpoint is None:
            return None
        metrics = _json(checkpoint / METRICS_FILE)
        if metrics.get("kind") == "import":
            return _verdict(metrics.get("warning"), f"accuracy {pct(metrics.get('accuracy'))}% on {metrics.get('images')} "
                            f"{metrics.get('split', 'val')} images, no sign of a wrong class order, normalisation or size")
        checkpoint = _source(checkpoint)
    return None


def _verdict(warning: str | None, passed: str) -> str:
    return f"import check: SUSPECT: {warning}" if warning else f"import check: plausible: {passed}"
