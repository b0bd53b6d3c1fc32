"""AutoAttack as Croce & Hein count it, and skinart's fast APGD and Square (issue 24), on small torch models built here:
ART's adversarials from the same seed in fewer passes, any misclassification counted in the targeted pass, what runs
on 2 and 3 classes, what a run records and prints. Runs without the real data, in seconds."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from skinart.attacks.fast.apgd import FastAutoProjectedGradientDescent, dlr, dlr_targeted
from skinart.attacks.factories import art_parameters, build
from skinart.attacks.loops import torch_threads
from skinart.errors import SkinartError
from skinart.attacks.fast.square import FastSquareAttack
from skinart.toolbox import AutoAttack, AutoProjectedGradientDescent, EvasionAttack, SquareAttack

from helpers import tiny_model



def _trained(classes: int, n: int = 48):
    """(classifier, net, x, one-hot model predictions): `helpers.Tiny`, which counts its forward passes and the images
    they carry, trained to tell `classes` noisy colour templates apart, and n images to attack."""
    return tiny_model(classes, n=n, seed=classes)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small batches of 16 px images: torch's intra-op threads cost more than they save (10x on a busy 2-core machine)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def model():
    return _trained(5)


def _seeded(make, net, x, y):
    """(adversarials, forward passes, images forwarded) of `make()`'s attack from the same seeds as every other."""
    np.random.seed(0)
    random.seed(0)
    torch.manual_seed(0)
    attack = make()
    net.passes = net.images = 0
    adv = attack.generate(x, y)
    return adv, net.passes, net.images


def _fooled(classifier, adv, y, targeted=False):
    at_y = classifier.predict(adv).argmax(1) == y.argmax(1)
    return at_y if targeted else ~at_y


_APGD = {"eps": 4 / 255, "eps_step": 8 / 255, "max_iter": 10, "verbose": False}


