"""`SHIFTS`: every natural shift as a row (its function by name, its five severity parameters, what they mean, where
they come from, the statistic its severity raises) and the parsers of --shift and --severity. Pure data: the command
checks read it without loading scipy; `shifts.apply` binds each row's function and applies it (`apply_shift`).

Severity parameters of the corruptions are MedMNIST-C's DermaMNIST table (Di Salvo et al., "MedMNIST-C", 2024;
github.com/francescodisalvo05/medmnistc-api, medmnistc/corruptions/registry.py) except where a row's function
says why not (motion_blur severity 2, black_corner severities 4–5); the artefacts are skinart's own. Functions
take (uint8 NHWC images, one severity's parameter, per-image random streams or None) and return uint8."""

from __future__ import annotations

import re
from dataclasses import dataclass

from skinart.errors import SkinartError
from skinart.options import choose

SEVERITIES = (1, 2, 3, 4, 5)
MEDMNIST_C = "MedMNIST-C, DermaMNIST table (Di Salvo et al. 2024)"
BISSOTO = "skinart, procedural; an artefact type annotated by Bissoto et al. (ISIC Workshop, CVPR 2019)"


@dataclass(frozen=True)
class Shift:
    """One natural shift. `parameters[s - 1]` is severity s's; `random` shifts read each image's stream."""

    function: str  # "family.function" in skinart.shifts, bound by shifts.apply
    parameters: tuple
    kind: str  # "corruption" (MedMNIST-C's) or "artefact" (skinart's dermoscopy artefacts)
    parameter: str  # what the parameter means
    source: str
    statistic: str  # a name in statistics.STATISTICS that grows with severity
    random: bool = False


def _corruption(function, parameters, parameter, statistic, random=False) -> Shift:
    return Shift(function, tuple(parameters), "corruption", parameter, MEDMNIST_C, statistic, random)


def _artefact(function, parameters, parameter, statistic, source=BISSOTO) -> Shift:
    return Shift(function, tuple(parameters), "artefact", parameter, source, statistic, random=True)


SHIFTS: dict[str, Shift] = {
    "pixelate": _corruption("digital.pixelate", (0.7, 0.5, 0.4, 0.3, 0.25),
                            "kept share of each side", "mean_abs_difference"),
    "jpeg_compression": _corruption("digital.jpeg_compression", (30, 20, 15, 10, 7),
                                    "JPEG quality", "mean_abs_difference"),
    "gaussian_noise": _corruption("noise.gaussian_noise", (0.04, 0.08, 0.12, 0.18, 0.26),
                                  "σ in [0, 1] pixel units", "noise_std", random=True),
    "speckle_noise": _corruption("noise.speckle_noise", (0.05, 0.15, 0.2, 0.35, 0.45),
                                 "σ of the relative noise", "noise_std", random=True),
    "impulse_noise": _corruption("noise.impulse_noise", (0.01, 0.03, 0.06, 0.09, 0.17),
                                 "share of values set to 0 or 255", "noise_std", random=True),
    "shot_noise": _corruption("noise.shot_noise", (60, 25, 18, 10, 5),
                              "photons of a white pixel", "noise_std", random=True),
    "defocus_blur": _corruption("blur.defocus_blur", ((4, 0.1), (5, 0.2), (6, 0.3), (7, 0.4), (8, 0.5)),
                                "(disk radius, anti-alias σ), px at 224 px", "high_frequency_loss"),
    "motion_blur": _corruption("blur.motion_blur", ((10, 5), (15, 6.5), (15, 8), (15, 12), (20, 15)),
                               "(radius, σ), px at 224 px", "high_frequency_loss", random=True),
    "zoom_blur": _corruption("blur.zoom_blur", ((1.10, 0.01), (1.15, 0.01), (1.20, 0.02), (1.24, 0.02), (1.30, 0.03)),
                             "(largest zoom, step between zooms)", "high_frequency_loss"),
    "brightness_up": _corruption("digital.brightness", (1.1, 1.2, 1.3, 1.4, 1.5), "brightness factor", "brightness_gain"),
    "brightness_down": _corruption("digital.brightness", (0.9, 0.8, 0.7, 0.6, 0.5), "brightness factor", "darkening"),
    "contrast_up": _corruption("digital.contrast", (1.1, 1.2, 1.3, 1.4, 1.6), "contrast factor", "contrast_gain"),
    "contrast_down": _corruption("digital.contrast", (0.8, 0.7, 0.6, 0.5, 0.4), "contrast factor", "contrast_loss"),
    "black_corner": _corruption("occlusion.black_corner", (1.10, 1.05, 1.00, 0.95, 0.90),
                                "kept disk's radius, in halves of the shorter side", "dark_share"),
    "characters": _corruption("occlusion.characters",
                              ((1, 6, 0.14), (2, 7, 0.15), (3, 8, 0.16), (4, 9, 0.17), (6, 10, 0.18)),
                              "(most words, most letters, largest Hershey font scale)", "mean_abs_difference",
                              random=True),
    "ink_marking": _artefact("artefacts.ink_marking", (2, 4, 7, 11, 16), "gentian-violet dots and strokes",
                             "violet_share", source=f"{BISSOTO}; effect on a CNN: Winkler et al. (JAMA Dermatol 2019)"),
    "ruler": _artefact("artefacts.ruler", (0.3, 0.45, 0.6, 0.8, 1.0), "share of an edge the ruler covers",
                       "mean_abs_difference"),
    "hair": _artefact("artefacts.hair", (3, 6, 12, 20, 32), "hairs", "mean_abs_difference"),
    "gel_bubbles": _artefact("artefacts.gel_bubbles", (1, 3, 6, 10, 16), "bubbles", "mean_abs_difference"),
    "dark_corners": _artefact("artefacts.dark_corners", (1.30, 1.20, 1.10, 1.00, 0.90),
                              "field-of-view radius, in halves of the shorter side", "dark_share"),
}


def parse_shifts(text: str) -> tuple[str, ...]:
    """--shift: "all" (the table's order) or names separated by commas, each checked, repeats dropped."""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if names == ["all"]:
        return tuple(SHIFTS)
    if not names:
        raise SkinartError(f"--shift is empty; write all or one or more of {', '.join(SHIFTS)}")
    return tuple(dict.fromkeys(choose(name, SHIFTS, "--shift") for name in names))


def parse_severities(text: str | int) -> tuple[int, ...]:
    """--severity: "all", one severity ("3"), a range ("1-5") or a comma list of either ("1,3,5"), sorted."""
    text = str(text).strip()
    if text == "all":
        return SEVERITIES
    chosen = set()
    for part in text.split(","):
        bounds = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        low, high = (int(bounds[1]), int(bounds[2] or bounds[1])) if bounds else (0, 0)
        if not bounds or not 1 <= low <= high <= SEVERITIES[-1]:
            raise SkinartError(f"--severity '{text}' is not severities in 1-5; write all, 3, 1-5 or 1,3,5")
        chosen.update(range(low, high + 1))
    return tuple(sorted(chosen))
