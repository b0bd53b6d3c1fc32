"""Randomized smoothing (issue 39): the batched certificate is ART's, the bound is statsmodels', the radii behave as
Cohen et al.'s theorem says, the noise is added in pixel space in training and certifying alike, and `skinart
certify` writes consistent per-image rows, curves and both bounds. Small: a tiny model at 16 px, n ≤ 400, ≤ 10
images; the command on the session's `trained` checkpoint."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import helpers
from helpers import TINY_SIZE, invoke, template_images, tiny_model
from scipy.stats import norm
from torch import nn

from skinart.certification.empirical import check_bounds
from skinart.certification.smoothing import clopper_pearson_lower, smoothed
from skinart.errors import SkinartError
from skinart.models.networks import wrap
from skinart.toolbox import PyTorchClassifier, PyTorchRandomizedSmoothing, RandomizedSmoothingMixin

ALPHA = 0.001


@pytest.fixture(scope="module")
def tiny():
    """A tiny 4-class model and 10 images it tells apart (as skinart wraps every model: mean/std its first layer)."""
    classifier, _, x, predicted = tiny_model(4, 10, seed=1)
    return classifier, x, predicted.argmax(1)


def certify(classifier, x, *, sigma=0.25, n=200, n0=50, seed=0):
    return smoothed(classifier, sigma=sigma, sample_size=n0, alpha=ALPHA, seed=seed, batch_size=128).certify(x, n, batch_size=128)


def test_clopper_pearson_lower_bound_is_statsmodels_proportion_confint():
    proportion = pytest.importorskip("statsmodels.stats.proportion")  # the certify extra: pip install 'skinart[certify]'
    for trials, alpha in ((200, ALPHA), (37, 0.05)):
        successes = np.arange(trials + 1)
        theirs = [proportion.proportion_confint(int(k), trials, alpha=2 * alpha, method="beta")[0] for k in successes]
        np.testing.assert_allclose(clopper_pearson_lower(successes, trials, alpha), theirs, rtol=0, atol=1e-12)


def test_batched_certify_equals_arts_own_per_image_loop_on_a_seed(tiny):
    classifier, x, _ = tiny
    estimator = smoothed(classifier, sigma=0.25, sample_size=50, alpha=ALPHA, seed=3, batch_size=128)
    batched = estimator.certify(x, 200, batch_size=128)
    estimator.noise.manual_seed(3)  # ART's loop draws the same noise: the same calls, in the same order
    art = RandomizedSmoothingMixin.certify(estimator, x, 200, batch_size=64)
    np.testing.assert_array_equal(batched[0], art[0])
    np.testing.assert_array_equal(batched[1], art[1])
    assert len(set(batched[0])) > 2 and (batched[1] > 0).any()  # several classes certified: a real comparison


def test_the_binary_certificate_agrees_with_the_class_one_where_the_class_decides_malignancy(tiny):
    """Counted from the same noisy copies, the decision "the class is malignant" gets at least the certified class's votes:
    where that class decides malignancy, the binary certificate says the same with a radius at least as large."""
    from skinart.certification.smoothing import certified, class_rule

    classifier, x, _ = tiny
    malignant = torch.tensor([2, 3])
    rules = {"class": (class_rule, 4), "malignant": (lambda logits: torch.isin(logits.argmax(1), malignant).long(), 2)}
    votes = smoothed(classifier, sigma=0.25, sample_size=50, alpha=ALPHA).vote_counts(x, (50, 200), rules, batch_size=128)
    (cls, radius), (decision, binary_radius) = (certified(v[:, 0], v[:, 1], 200, 0.25, ALPHA) for v in votes.values())
    decided = cls >= 0
    assert decided.sum() >= 5
    np.testing.assert_array_equal(decision[decided], np.isin(cls[decided], [2, 3]).astype(int))
    assert (binary_radius[decided] >= radius[decided] - 1e-12).all()


def test_the_malignant_share_certificate_is_cohens_at_one_half_and_moves_with_the_threshold(tiny):
    """A smoothed checkpoint's decision "share of copies voting a malignant class ≥ t", certified: at t = 1/2 Cohen's
    certificate of the binary vote; at another t the malignant side's radius is σ·(Φ⁻¹(bound) − Φ⁻¹(t))."""
    from skinart.certification.smoothing import certified, certified_share, malignant_class_rule

    classifier, x, _ = tiny
    rules = {"malignant": (malignant_class_rule([2, 3]), 2)}
    select, estimate = smoothed(classifier, sigma=0.25, sample_size=50, alpha=ALPHA).vote_counts(x, (50, 200), rules, 128)["malignant"].transpose(1, 0, 2)
    untied = select[:, 0] != select[:, 1]
    cohen, half = certified(select, estimate, 200, 0.25, ALPHA), certified_share(select, estimate, 200, 0.25, ALPHA, 0.5)
    np.testing.assert_array_equal(half[0][untied], cohen[0][untied])
    np.testing.assert_allclose(half[1][untied], cohen[1][untied], rtol=0, atol=1e-12)
    assert {0, 1} <= set(cohen[0])  # both decisions certified somewhere: a real comparison
    low = certified_share(select, estimate, 200, 0.25, ALPHA, 0.2)
    called = low[0] == 1
    bound = clopper_pearson_lower(estimate[called, 1], 200, ALPHA)
    np.testing.assert_allclose(low[1][called], 0.25 * (norm.ppf(bound) - norm.ppf(0.2)), rtol=1e-12)
    assert called.sum() > (half[0] == 1).sum() or (low[1][half[0] == 1] > half[1][half[0] == 1]).all()