@pytest.mark.parametrize("params", [
    {**_APGD, "loss_type": "cross_entropy", "nb_random_init": 1, "batch_size": 48},
    {**_APGD, "loss_type": "difference_logits_ratio", "nb_random_init": 2, "batch_size": 28},  # restarts, a short batch
    {**_APGD, "loss_type": "cross_entropy", "nb_random_init": 1, "batch_size": 48, "targeted": True},
])
def test_apgd_run_to_the_end_gives_arts_adversarials_in_half_the_passes(model, params):
    """Every image iterated to the end (`stop_early` off): ART's array bit for bit (the same float32 steps, the gradient
    of the summed loss has the sign of ART's mean), with one forward pass per iteration instead of two."""
    classifier, net, x, y = model
    y = np.roll(y, 1, axis=1) if params.get("targeted") else y  # targets: the next class

    def mine():
        attack = FastAutoProjectedGradientDescent(classifier, **params)
        attack.stop_early = False
        return attack

    theirs, their_passes, _ = _seeded(lambda: AutoProjectedGradientDescent(classifier, **params), net, x, y)
    ours, our_passes, _ = _seeded(mine, net, x, y)
    np.testing.assert_array_equal(ours, theirs)
    assert _fooled(classifier, ours, y, params.get("targeted", False)).any()
    restarts, batches = params["nb_random_init"], -(-len(x) // params["batch_size"])
    assert our_passes <= restarts * (1 + batches * (params["max_iter"] + 2))  # a prediction, then max_iter + 2 per batch
    assert their_passes >= batches * 2 * params["max_iter"]


def test_apgd_with_arts_targeted_dlr_parts_from_art_only_where_that_loss_is_constant(model):
    """ART's targeted APGD-DLR is eq. 6 with the target in place of the label: where the target is the third logit
    (z_t = z_π3) it is (z_π1 − z_t) / (z_π1 − z_t) = 1 whatever the image, its gradient rounding noise whose sign
    depends on ART's 1/n scaling of the batch mean. There the paths may part; on every other image the arrays are
    ART's bit for bit. (AutoAttack's APGD-T uses the paper's eq. 7 instead, `dlr_targeted`.)"""
    classifier, net, x, y = model
    targets = np.roll(y, 1, axis=1)
    params = {**_APGD, "loss_type": "difference_logits_ratio", "nb_random_init": 1, "batch_size": 48, "targeted": True}

    def mine():
        attack = FastAutoProjectedGradientDescent(classifier, **params)
        attack.stop_early = False
        return attack

    theirs, _, _ = _seeded(lambda: AutoProjectedGradientDescent(classifier, **params), net, x, targets)
    ours, _, _ = _seeded(mine, net, x, targets)
    constant = dlr(torch.from_numpy(classifier.predict(x)), torch.from_numpy(targets.argmax(1))).numpy() == 1
    assert 0 < constant.sum() < len(x) / 2
    np.testing.assert_array_equal(ours[~constant], theirs[~constant])
    assert _fooled(classifier, ours[~constant], targets[~constant], targeted=True).any()


def test_apgd_l2_gives_arts_decisions(model):
    """L2: the projection's rescaling is computed in float32 (ART: float64), so pixels differ in their last bits; the
    decisions do not."""
    classifier, net, x, y = model
    params = {"norm": 2, "eps": 0.3, "eps_step": 0.6, "max_iter": 10, "nb_random_init": 1, "batch_size": 48, "verbose": False}

    def mine():
        attack = FastAutoProjectedGradientDescent(classifier, **params)
        attack.stop_early = False
        return attack

    theirs, _, _ = _seeded(lambda: AutoProjectedGradientDescent(classifier, **params), net, x, y)
    ours, _, _ = _seeded(mine, net, x, y)
    np.testing.assert_array_equal(_fooled(classifier, ours, y), _fooled(classifier, theirs, y))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_apgd_stops_on_fooled_images_and_keeps_every_image_art_fools(model):
    """The fast path proper: an image leaves the loop at the first point that fools it. Every image ART fools is fooled
    (their paths are the same up to that point); more may be (ART keeps only its last point, and loses an image fooled
    on the way); each within ε."""
    classifier, net, x, y = model
    params = {**_APGD, "loss_type": "cross_entropy", "nb_random_init": 1, "batch_size": 48}
    theirs, _, their_images = _seeded(lambda: AutoProjectedGradientDescent(classifier, **params), net, x, y)
    ours, _, our_images = _seeded(lambda: FastAutoProjectedGradientDescent(classifier, **params), net, x, y)
    art, skinart = _fooled(classifier, theirs, y), _fooled(classifier, ours, y)
    assert art.any() and np.all(skinart >= art)
    assert np.abs(ours - x).max() <= 4 / 255 + 1e-6
    assert our_images < their_images / 2


@pytest.mark.parametrize("params", [
    {"eps": 8 / 255, "max_iter": 100, "p_init": 0.1, "batch_size": 128},  # the square row's settings
    {"eps": 4 / 255, "max_iter": 60, "p_init": 0.8, "nb_restarts": 2, "batch_size": 20},  # AutoAttack's p_init, restarts
])
def test_square_gives_arts_adversarials_with_one_pass_per_query(model, params):
    """The same random squares (numpy's generator, drawn as ART draws them), the same float64 candidates rounded once,
    the same acceptance: ART's array bit for bit, with one forward pass per query over the images still standing."""
    classifier, net, x, y = model
    theirs, their_passes, their_images = _seeded(lambda: SquareAttack(classifier, verbose=False, **params), net, x, y)
    ours, our_passes, our_images = _seeded(lambda: FastSquareAttack(classifier, verbose=False, **params), net, x, y)
    np.testing.assert_array_equal(ours, theirs)
    assert _fooled(classifier, ours, y).any() and not _fooled(classifier, ours, y).all()
    restarts, batches = params.get("nb_restarts", 1), -(-len(x) // params["batch_size"])
    assert our_passes <= restarts * batches * (params["max_iter"] + 3) and their_passes >= 3 * params["max_iter"]
    assert our_images < their_images / 2


def test_dlr_losses_are_croce_and_heins(model):
    """The batched DLR is ART's (eq. 6, ART computes it image by image); the targeted DLR is the paper's eq. 7, which
    ART lacks (its targeted APGD-DLR is eq. 6 with the target in place of the label, minimised)."""
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.5, -1.0], [0.0, 4.0, 1.0, 3.5, 2.0]])
    y, t = torch.tensor([0, 2]), torch.tensor([2, 3])
    # image 0: correct, z_y 3, best other 2, sorted 3 2 1 0.5 -1; image 1: wrong (4 > 1), z_y 1, best other 4
    torch.testing.assert_close(dlr(logits, y), torch.tensor([-(3 - 2) / (3 - 1), -(1 - 4) / (4 - 2)]))
    torch.testing.assert_close(dlr_targeted(logits, y, t), torch.tensor([(3 - 2) / (3 - 0.75), (1 - 3.5) / (4 - 1.5)]))
    art_dlr = AutoProjectedGradientDescent(model[0], loss_type="difference_logits_ratio", verbose=False).estimator._loss
    art_dlr.reduction = "none"
    torch.testing.assert_close(dlr(logits, y), art_dlr(logits, torch.eye(5)[y]))


