"""Training and prediction speed of a model in PyTorch's default layout (NCHW) and channels-last, on this CPU.

`models.wrap` puts the weights channels-last on CPU, where oneDNN's NHWC kernels run EfficientNet-Lite's depthwise
convolutions about twice as fast. Both layouts are measured in the same run; each ratio is channels-last ÷ NCHW
(below 1: channels-last is faster).

    python benchmarks/memory_format.py [--model tf_efficientnet_lite0 --img-size 96 --batch-size 64 --steps 3]
"""

import argparse
import time

import torch

from skinart.models.networks import create_model


def seconds_per_batch(name: str, img_size: int, batch_size: int, steps: int, channels_last: bool) -> tuple[float, float]:
    """(one training step, one prediction of 4 batches) in seconds, after a warm-up step."""
    torch.manual_seed(0)
    net = create_model(name, 7)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3)
    x, y = torch.rand(batch_size, 3, img_size, img_size), torch.randint(0, 7, (batch_size,))
    for step in range(steps + 1):
        if step == 1:  # the first step allocates and picks kernels
            start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    train = (time.perf_counter() - start) / steps
    net.eval()
    with torch.no_grad():
        start = time.perf_counter()
        net(torch.rand(4 * batch_size, 3, img_size, img_size))
    return train, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    nchw = seconds_per_batch(args.model, args.img_size, args.batch_size, args.steps, channels_last=False)
    nhwc = seconds_per_batch(args.model, args.img_size, args.batch_size, args.steps, channels_last=True)
    print(f"model                      {args.model} at {args.img_size} px, batch {args.batch_size}, {torch.get_num_threads()} threads")
    print(f"train step NCHW            {nchw[0]:.3f} s")
    print(f"train step channels-last   {nhwc[0]:.3f} s")
    print(f"train ratio                {nhwc[0] / nchw[0]:.2f} (channels-last ÷ NCHW)")
    print(f"predict NCHW               {nchw[1]:.3f} s per {4 * args.batch_size} images")
    print(f"predict channels-last      {nhwc[1]:.3f} s per {4 * args.batch_size} images")
    print(f"predict ratio              {nhwc[1] / nchw[1]:.2f} (channels-last ÷ NCHW)")


if __name__ == "__main__":
    main()
