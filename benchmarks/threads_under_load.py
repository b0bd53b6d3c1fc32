"""Why skinart's attacks slowed 10-20x on a shared 2-core machine (issue 35): the query loop of Square (and APGD's
iterations) runs one small forward pass after another, each split over torch's intra-op threads; when another process
holds a core, every parallel region waits for a thread that is not running, and libgomp's idle threads spin meanwhile.
This times the same loop of forward passes (a checkpoint's network on a few test images, as Square's queries do) with 1
and 2 torch threads, idle and beside a second process training a CNN, and prints each figure on its own line with the
ratios loaded / idle. Run it once as it is and once with OMP_WAIT_POLICY=PASSIVE in the environment to see the spinning's
share.

    python benchmarks/threads_under_load.py --checkpoint CKPT [--images 19 --queries 300]
"""

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import torch

from skinart.attacks.loops import torch_threads
from skinart.data import to_model_input
from skinart.defences.deployed import deployed
from skinart.models.checkpoint import Checkpoint
from skinart.models.provenance import checkpoint_dataset


LOAD = """
import torch
net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3), torch.nn.ReLU(),
                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 7))
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
while True:
    loss = torch.nn.functional.cross_entropy(net(torch.rand(64, 3, 28, 28)), torch.randint(0, 7, (64,)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


@contextmanager
def cpu_load(on: bool):
    """A second process training a small CNN (torch's default threads) while the block runs."""
    if not on:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", LOAD])
    time.sleep(3)  # torch imported, the loop running
    try:
        yield
    finally:
        process.kill()
        process.wait()


def queries_per_second(model, x: torch.Tensor, queries: int) -> float:
    with torch.no_grad():
        model(x)  # warm
        start = time.perf_counter()
        for _ in range(queries):
            model(x)
    return queries / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", type=int, default=19)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    checkpoint = Checkpoint.load(args.checkpoint)
    model = deployed(checkpoint, "cpu").model.eval()
    test = checkpoint_dataset(checkpoint).splits["test"]
    x = torch.from_numpy(to_model_input(test.images[: args.images]))
    print(f"{checkpoint.meta.model} @ {checkpoint.meta.img_size} px, {len(x)} images a query, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load before {os.getloadavg()[0]:.2f}")
    found = {}
    for loaded in (False, True):
        for threads in (1, 2):
            with cpu_load(loaded), torch_threads(threads):
                found[loaded, threads] = queries_per_second(model, x, args.queries)
            print(f"{'loaded' if loaded else 'idle'}, {threads} thread(s): {found[loaded, threads]:.1f} queries/s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    for threads in (1, 2):
        print(f"slowdown under load, {threads} thread(s): {found[False, threads] / found[True, threads]:.2f}x")


if __name__ == "__main__":
    main()
