#!/usr/bin/env bash
# The one prepared GPU check of issue 12 (see benchmarks/gpu_check.py): 8-4-4 pretraining throughput (bf16,
# SDPA), paper-size CLIBD alignment steps/s, embedding throughput and a short Task I run on synthetic data,
# printed with the device name. Under 8 minutes on one H100/H200-class GPU.
#   bash benchmarks/gpu_check.sh [--out DIR]      # the GPU check
#   bash benchmarks/gpu_check.sh --smoke          # tiny sizes on the CPU
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
