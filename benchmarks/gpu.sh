#!/usr/bin/env bash
# The GPU checks, on a machine with a CUDA device (the project installed, data/names.txt there):
# a stacked group on one GPU against its solo runs, and steps replayed from CUDA graphs against
# eager ones (tests/test_gpu.py), then job-steps/s of the deep network's stacked grid at 1, 16
# and 64 jobs: through the driver (its steps captured, `cuda_graphs=true`), the bare core, and
# the core with the training path's graphs; last the driver's eager steps at 64 jobs
# (benchmarks/stacked.py). A few minutes on an H200.
set -euo pipefail
PY=${PY:-python}
STEPS=${STEPS:-2000}
"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.__version__, torch.cuda.get_device_name())'
"$PY" -m pytest -q -o addopts="" -p no:cacheprovider tests/test_gpu.py
"$PY" -m benchmarks.stacked --device cuda --jobs 1 16 64 --steps "$STEPS" --graphs
"$PY" -m benchmarks.stacked --device cuda --jobs 1 64 --steps "$STEPS" --no-core --no-reference \
    --override cuda_graphs=false
