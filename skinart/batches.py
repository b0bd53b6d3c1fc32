"""Training batches that keep a GPU busy: one DataLoader over a split's uint8 images for a whole training (its workers,
if any, kept between epochs; memory pinned on CUDA), each batch copied to the device as uint8 (non-blocking) and
converted and augmented there, per image, with random draws from a seeded generator on that device.

Augmentation is batched tensor work, not a per-image transform in the loader: on CPU it is cheaper than torchvision's
per-image calls, and the draws never depend on how many workers load (they only gather images), so a training is the
same numbers with any worker count. torchvision's v2 transforms draw one set of parameters per call (a batch would be
flipped or rotated as a whole), hence the batched versions below: flips, a rotation and a resized crop folded into one
`grid_sample` (bilinear, zero fill, as RandomRotation fills), and colour jitter (brightness, contrast, saturation as
torchvision blends them; hue as a rotation of the YIQ chroma plane, an approximation of HSV's hue shift)."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler
from tqdm import tqdm

from skinart.data import Split
from skinart.toolbox import PyTorchDataGenerator


@dataclass(frozen=True)
class Augmentation:
    flips: bool = False  # horizontal and vertical, each with probability 1/2
    rotate: bool = False  # any angle: lesions have no canonical orientation
    crop: bool = False  # a resized crop: area share in (0.7, 1), aspect ratio in (3/4, 4/3)
    jitter: bool = False  # brightness, contrast, saturation by up to ±10 %, hue by up to ±0.02 of a turn


AUGMENTATIONS = {
    "none": Augmentation(),
    "flip": Augmentation(flips=True),
    "rotate": Augmentation(flips=True, rotate=True),
    "full": Augmentation(flips=True, rotate=True, crop=True, jitter=True),
}
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.empty(n, device=generator.device).uniform_(low, high, generator=generator)


def _flipped(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    for dim in (-1, -2):
        flip = _uniform(len(x), 0, 1, generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(dim), x)
    return x


def _warped(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """A rotation, then a resized crop, as one affine map from output to input coordinates per image."""
    n = len(x)
    linear = torch.eye(2, device=x.device).repeat(n, 1, 1)
    shift = torch.zeros(n, 2, device=x.device)
    if aug.rotate:
        angle = _uniform(n, -math.pi, math.pi, generator)
        cos, sin = angle.cos(), angle.sin()
        linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    if aug.crop:
        area, ratio = _uniform(n, 0.7, 1.0, generator), _uniform(n, math.log(3 / 4), math.log(4 / 3), generator).exp()
        width, height = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
        centre = torch.stack([_uniform(n, -1, 1, generator) * (1 - width), _uniform(n, -1, 1, generator) * (1 - height)], 1)
        shift = (linear @ centre.unsqueeze(-1)).squeeze(-1)
        linear = linear * torch.stack([width, height], 1).unsqueeze(1)
    grid = F.affine_grid(torch.cat([linear, shift.unsqueeze(-1)], 2), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _jittered(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = len(x)

    def factor() -> torch.Tensor:
        return _uniform(n, 0.9, 1.1, generator).view(-1, 1, 1, 1)

    def gray(images: torch.Tensor) -> torch.Tensor:
        return (images * torch.tensor(GRAY, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)

    x = (x * factor()).clamp(0, 1)
    mean = gray(x).mean((1, 2, 3), keepdim=True)
    x = ((x - mean) * factor() + mean).clamp(0, 1)
    g = gray(x)
    x = ((x - g) * factor() + g).clamp(0, 1)
    turn = _uniform(n, -0.02, 0.02, generator) * 2 * math.pi
    cos, sin, one, zero = turn.cos(), turn.sin(), torch.ones(n, device=x.device), torch.zeros(n, device=x.device)
    rotation = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                            torch.stack([zero, sin, cos], 1)], 1)
    to_yiq = RGB_TO_YIQ.to(x.device)
    hue = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
    return torch.einsum("nij,njhw->nihw", hue, x).clamp(0, 1)


def augment(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Float NCHW images in [0, 1], each augmented with its own draws from `generator` (on x's device)."""
    if aug.flips:
        x = _flipped(x, generator)
    if aug.rotate or aug.crop:
        x = _warped(x, aug, generator)
    return _jittered(x, generator) if aug.jitter else x


class _Rows(Dataset):
    """A list of positions in `indices` -> (uint8 NCHW images, labels): one numpy gather per batch."""

    def __init__(self, split: Split, indices: np.ndarray):
        self.images, self.labels, self.indices = split.images, split.labels, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: list[int]):
        rows = self.indices[positions]
        return torch.from_numpy(self.images[rows]).permute(0, 3, 1, 2), torch.from_numpy(self.labels[rows].astype(np.int64))


def loader_workers(device: str) -> int:
    """Processes gathering batches: on CUDA a few, so the next batches are ready (pinned) while the GPU computes; on CPU
    none, as a worker would take cores from the training itself for a gather that costs little."""
    return min(4, len(os.sched_getaffinity(0))) if device == "cuda" else 0


class TrainBatches(DataLoader):
    """Shuffled training batches of `indices` into a split, as (augmented float NCHW in [0, 1], one-hot labels) on
    `device`, shown as a progress bar on a terminal. A DataLoader (ART's PyTorchDataGenerator checks the type), built
    once for a whole training: each iteration is one epoch, shuffled by a generator seeded from `seed`."""

    def __init__(self, split: Split, indices: np.ndarray, *, batch_size: int, n_classes: int, augmentation: Augmentation,
                 seed: int, device: str):
        shuffle_seed, augment_seed, worker_seed = np.random.SeedSequence(seed).generate_state(3).tolist()
        drop_last = len(indices) > batch_size  # a batch of one breaks BatchNorm
        self.shuffle = torch.Generator().manual_seed(shuffle_seed)
        order = RandomSampler(range(len(indices)), generator=self.shuffle)
        workers = loader_workers(device)
        super().__init__(_Rows(split, indices), batch_size=None, sampler=BatchSampler(order, batch_size, drop_last),
                         num_workers=workers, persistent_workers=workers > 0, pin_memory=device == "cuda",
                         generator=torch.Generator().manual_seed(worker_seed))  # workers' seeds: never the shuffle's draws
        self.device, self.augmentation, self.eye = device, augmentation, torch.eye(n_classes, device=device)
        self.draws = torch.Generator(device).manual_seed(augment_seed)
        self.images_per_batch = batch_size

    def epoch(self) -> PyTorchDataGenerator:
        """One epoch as ART's trainers take it."""
        return PyTorchDataGenerator(self, len(self.dataset), self.images_per_batch)

    def __iter__(self):
        for images, labels in tqdm(super().__iter__(), total=len(self), leave=False, file=sys.stderr, disable=None, desc="batches"):
            x = images.to(self.device, non_blocking=True).float().div_(255)
            yield augment(x, self.augmentation, self.draws), self.eye[labels.to(self.device, non_blocking=True)]