class Constant(nn.Module):
    """Logits that ignore the image: every noisy copy votes class 2."""

    num_classes = 4

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.tensor([0.0, 1.0, 3.0, 2.0]))

    def forward(self, x):
        return self.logits.expand(len(x), -1)


@pytest.mark.parametrize("sigma, n", [(0.12, 100), (0.5, 400)])
def test_a_constant_classifier_is_certified_at_sigma_times_the_inverse_normal_of_its_bound(sigma, n):
    classifier = wrap(Constant(), TINY_SIZE, (0.5,) * 3, (0.25,) * 3, device="cpu")
    x = np.random.default_rng(0).uniform(0, 1, (6, 3, TINY_SIZE, TINY_SIZE)).astype(np.float32)
    predicted, radius = certify(classifier, x, sigma=sigma, n=n)
    assert (predicted == 2).all()
    # n votes of n: the Clopper-Pearson lower bound is α^(1/n) in closed form
    np.testing.assert_allclose(radius, sigma * norm.ppf(ALPHA ** (1 / n)), rtol=1e-12)


def test_abstention_rises_as_n_falls(tiny):
    classifier, x, _ = tiny
    abstained = [np.mean(certify(classifier, x, sigma=0.5, n=n)[0] == -1) for n in (400, 100, 25)]
    assert abstained == sorted(abstained) and abstained[-1] > abstained[0], abstained


@pytest.fixture(scope="module")
def noise_trained():
    """`Tiny` trained under Gaussian noise of σ 0.25 by ART's `fit` (the gaussian variant), and 10 fresh images."""
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    templates = rng.uniform(0, 1, (4, 3, TINY_SIZE, TINY_SIZE)).astype(np.float32)
    net = helpers.Tiny(4)
    classifier = wrap(net, TINY_SIZE, (0.5,) * 3, (0.25,) * 3, device="cpu", optimizer=torch.optim.Adam(net.parameters(), 1e-2))
    smoothed(classifier, sigma=0.25, sample_size=8).fit(*template_images(rng, templates, 1024), batch_size=64, nb_epochs=4)
    return classifier, *template_images(rng, templates, 10)


def test_radii_grow_with_sigma_on_a_fixed_model(noise_trained):
    classifier, x, labels = noise_trained
    found = [certify(classifier, x, sigma=sigma) for sigma in (0.06, 0.12, 0.25)]
    assert all((predicted == labels).mean() >= 0.8 for predicted, _ in found)
    medians = [np.median(radius[predicted == labels]) for predicted, radius in found]
    assert medians[0] < medians[1] < medians[2], medians


class Recorder(nn.Module):
    """Records the pixels the network sees: what its normalisation (`wrap`'s first layer) was given."""

    num_classes = 2

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std, self.seen = mean, std, []
        self.head = nn.Linear(3 * TINY_SIZE * TINY_SIZE, 2)

    def forward(self, x):
        self.seen.append(x.detach() * self.std + self.mean)
        return self.head(x.flatten(1))


