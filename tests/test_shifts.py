"""Natural shifts (skinart.shifts): every shift deterministic per seed and per image id whatever the batch, uint8
and shape kept, severity 0 the identity, severity monotone in the statistic its row names; JPEG, brightness and
contrast equal to plain Pillow, the noises' strength equal to their definitions; the parsers refuse bad input.
All on generated lesions (a dark ellipse on textured skin), so nothing needs SKINART_DATA."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from skinart.errors import SkinartError
from skinart.shifts.statistics import STATISTICS
from skinart.shifts.apply import FUNCTIONS, apply_shift
from skinart.shifts.table import SHIFTS, parse_severities, parse_shifts

MEDMNIST_C_NAMES = {"pixelate", "jpeg_compression", "gaussian_noise", "speckle_noise", "impulse_noise", "shot_noise",
                    "defocus_blur", "motion_blur", "zoom_blur", "brightness_up", "brightness_down", "contrast_up",
                    "contrast_down", "black_corner", "characters"}
ARTEFACTS = {"ink_marking", "ruler", "hair", "gel_bubbles", "dark_corners"}


def lesions(count: int, height: int = 28, width: int = 28) -> np.ndarray:
    """uint8 N×H×W×3: skin-toned background with mottled texture and a dark, rotated ellipse near the centre,
    each image a little different (its own texture, size and angle)."""
    y, x = np.mgrid[0:height, 0:width]
    y, x = (y - (height - 1) / 2) / min(height, width), (x - (width - 1) / 2) / min(height, width)
    images = []
    for i in range(count):
        rng = np.random.default_rng(1000 + i)
        angle = 0.7 * i
        a, b = 0.22 + 0.02 * (i % 3), 0.15 + 0.02 * (i % 2)
        u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
        inside = np.clip(1.5 - 1.5 * ((u / a) ** 2 + (v / b) ** 2), 0, 1)[..., None]  # a soft edge
        skin = np.array([222, 172, 152]) * (1 + 0.06 * x[..., None]) + rng.normal(0, 6, (height, width, 3))
        lesion = np.array([96, 62, 48]) + rng.normal(0, 10, (height, width, 3))
        images.append(np.clip(skin * (1 - inside) + lesion * inside, 0, 255))
    return np.rint(np.stack(images)).astype(np.uint8)


IMAGES = lesions(8)
IDS = list(range(8))


# ---- the table


def test_table_has_medmnist_c_corruptions_and_the_artefacts():
    assert {n for n, row in SHIFTS.items() if row.kind == "corruption"} == MEDMNIST_C_NAMES
    assert {n for n, row in SHIFTS.items() if row.kind == "artefact"} == ARTEFACTS
    for name, row in SHIFTS.items():
        assert len(row.parameters) == 5, name
        assert row.statistic in STATISTICS and row.parameter and row.source, name
        assert FUNCTIONS[name].__doc__ and len(FUNCTIONS[name].__doc__) > 100, f"{name}'s function is undocumented"


def test_published_severity_parameters():
    """MedMNIST-C's DermaMNIST table (medmnistc/corruptions/registry.py), where skinart keeps it."""
    published = {"pixelate": (0.7, 0.5, 0.4, 0.3, 0.25), "jpeg_compression": (30, 20, 15, 10, 7),
                 "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26), "speckle_noise": (0.05, 0.15, 0.2, 0.35, 0.45),
                 "impulse_noise": (0.01, 0.03, 0.06, 0.09, 0.17), "shot_noise": (60, 25, 18, 10, 5),
                 "defocus_blur": ((4, 0.1), (5, 0.2), (6, 0.3), (7, 0.4), (8, 0.5)),
                 "brightness_up": (1.1, 1.2, 1.3, 1.4, 1.5), "brightness_down": (0.9, 0.8, 0.7, 0.6, 0.5),
                 "contrast_up": (1.1, 1.2, 1.3, 1.4, 1.6), "contrast_down": (0.8, 0.7, 0.6, 0.5, 0.4)}
    for name, parameters in published.items():
        assert SHIFTS[name].parameters == parameters, name
    # made monotone where MedMNIST-C is not: black_corner's 0.90/0.95 swapped, motion blur's σ strictly rising
    assert SHIFTS["black_corner"].parameters == (1.10, 1.05, 1.00, 0.95, 0.90)
    sigmas = [sigma for _, sigma in SHIFTS["motion_blur"].parameters]
    assert sigmas == sorted(set(sigmas))


# ---- what every shift must do


@pytest.mark.parametrize("name", SHIFTS)
@pytest.mark.parametrize("size", [(28, 28), (36, 52)])
def test_uint8_and_shape_kept_and_severity_zero_is_identity(name, size):
    images = lesions(3, *size)
    assert np.array_equal(apply_shift(images, name, 0, seed=0, ids=[0, 1, 2]), images)
    for severity in (1, 5):
        shifted = apply_shift(images, name, severity, seed=0, ids=[0, 1, 2])
        assert shifted.dtype == np.uint8 and shifted.shape == images.shape
        assert not np.array_equal(shifted, images), f"{name} severity {severity} changed nothing"


