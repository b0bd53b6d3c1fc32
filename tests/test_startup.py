"""A refusal that needs no model answers before torch, timm or ART load (issue 37): the command checks read pure-data
tables (attacks.table, defences.table, shifts.table, training.config), and each command imports its run only once
they passed. Timings are benchmarks/startup.py's; here, which libraries a refused command loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from skinart.attacks.factories import FACTORIES
from skinart.attacks.table import METHODS
from skinart.certification.table import VARIANTS
from skinart.certification.training import ESTIMATORS
from skinart.defences.preprocessors import PREPROCESSORS
from skinart.defences.table import DEFENCES, DETECTORS
from skinart.runs.detect import ART_DETECTORS
from skinart.training.batches import AUGMENTATIONS
from skinart.training.config import AUGMENTATION_NAMES, OPTIMIZER_NAMES, SCHEDULER_NAMES
from skinart.training.loop import OPTIMIZERS, SCHEDULERS

HEAVY = ("torch", "timm", "art", "sklearn", "scipy", "matplotlib")
PATHS = ["--checkpoint", "{tmp}/ckpt", "--out", "{tmp}/out"]
# each a value the checks refuse against a table or a bound, with no checkpoint or data read
REFUSALS = {
    "attack --method nope": ["attack", "--method", "nope", *PATHS],
    "attack --eps 1e999": ["attack", "--method", "pgd", "--eps", "1e999", *PATHS],
    "attack --param on another method": ["attack", "--method", "fgsm", "--max-iter", "3", *PATHS],
    "evaluate --attack fgsm,nope": ["evaluate", "--attack", "fgsm,nope", *PATHS],
    "evaluate --attack fgsm --eps 1e999": ["evaluate", "--attack", "fgsm", "--eps", "1e999", *PATHS],
    "evaluate --shift nope": ["evaluate", "--shift", "nope", *PATHS],
    "evaluate --severity 9": ["evaluate", "--shift", "hair", "--severity", "9", *PATHS],
    "defend --method nope": ["defend", "--method", "nope", *PATHS],
    "defend --window 0": ["defend", "--method", "smoothing", "--window", "0", *PATHS],
    "defend --attacks nope": ["defend", "--method", "retrain", "--attacks", "nope", *PATHS],
    "defend --detector nope": ["defend", "--method", "detect-poison", "--poisoned-run", "{tmp}/p", "--detector", "nope",
                               "--out", "{tmp}/out"],
    "train --optimizer nope": ["train", "--optimizer", "nope", "--out", "{tmp}/out"],
    "train --precision fp64": ["train", "--precision", "fp64", "--out", "{tmp}/out"],
    "certify --n 5": ["certify", "--sigma", "0.25", "--n", "5", *PATHS],
    "defend --variant nope": ["defend", "--method", "randomized-smoothing", "--variant", "nope", *PATHS],
    "import --img-size 4": ["import", "--weights", "{tmp}/theirs.pt2", "--classes", "malignant", "--img-size", "4",
                            "--out", "{tmp}/out"],
    "import --classes nope": ["import", "--weights", "{tmp}/theirs.pt2", "--classes", "nope", "--img-size", "32",
                              "--out", "{tmp}/out"],
}
# In one fresh interpreter, each refusal in turn (its exit code, and the heavy libraries loaded so far): the first one
# to load a library is the one named.
PROBE = """
import json, sys
from skinart.cli import app
seen = {}
for name, args in json.loads(sys.argv[1]).items():
    try:
        app(args, prog_name="skinart")
        code = 0
    except SystemExit as e:
        code = e.code
    seen[name] = [code, [m for m in %r if m in sys.modules]]
print(json.dumps(seen))
""" % (HEAVY,)


def test_refusals_that_need_no_model_load_no_heavy_library(tmp_path):
    (tmp_path / "theirs.pt2").write_bytes(b"not read: the refusals come first")
    cases = {name: [part.format(tmp=tmp_path) for part in args] for name, args in REFUSALS.items()}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {name: code for name, (code, _) in seen.items() if code != 2} == {}, out.stderr[-2000:]
    assert {name: loaded for name, (_, loaded) in seen.items() if loaded} == {}
    assert not any((tmp_path / name).exists() for name in ("out", "ckpt"))


@pytest.mark.parametrize("names, bound", [
    ({m.factory for m in METHODS.values() if m.kind != "poison"}, set(FACTORIES)),
    ({n for n, d in DEFENCES.items() if d.kind == "preprocess"}, set(PREPROCESSORS)),
    (set(DETECTORS), set(ART_DETECTORS)),
    (set(AUGMENTATION_NAMES), set(AUGMENTATIONS)),
    (set(OPTIMIZER_NAMES), set(OPTIMIZERS)),
    (set(SCHEDULER_NAMES), set(SCHEDULERS)),
    ({v.art_class for v in VARIANTS.values()}, set(ESTIMATORS)),
], ids=["attack factories", "preprocessors", "detectors", "augmentations", "optimizers", "schedulers", "smoothing variants"])
def test_every_name_a_table_gives_is_bound_where_it_runs(names, bound):
    """The pure-data tables name what runs; the modules that load torch and ART bind each name (and nothing more)."""
    assert names == bound
