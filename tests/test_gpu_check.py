"""benchmarks/gpu_check.sh, the prepared GPU check, run at its smoke sizes on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_prints_every_figure_with_the_device(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--smoke", "--out", str(tmp_path)],
                         check=False, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["smoke"] and figures["device"].startswith("CPU")
    assert figures["pretraining"]["attention"] == "sdpa" and figures["pretraining"]["tokens_per_s"] > 0
    assert figures["alignment"]["steps_per_s"] > 0 and figures["embedding"]["bf16_barcodes_per_s"] > 0
    task = figures["task1"]
    assert task["protocol"] == "paper" and [row["model"] for row in task["rows"]] == ["4-2-2-tiny (random)",
                                                                                      "kmer-profile-5"]
    assert task["deviations"] == ["fine-tuning length 2 steps (authors: 35 epochs)"]
    assert task["splits"]["test"]["records_used"] <= task["splits"]["test"]["records"]
    # Every table names the device it ran on.
    assert run.stdout.count(figures["device"]) >= 5
    assert (tmp_path / "task1" / "protocol.json").is_file()