class LandsElsewhere(EvasionAttack):
    """A targeted sub-attack that never reaches its target but leaves each image in the class `lands_in`, at a point
    found beforehand within ε: what APGD-T does to an image it can push out of its class but not all the way to the
    target. Its target class `lands_in` itself it does not reach (the image is returned as it came)."""

    attack_params = EvasionAttack.attack_params + ["targeted"]
    _estimator_requirements = ()
    name = "APGD-T"

    def __init__(self, estimator, point: np.ndarray, lands_in: int):
        super().__init__(estimator=estimator)
        self.point, self.lands_in, self._targeted = point, lands_in, True

    def generate(self, x, y=None, **kwargs):
        aimed_at = y.argmax(1)  # ART's targeted pass: the target; skinart's APGD-T: the true label
        return np.where((self.targeted & (aimed_at != self.lands_in))[:, None, None, None], self.point, x).astype(np.float32)


def test_autoattack_keeps_an_adversarial_that_lands_in_a_third_class(model):
    """Croce & Hein count any misclassification within ε, in every pass: an image that the targeted pass pushes into a
    third class (neither its own nor the target) is not robust, and its adversarial is what comes back. ART's
    AutoAttack counts it robust (success there means reaching that very target) and returns the clean image."""
    classifier, _, x, y = model
    eps = 8 / 255
    adv = build("pgd", classifier, {"eps": eps}, {"verbose": False}).generate(x, y)
    i = int(np.flatnonzero(_fooled(classifier, adv, y))[0])
    image, label, point = x[i : i + 1], y[i : i + 1], adv[i : i + 1]
    lands_in = int(classifier.predict(point).argmax(1)[0])
    assert lands_in != label.argmax()

    ours = build("autoattack", classifier, {}, {"max_iter": 2, "square_max_iter": 5})
    ours.attacks = [LandsElsewhere(classifier, point, lands_in)]
    np.testing.assert_array_equal(ours.generate(image, label), point)  # not robust: the third-class adversarial kept

    theirs = AutoAttack(classifier, eps=eps, eps_step=2 * eps, attacks=[LandsElsewhere(classifier, point, lands_in)],
                        targeted=True)
    np.testing.assert_array_equal(theirs.generate(image, label), image)  # ART: robust, its adversarial thrown away


