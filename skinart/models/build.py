"""What is built from a checkpoint: its network with the saved weights (timm's `create_model` and safetensors, or an
imported model's own file), verified against the recorded sha256 first. Never unpickles."""

from __future__ import annotations

from safetensors.torch import load_model
from torch import nn

from skinart.errors import SkinartError
from skinart.models.checkpoint import Checkpoint
from skinart.models.foreign import stored_network
from skinart.models.networks import create_model


def network(checkpoint: Checkpoint) -> nn.Module:
    """The checkpoint's network with its saved weights, verified against the recorded sha256."""
    checkpoint.verify_weights()  # again: the file may have changed since `load`
    weights, meta = checkpoint.weights_path, checkpoint.meta
    if meta.imported:  # its outputs in this checkpoint's class order
        return stored_network(weights, meta.imported, model=meta.model, classes=meta.classes, img_size=meta.img_size)
    net = create_model(meta.model, num_classes=len(meta.classes))
    try:
        load_model(net, str(weights))
    except Exception as e:
        raise SkinartError(f"{weights} does not fit model {meta.model} ({str(e).splitlines()[0]}); "
                           "write the checkpoint again") from e
    return net
