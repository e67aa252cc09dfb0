"""BarcodeBERT pretraining speed and memory: a short MLM run through the project's engine.

Trains ``--steps`` optimizer steps on real barcodes (the BarcodeBERT "unseen" table in ../shared/data
when present, else random 658-nt barcodes of the same length) and reports tokens/s and samples/s
after ``--warmup`` steps, with the peak memory (GPU: torch's peak allocation; CPU: peak RSS of the
process, which includes Python and torch themselves, and how much of it training added).

    python benchmarks/pretrain_throughput.py                                   # 4-2-2-tiny on the CPU
    python benchmarks/pretrain_throughput.py --model 8-4-4 --precision bf16 --device cuda --batch-size 256

Prints one Markdown table row (with the header) to stdout.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from bioscan5m.models.registry import create_dna_model
from bioscan5m.train.engine import TrainConfig, peak_memory_mb
from bioscan5m.train.pretrain import pretrain

REAL_BARCODES = (
    Path(__file__).resolve().parents[2] / "shared/data/barcodebert_unseen/unseen_2024-02-29_aab3f82.tsv"
)


def barcodes(count: int) -> tuple[list[str], str]:
    """``count`` barcodes (real ones repeated if needed) and a word on where they came from."""
    if REAL_BARCODES.is_file():
        import pandas as pd

        real = pd.read_csv(REAL_BARCODES, sep="\t")["nucleotides"].tolist()
        return (real * (count // len(real) + 1))[:count], "real (BarcodeBERT unseen)"
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    rng = np.random.default_rng(0)
    return [letters[rng.integers(0, 4, 658)].tobytes().decode() for _ in range(count)], "random 658 nt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="4-2-2-tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data, origin = barcodes(args.batch_size * (args.steps + 1))
    model = create_dna_model(args.model)
    before = peak_memory_mb(torch.device("cpu"))  # Python, torch, transformers, the data and the model
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            out,
            steps=args.steps,
            batch_size=args.batch_size,
            precision=args.precision,
            device=args.device,
            log_every=1,
            lr=1e-4,
        )
        result = pretrain(model, data, config)
    timed = result.history[args.warmup :]
    seconds = sum(row["seconds"] for row in timed)
    tokens, samples = sum(row["tokens"] for row in timed), sum(row["samples"] for row in timed)
    device = (
        torch.cuda.get_device_name()
        if result.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    params = sum(p.numel() for p in model.parameters()) / 1e6
    first = result.history[0]["loss"]
    print(f"data: {origin}; loss {first:.3f} → {result.loss:.3f} over {result.steps} steps")
    memory = f"{result.peak_memory_mb:,.0f} MiB"
    if not result.device.startswith("cuda"):
        memory += f" (+{result.peak_memory_mb - before:,.0f} MiB in training)"
    print("| model | params | device | precision | batch | tokens/s | samples/s | ms/step | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.model} | {params:.1f}M | {device} | {result.precision} | {args.batch_size} | "
        f"{tokens / seconds:,.0f} | {samples / seconds:,.1f} | {1000 * seconds / len(timed):,.0f} | "
        f"{memory} |"
    )


if __name__ == "__main__":
    main()