def test_noise_is_added_to_pixels_in_training_and_certifying_alike():
    """ART adds the noise after its preprocessing in `fit` and before it in `certify`: with mean/std inside the network
    (ART's preprocessing None) both see σ on [0, 1] pixels; with ART's mean/std they would not, and `smoothed` refuses."""
    sigma, x = 0.25, np.full((64, 3, TINY_SIZE, TINY_SIZE), 0.5, np.float32)
    net = Recorder(0.5, 0.2)
    classifier = wrap(net, TINY_SIZE, (0.5,) * 3, (0.2,) * 3, device="cpu", optimizer=torch.optim.SGD(net.parameters(), 0.0))
    estimator = smoothed(classifier, sigma=sigma, sample_size=64, alpha=ALPHA)
    estimator.fit(x, np.zeros(64, dtype=int), batch_size=64, nb_epochs=1)
    estimator.certify(x[:1], 256, batch_size=256)
    for seen in (net.seen[0], torch.cat(net.seen[1:])):  # training's batch, certifying's copies
        assert abs(seen.mean().item() - 0.5) < 0.01 and abs(seen.std().item() - sigma) < 0.01
    # the trap: ART's own mean/std, the noise in training lands in normalised units, σ × std in pixels
    raw = Recorder(0.0, 1.0)
    normalising = PyTorchRandomizedSmoothing(model=raw, loss=nn.CrossEntropyLoss(), input_shape=(3, TINY_SIZE, TINY_SIZE),
                                             nb_classes=2, optimizer=torch.optim.SGD(raw.parameters(), 0.0), clip_values=(0, 1),
                                             preprocessing=(0.5, 0.2), device_type="cpu", scale=sigma)
    normalising.fit(x, np.zeros(64, dtype=int), batch_size=64, nb_epochs=1)
    assert abs(raw.seen[0].std().item() * 0.2 - sigma * 0.2) < 0.01  # σ in normalised units: σ × 0.2 in pixels
    art_normalised = PyTorchClassifier(model=raw, loss=nn.CrossEntropyLoss(), input_shape=(3, TINY_SIZE, TINY_SIZE), nb_classes=2,
                                       clip_values=(0, 1), preprocessing=(0.5, 0.2), device_type="cpu")
    with pytest.raises(SkinartError, match="noise on \\[0, 1\\] pixels before any preprocessing"):
        smoothed(art_normalised, sigma=sigma, sample_size=8)


def test_a_certificate_above_what_the_attack_left_is_refused():
    row = {"l2": 0.25, "certified_accuracy": 0.40, "empirical_robust_accuracy": 0.40, "l2_max": 0.25}
    check_bounds([row])
    with pytest.raises(SkinartError, match="exceeds the 0.390 the attack left"):
        check_bounds([{**row, "empirical_robust_accuracy": 0.39}])
    with pytest.raises(SkinartError, match="beyond its radius"):
        check_bounds([{**row, "l2_max": 0.26}])


