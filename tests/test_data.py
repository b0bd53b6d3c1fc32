import csv

import numpy as np
import pytest
from PIL import Image, ImageOps

from skinart.data import (
    CLASS_WEIGHT_POWERS, CLASSES, check_data, class_weights, describe, load_dataset, oversample, parse_ratios, read_source, source_splits, split_indices,
)
from skinart.data import pixels
from skinart.errors import SkinartError
from helpers import write_ham_subset

# Published per-class counts of the official DermaMNIST split (PROVENANCE.md, MedMNIST info.py)
DERMAMNIST_COUNTS = {
    "train": [228, 359, 769, 80, 779, 4693, 99],
    "val": [33, 52, 110, 12, 111, 671, 14],
    "test": [66, 103, 220, 23, 223, 1341, 29],
}
HAM_COUNTS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}


def test_ham10000_lesion_grouped_split_on_real_metadata(shared_data):
    source = read_source("ham10000", shared_data / "ham10000")
    assert len(source.ids) == 10015
    assert dict(zip(CLASSES, np.bincount(source.labels).tolist())) == HAM_COUNTS
    whole = np.bincount(source.labels, minlength=7) / len(source.labels)
    for ratios in [(0.7, 0.15, 0.15), (0.7, 0.175, 0.125), (0.8, 0.2)]:
        splits = source_splits(source, ratios, seed=0)
        assert sum(len(i) for i in splits.values()) == 10015
        lesions = {name: set(source.groups[idx]) for name, idx in splits.items()}
        names = list(lesions)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not lesions[a] & lesions[b], f"lesion shared between {a} and {b}"
        for (name, idx), share in zip(splits.items(), ratios):
            assert abs(len(idx) / 10015 - share) < 0.015
            proportions = np.bincount(source.labels[idx], minlength=7) / len(idx)
            assert np.abs(proportions - whole).max() < 0.02, f"{name} class mix drifts from the whole set"


def test_split_depends_on_seed_and_is_reproducible(ham_subset):
    source = read_source("ham10000", ham_subset)
    a = split_indices(source.labels, source.groups, (0.8, 0.2), seed=1)
    b = split_indices(source.labels, source.groups, (0.8, 0.2), seed=1)
    c = split_indices(source.labels, source.groups, (0.8, 0.2), seed=2)
    assert np.array_equal(a["test"], b["test"])
    assert not np.array_equal(a["test"], c["test"])


def test_dermamnist_official_split_and_labels_by_name(shared_data):
    ds = load_dataset("dermamnist", shared_data / "dermamnist")
    assert ds.img_size == 28
    for split, counts in DERMAMNIST_COUNTS.items():
        assert np.bincount(ds.splits[split].labels, minlength=7).tolist() == counts
        assert ds.splits[split].images.shape[1:] == (28, 28, 3)
        assert ds.splits[split].images.dtype == np.uint8


def test_dermamnist_resized_on_request(derma_subset):
    ds = load_dataset("dermamnist", derma_subset, img_size=40)
    assert ds.splits["train"].images.shape == (600, 40, 40, 3)


def test_ham10000_pixels_resize_and_cache(ham_subset, monkeypatch):
    decoded = []
    decode = pixels._decode
    monkeypatch.setattr(pixels, "_decode", lambda path, *args: decoded.append(path) or decode(path, *args))
    ds = load_dataset("ham10000", ham_subset, img_size=32, split_ratios=(0.6, 0.2, 0.2))
    assert len(decoded) == len(ds.splits["train"]) + len(ds.splits["val"]) + len(ds.splits["test"])  # every image once
    train = ds.splits["train"]
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    # crop = centre square of the (non-square) original, then bilinear resize (Pillow's ImageOps.fit)
    first = next(ham_subset.rglob(f"{train.ids[0]}.jpg"))
    with Image.open(first) as img:
        expected = np.asarray(ImageOps.fit(img.convert("RGB"), (32, 32), Image.Resampling.BILINEAR))
    assert np.abs(train.images[0].astype(int) - expected).mean() < 2  # JPEG draft decoding shifts edges slightly
    squash = load_dataset("ham10000", ham_subset, img_size=32, resize="squash", split_ratios=(0.6, 0.2, 0.2))
    assert not np.array_equal(squash.splits["train"].images, train.images)
    decoded.clear()
    again = load_dataset("ham10000", ham_subset, img_size=32, split_ratios=(0.6, 0.2, 0.2))
    assert decoded == []  # from the cache: not one image decoded again
    assert np.array_equal(again.splits["train"].images, train.images)


