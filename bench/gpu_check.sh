#!/usr/bin/env bash
# GPU check of the batch scorer (optimizer.scoring), for a CUDA machine with CuPy.
#
#   bash bench/gpu_check.sh     # from anywhere; about 2-3 minutes, at most 4.5 (step limits)
#
# Installs nothing and needs no network: it uses the machine's python3 with NumPy, CuPy and
# pytest, and the repository through PYTHONPATH (no pip install; OR-Tools, HiGHS, gRPC and
# pandas are not needed on this path). The installed import names are gridshift.optimizer,
# gridshift.forecasting, ... (setup.py maps the repository's folders under gridshift), so the
# script builds that layout as symbolic links in a temporary folder and runs Python with -P
# (the current folder's own gridshift/ must not shadow it). Steps, each under its own time limit:
#   1. nvidia-smi summary and versions;
#   2. the GPU tests (CuPy equals NumPy within 1e-9 relative) and the CPU scorer tests;
#   3. bench/scoring.py --device gpu (job-evaluations/s and % of peak memory bandwidth);
#   4. bench/scoring.py --device cpu, the NumPy figures and the per-job loop on this machine.
# Exit status: non-zero when a step failed (the later steps still run).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
PYTHON=("${PYTHON:-python3}" -P)
OVERLAY="$(mktemp -d)"
trap 'rm -rf "$OVERLAY"' EXIT
mkdir "$OVERLAY/gridshift"
for entry in "$ROOT"/gridshift/*; do ln -s "$entry" "$OVERLAY/gridshift/"; done
for folder in optimizer forecasting adapters; do ln -s "$ROOT/$folder" "$OVERLAY/gridshift/$folder"; done
export PYTHONPATH="$OVERLAY${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset GRIDSHIFT_DEVICE
status=0

step() {  # step TITLE SECONDS COMMAND...
    local title="$1" limit="$2"
    shift 2
    echo
    echo "=== $title"
    local began=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "--- $title: exit $rc after $((SECONDS - began)) s"
    [ "$rc" -eq 0 ] || status=1
}

echo "=== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv \
    || { echo "nvidia-smi failed: no usable NVIDIA GPU"; status=1; }
"${PYTHON[@]}" - <<'EOF' || status=1
import sys

import numpy

print(f"python {sys.version.split()[0]}, numpy {numpy.__version__}")
try:
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    print(f"cupy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
          f"device 0: {props['name'].decode()}")
except Exception as exc:  # report and let the tests say the rest
    print(f"cupy unusable: {type(exc).__name__}: {exc}")
EOF

# Warnings are shown rather than raised here (pyproject turns them into errors): a deprecation
# in a library version of this machine should not hide the GPU figures. They are listed in
# pytest's warnings summary.
PYTEST=("${PYTHON[@]}" -m pytest -q -p no:cacheprovider -W default)
step "GPU tests (CuPy == NumPy)" 60 \
    "${PYTEST[@]}" -m gpu tests/test_scoring_gpu.py tests/test_scoring.py
step "CPU scorer tests" 40 "${PYTEST[@]}" tests/test_scoring.py
step "GPU benchmark, default chunks (256 MiB)" 70 \
    "${PYTHON[@]}" bench/scoring.py --device gpu --sizes 1000,10000,100000 --scenarios 1,32
step "GPU benchmark, 4 GiB chunks" 40 \
    "${PYTHON[@]}" bench/scoring.py --device gpu --sizes 100000 --scenarios 1,32 --max-chunk-mib 4096
step "CPU benchmark (NumPy vs per-job loop)" 60 \
    "${PYTHON[@]}" bench/scoring.py --device cpu --sizes 1000,10000,100000 --scenarios 1,32 \
    --repeat 2 --max-seconds 15

echo
echo "=== gpu_check: $([ "$status" -eq 0 ] && echo OK || echo FAILED) after $SECONDS s"
exit "$status"
