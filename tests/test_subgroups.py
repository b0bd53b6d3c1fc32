"""`evaluate --by sex|age|site` (issue 36, Subgroups): the metadata each source carries reach its splits without
changing its fingerprint, the groups bin them as documented, the metrics per group add back up to the whole's, and
--by is refused in one line where it cannot apply."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, write_dermamnist, write_ham10000

from skinart.data import CLASSES, SMALL_GROUP, load_dataset, read_source, subgroups
from skinart.data.metadata import MAP_FILE
from skinart.errors import SkinartError
from skinart.presentation.tables import gap_words
from skinart.runs.subgroups import largest_gaps, subgroup_metrics

SITES = ("face", "lower extremity", "")
AGES = ("12", "29.0", "30", "44.0", "45", "60", "74", "75.0", "85", "")


def _rewrite(csv_path: Path, change) -> list[dict]:
    """The metadata CSV with each row passed through `change(i, row)`; its new rows."""
    with open(csv_path, newline="") as f:
        rows = [change(i, row) for i, row in enumerate(csv.DictReader(f))]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _varied(i: int, row: dict) -> dict:
    """helpers' HAM10000 rows (one site, no unknowns) given every kind of value: unknown sex, missing ages and sites,
    two large sites, and a site of 10 images (a small group)."""
    sex = "unknown" if i % 23 == 0 else ("male", "female")[i % 2]
    site = "acral" if i % 40 == 7 else ("back", "trunk")[i % 3] if i % 3 < 2 else SITES[i // 3 % len(SITES)]
    return {**row, "sex": sex, "age": AGES[i % len(AGES)], "localization": site}


@pytest.fixture(scope="module")
def ham_meta(tmp_path_factory) -> Path:
    """A generated HAM10000-layout folder whose metadata vary (`_varied`)."""
    root = write_ham10000(tmp_path_factory.mktemp("ham-meta"), n=400)
    _rewrite(root / "HAM10000_metadata.csv", _varied)
    return root


@pytest.fixture(scope="module")
def ham_model(ham_meta, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "cnn"
    result = invoke("train", "--data", "ham10000", "--data-root", ham_meta, "--model", "skin_cnn", "--img-size", 28,
                    "--epochs", 2, "--batch-size", 32, "--balance", "weights", "--split-ratios", "0.5,0.2,0.3",
                    "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return out


def test_groups_bin_sex_age_and_site_as_documented():
    metadata = {"sex": np.array(["male", "Female", "unknown", ""]), "age": np.array(["0.0", "29.9", "30", ""]),
                "site": np.array(["back", "", "lower extremity", "unknown"])}
    assert subgroups(metadata, "sex", "x").tolist() == ["male", "female", "unknown", "unknown"]
    assert subgroups(metadata, "age", "x").tolist() == ["<30", "<30", "30–44", "unknown"]
    assert subgroups(metadata, "site", "x").tolist() == ["back", "unknown", "lower extremity", "unknown"]
    ages = np.array(["44.0", "45", "59", "60", "74.0", "75", "90", "n/a", "nan"])
    assert subgroups({"age": ages}, "age", "x").tolist() == ["30–44", "45–59", "45–59", "60–74", "60–74", "≥75", "≥75",
                                                            "unknown", "unknown"]
    with pytest.raises(SkinartError, match="the isic2018 data carry no sex .* or drop --by"):
        subgroups(None, "sex", "isic2018")


def test_ham10000_metadata_reach_the_splits_and_leave_the_fingerprint(ham_meta, tmp_path):
    with open(ham_meta / "HAM10000_metadata.csv", newline="") as f:
        by_id = {r["image_id"]: r for r in csv.DictReader(f)}
    dataset = load_dataset("ham10000", ham_meta, img_size=16, split_ratios=(0.6, 0.2, 0.2))
    for split in dataset.splits.values():  # split like every other column: each image keeps its own row's values
        assert split.metadata["sex"].tolist() == [by_id[i]["sex"] for i in split.ids]
        assert split.metadata["age"].tolist() == [by_id[i]["age"] for i in split.ids]
        assert split.metadata["site"].tolist() == [by_id[i]["localization"] for i in split.ids]
        assert split.metadata["dx_type"].tolist() == [by_id[i]["dx_type"] for i in split.ids]
    bare = tmp_path / "bare"  # the same images, a metadata CSV without sex, age, localization and dx_type
    shutil.copytree(ham_meta, bare)
    _rewrite(bare / "HAM10000_metadata.csv", lambda i, r: {k: r[k] for k in ("lesion_id", "image_id", "dx")})
    plain = load_dataset("ham10000", bare, img_size=16, split_ratios=(0.6, 0.2, 0.2))
    assert read_source("ham10000", bare).metadata is None and plain.splits["test"].metadata is None
    assert plain.source_fingerprint == dataset.source_fingerprint
    for name, split in plain.splits.items():
        assert np.array_equal(split.ids, dataset.splits[name].ids) and np.array_equal(split.images, dataset.splits[name].images)


def _derma_with_map(folder: Path, *, ham_beside: bool = True, wrong_class: bool = False) -> dict[str, dict]:
    """A generated DermaMNIST npz in `folder` with MAP_FILE beside it and HAM10000 metadata rows (beside it, or in
    ../ham10000/), image k of each split mapped to a HAM10000 image of its class (of another with `wrong_class`)."""
    npz = write_dermamnist(folder / "dermamnist.npz", sizes={"train": 60, "val": 20, "test": 40})
    arrays, rows, mapping = np.load(npz), {}, []
    for split in ("train", "val", "test"):
        for k, label in enumerate(arrays[f"{split}_labels"].reshape(-1)):
            image_id = f"ISIC_{len(rows):07d}"
            dx = CLASSES[(label + wrong_class * (k == 3)) % len(CLASSES)]
            rows[f"{split}_{k:05d}"] = {"lesion_id": f"HAM_{len(rows):07d}", "image_id": image_id, "dx": dx,
                                        "dx_type": "histo", "age": str(5 * (len(rows) % 18)), "sex": ("female", "male")[k % 2],
                                        "localization": SITES[k % len(SITES)]}
            mapping.append({"split": split, "index": k, "image_id": image_id})
    ham = folder if ham_beside else folder.parent / "ham10000"
    ham.mkdir(exist_ok=True)
    for path, table in ((folder / MAP_FILE, mapping), (ham / "HAM10000_metadata.csv", list(rows.values()))):
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return rows


@pytest.mark.parametrize("ham_beside", [True, False])
def test_dermamnist_takes_ham10000_metadata_through_its_map(tmp_path, ham_beside):
    folder = tmp_path / "dermamnist"
    folder.mkdir()
    rows = _derma_with_map(folder, ham_beside=ham_beside)
    dataset = load_dataset("dermamnist", folder)
    for split in dataset.splits.values():
        assert split.metadata["sex"].tolist() == [rows[i]["sex"] for i in split.ids]
        assert split.metadata["site"].tolist() == [rows[i]["localization"] for i in split.ids]
    (folder / MAP_FILE).unlink()  # without the map: no metadata, and the very same data
    assert read_source("dermamnist", folder).metadata is None
    assert load_dataset("dermamnist", folder).source_fingerprint == dataset.source_fingerprint


def test_dermamnist_with_a_map_of_another_npz_has_no_metadata(tmp_path):
    folder = tmp_path / "dermamnist"
    folder.mkdir()
    _derma_with_map(folder, wrong_class=True)
    source = read_source("dermamnist", folder)
    assert source.metadata is None and any("not this npz's map" in note for note in source.notes)


def test_group_metrics_add_up_to_the_whole():
    rng = np.random.default_rng(0)
    n, classes, malignant = 400, CLASSES, ("mel", "bcc", "akiec")
    labels = rng.integers(0, len(classes), n)
    probs = rng.dirichlet(np.ones(len(classes)), n)
    probs[np.arange(n), labels] += rng.random(n)  # a model better than chance, so groups differ
    probs /= probs.sum(1, keepdims=True)
    groups = rng.choice(["male", "female", "unknown"], n, p=[0.55, 0.43, 0.02])
    result = subgroup_metrics(labels, probs, groups, classes=classes, malignant=malignant, threshold=0.3, resamples=200)
    whole = subgroup_metrics(labels, probs, np.full(n, "all"), classes=classes, malignant=malignant, threshold=0.3,
                             resamples=200)["groups"]["all"]
    parts = result["groups"]
    assert list(parts) == ["male", "female", "unknown"]  # reading order, unknown last
    assert sum(g["images"] for g in parts.values()) == n
    assert np.array_equal(sum(np.array(g["confusion_matrix"]) for g in parts.values()), whole["confusion_matrix"])
    for view in ("binary", "binary_at_threshold"):
        assert np.array_equal(sum(np.array(g[view]["confusion_matrix"]) for g in parts.values()),
                              whole[view]["confusion_matrix"])
    assert parts["unknown"]["small"] and not parts["male"]["small"] and parts["unknown"]["images"] < SMALL_GROUP
    assert parts["male"]["ci"]["accuracy"][0] <= parts["male"]["accuracy"] <= parts["male"]["ci"]["accuracy"][1]
    at = {name: g["binary_at_threshold"] for name, g in parts.items()}
    assert parts["male"]["ci"]["sensitivity_at_threshold"][0] <= at["male"]["sensitivity"]
    # the largest gap: between the two groups of >= SMALL_GROUP images, never the small one
    for metric, value in (("accuracy", lambda g: g["accuracy"]), ("specificity_at_threshold", lambda g: g["binary_at_threshold"]["specificity"])):
        gap = result["largest_gap"][metric]
        high, low = sorted(("male", "female"), key=lambda name: -value(parts[name]))
        assert gap["between"] == [high, low]
        assert gap["points"] == pytest.approx(100 * (value(parts[high]) - value(parts[low])))
    alone = subgroup_metrics(labels, probs, np.where(groups == "male", "male", "unknown"), classes=classes,
                             malignant=malignant, threshold=None, resamples=0)
    assert alone["largest_gap"]["sensitivity_at_threshold"] is None  # no threshold: no sensitivity at it


def test_a_gap_needs_enough_images_behind_its_metric():
    """A group of 60 images with 5 malignant ones, all missed, enters the accuracy gap but not the sensitivity gap; 40
    images of unknown sex, say, all wrong, enter no gap (they are no group of patients); a group of 3 images of one
    class (no specificity of its class, so no macro specificity) is scored all the same."""
    classes, malignant = CLASSES, ("mel",)
    mel, nv = CLASSES.index("mel"), CLASSES.index("nv")
    labels = np.array([mel] * 50 + [nv] * 50 + [mel] * 40 + [nv] * 60 + [mel] * 5 + [nv] * 55 + [nv] * 3 + [mel, nv] * 20)
    groups = np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 60 + ["d"] * 3 + ["unknown"] * 40)
    hit = np.ones(len(labels), bool)
    hit[[0, 1, 100]] = False  # malignant images missed: two in a, one in b
    hit[200:205] = False  # every malignant image of c missed
    hit[263:] = False  # every image of unknown group wrong
    predicted = np.where(hit, labels, np.where(labels == mel, nv, mel))
    probs = np.eye(len(classes))[predicted] * 0.9 + 0.1 / len(classes)
    result = subgroup_metrics(labels, probs, groups, classes=classes, malignant=malignant, threshold=0.5, resamples=0)
    assert result["groups"]["c"]["binary_at_threshold"]["sensitivity"] == 0.0
    assert result["groups"]["d"]["macro_specificity"] is None and result["groups"]["d"]["accuracy"] == 1.0
    assert result["largest_gap"]["sensitivity_at_threshold"]["between"] == ["b", "a"]  # c: 5 malignant images, left out
    assert result["largest_gap"]["sensitivity_at_threshold"]["points"] == pytest.approx(100 * (39 / 40 - 48 / 50))
    assert result["largest_gap"]["accuracy"]["between"] == ["b", "c"]


def test_evaluate_by_sex_and_site_end_to_end(ham_model, tmp_path):
    written = {}
    for by in ("sex", "site"):
        out = tmp_path / f"by-{by}"
        result = invoke("evaluate", "--checkpoint", ham_model, "--out", out, "--by", by, "--device", "cpu")
        assert result.exit_code == 0, result.output
        metrics = written[by] = json.loads((out / "metrics.json").read_text())
        groups = metrics["subgroups"]["groups"]
        assert metrics["subgroups"]["by"] == by
        assert sum(g["images"] for g in groups.values()) == sum(c["support"] for c in metrics["per_class"].values())
        assert np.array_equal(sum(np.array(g["confusion_matrix"]) for g in groups.values()), metrics["confusion_matrix"])
        assert np.array_equal(sum(np.array(g["binary_at_threshold"]["confusion_matrix"]) for g in groups.values()),
                              metrics["binary_at_threshold"]["confusion_matrix"])
        markdown = (out / "metrics.md").read_text()
        assert f"## By {by}" in markdown and "largest gap in sensitivity @ t" in markdown and f"## By {by}" in result.stdout
        for name, g in groups.items():
            assert (f"| {name} ⚑ |" in markdown) == g["small"] and g["small"] == (g["images"] < SMALL_GROUP)
    sexes, sites = written["sex"]["subgroups"], written["site"]["subgroups"]
    assert list(sexes["groups"]) == ["male", "female", "unknown"] and sexes["groups"]["unknown"]["small"]
    assert sites["groups"]["acral"]["small"] and not sites["groups"]["back"]["small"]  # a few images: shown and flagged
    assert set(sites["largest_gap"]["accuracy"]["between"]) <= {"back", "trunk", "face", "lower extremity"}
    assert all(gap is None or "acral" not in gap["between"] for gap in sites["largest_gap"].values())
    # the report's subgroup tables: every group of both runs with its metrics, small ones flagged, and the largest gaps
    result = invoke("report", tmp_path / "by-sex", tmp_path / "by-site", "--out", tmp_path / "report", "--bootstrap", 0)
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "report.md").read_text()
    table = md.split("## Subgroups: every metric per group (clean and attacked images)")[1].split("\n## ")[0]
    for by, metrics in written.items():
        for name, g in metrics["subgroups"]["groups"].items():
            line = next(line for line in table.splitlines() if line.startswith(f"| by-{by} |") and f"| {name}" in line)
            assert (f"| {name} ⚑ | {g['images']} |" in line) == g["small"] and f"| {g['images']} | {100 * g['accuracy']:.1f}" in line
    gaps = md.split("## Subgroups: the largest gap between groups")[1].split("\n## ")[0]
    gap = sites["largest_gap"]["accuracy"]
    assert f"| accuracy | {gap['points']:.1f} points ({gap['between'][0]} above {gap['between'][1]}) |" in gaps
    plain = tmp_path / "plain"  # --by is part of the run: a plain evaluation into the same folder is another run
    assert invoke("evaluate", "--checkpoint", ham_model, "--out", plain, "--device", "cpu").exit_code == 0
    assert "subgroups" not in json.loads((plain / "metrics.json").read_text())


def test_a_shift_evaluation_by_sex_splits_every_row_into_groups_that_add_up(ham_model, tmp_path):
    out = tmp_path / "shift-by-sex"
    result = invoke("evaluate", "--checkpoint", ham_model, "--out", out, "--by", "sex", "--shift", "hair,contrast_down",
                    "--severity", "1,5", "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [metrics["clean"], *metrics["rows"]]
    assert len(rows) == 5
    for row in rows:
        groups = row["subgroups"]["groups"]
        assert list(groups) == ["male", "female", "unknown"] and row["subgroups"]["by"] == "sex"
        assert np.array_equal(sum(np.array(g["binary_at_threshold"]["confusion_matrix"]) for g in groups.values()),
                              row["metrics"]["binary_at_threshold"]["confusion_matrix"])
    assert "## Sensitivity at t by sex" in (out / "metrics.md").read_text()
    result = invoke("report", out, "--out", tmp_path / "report", "--bootstrap", 0)
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "report.md").read_text()
    table = md.split("## Subgroups under natural shift: sensitivity @t per group")[1].split("\n## ")[0].splitlines()
    assert table[2] == "| run | shift | severity | male | female | unknown |"
    male = rows[-1]["subgroups"]["groups"]["male"]["binary_at_threshold"]["sensitivity"]
    lines = [line for line in table if line.startswith("| shift-by-sex |")]
    assert len(lines) == 5 and lines[-1].startswith(f"| shift-by-sex | contrast_down | 5 | {100 * male:.1f}")
    assert (tmp_path / "report" / "report_figures" / "severity.png").stat().st_size > 0


def test_an_attack_by_sex_splits_attacked_and_unattacked_images_into_groups_that_add_up(ham_model, tmp_path):
    out = tmp_path / "fgsm-by-sex"
    result = invoke("evaluate", "--checkpoint", ham_model, "--out", out, "--by", "sex", "--attack", "fgsm", "--eps", "4/255",
                    "--threat", "white-box", "--shift", "hair", "--severity", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "white-box" / "metrics.json").read_text())
    assert (metrics["shift"], metrics["severity"]) == ("hair", 3)
    for half in (metrics["adversarial"], metrics["clean"]):  # the attacked images, and the same images unattacked
        groups = half["subgroups"]["groups"]
        assert list(groups) == ["male", "female", "unknown"] and half["subgroups"]["by"] == "sex"
        assert sum(g["images"] for g in groups.values()) == metrics["images"]
        assert np.array_equal(sum(np.array(g["confusion_matrix"]) for g in groups.values()), half["confusion_matrix"])
        assert np.array_equal(sum(np.array(g["binary_at_threshold"]["confusion_matrix"]) for g in groups.values()),
                              half["binary_at_threshold"]["confusion_matrix"])
        assert half["subgroups"]["largest_gap"]["accuracy"] is not None
    # the attack moved some group's numbers: the attacked groups are not the unattacked ones
    assert metrics["adversarial"]["subgroups"]["groups"] != metrics["clean"]["subgroups"]["groups"]
    result = invoke("report", out, "--out", tmp_path / "report", "--bootstrap", 0)
    assert result.exit_code == 0, result.output
    md = (tmp_path / "report" / "report.md").read_text()
    table = md.split("## Subgroups: every metric per group (clean and attacked images)")[1].split("\n## ")[0]
    label = "fgsm under hair severity 3"
    attacked = [line for line in table.splitlines() if line.startswith("| fgsm-by-sex |") and label in line]
    assert len(attacked) == 3
    male = metrics["adversarial"]["subgroups"]["groups"]["male"]
    assert any(f"| male | {male['images']} | {100 * male['accuracy']:.1f}" in line for line in attacked)
    assert label in md.split("## Subgroups: the largest gap between groups")[1].split("\n## ")[0]


@pytest.mark.parametrize("args, message", [
    (["--by", "nonsense"], "unknown --by 'nonsense'; choose one of sex, age, site"),
    (["--by", "sex", "--attack", "uap", "--shift", "hair", "--severity", "3"], "--attack uap with --shift"),
    (["--by", "sex", "--shift", "jpeg_compression", "--external", "--data", "dermamnist", "--data-root", "{npz}"],
     "the dermamnist data carry no sex"),
    (["--by", "age", "--external", "--data", "dermamnist", "--data-root", "{npz}"], "the dermamnist data carry no age"),
])
def test_a_bad_by_is_one_line_and_writes_nothing(ham_model, tmp_path, args, message):
    npz = write_dermamnist(tmp_path / "dermamnist.npz", sizes={"train": 20, "val": 20, "test": 40})  # no map beside it
    out = tmp_path / "runs" / "eval"
    result = invoke("evaluate", "--checkpoint", ham_model, "--out", out, "--device", "cpu",
                    *[str(a).format(npz=npz) for a in args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_real_ham10000_and_dermamnist_carry_sex_age_and_site(shared_data):
    ham = read_source("ham10000", shared_data / "ham10000")
    sexes = dict(zip(*np.unique(subgroups(ham.metadata, "sex", "ham10000"), return_counts=True)))
    assert sexes == {"male": 5406, "female": 4552, "unknown": 57}
    ages = dict(zip(*np.unique(subgroups(ham.metadata, "age", "ham10000"), return_counts=True)))
    assert ages == {"<30": 659, "30–44": 2202, "45–59": 3495, "60–74": 2290, "≥75": 1312, "unknown": 57}
    sites = dict(zip(*np.unique(subgroups(ham.metadata, "site", "ham10000"), return_counts=True)))
    assert len(sites) == 15 and sites["back"] == 2192 and sites["acral"] == 7 and sites["unknown"] == 234
    first = list(ham.ids).index("ISIC_0027419")  # the CSV's first row: HAM_0000118, 80, male, scalp
    assert (ham.metadata["sex"][first], ham.metadata["age"][first], ham.metadata["site"][first]) == ("male", "80.0", "scalp")
    derma = read_source("dermamnist", shared_data / "dermamnist")  # through dermamnist_split_to_ham10000.csv
    assert derma.metadata is not None and not derma.notes
    for split, index, image_id in (("train", 0, "ISIC_0027615"), ("test", 7, None)):
        k = list(derma.ids).index(f"{split}_{index:05d}")
        image_id = image_id or _mapped(shared_data, split, index)
        at = list(ham.ids).index(image_id)
        assert all(derma.metadata[c][k] == ham.metadata[c][at] for c in ("sex", "age", "site", "dx_type"))


def _mapped(shared_data: Path, split: str, index: int) -> str:
    with open(shared_data / "dermamnist" / MAP_FILE, newline="") as f:
        return next(r["image_id"] for r in csv.DictReader(f) if r["split"] == split and int(r["index"]) == index)


def test_a_gap_between_equal_groups_names_two_groups_and_says_equal():
    """Every known group with the same value: the gap is 0 points between two of them (it named one group twice:
    "0.0 points (male above male)")."""
    groups = {name: {"accuracy": 0.5, "images": 2 * SMALL_GROUP} for name in ("female", "male")}
    gap = largest_gaps({name: {**g, "binary_at_threshold": None, "macro_recall": 0.5} for name, g in groups.items()})["accuracy"]
    assert sorted(gap["between"]) == ["female", "male"] and gap["points"] == 0
    assert gap_words(gap) == "0.0 points (male and female equal)"