def _rows(out):
    with open(out / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def noise_checkpoint(trained, derma_subset, tmp_path_factory):
    """`trained` fine-tuned for an epoch under noise of σ 0.12 by `skinart defend --method randomized-smoothing`."""
    out = tmp_path_factory.mktemp("runs") / "noise"
    result = invoke("defend", "--method", "randomized-smoothing", "--sigma", 0.12, "--retrain-epochs", 1, "--checkpoint", trained,
                    "--smoothing-n", 8, "--data-root", derma_subset, "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_training_under_noise_writes_a_checkpoint_recording_sigma(noise_checkpoint, trained):
    meta, source = (json.loads((folder / "skinart.json").read_text()) for folder in (noise_checkpoint, trained))
    assert {k: meta["defence"][k] for k in ("method", "variant", "sigma", "art_class", "epochs")} == \
        {"method": "randomized-smoothing", "variant": "gaussian", "sigma": 0.12, "art_class": "PyTorchRandomizedSmoothing", "epochs": 1}
    assert meta["weights_sha256"] != source["weights_sha256"] and meta["operating_point"]["threshold"] is not None
    assert meta["defence"]["prediction"] == {"n": 8, "eot": 16, "seed": 0}  # how every command predicts through it
    assert meta["defence"]["balance"] == source["train_config"]["balance"] == meta["train_config"]["balance"]  # its own


def _smoothed_votes(checkpoint, images, n):
    """The plain loop: for each image in order, n noisy copies of σ from the checkpoint's seed (torch's generator),
    the base network's class of each, their counts."""
    from skinart.data import to_model_input
    from skinart.defences.deployed import deployed

    net, sigma = deployed(checkpoint, "cpu", base=True).model.eval(), checkpoint.meta.defence["sigma"]
    noise = torch.Generator().manual_seed(checkpoint.meta.defence["prediction"]["seed"])
    votes = []
    with torch.no_grad():
        for image in torch.from_numpy(to_model_input(images)):
            classes = net(torch.randn((n, *image.shape), generator=noise).mul_(sigma).add_(image)).argmax(1)
            votes.append(torch.bincount(classes, minlength=len(checkpoint.classes)).numpy())
    return np.array(votes)


def test_evaluate_of_a_sigma_checkpoint_is_the_majority_of_n_noisy_copies_on_its_seed(noise_checkpoint, derma_subset, tmp_path):
    from skinart.models.checkpoint import Checkpoint
    from skinart.models.provenance import checkpoint_dataset

    checkpoint = Checkpoint.load(noise_checkpoint)
    test = checkpoint_dataset(checkpoint).splits["test"]
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        result = invoke("evaluate", "--checkpoint", noise_checkpoint, "--data-root", derma_subset, "--smoothing-n", 16,
                        "--device", "cpu", "--out", out)
        assert result.exit_code == 0, result.output
    first, second = (np.load(out / "predictions.npz")["probabilities"] for out in runs)
    np.testing.assert_array_equal(first, second)  # the same seed: the same noise, the same votes
    votes = _smoothed_votes(checkpoint, test.images, 16)
    np.testing.assert_allclose(first, votes / 16, rtol=0, atol=1e-6)  # the vote shares are its probabilities
    assert len(set(votes.argmax(1))) > 1 and (votes.max(1) < 16).any()  # several classes, some copies dissenting
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(np.mean(votes.argmax(1) == test.labels))
    malignant = [checkpoint.classes.index(c) for c in metrics["malignant"]]
    p = {r["image_id"]: float(r["clean_p_malignant"]) for r in _rows(runs[0])}
    assert [p[str(i)] for i in test.ids] == pytest.approx(votes[:, malignant].sum(1) / 16, abs=1e-6)  # the malignant share
    assert {k: metrics["smoothed_classifier"][k] for k in ("sigma", "n", "seed")} == {"sigma": 0.12, "n": 16, "seed": 0}
    assert "smoothed classifier: σ 0.12, n 16, seed 0" in (runs[0] / "metrics.md").read_text()


def test_the_operating_point_of_a_sigma_checkpoint_is_chosen_on_its_smoothed_p_malignant(noise_checkpoint):
    from skinart.metrics import choose_threshold
    from skinart.models.checkpoint import Checkpoint
    from skinart.models.provenance import checkpoint_dataset

    checkpoint = Checkpoint.load(noise_checkpoint)
    val, point = checkpoint_dataset(checkpoint).splits["val"], checkpoint.meta.operating_point
    malignant = [checkpoint.classes.index(c) for c in point["malignant"]]
    shares = _smoothed_votes(checkpoint, val.images, 8)[:, malignant].sum(1) / 8  # the recorded n, from the seed
    chosen = choose_threshold(val.labels, shares, malignant, point["target_sensitivity"])
    assert point["chosen_on"] == "val" and point["threshold"] == pytest.approx(chosen["threshold"])
    assert point["threshold"] in set(shares)  # a vote share: no softmax probability of the base network


def test_a_checkpoint_without_sigma_is_scored_by_its_own_network(trained, derma_subset, tmp_path):
    from skinart.defences.deployed import deployed
    from skinart.models.checkpoint import Checkpoint
    from skinart.models.networks import predict
    from skinart.models.provenance import checkpoint_dataset

    result = invoke("evaluate", "--checkpoint", trained, "--data-root", derma_subset, "--device", "cpu", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    checkpoint = Checkpoint.load(trained)
    classifier = deployed(checkpoint, "cpu")
    assert type(classifier) is PyTorchClassifier
    np.testing.assert_array_equal(np.load(tmp_path / "e" / "predictions.npz")["probabilities"],
                                  predict(classifier, checkpoint_dataset(checkpoint).splits["test"].images))
    assert "smoothed_classifier" not in json.loads((tmp_path / "e" / "metrics.json").read_text())


def test_an_attack_on_a_sigma_checkpoint_attacks_and_scores_the_smoothed_classifier(noise_checkpoint, derma_subset, tmp_path):
    args = ["attack", "--checkpoint", noise_checkpoint, "--data-root", derma_subset, "--max-samples", 4, "--smoothing-n", 8,
            "--device", "cpu"]
    result = invoke(*args, "--method", "pgd", "--eps", "0.25", "--max-iter", 2, "--out", tmp_path / "pgd")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "pgd" / "metrics.json").read_text())
    # n votes per prediction, 16 copies per gradient: one smoothed classifier scores and is attacked
    assert {k: metrics["smoothed_classifier"][k] for k in ("sigma", "n", "eot", "seed")} == {"sigma": 0.12, "n": 8, "eot": 16, "seed": 0}
    assert metrics["smoothing_eot"] == 16 and metrics["linf_max"] <= 0.25 + 1e-6
    assert "gradients averaged over 16 noisy copies (EOT)" in (tmp_path / "pgd" / "metrics.md").read_text()
    probabilities = np.load(tmp_path / "pgd" / "adversarial.npz")["adversarial_probabilities"]
    assert np.allclose(probabilities * 8, np.round(probabilities * 8), atol=1e-5)  # vote shares of 8 copies
    refused = invoke(*args, "--method", "square", "--out", tmp_path / "square")
    assert refused.exit_code == 2 and "smoothed classifier" in refused.stderr and not (tmp_path / "square").exists()
    refused = invoke("defend", "--method", "llt", "--checkpoint", noise_checkpoint, "--data-root", derma_subset, "--device", "cpu",
                     "--out", tmp_path / "llt")
    assert refused.exit_code == 2 and "smoothed classifier" in refused.stderr and not (tmp_path / "llt").exists()


@pytest.mark.parametrize("variant", ["smoothadv", "macer"])
def test_each_trained_variant_trains_the_checkpoints_own_weights(variant):
    from skinart.certification.training import noise_trainer
    from skinart.toolbox import PyTorchDataGenerator

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = helpers.Tiny(4)
    classifier = wrap(net, TINY_SIZE, (0.5,) * 3, (0.25,) * 3, device="cpu", optimizer=torch.optim.Adam(net.parameters(), 1e-2))
    x, labels = template_images(rng, rng.uniform(0, 1, (4, 3, TINY_SIZE, TINY_SIZE)).astype(np.float32), 64)
    batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.eye(4)[labels]), batch_size=32)
    before = [p.detach().clone() for p in net.parameters()]
    noise_trainer(variant, 0.25)(classifier).fit_generator(PyTorchDataGenerator(batches, 64, 32))
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_smoothadv_attacks_inside_an_l2_ball_where_arts_attacks_in_linf():
    from skinart.certification.training import L2SmoothAdv
    from skinart.toolbox import PyTorchSmoothAdv

    classifier, _, x, _ = tiny_model(4, 10, seed=1)
    settings = dict(model=classifier.model, loss=classifier.loss, input_shape=classifier.input_shape, nb_classes=4,
                    optimizer=torch.optim.SGD(classifier.model.parameters(), 0.0), clip_values=(0, 1), preprocessing=None,
                    device_type="cpu", scale=0.25, epsilon=0.5, num_steps=2)
    ours, arts = L2SmoothAdv(**settings), PyTorchSmoothAdv(**settings)
    moved = ours.attack.generate(x) - x
    assert np.linalg.norm(moved.reshape(len(x), -1), axis=1).max() <= 0.25 + 1e-5  # ε / num_steps
    assert np.abs(arts.attack.generate(x) - x).max() > 0.09  # ART's: an L∞ step of 0.1 on every pixel


