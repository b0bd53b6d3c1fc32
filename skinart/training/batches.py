"""The training input pipeline: the train split's images, augmented by torchvision as uint8 (in worker processes on
CUDA), batched by one DataLoader kept for the whole training, copied to the device as uint8 (pinned, non-blocking on
CUDA) and converted to float there. On CPU the draws are those of the loader it replaced (no workers: the shuffle from
its own generator, the augmentation from torch's global one), so a seed trains to the same numbers as before."""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from skinart.data import Split
from skinart.toolbox import PyTorchDataGenerator

AUGMENTATIONS = {
    "none": lambda size: [v2.Identity()],
    "flip": lambda size: [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()],
    # lesions have no canonical orientation: any rotation is a valid view
    "rotate": lambda size: [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomRotation(180)],
    "full": lambda size: [
        v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomRotation(180),
        v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True), v2.ColorJitter(0.1, 0.1, 0.1, 0.02),
    ],
}
CUDA_WORKERS = 4  # augmenting processes feeding one GPU (fewer on a machine with fewer cores)


class _Images(Dataset):
    """uint8 NHWC images -> (augmented uint8 CHW, class index)."""

    def __init__(self, split: Split, indices: np.ndarray, transform: v2.Compose):
        self.images, self.labels, self.indices, self.transform = split.images, split.labels, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = self.indices[i]
        return self.transform(torch.from_numpy(np.ascontiguousarray(self.images[j])).permute(2, 0, 1)), int(self.labels[j])


class TrainBatches(DataLoader):
    """One epoch's batches, each as ART's `fit_generator` takes it: float images in [0, 1] and one-hot labels, already
    on the device (ART's own `.to(device)` is then a no-op). A DataLoader because ART's `PyTorchDataGenerator` checks the
    type; a progress bar on a terminal."""

    def __init__(self, split: Split, indices: np.ndarray, augment: str, img_size: int, n_classes: int, *, batch_size: int,
                 seed: int, device: str):
        on_cuda = torch.device(device).type == "cuda"
        workers = min(CUDA_WORKERS, os.cpu_count() or 1) if on_cuda else 0
        images = _Images(split, indices, v2.Compose(AUGMENTATIONS[augment](img_size)))
        batch_size = min(batch_size, len(images))  # fewer images than a batch: one smaller batch (ART refuses a larger one)
        super().__init__(images, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                         drop_last=len(images) > batch_size,  # a batch of one breaks BatchNorm
                         num_workers=workers, persistent_workers=workers > 0, pin_memory=on_cuda)
        self.device, self.n_classes, self.non_blocking = torch.device(device), n_classes, on_cuda

    def __iter__(self):
        for x, y in tqdm(super().__iter__(), total=len(self), leave=False, file=sys.stderr, disable=None, desc="batches"):
            x = x.to(self.device, non_blocking=self.non_blocking).float().div_(255)
            y = torch.nn.functional.one_hot(y.to(self.device, non_blocking=self.non_blocking), self.n_classes).float()
            yield x, y

    def epoch(self) -> PyTorchDataGenerator:
        """One epoch as ART's trainers take it."""
        return PyTorchDataGenerator(self, len(self.dataset), self.batch_size)

    def random_state(self) -> dict:
        """Where the next epoch's shuffle starts (the augmentation draws are torch's global state on CPU), for `restore`."""
        return {"shuffle": self.generator.get_state()}

    def restore(self, state: dict) -> None:
        self.generator.set_state(state["shuffle"])