@pytest.mark.parametrize("name", SHIFTS)
def test_an_image_gets_the_same_shift_whatever_its_batch(name):
    whole = apply_shift(IMAGES, name, 3, seed=7, ids=IDS)
    order = [5, 2, 7]
    part = apply_shift(IMAGES[order], name, 3, seed=7, ids=order)
    assert np.array_equal(part, whole[order])
    assert np.array_equal(apply_shift(IMAGES, name, 3, seed=7, ids=IDS), whole)


@pytest.mark.parametrize("name", SHIFTS)
def test_random_shifts_follow_seed_and_id_deterministic_ones_ignore_them(name):
    same = np.repeat(IMAGES[:1], 2, axis=0)  # one image under two ids
    by_id = apply_shift(same, name, 3, seed=0, ids=["a", "b"])
    other_seed = apply_shift(IMAGES, name, 3, seed=1, ids=IDS)
    if SHIFTS[name].random:
        assert not np.array_equal(by_id[0], by_id[1])
        assert all(not np.array_equal(a, b) for a, b in zip(other_seed, apply_shift(IMAGES, name, 3, seed=0, ids=IDS)))
    else:
        assert np.array_equal(by_id[0], by_id[1])
        assert np.array_equal(other_seed, apply_shift(IMAGES, name, 3, seed=0, ids=IDS))


@pytest.mark.parametrize("name", SHIFTS)
def test_severity_is_monotone_in_the_rows_statistic(name):
    statistic = STATISTICS[SHIFTS[name].statistic]
    values = [statistic(IMAGES, apply_shift(IMAGES, name, s, seed=3, ids=IDS)) for s in range(6)]
    assert values[0] == 0
    assert all(a < b for a, b in zip(values, values[1:])), f"{name}: {np.round(values, 4)}"


@pytest.mark.parametrize("name", ["impulse_noise", "ink_marking", "ruler", "hair", "gel_bubbles", "black_corner",
                                  "dark_corners"])
def test_severities_nest(name):
    """A higher severity reads the same draws further: every pixel a severity changes, the next changes too."""
    changed = [np.any(apply_shift(IMAGES, name, s, seed=5, ids=IDS) != IMAGES, axis=-1) for s in range(1, 6)]
    for severity, (low, high) in enumerate(zip(changed, changed[1:]), start=1):
        assert np.all(high[low]) and high.sum() > low.sum(), f"{name}: severity {severity + 1} drops pixels of {severity}"


@pytest.mark.parametrize("name", ["ink_marking", "ruler", "black_corner", "dark_corners"])
def test_lesion_centre_stays_visible(name):
    images = lesions(4, 56, 56)
    shifted = apply_shift(images, name, 5, seed=0, ids=range(4))
    y, x = np.mgrid[0:56, 0:56] - 27.5
    centre = np.hypot(y, x) < 0.2 * 56
    assert np.array_equal(shifted[:, centre], images[:, centre])


# ---- against independent implementations


def test_jpeg_equals_a_plain_pillow_round_trip():
    images = lesions(3, 40, 48)
    for severity, quality in zip(range(1, 6), SHIFTS["jpeg_compression"].parameters):
        for image, shifted in zip(images, apply_shift(images, "jpeg_compression", severity, seed=0, ids=range(3))):
            buffer = BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
            assert np.array_equal(shifted, np.asarray(Image.open(buffer).convert("RGB")))


def test_brightness_and_contrast_equal_pillow_imageenhance():
    images = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    for name, enhancer in [("brightness_up", ImageEnhance.Brightness), ("brightness_down", ImageEnhance.Brightness),
                           ("contrast_up", ImageEnhance.Contrast), ("contrast_down", ImageEnhance.Contrast)]:
        for severity, factor in zip(range(1, 6), SHIFTS[name].parameters):
            shifted = apply_shift(images, name, severity, seed=0, ids=range(3))
            expected = [np.asarray(enhancer(Image.fromarray(image)).enhance(factor)) for image in images]
            assert np.array_equal(shifted, np.stack(expected)), (name, severity)


def test_gaussian_noise_has_the_tables_sigma_on_mid_grey():
    grey = np.full((4, 64, 64, 3), 128, dtype=np.uint8)
    reference = np.random.default_rng(12345).standard_normal(grey.shape)
    for severity, sigma in zip(range(1, 6), SHIFTS["gaussian_noise"].parameters):
        difference = apply_shift(grey, "gaussian_noise", severity, seed=0, ids=range(4)).astype(float) - 128
        # independent: the same clipped noise made with numpy alone (clipping trims severities 4–5)
        expected = np.clip(np.rint(128 + 255 * sigma * reference), 0, 255) - 128
        assert difference.std() == pytest.approx(expected.std(), rel=0.02), severity
        if severity <= 3:  # 128 ± 4σ inside [0, 255]: no clipping, σ as the table says
            assert difference.std() == pytest.approx(255 * sigma, rel=0.02)
        assert abs(difference.mean()) < 0.1 * 255 * sigma / 8  # rounded, not truncated (which shifts it by −0.5)


