"""CLIBD on synthetic BIOSCAN data: retrieval before and after a short alignment run, and training speed.

Writes a synthetic BIOSCAN-5M folder (metadata + image zip), evaluates an untrained model (image→DNA
should be at chance), aligns it for ``--steps`` steps through the project's engine, evaluates again,
and prints top-1 accuracies next to chance, then the throughput of a training step.

    python benchmarks/align_synthetic.py                       # tiny model, 2 CPU cores, a few minutes
    python benchmarks/align_synthetic.py --device cuda --precision bf16 --model vit-b16-844-bertsmall \\
        --records 20000 --steps 2000 --batch-size 256 --workers 8 [--no-pretrained]

Numbers go to stdout as Markdown, and ``retrieval_before/``, ``retrieval_after/`` reports and the
model are kept in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bioscan5m.data.records import load_records
from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.models.multimodal import create_multimodal_model
from bioscan5m.report.retrieval import write_retrieval_report
from bioscan5m.tasks.retrieve import (
    KEY_SPLITS,
    QUERY_SPLITS,
    RETRIEVAL_RANKS,
    evaluate_retrieval,
    paper_table,
)
from bioscan5m.train.contrastive_step import (
    AlignmentCollate,
    AlignStep,
    align,
    alignment_dataset,
    taxonomy_names,
)
from bioscan5m.train.distributed import DistInfo
from bioscan5m.train.engine import StepContext, TrainConfig

SHOWN = ("image→dna", "dna→dna", "image→image", "image→text")


def chance(root: Path) -> dict[tuple[str, str], tuple[float, float]]:
    """(query set, rank) → (micro, macro) top-1 accuracy of a key drawn at random."""
    keys = load_records(root, split=KEY_SPLITS)
    out = {}
    for query_set, split in QUERY_SPLITS.items():
        queries = load_records(root, split=split)
        for rank in RETRIEVAL_RANKS:
            key_labels, query_labels = keys.labels(rank), queries.labels(rank)
            query_labels = query_labels[query_labels >= 0]
            if not len(query_labels):
                continue
            share = np.bincount(key_labels[key_labels >= 0], minlength=len(keys.label_map(rank))) / len(key_labels)
            out[query_set, rank] = (float(share[query_labels].mean()), float(share[np.unique(query_labels)].mean()))
    return out


def step_throughput(model, root: Path, batch_size: int, steps: int, device: str, precision: str) -> float:
    """Samples per second of forward + backward + AdamW on a fixed batch (data loading excluded)."""
    dataset = alignment_dataset(root, model)
    collate = AlignmentCollate.for_model(model)
    batch = collate([dataset[i] for i in range(batch_size)])
    step = AlignStep(model.config.image_size, model.config.image_mean, model.config.image_std)
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    ctx = StepContext(0, 0, 0, np.arange(batch_size), torch.device(device), DistInfo(), 0)
    timings = []
    for i in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = step(model, batch, ctx)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 2:
            timings.append(time.perf_counter() - start)
    return batch_size / float(np.median(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--freeze", default="", help="comma-separated encoders to keep fixed, e.g. dna")
    parser.add_argument("--lora", default="", help="comma-separated encoders to tune through LoRA")
    parser.add_argument("--no-pretrained", action="store_true", help="random image/text weights (no download)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--throughput-steps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="keep data, model and reports here")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="align_synthetic_"))
    started = time.perf_counter()
    root = write_synthetic_dataset(out / "data", args.records, images=True, seed=args.seed)
    print(f"synthetic dataset: {args.records} records in {time.perf_counter() - started:.0f} s ({root})")
    torch.manual_seed(args.seed)
    options = {"freeze": tuple(filter(None, args.freeze.split(","))), "lora": tuple(filter(None, args.lora.split(",")))}
    if args.no_pretrained:
        options.update(pretrained_image=False, pretrained_text=False)
    model = create_multimodal_model(args.model, text_vocabulary=taxonomy_names(root), **options)[0].to(args.device)

    results = {}
    for stage in ("before", "after"):
        if stage == "after":
            config = TrainConfig(out_dir=out / "model", steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                 schedule="cosine", device=args.device, precision=args.precision, seed=args.seed,
                                 num_workers=args.workers)
            started = time.perf_counter()
            model, result = align(root, config, model=model)
            print(f"aligned {args.steps} steps x {args.batch_size} in {time.perf_counter() - started:.0f} s: "
                  f"loss {result.history[0]['loss']:.3f} -> {result.loss:.3f}, "
                  f"{result.samples_per_second:.1f} samples/s end to end ({result.device}, {result.precision})")
        started = time.perf_counter()
        long = evaluate_retrieval(model, root, num_workers=args.workers, batch_size=128)
        write_retrieval_report(long, paper_table(long), out / f"retrieval_{stage}")
        print(f"evaluated {stage} alignment in {time.perf_counter() - started:.0f} s")
        results[stage] = long

    random_hit = chance(root)
    print("\nTop-1 accuracy (%), micro / macro; chance = a random key")
    print("| direction | queries | rank | chance | before | after |")
    print("|---|---|---|---|---|---|")
    for direction in SHOWN:
        for query_set in QUERY_SPLITS:
            for rank in RETRIEVAL_RANKS:
                cells = []
                for stage in ("before", "after"):
                    long = results[stage]
                    row = long[(long["direction"] == direction) & (long["queries"] == query_set)
                               & (long["rank"] == rank) & (long["k"] == 1)]
                    cells.append("–" if row.empty else f"{100 * row['micro'].iloc[0]:.1f} / {100 * row['macro'].iloc[0]:.1f}")
                if (query_set, rank) not in random_hit or cells == ["–", "–"]:
                    continue
                micro, macro = random_hit[query_set, rank]
                print(f"| {direction} | {query_set} | {rank} | {100 * micro:.1f} / {100 * macro:.1f} | "
                      f"{cells[0]} | {cells[1]} |")

    throughput = step_throughput(model, root, args.batch_size, args.throughput_steps, args.device, args.precision)
    print(f"\ntraining step ({args.model}, batch {args.batch_size}, {args.device}, {args.precision}, "
          f"{torch.get_num_threads()} threads): {throughput:.1f} samples/s")
    (out / "benchmark.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                    "step_samples_per_s": throughput}, indent=2))


if __name__ == "__main__":
    main()
