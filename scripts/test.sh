#!/usr/bin/env bash
# Install bioscan5m with its test dependencies into .venv and run the test suite.
# The installs run once per checkout (again when pyproject.toml changes); arguments go to pytest,
# e.g. `bash scripts/test.sh tests/data/test_readers.py -k v5`.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-from-pyproject.sha256
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# torch 2.13.0 is a CPU wheel on this machine's disk; naming it first keeps pip from pulling a CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[test,lora]"
echo "$wanted" > "$stamp"
fi
. .venv/bin/activate
python -m pytest -q -n 2 "$@"
