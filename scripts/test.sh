#!/usr/bin/env bash
# Install bioscan5m with its test dependencies into .venv and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# torch 2.13.0 is a CPU wheel on this machine's disk; naming it first keeps pip from pulling a CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[test,lora]"
python -m pytest -q -n 2 "$@"
