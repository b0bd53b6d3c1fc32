"""`ShiftConfig`: what `evaluate --shift` runs, parsed and checked from its options against `shifts.table`; `ImageShift`,
the one shift at one severity an attack's inputs pass through first (`evaluate --attack --shift`). Pure data: the
command checks read them without loading scipy, torch or ART."""

from __future__ import annotations

from dataclasses import dataclass

from skinart.errors import SkinartError
from skinart.shifts.table import parse_severities, parse_shifts


@dataclass(frozen=True)
class ShiftConfig:
    """What `evaluate --shift` runs: the shifts and severities (parsed from their option text), the seed of the
    corruptions, and an optional seeded sample of the test images."""

    shifts: tuple[str, ...]
    severities: tuple[int, ...]
    seed: int = 0
    max_samples: int | None = None
    bootstrap: int = 1000
    by: str | None = None  # a subgroup (sex, age, site): every row's metrics per group too

    @classmethod
    def parse(cls, shift: str, severity: str, *, seed: int = 0, max_samples: int | None = None, by: str | None = None) -> ShiftConfig:
        if max_samples is not None and max_samples < 1:
            raise SkinartError(f"--max-samples {max_samples}: give at least 1 image")
        return cls(parse_shifts(shift), parse_severities(severity), seed=seed, max_samples=max_samples, by=by)


@dataclass(frozen=True)
class ImageShift:
    """One shift at one severity: the test images are corrupted by it (seeded per image as in `evaluate --shift`, with
    the attack's seed) before they are attacked, so they are the attack's clean inputs."""

    shift: str
    severity: int


def under(shift: ImageShift | None) -> str:
    """A title's words for the shift its images are under (" under jpeg_compression severity 3"); none without one."""
    return "" if shift is None else f" under {shift.shift} severity {shift.severity}"