@pytest.mark.parametrize("classes, runs, instead", [
    (2, ["APGD-CE", "Square"], "would be APGD-CE again"),
    (3, ["APGD-CE", "APGD-DLR", "Square"], "untargeted APGD-DLR runs in its place"),
])
def test_few_classes_run_what_the_original_defines(classes, runs, instead):
    """The DLR loss needs 3 classes, the targeted DLR 4 (the original warns, then fails on an index; ART's APGD-DLR
    fails on 2): with 3 classes the untargeted APGD-DLR replaces APGD-T, with 2 classes APGD-CE and Square run (a
    targeted CE towards the only other class is the untargeted CE up to its sign). metrics.json says so."""
    classifier, _, x, y = _trained(classes, n=24)
    attack = build("autoattack", classifier, {"eps": 2 / 255}, {"max_iter": 5, "square_max_iter": 20})
    recorded = art_parameters(attack)
    assert [a["name"] for a in recorded["attacks"]] == runs
    assert instead in recorded["not_run"]["APGD-T"] and "FAB-T" in recorded["not_run"]
    adv = attack.generate(x, y)  # ε small enough that images stand for every pass (ART's AutoAttack: IndexError on 2)
    assert np.abs(adv - x).max() <= 2 / 255 + 1e-6
    assert [p["attack"] for p in attack.report["passes"]] == runs and all(p["attacked"] for p in attack.report["passes"])


def test_the_run_records_each_sub_attack_with_its_budget_and_what_it_left(model):
    """What `skinart attack` writes to metrics.json: art_params (read before generate) names every sub-attack with its
    budget and what does not run, and `report` (after generate) the images each pass attacked and left standing."""
    classifier, _, x, y = model
    attack = build("autoattack", classifier, {"eps": 2 / 255}, {"max_iter": 4, "square_max_iter": 30})
    recorded = json.loads(json.dumps(art_parameters(attack)))
    assert [(a["attack"], a["name"]) for a in recorded["attacks"]] == [
        ("AutoProjectedGradientDescent", "APGD-CE"), ("AutoProjectedGradientDescent", "APGD-T"), ("SquareAttack", "Square")]
    apgd_ce, apgd_t, square = recorded["attacks"]
    assert apgd_ce["max_iter"] == apgd_t["max_iter"] == 4 and apgd_ce["loss_type"] == "cross_entropy"
    assert apgd_t["targeted"] and apgd_t["loss_type"] == "difference_logits_ratio" and apgd_t["n_target_classes"] == 4
    assert square["max_iter"] == 30 and square["p_init"] == 0.8 and recorded["not_run"] == {"FAB-T": "not in ART 1.20.1"}
    attack.generate(x, y)
    report = json.loads(json.dumps(attack.report))
    passes = report["passes"]
    assert report["images"] == len(x) and passes[0]["attacked"] == report["correct"]
    assert all(p["standing"] <= p["attacked"] for p in passes)
    assert all(later["attacked"] == earlier["standing"] for earlier, later in zip(passes, passes[1:]))
    assert "targets × 4 iterations" in passes[1]["budget"] and passes[2]["budget"] == "30 queries"


def test_each_pass_says_when_it_starts_and_ends(model, capsys):
    classifier, _, x, y = model
    build("autoattack", classifier, {"eps": 2 / 255}, {"max_iter": 3, "square_max_iter": 10}).generate(x, y)
    build("square", classifier, {"eps": 2 / 255, "max_iter": 10}, {}).generate(x, y)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"autoattack: {len(x)} images, {len(x)} classified correctly; APGD-CE (3 iterations)")
    for name in ("APGD-CE", "APGD-T"):
        assert any(line.startswith(f"  {name}: ") and line.endswith(f" images") for line in lines)
        assert any(line.startswith(f"  {name}: ") and "still standing" in line for line in lines)
    assert lines[-2] == f"  square: {len(x)} images, {len(x)} standing" and "still standing" in lines[-1]


def test_autoattack_refuses_l1_in_one_line(model):
    with pytest.raises(SkinartError, match="norm=1 is not offered"):
        build("autoattack", model[0], {}, {"norm": 1})
