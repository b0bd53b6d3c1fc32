"""How long `skinart` takes to answer what needs no model (issue 37): --help, a missing option, and refusals of option
values checked against the method tables, each the median of several runs of a fresh process, beside the time
`python -c "import torch"` alone takes in the same run (the floor a refusal that loaded torch could not go under).
Every refusal must exit 2; the figures print one a line, with the load average of the machine.

    python benchmarks/startup.py [--runs 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SKINART = [str(Path(sys.executable).with_name("skinart"))]  # the installed entry point, as a user runs it
# name -> (command line after `skinart`, the exit code it must give)
CASES = {
    "--help": (["--help"], 0),
    "missing option": (["attack", "--checkpoint", "{tmp}/x", "--out", "{tmp}/y"], 2),
    "attack --method nope": (["attack", "--method", "nope", "--checkpoint", "{tmp}/x", "--out", "{tmp}/y"], 2),
    "evaluate --attack fgsm --eps 1e999": (["evaluate", "--checkpoint", "{tmp}/x", "--out", "{tmp}/y", "--attack", "fgsm",
                                            "--eps", "1e999"], 2),
    "evaluate --attack fgsm,nope": (["evaluate", "--checkpoint", "{tmp}/x", "--out", "{tmp}/y", "--attack", "fgsm,nope"], 2),
    "evaluate --shift nope": (["evaluate", "--checkpoint", "{tmp}/x", "--out", "{tmp}/y", "--shift", "nope"], 2),
    "defend --method nope": (["defend", "--method", "nope", "--checkpoint", "{tmp}/x", "--out", "{tmp}/y"], 2),
    "defend --method smoothing --window 0": (["defend", "--method", "smoothing", "--window", "0", "--checkpoint", "{tmp}/x",
                                              "--out", "{tmp}/y"], 2),
    "train --lr nan": (["train", "--lr", "nan", "--out", "{tmp}/y"], 2),
    "import --img-size 4": (["import", "--weights", "{tmp}/w.pt2", "--classes", "malignant", "--img-size", "4", "--out",
                             "{tmp}/y"], 2),
}
BASELINE = [sys.executable, "-c", "import torch"]


def timed(command: list[str], code: int) -> float:
    """Seconds `command` takes; a run that does not give `code` stops the benchmark (its time would measure something else)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != code:
        raise RuntimeError(f"exited {done.returncode}, not {code}: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def median(command: list[str], code: int, runs: int) -> str:
    try:
        return f"{statistics.median(timed(command, code) for _ in range(runs)):.2f} s"
    except RuntimeError as e:
        return f"not measured ({e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (the median is printed)")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores), {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "w.pt2").write_bytes(b"not read: the refusal comes first")
        for name, (line, code) in CASES.items():
            command = SKINART + [part.format(tmp=Path(tmp)) for part in line]
            print(f"skinart {name}: {median(command, code, args.runs)}", flush=True)
    print(f'baseline python -c "import torch": {median(BASELINE, 0, args.runs)}')
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