def test_certify_writes_per_image_rows_curves_and_both_bounds(noise_checkpoint, derma_subset, tmp_path):
    from skinart.models.checkpoint import Checkpoint
    from skinart.models.provenance import checkpoint_dataset

    out = tmp_path / "certify"
    args = ["certify", "--checkpoint", noise_checkpoint, "--data-root", derma_subset, "--n", 100, "--n0", 20,
            "--max-samples", 10, "--radii", "0.05,0.2", "--attack-steps", 2, "--eot", 4, "--device", "cpu", "--out", out]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    metrics, rows = json.loads((out / "metrics.json").read_text()), _rows(out)
    assert metrics["sigma"] == 0.12  # the checkpoint's own σ
    checkpoint = Checkpoint.load(noise_checkpoint)
    test = checkpoint_dataset(checkpoint).splits["test"]
    assert [r["image_id"] for r in rows] == [str(test.ids[int(r["index"])]) for r in rows] and len(rows) == 10
    assert [r["true_class"] for r in rows] == [checkpoint.classes[test.labels[int(r["index"])]] for r in rows]
    right = [r["certified_class"] == r["true_class"] for r in rows]
    # certified accuracy at radius 0 is the smoothed classifier's accuracy where it did not abstain, times its share
    assert metrics["certified_accuracy_at_0"] == pytest.approx(np.mean(right))
    assert metrics["certified_accuracy_at_0"] == pytest.approx(metrics["accuracy_where_not_abstained"] * (1 - metrics["abstained"]))
    shares = [p["share"] for p in metrics["certified_accuracy_curve"]]
    assert shares[0] == metrics["certified_accuracy_at_0"] and shares == sorted(shares, reverse=True)
    assert metrics["certified_accuracy_curve"][-1]["l2"] == pytest.approx(max(float(r["radius"]) for r, ok in zip(rows, right) if ok))
    for point in metrics["certified_accuracy_curve"]:
        assert point["linf"] == pytest.approx(point["l2"] / np.sqrt(3 * 28 * 28))
    assert [e["l2"] for e in metrics["empirical"]] == [0.05, 0.2]
    for e in metrics["empirical"]:
        assert e["certified_accuracy"] <= e["empirical_robust_accuracy"] and e["l2_max"] <= e["l2"] + 1e-6
    binary = metrics["malignant_decision"]
    if binary["threshold"] is None:  # one epoch under noise, 8 votes: t may be 0, a decision no votes change
        assert "a constant decision" in binary["why_none"] and {r["malignant_decision"] for r in rows} == {""}
    else:
        assert binary["malignant_images"] + binary["benign_images"] == 10
        assert binary["rule"].startswith("the share of noisy copies voting a malignant class ≥ t")  # its t is on that share
        assert {r["malignant_decision"] for r in rows} <= {"malignant", "benign", "abstain"}
    said = "no perturbation of L2 norm < 0.2" if binary["threshold"] is not None else "No malignant decision certified"
    assert (out / "certified.png").stat().st_size > 0 and said in (out / "metrics.md").read_text()
    again = invoke(*args)
    assert again.exit_code == 0 and "skipped" in again.stderr
    report = invoke("report", out, "--out", tmp_path / "report", "--bootstrap", 0)
    assert report.exit_code == 0, report.output
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"certified accuracy {100 * metrics['empirical'][0]['certified_accuracy']:.1f} % at L2 0.05" in md  # the radius nearest σ
    assert "## Certified robustness" in md and (tmp_path / "report" / "report_figures" / "certified.png").is_file()


def test_a_shift_evaluation_of_a_sigma_checkpoint_scores_and_records_the_smoothed_classifier(noise_checkpoint, derma_subset, tmp_path):
    out = tmp_path / "shift"
    result = invoke("evaluate", "--checkpoint", noise_checkpoint, "--data-root", derma_subset, "--shift", "gaussian_noise",
                    "--severity", "1", "--max-samples", 6, "--smoothing-n", 8, "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # n votes per prediction, 16 copies per gradient: one smoothed classifier scores and is attacked
    assert {k: metrics["smoothed_classifier"][k] for k in ("sigma", "n", "eot", "seed")} == {"sigma": 0.12, "n": 8, "eot": 16, "seed": 0}
    assert "smoothed classifier: σ 0.12, n 8, seed 0" in (out / "metrics.md").read_text()
    shares = [float(r["p_malignant"]) for r in _rows(out)]
    assert np.allclose(np.multiply(shares, 8), np.round(np.multiply(shares, 8)), atol=1e-4)  # shares of 8 votes
