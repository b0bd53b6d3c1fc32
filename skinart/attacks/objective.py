"""What an attack optimises against the binary decision at a checkpoint's stored operating point (`--objective miss`
or `alarm`; the names and what each attacks are `config.OBJECTIVES`). The attacker differentiates `DecisionNet`, the
network's decision at the threshold t as a two-class model, so every ART attack on it (its cross-entropy loss, the
success test that keeps a random restart, AutoAttack's count of images still standing, Square's margin) works on the
decision instead of the class."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from skinart.attacks.config import OBJECTIVES, Objective


class DecisionNet(nn.Module):
    """`net`'s decision at the operating point as logits [0, m] (benign, malignant at t), m = logit p_malignant − logit t
    with p_malignant the sum of the malignant classes' softmax probabilities (DESIGN.md): argmax is malignant exactly when
    p_malignant > t, and cross-entropy on it is softplus(∓m), a margin that keeps its gradient where the softmax saturates
    (log-odds, not p_malignant − t itself: the same sign, the same sign-gradient steps)."""

    def __init__(self, net: nn.Module, malignant_idx: list[int], threshold: float):
        super().__init__()
        self.net, self.num_classes = net, 2
        malignant = torch.zeros(net.num_classes, dtype=torch.bool)
        malignant[malignant_idx] = True
        self.register_buffer("malignant", malignant)
        t = min(max(threshold, 1e-7), 1 - 1e-7)  # a threshold of 0 or 1 has infinite log-odds
        self.offset = math.log(t / (1 - t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x).float()
        margin = logits[:, self.malignant].logsumexp(1) - logits[:, ~self.malignant].logsumexp(1) - self.offset
        return torch.stack([torch.zeros_like(margin), margin], dim=1)


def decision_head(name: str, malignant_idx: list[int], threshold: float | None):
    """What `deployed` puts around the network for objective `name`: None for accuracy (the network as it is)."""
    if OBJECTIVES[name].decision is None:
        return None
    return lambda net: DecisionNet(net, malignant_idx, threshold)


def attacked_images(objective: Objective, labels: np.ndarray, malignant_idx: list[int]) -> np.ndarray | None:
    """Which images an objective attacks (a mask over `labels`): the malignant ones (miss), the benign ones (alarm), or
    None for all of them."""
    if objective.decision is None:
        return None
    return np.isin(labels, malignant_idx) == bool(objective.decision)


def decision_labels(objective: Objective, n: int) -> np.ndarray:
    """One-hot over DecisionNet's two outputs: the decision each attacked image is to be moved away from."""
    return np.eye(2, dtype=np.float32)[np.full(n, objective.decision)]
