"""ART compatibility in one place (skinart/attacks/fast/): every private ART name a fast class overrides, calls, reads or
sets is named in a `check_overrides` or `check_attributes` call (so an ART upgrade that moves it fails at import), the
checks fail on what is gone, and the fast classes refuse, in one line, an estimator whose internals they cannot read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import art
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from skinart.attacks.fast.overrides import check_attributes
from skinart.attacks.factories import build
from skinart.errors import SkinartError
from skinart.toolbox import ProjectedGradientDescent, PyTorchClassifier
from art.estimators.classification import SklearnClassifier  # noqa: E402  (ART loaded by skinart.toolbox above)

FAST = Path(__file__).resolve().parents[1] / "skinart" / "attacks" / "fast"
ART_SOURCE = "\n".join(p.read_text() for p in Path(art.__file__).parent.rglob("*.py"))


def _checked_names() -> set[str]:
    """The names given to check_overrides / check_attributes anywhere in fast/."""
    names = set()
    for path in FAST.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("check_overrides", "check_attributes"):
                names |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return names


def test_every_private_art_name_the_fast_classes_use_is_checked_at_import():
    text = "\n".join(p.read_text() for p in FAST.glob("*.py"))
    used = set(re.findall(r"\.(_[a-z]\w*)\b", text))
    defined = set(re.findall(r"def (_[a-z]\w*)\(", text))
    arts = {name for name in used - defined if re.search(rf"(\.|def ){re.escape(name)}\b", ART_SOURCE)}
    assert arts, "no private ART name found: the scan is broken"
    assert sorted(arts - _checked_names()) == []


def test_check_attributes_fails_on_an_attribute_art_no_longer_has():
    class Mine:
        pass

    check_attributes(Mine, ProjectedGradientDescent, "_attack")  # assigned in ART's __init__
    check_attributes(Mine, PyTorchClassifier, "_device", "_model", "all_framework_preprocessing")
    with pytest.raises(ImportError, match="no longer has _gone"):
        check_attributes(Mine, ProjectedGradientDescent, "_gone")


@pytest.mark.parametrize("method", ["square", "autoattack"])
def test_a_fast_attack_refuses_an_estimator_it_cannot_read_in_one_line(method):
    rng = np.random.default_rng(0)
    model = LogisticRegression().fit(rng.random((30, 12)), np.arange(30) % 3)
    with pytest.raises(SkinartError, match=f"{method} needs an ART PyTorchClassifier") as refused:
        build(method, SklearnClassifier(model, clip_values=(0, 1)), {}, {})
    assert "\n" not in str(refused.value)
