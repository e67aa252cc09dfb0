#!/usr/bin/env bash
# Create benchmarks/.venv-reference: the authors' loader (bioscan-dataset) for benchmarks/open_metadata.py.
#
# bioscan-dataset imports torchvision, which does not import beside the project's torch 2.13.0, so it
# lives in its own virtual environment. The pinned torch/torchvision wheels are on this machine's disk.
# Usage: bash benchmarks/setup_reference_env.sh   then   --reference-python benchmarks/.venv-reference/bin/python
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv-reference
.venv-reference/bin/pip install -q --upgrade pip
.venv-reference/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1" bioscan-dataset
.venv-reference/bin/python -c "import bioscan_dataset; print('bioscan-dataset', bioscan_dataset.__version__)"
