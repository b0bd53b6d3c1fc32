#!/usr/bin/env bash
# The checks that need a GPU, on one CUDA GPU in at most 8 minutes (each part has its own time limit), no downloads:
#   1. the CUDA tests (pytest -m cuda: bf16/fp16 attack gradients, deterministic reruns);
#   2. benchmarks/throughput.py with ResNet50 at 224 px (random weights, synthetic images): training, predict and PGD
#      images per second at fp32, bf16 and fp16, each with its ratio to fp32;
#   3. recipes/thesis-resnet50.yaml shortened (random start, 1 epoch, one flip share, one retraining round) at 224 px
#      on generated HAM10000-layout lesions, bf16 training, and its wall time.
#
#   benchmarks/gpu_check.sh            # from the repository root; PYTHON=.venv/bin/python to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export SKINART_CACHE="$WORK/cache" MPLBACKEND=Agg

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA GPU')"
"$PYTHON" -c "import torch; print('#', torch.cuda.get_device_name(), 'torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version())"

echo "## 1. CUDA tests"
timeout 150 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py

echo "## 2. throughput: resnet50 at 224 px"
timeout 150 "$PYTHON" benchmarks/throughput.py --model resnet50 --img-size 224 --batch-size 64 --images 1024 --epochs 3 \
    --pgd-steps 5 --device cuda --precisions fp32,bf16,fp16

echo "## 3. thesis-resnet50 shortened, 224 px, generated lesions"
"$PYTHON" -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from helpers import write_ham10000; write_ham10000(Path(sys.argv[1]), n=600)" "$WORK/ham"
start=$(date +%s)
SKINART='import sys; from skinart.cli import main; sys.argv[0] = "skinart"; main()'
timeout 180 "$PYTHON" -c "$SKINART" run recipes/thesis-resnet50.yaml --out "$WORK/thesis" \
    --set data.root="$WORK/ham" --set model.pretrained=false \
    --set steps.train.params.epochs=1 --set steps.train.params.precision=bf16 \
    --set 'steps.flip.grid.fraction=[0.30]' --set steps.rt.params.rounds=1 --set steps.uap.params.fit_samples=200
echo "thesis-resnet50 shortened: $(( $(date +%s) - start )) s"
grep -A4 "^| " "$WORK/thesis/report.md" | head -20
