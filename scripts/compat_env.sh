#!/usr/bin/env bash
# Build the side environment in which bioscan5m's BIOSCAN5M is compared item by item with the authors'
# bioscan_dataset.BIOSCAN5M (tests/test_datasets_compat.py, scripts/compare_bioscan_dataset.py).
#
# bioscan-dataset needs torchvision, and no torchvision imports beside the main environment's torch, so it
# lives in its own venv with a matching torch/torchvision pair. bioscan5m itself is not installed there: the
# comparison runs it from src/ (PYTHONPATH), so only the data layer's few dependencies are added.
#
#   bash scripts/compat_env.sh [VENV]          # default VENV: benchmarks/.venv-compat (git-ignored)
#   BIOSCAN5M_COMPAT_PYTHON=VENV/bin/python python -m pytest tests/test_datasets_compat.py
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-benchmarks/.venv-compat}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import bioscan_dataset, torchvision, pyarrow" 2>/dev/null; then
  echo "compat env ready: $venv"
  exit 0
fi
start=$(date +%s)
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
# The pair named together so that pip takes this torchvision's torch, not another one.
"$venv/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1"
"$venv/bin/pip" install -q "bioscan-dataset==1.3.0" "pyarrow>=16" "tqdm>=4.60"
"$venv/bin/python" -c "import bioscan_dataset, torch, torchvision, pandas; print('compat env:', 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'pandas', pandas.__version__)"
echo "compat env built in $(( $(date +%s) - start )) s: $venv"