def test_speckle_shot_and_impulse_noise_have_their_defined_strength_on_mid_grey():
    grey = np.full((4, 64, 64, 3), 128, dtype=np.uint8)
    ids = range(4)
    speckle = apply_shift(grey, "speckle_noise", 1, seed=0, ids=ids).astype(float) - 128
    assert speckle.std() == pytest.approx(128 * 0.05, rel=0.03)
    shot = apply_shift(grey, "shot_noise", 1, seed=0, ids=ids).astype(float) - 128
    photons = 60 * 128 / 255  # Poisson counts of mean λ·x: σ = √(λx)/λ in [0, 1] units
    assert shot.std() == pytest.approx(255 * np.sqrt(photons) / 60, rel=0.03)
    impulse = apply_shift(grey, "impulse_noise", 5, seed=0, ids=ids)
    assert np.mean(impulse == 0) == pytest.approx(0.17 / 2, abs=0.005)
    assert np.mean(impulse == 255) == pytest.approx(0.17 / 2, abs=0.005)


def test_black_corner_blacks_exactly_outside_its_disk():
    shifted = apply_shift(np.full((1, 28, 28, 3), 200, np.uint8), "black_corner", 3, seed=0, ids=[0])[0]
    y, x = np.mgrid[0:28, 0:28] - 13.5
    assert np.array_equal(shifted[..., 0] == 0, np.hypot(y, x) > 14)


# ---- parsers and refusals


def test_parse_shifts():
    assert parse_shifts("all") == tuple(SHIFTS)
    assert parse_shifts(" hair, gaussian_noise,hair ") == ("hair", "gaussian_noise")
    with pytest.raises(SkinartError, match="choose one of .*gaussian_noise.*dark_corners"):
        parse_shifts("gaussian_noise,blur")
    with pytest.raises(SkinartError, match="empty"):
        parse_shifts(" , ")


def test_parse_severities():
    assert parse_severities("all") == parse_severities("1-5") == (1, 2, 3, 4, 5)
    assert parse_severities("5,1,3") == (1, 3, 5)
    assert parse_severities("3") == parse_severities(3) == (3,)
    assert parse_severities("1-2, 4") == (1, 2, 4)
    for bad in ("0", "6", "1-6", "3-1", "two", "", "1,,3", "-1"):
        with pytest.raises(SkinartError, match="1-5"):
            parse_severities(bad)


def test_apply_shift_refuses_wrong_input():
    with pytest.raises(SkinartError, match="choose one of"):
        apply_shift(IMAGES, "fog", 1, seed=0, ids=IDS)
    with pytest.raises(SkinartError, match="severity 6"):
        apply_shift(IMAGES, "hair", 6, seed=0, ids=IDS)
    with pytest.raises(ValueError, match="uint8"):
        apply_shift(IMAGES.astype(np.float32), "hair", 1, seed=0, ids=IDS)
    with pytest.raises(ValueError, match="ids"):
        apply_shift(IMAGES, "hair", 1, seed=0, ids=IDS[:-1])


def test_gallery_is_a_png_of_the_grid(tmp_path):
    from skinart.presentation.grids import enlarged
    from skinart.shifts.gallery import CELL_PX, plot_shift_gallery, side_by_side

    path = plot_shift_gallery(IMAGES[:2], ["pixelate", "hair"], (1, 5), tmp_path / "gallery.png", seed=0)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > png.height > 100
        picture = np.asarray(png.convert("RGB"))
    # every cell pixel for pixel: the shifted images side by side, each pixel a whole block (never resampled)
    for name, severity in (("pixelate", 5), ("hair", 1), ("hair", 0)):
        strip = side_by_side(apply_shift(IMAGES[:2], name, severity, seed=0, ids=[0, 1]))
        assert _found(picture, enlarged(strip, CELL_PX // IMAGES.shape[1])), (name, severity)
    assert not _found(picture, enlarged(side_by_side(IMAGES[:2]), CELL_PX // IMAGES.shape[1] + 1))


def _found(picture: np.ndarray, block: np.ndarray) -> bool:
    """Whether `block` appears in `picture` exactly."""
    h, w = block.shape[:2]
    ys, xs = np.nonzero((picture[: picture.shape[0] - h + 1, : picture.shape[1] - w + 1] == block[0, 0]).all(axis=2))
    return any(np.array_equal(picture[y : y + h, x : x + w], block) for y, x in zip(ys, xs))