def test_isic2018_maps_one_hot_columns_by_name(ham_subset, tmp_path):
    chosen = write_ham_subset(_rows(ham_subset), ham_subset / "images", tmp_path, per_class=5)
    columns = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]  # ISIC order, not ours
    absent = "ISIC_9999999"
    with open(tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image"] + columns)
        for r in chosen + [{"image_id": absent, "dx": "mel"}]:
            w.writerow([r["image_id"]] + [1.0 if c.lower() == r["dx"] else 0.0 for c in columns])
    source = read_source("isic2018", tmp_path)
    truth = {r["image_id"]: CLASSES.index(r["dx"]) for r in chosen}
    assert len(source.ids) == len(chosen)
    assert all(truth[i] == label for i, label in zip(source.ids, source.labels))
    assert any("1 of" in note and "missing" in note for note in source.notes)


def test_folder_loader(ham_subset, tmp_path):
    rows = _rows(ham_subset)[:40]
    for r in rows:
        (tmp_path / r["dx"]).mkdir(exist_ok=True)
        (tmp_path / r["dx"] / f"{r['image_id']}.jpg").symlink_to(ham_subset / "images" / f"{r['image_id']}.jpg")
    source = read_source("folder", tmp_path)
    assert len(source.ids) == 40 and len(set(source.labels.tolist())) > 1
    assert [CLASSES[i] for i in source.labels] == [p.parent.name for p in source.paths]
    (tmp_path / "melanomaa").mkdir()
    with pytest.raises(SkinartError, match="folder 'melanomaa' is not a class"):
        read_source("folder", tmp_path)


def test_describe_reports_zero_shared_lesions(ham_subset):
    """On the generated folder, where about a third of the lesions have two images (the real count: the test above)."""
    source = read_source("ham10000", ham_subset)
    assert len(set(source.groups.tolist())) < len(source.ids) == 240  # some lesions do have several images
    text = describe("ham10000", ham_subset, "0.7,0.175,0.125")
    assert "groups shared between splits: 0" in text
    assert "240" in text


def _rows(ham_folder) -> list[dict]:
    with open(ham_folder / "HAM10000_metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_class_weights_and_oversampling():
    labels = np.array([0] * 8 + [1] * 2 + [2] * 2)
    w = class_weights(labels, 4)
    assert w[:3] == pytest.approx([12 / (3 * 8), 12 / (3 * 2), 12 / (3 * 2)])
    assert w[3] == 1.0
    # --balance sqrt-weights: the rare classes weigh twice the common one here, not four times
    assert class_weights(labels, 4, power=CLASS_WEIGHT_POWERS["sqrt-weights"])[:3] == pytest.approx([0.5**0.5, 2**0.5, 2**0.5])
    idx = oversample(labels, seed=0)
    assert np.bincount(labels[idx]).tolist() == [8, 8, 8]
    assert set(range(12)) <= set(idx.tolist())  # every original sample kept


# ---------------------------------------------------------------- bad input: one clear error each


def _ham_copy(ham_subset, tmp_path, edit_rows=None, header=None):
    rows = list(csv.DictReader(open(ham_subset / "HAM10000_metadata.csv")))
    rows = edit_rows(rows) if edit_rows else rows
    (tmp_path / "images").symlink_to(ham_subset / "images")
    fields = header or list(rows[0])
    with open(tmp_path / "HAM10000_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return tmp_path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda h, t: t / "nope", "does not exist"),
        (lambda h, t: t, "is empty"),
        (lambda h, t: _ham_copy(h, t, header=["image_id", "dx"]), "lacks column"),
        (lambda h, t: _ham_copy(h, t, lambda rows: rows[:3] + [{**rows[3], "dx": "mole"}] + rows[4:]), "line 5: unknown dx 'mole'"),
        (lambda h, t: _ham_copy(h, t, lambda rows: rows + [{**rows[0], "image_id": "ISIC_0000000"}]), "ISIC_0000000.jpg"),
    ],
    ids=["missing-root", "empty-root", "missing-column", "unknown-dx", "listed-but-absent"],
)
def test_bad_ham10000_inputs(ham_subset, tmp_path, make, message):
    with pytest.raises(SkinartError, match=message):
        read_source("ham10000", make(ham_subset, tmp_path))


def test_corrupt_image_is_named(ham_subset, tmp_path):
    rows = list(csv.DictReader(open(ham_subset / "HAM10000_metadata.csv")))
    (tmp_path / "images").mkdir()
    for r in rows:
        (tmp_path / "images" / f"{r['image_id']}.jpg").symlink_to(ham_subset / "images" / f"{r['image_id']}.jpg")
    broken = tmp_path / "images" / f"{rows[7]['image_id']}.jpg"
    broken.unlink()
    broken.write_bytes(b"this is not a jpeg")
    (tmp_path / "HAM10000_metadata.csv").symlink_to(ham_subset / "HAM10000_metadata.csv")
    with pytest.raises(SkinartError, match=f"cannot read image .*{rows[7]['image_id']}.jpg"):
        load_dataset("ham10000", tmp_path, img_size=16, use_cache=False)


def test_bad_npz_and_options(tmp_path, derma_subset):
    bad = tmp_path / "dermamnist.npz"
    np.savez(bad, images=np.zeros((2, 28, 28, 3), np.uint8))
    with pytest.raises(SkinartError, match="not a MedMNIST-format npz"):
        read_source("dermamnist", bad)
    two = tmp_path / "two"
    two.mkdir()
    (two / "junk.npz").write_bytes(b"garbage")
    (two / "other.npz").write_bytes(b"garbage")
    with pytest.raises(SkinartError, match="several .npz"):
        read_source("dermamnist", two)
    with pytest.raises(SkinartError, match="not an npz file"):
        read_source("dermamnist", two / "junk.npz")
    with pytest.raises(SkinartError, match="--img-size must be positive"):
        load_dataset("dermamnist", derma_subset, img_size=0)
    with pytest.raises(SkinartError, match="unknown dataset"):
        read_source("ham20000", tmp_path)
    for text in ("0.7,0.2", "0.5", "a,b", "0.7,0.3,0.0"):
        with pytest.raises(SkinartError, match="split ratios"):
            parse_ratios(text)


def test_pixels_that_cannot_fit_in_memory_are_refused_before_loading(derma_subset, tmp_path, monkeypatch):
    with pytest.raises(SkinartError, match=r"--img-size 100000: 950 images need at least .* GiB.*smaller --img-size"):
        load_dataset("dermamnist", derma_subset, img_size=100000, use_cache=False)
    check_data("dermamnist", derma_subset, 64)
    # data not on this machine (a recipe checked elsewhere, DermaMNIST before its download): the published count
    monkeypatch.setenv("SKINART_DATA", str(tmp_path))
    with pytest.raises(SkinartError, match="10015 images"):
        check_data("ham10000", None, 100000)
    check_data("ham10000", None, 224)
    with pytest.raises(SkinartError, match="unknown resize method 'stretch'"):
        check_data("folder", None, None, "stretch")
    with pytest.raises(SkinartError, match="--data-root .* does not exist"):  # a root given explicitly must be there
        check_data("ham10000", tmp_path / "absent", 224)


def test_dermamnist_offline_download_fails_clearly(monkeypatch, tmp_path):
    monkeypatch.delenv("SKINART_DATA", raising=False)
    monkeypatch.setenv("SKINART_CACHE", str(tmp_path))
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(SkinartError, match="could not download DermaMNIST.*--data-root"):
        read_source("dermamnist")
    assert not list(tmp_path.rglob("*.part"))
