"""Attacks on the decision at the operating point (`--objective miss|alarm`, issue 37): the attacker differentiates
`DecisionNet`, the model's decision at t as two logits, so ART's PGD on it is a plain PGD on the margin
logit p_malignant − logit t; it misses more cancers than PGD on the accuracy at the same ε and steps; runs attack the
malignant (benign) images only and record the objective; a model without an operating point is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TINY_SIZE, invoke, tiny_model

from skinart.attacks.config import OBJECTIVES
from skinart.attacks.factories import build
from skinart.attacks.objective import DecisionNet, decision_labels
from skinart.attacks.table import METHODS
from skinart.data import CLASSES
from skinart.metrics import p_malignant
from skinart.models.networks import wrap
from skinart.rundir import ADVERSARIAL_FILE, CONFIG_FILE, METRICS_FILE

MALIGNANT = [0, 1]  # of the tiny model's 5 classes
PGD = {"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 10, "num_random_init": 0}


@pytest.fixture(scope="module")
def tiny():
    """(the tiny model as skinart wraps it, the same network behind DecisionNet at t, t, 96 images, their classes as the
    model predicts them: the truth here, so every image starts right), with t the median p_malignant of the images the
    model calls malignant: half of them sit near t, half far above it."""
    classifier, net, x, y = tiny_model(5, n=96, seed=1)
    scores = p_malignant(torch.softmax(torch.from_numpy(classifier.predict(x)), 1).numpy(), MALIGNANT)
    labels = y.argmax(1)
    t = float(np.median(scores[np.isin(labels, MALIGNANT)]))
    decision = wrap(DecisionNet(net, MALIGNANT, t), TINY_SIZE, (0.5,) * 3, (0.25,) * 3, device="cpu")
    return classifier, decision, t, x, labels


def _scores(classifier, x):
    return p_malignant(torch.softmax(torch.from_numpy(classifier.predict(x)), 1).numpy(), MALIGNANT)


def test_the_decision_net_says_malignant_exactly_when_p_malignant_reaches_t(tiny):
    classifier, decision, t, x, _ = tiny
    scores = _scores(classifier, x)
    assert 0 < np.mean(scores > t) < 1
    np.testing.assert_array_equal(decision.predict(x).argmax(1) == 1, scores > t)


def test_miss_misses_more_cancers_than_pgd_and_is_a_plain_margin_pgd(tiny):
    """At the same ε, step and steps, PGD on the decision sends more malignant images below t than PGD on the class, and
    gives what ten lines of torch give: sign steps down the margin logit p_malignant − logit t (ART's order: step,
    clip to [0, 1], project onto the ε ball)."""
    classifier, decision, t, x, labels = tiny
    malignant = np.isin(labels, MALIGNANT) & (_scores(classifier, x) >= t)  # decided malignant before the attack
    x = x[malignant]
    on_class = build("pgd", classifier, PGD, {"verbose": False}).generate(x, np.eye(5, dtype=np.float32)[labels[malignant]])
    on_decision = build("pgd", decision, PGD, {"verbose": False}).generate(x, decision_labels(OBJECTIVES["miss"], len(x)))
    missed = {name: np.mean(_scores(classifier, adv) < t) for name, adv in (("class", on_class), ("decision", on_decision))}
    assert missed["decision"] >= missed["class"] and missed["decision"] >= 0.9, missed

    model, x0 = decision.model.eval(), torch.from_numpy(x)
    adv = x0.clone()
    for _ in range(PGD["max_iter"]):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(model(adv)[:, 1].sum(), adv)  # the margin: DecisionNet's second logit
        stepped = (adv.detach() - PGD["eps_step"] * grad.sign()).clamp(0, 1)
        adv = x0 + (stepped - x0).clamp(-PGD["eps"], PGD["eps"])
    np.testing.assert_allclose(on_decision, adv.numpy(), atol=1e-6)
    np.testing.assert_array_equal(_scores(classifier, on_decision) < t, _scores(classifier, adv.numpy()) < t)


def test_alarm_raises_more_benign_images_above_t_than_pgd(tiny):
    classifier, decision, t, x, labels = tiny
    benign = ~np.isin(labels, MALIGNANT) & (_scores(classifier, x) < t)
    on_class = build("pgd", classifier, PGD, {"verbose": False}).generate(x[benign], np.eye(5, dtype=np.float32)[labels[benign]])
    adv = build("pgd", decision, PGD, {"verbose": False}).generate(x[benign], decision_labels(OBJECTIVES["alarm"], int(benign.sum())))
    alarms = {name: np.mean(_scores(classifier, a) >= t) for name, a in (("class", on_class), ("decision", adv))}
    assert alarms["decision"] > alarms["class"] and alarms["decision"] >= 0.5, alarms


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if "miss" in m.objectives))
def test_every_method_that_takes_an_objective_attacks_the_decision(tiny, name):
    """What the table's column promises: each method built on the decision model moves decisions at t, within ε."""
    classifier, decision, t, x, labels = tiny
    cheap = {"autoattack": {"max_iter": 5, "square_max_iter": 20}, "square": {"max_iter": 50}}.get(name, {})
    attack = build(name, decision, {"eps": 8 / 255}, {**cheap, "verbose": False} if name != "fgsm" else {})
    keep = np.isin(labels, MALIGNANT) & (_scores(classifier, x) >= t)
    np.random.seed(0)
    adv = attack.generate(x[keep], decision_labels(OBJECTIVES["miss"], int(keep.sum())))
    assert np.abs(adv - x[keep]).max() <= 8 / 255 + 1e-6 and np.mean(_scores(classifier, adv) < t) > 0.2


