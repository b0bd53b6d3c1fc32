"""`--data csv`: a folder of images labelled by a CSV file. HAM10000's metadata rewritten in PAD-UFES-20's layout reads
as the same data as `--data ham10000` (fingerprint, splits, pixels), and a checkpoint scores the same on either; one-hot
label columns are read by name; the reader's options are recorded with the data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from skinart.data import csv_options, load_dataset
from skinart.errors import SkinartError

from helpers import PAD_OPTIONS, invoke, write_pad_layout


def _options(*flags: str, labels) -> dict:
    given = dict(zip(flags[::2], flags[1::2]))
    return csv_options(labels=str(labels), **{k.removeprefix("--").replace("-", "_"): v for k, v in given.items()})


@pytest.fixture(scope="module")
def pad_csv(ham_subset, tmp_path_factory):
    return write_pad_layout(ham_subset / "HAM10000_metadata.csv", tmp_path_factory.mktemp("pad") / "metadata.csv")


def test_a_pad_ufes_layout_csv_of_ham10000_is_the_same_data_split_the_same_way(ham_subset, pad_csv):
    ham = load_dataset("ham10000", ham_subset, img_size=28, use_cache=False)
    ours = load_dataset("csv", ham_subset, img_size=28, use_cache=False, options=_options(*PAD_OPTIONS, labels=pad_csv))
    assert ours.source_fingerprint == ham.source_fingerprint and ours.name == "csv"
    for split in ham.splits:
        for field in ("ids", "labels", "groups", "images"):
            assert np.array_equal(getattr(ours.splits[split], field), getattr(ham.splits[split], field)), (split, field)
    assert ours.settings()["options"]["label_map"] == {"NEV": "nv", "ACK": "akiec", "SEK": "bkl"}
    assert "options" not in ham.settings()


def test_data_info_counts_the_csv_as_ham10000(ham_subset, pad_csv):
    ham = invoke("data", "info", "--data", "ham10000", "--data-root", ham_subset)
    ours = invoke("data", "info", "--data", "csv", "--data-root", ham_subset, "--labels", pad_csv, *PAD_OPTIONS)
    assert ham.exit_code == ours.exit_code == 0, ours.output
    table = lambda out: out[out.index("\nsplit "):out.index("groups shared")]  # noqa: E731
    assert table(ours.stdout) == table(ham.stdout) and "groups shared between splits: 0" in ours.stdout


def test_one_hot_columns_are_read_by_name(ham_subset, tmp_path):
    with open(ham_subset / "HAM10000_metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]  # ISIC 2018's order, not the canonical one
    with open(tmp_path / "truth.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", *columns])
        writer.writerows([[r["image_id"], *("1.0" if c.lower() == r["dx"] else "0.0" for c in columns)] for r in rows])
    ours = load_dataset("csv", ham_subset, img_size=28, use_cache=False, options=csv_options(labels=str(tmp_path / "truth.csv")))
    ham = load_dataset("ham10000", ham_subset, img_size=28, use_cache=False)
    labels = dict(zip(np.concatenate([s.ids for s in ham.splits.values()]), np.concatenate([s.labels for s in ham.splits.values()])))
    assert all(labels[i] == y for s in ours.splits.values() for i, y in zip(s.ids, s.labels))


def test_unknown_labels_are_refused_together_in_one_line(ham_subset, pad_csv):
    with pytest.raises(SkinartError) as refused:
        load_dataset("csv", ham_subset, img_size=28, options=_options("--image-column", "img_id", "--label-column", "diagnostic",
                                                                       labels=pad_csv))
    message = str(refused.value)
    assert "\n" not in message and "--label-map" in message
    assert all(f"{code} (" in message for code in ("ACK", "NEV", "SEK")) and "MEL (" not in message


@pytest.mark.slow
def test_a_checkpoint_trained_on_ham10000_scores_the_same_on_its_pad_layout_csv(ham_subset, pad_csv, tmp_path):
    result = invoke("train", "--data", "ham10000", "--data-root", ham_subset, "--model", "skin_cnn", "--img-size", 28,
                    "--epochs", 1, "--out", tmp_path / "cnn", "--device", "cpu")
    assert result.exit_code == 0, result.output
    scores = {}
    for name, data in (("own", ()), ("csv", ("--data", "csv", "--data-root", ham_subset, "--labels", pad_csv, *PAD_OPTIONS))):
        result = invoke("evaluate", "--checkpoint", tmp_path / "cnn", *data, "--out", tmp_path / name, "--device", "cpu")
        assert result.exit_code == 0, result.output
        scores[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    for key in ("accuracy", "macro_recall", "auroc", "per_class", "binary", "binary_at_threshold", "confusion_matrix"):
        assert scores["csv"][key] == scores["own"][key], key
    assert scores["csv"]["data"]["name"] == "csv" and scores["csv"]["data"]["options"]["group_column"] == "lesion_id"


@pytest.mark.slow
def test_a_recipe_trains_and_evaluates_on_csv_data_named_in_its_data_section(ham_subset, pad_csv, tmp_path):
    flags = dict(zip(PAD_OPTIONS[::2], PAD_OPTIONS[1::2]))
    recipe = {"name": "pad", "seed": 0,
              "data": {"loader": "csv", "root": str(ham_subset), "labels": str(pad_csv), "size": 28,
                       **{k.removeprefix("--").replace("-", "_"): v for k, v in flags.items()}},
              "model": {"name": "skin_cnn"},
              "steps": [{"name": "train", "command": "train", "params": {"epochs": 1, "device": "cpu"}},
                        {"name": "clean", "command": "evaluate", "params": {"checkpoint": "train", "device": "cpu"}}]}
    (tmp_path / "pad.yaml").write_text(yaml.safe_dump(recipe))
    result = invoke("run", tmp_path / "pad.yaml", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "run" / "clean" / "metrics.json").read_text())["data"]
    assert data["name"] == "csv" and data["options"]["label_column"] == "diagnostic"
