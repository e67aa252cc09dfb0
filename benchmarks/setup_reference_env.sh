#!/usr/bin/env bash
# Create benchmarks/.venv-reference: the authors' loader (bioscan-dataset 1.3.0), for benchmarks/open_metadata.py
# and for the item-by-item comparison of BIOSCAN5M with it (tests/data/test_datasets_compat.py runs
# scripts/compare_bioscan_dataset.py there).
#
# bioscan-dataset imports torchvision, which does not import beside the project's torch 2.13.0, so it
# lives in its own virtual environment. The pinned torch/torchvision wheels are on this machine's disk.
# bioscan5m is not installed there: the comparison imports it from src/, so only the data layer's pyarrow
# and tqdm are added. Nothing is done when the environment is already complete (building it: about 3 min,
# 5.7 GB). Usage: bash benchmarks/setup_reference_env.sh   then
#   --reference-python benchmarks/.venv-reference/bin/python   (open_metadata.py)
#   BIOSCAN5M_COMPAT_PYTHON=benchmarks/.venv-reference/bin/python   (tests/data/test_datasets_compat.py)
set -euo pipefail
cd "$(dirname "$0")"
if .venv-reference/bin/python -c "import bioscan_dataset, torchvision, pyarrow, tqdm" 2>/dev/null; then
  echo "benchmarks/.venv-reference is ready"
  exit 0
fi
python3 -m venv .venv-reference
.venv-reference/bin/python -m pip install -q --upgrade pip
.venv-reference/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" "bioscan-dataset==1.3.0" \
  "pyarrow>=16" "tqdm>=4.60"
.venv-reference/bin/python -c "import bioscan_dataset; print('bioscan-dataset', bioscan_dataset.__version__)"