@pytest.fixture(scope="module")
def miss_run(trained, derma_subset, tmp_path_factory):
    """`evaluate --attack fgsm,pgd --objective miss` on the trained fixture's malignant test images (white-box)."""
    out = tmp_path_factory.mktemp("objective") / "miss"
    result = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--out", out, "--attack", "fgsm,pgd",
                    "--objective", "miss", "--threat", "white-box", "--eps", "8/255", "--max-iter", 5, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    return out, result


def test_a_miss_run_attacks_malignant_images_only_and_records_its_objective(miss_run, derma_subset):
    out, result = miss_run
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["objective"] == "miss" and metrics["attacked_images"] == "malignant"
    assert metrics["measure"] == "sensitivity_at_threshold"  # what the sanity checks and the robustness flags compare
    assert [a["objective"] for a in json.loads((out / CONFIG_FILE).read_text())["attacks"]] == ["miss", "miss"]
    test_labels = np.load(derma_subset)["test_labels"].ravel()
    malignant = [CLASSES.index(c) for c in ("akiec", "bcc", "mel")]
    for method in ("fgsm", "pgd"):
        run = json.loads((out / method / "white-box" / METRICS_FILE).read_text())
        assert run["objective"] == "miss" and run["attacked_images"] == "malignant"
        labels = np.load(out / method / "white-box" / ADVERSARIAL_FILE)["labels"]
        assert np.isin(labels, malignant).all() and len(labels) == np.isin(test_labels, malignant).sum()  # every one
    worst = metrics["worst_case"]["white-box"]
    assert worst["fnr_at_threshold"] >= max(metrics["attacks"][m]["white-box"]["fnr_at_threshold"] for m in ("fgsm", "pgd"))
    assert worst["specificity_at_threshold"] is None  # no benign image was attacked
    assert metrics["sanity"]["fired"] == [] and "sensitivity at t" in metrics["sanity"]["unbounded"]["reason"]
    assert "objective miss: malignant images only" in result.stderr and "objective miss" in result.stdout


def test_an_objective_needs_the_model_s_operating_point(trained, derma_subset, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in trained.iterdir():
        (bare / f.name).write_bytes(f.read_bytes())
    meta = json.loads((bare / "skinart.json").read_text())
    (bare / "skinart.json").write_text(json.dumps({**meta, "operating_point": None}))
    for command in (["attack", "--method", "pgd"], ["evaluate", "--attack", "pgd", "--threat", "white-box"]):
        result = invoke(*command, "--objective", "miss", "--checkpoint", bare, "--data-root", derma_subset,
                        "--out", tmp_path / "out", "--device", "cpu")
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "stores none" in result.stderr and "drop --objective" in result.stderr
        assert not (tmp_path / "out").exists()
