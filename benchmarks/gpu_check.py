"""One prepared GPU check (issue 12): the figures to record in BENCHMARKS.md whenever a GPU is at hand.

Four parts, each printed as Markdown with the device name (``torch.cuda.get_device_name``):

1. BarcodeBERT 8-4-4 MLM pretraining throughput through the engine (bf16, SDPA attention), on real
   barcodes when ../shared/data is there (``pretrain_throughput.barcodes``);
2. CLIBD alignment training steps/s at the paper's size (ViT-B/16 + 8-4-4 + BERT-small, random weights:
   no download) on a synthetic BIOSCAN-5M with images (``align_synthetic.step_throughput``);
3. embedding throughput of 8-4-4 (``BarcodeBERT.embed``, fp32 and bf16);
4. a short Task I run (``benchmark dna --protocol paper``) on a synthetic BIOSCAN-5M with a random 8-4-4.

    bash benchmarks/gpu_check.sh                 # on one H100/H200-class GPU: under 8 minutes
    bash benchmarks/gpu_check.sh --smoke         # tiny sizes on the CPU, to check that it runs

``--out DIR`` keeps the data, the Task I outputs and ``gpu_check.json`` (every figure).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts

from align_synthetic import step_throughput
from pretrain_throughput import barcodes

from bioscan5m.data.synthetic import write_synthetic_dataset
from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.models.multimodal import create_multimodal_model
from bioscan5m.models.registry import create_dna_model
from bioscan5m.tasks.dna_benchmark import run_dna_benchmark
from bioscan5m.train.contrastive_step import taxonomy_names
from bioscan5m.train.engine import TrainConfig
from bioscan5m.train.pretrain import pretrain

#: Sizes of the full check (one H100/H200-class GPU) and of the CPU smoke run.
SIZES = {
    "full": {"dna_model": "8-4-4", "clibd_model": "vit-b16-844-bertsmall", "pretrain_batch": 256,
             "pretrain_steps": 60, "warmup": 10, "align_batch": 256, "align_steps": 10, "align_records": 1200,
             "embed_barcodes": 50_000, "embed_batch": 1024, "task1_records": 4000, "task1_epochs": 35.0,
             "task1_steps": None},
    "smoke": {"dna_model": "4-2-2-tiny", "clibd_model": "tiny", "pretrain_batch": 8, "pretrain_steps": 4,
              "warmup": 1, "align_batch": 4, "align_steps": 1, "align_records": 300, "embed_barcodes": 64,
              "embed_batch": 32, "task1_records": 4000, "task1_epochs": 1.0, "task1_steps": 2},
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def pretraining(sizes: dict, device: torch.device, precision: str, out: Path) -> dict:
    data, origin = barcodes(sizes["pretrain_batch"] * (sizes["pretrain_steps"] + 1))
    torch.manual_seed(0)
    model = create_dna_model(sizes["dna_model"])
    config = TrainConfig(out / "pretrain", steps=sizes["pretrain_steps"], batch_size=sizes["pretrain_batch"],
                         precision=precision, device=str(device), log_every=1, lr=1e-4)
    result = pretrain(model, data, config)
    timed = result.history[sizes["warmup"]:] or result.history
    seconds = sum(row["seconds"] for row in timed)
    return {"model": sizes["dna_model"], "attention": model.config._attn_implementation, "data": origin,
            "precision": result.precision, "batch": sizes["pretrain_batch"],
            "tokens_per_s": sum(row["tokens"] for row in timed) / seconds,
            "samples_per_s": sum(row["samples"] for row in timed) / seconds,
            "ms_per_step": 1000 * seconds / len(timed), "peak_memory_mb": result.peak_memory_mb}


def alignment(sizes: dict, device: torch.device, precision: str, out: Path) -> dict:
    root = write_synthetic_dataset(out / "clibd_data", sizes["align_records"], images=True, seed=0)
    torch.manual_seed(0)
    model = create_multimodal_model(sizes["clibd_model"], text_vocabulary=taxonomy_names(root),
                                    pretrained_image=False, pretrained_text=False)[0]
    samples = step_throughput(model, root, sizes["align_batch"], sizes["align_steps"], str(device), precision)
    return {"model": sizes["clibd_model"], "precision": precision, "batch": sizes["align_batch"],
            "samples_per_s": samples, "steps_per_s": samples / sizes["align_batch"]}


def embedding(sizes: dict, device: torch.device) -> dict:
    data, _ = barcodes(sizes["embed_barcodes"])
    torch.manual_seed(0)
    model = create_dna_model(sizes["dna_model"]).to(device)
    figures = {"model": sizes["dna_model"], "barcodes": len(data), "batch": sizes["embed_batch"]}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model.to(dtype)
        embed_barcodes(model, data[: sizes["embed_batch"]], batch_size=sizes["embed_batch"], progress=False)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        vectors = embed_barcodes(model, data, batch_size=sizes["embed_batch"], progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        figures[f"{label}_barcodes_per_s"] = len(data) / (time.perf_counter() - started)
        assert np.isfinite(vectors).all()
    return figures


def task_one(sizes: dict, device: torch.device, out: Path) -> dict:
    root = write_synthetic_dataset(out / "task1_data", sizes["task1_records"], images=False, seed=1)
    torch.manual_seed(0)
    model_dir = create_dna_model(sizes["dna_model"]).save_pretrained(out / "task1_model")
    started = time.perf_counter()
    result = run_dna_benchmark(root, model_dir, out / "task1", model_name=f"{sizes['dna_model']} (random)",
                               baselines=("kmer-profile-5",), blast=None if sizes["task1_steps"] is None else False,
                               epochs=sizes["task1_epochs"], steps=sizes["task1_steps"], device=str(device))
    ours = result.table[result.table["source"] == "this run"]
    return {"seconds": time.perf_counter() - started, "protocol": result.protocol["protocol"],
            "deviations": result.protocol["deviations"], "splits": result.protocol["splits"],
            "rows": json.loads(ours.to_json(orient="records"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks that it runs)")
    parser.add_argument("--device", default=None, help="default: cuda for the full check, cpu with --smoke")
    parser.add_argument("--out", type=Path, default=None, help="keep data, outputs and gpu_check.json here")
    args = parser.parse_args()
    sizes = SIZES["smoke" if args.smoke else "full"]
    device = torch.device(args.device or ("cpu" if args.smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run with --smoke for the CPU check")
    precision = "bf16" if device.type == "cuda" else "fp32"
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    name = device_name(device)
    print(f"# gpu_check on {name} (torch {torch.__version__}{', smoke sizes' if args.smoke else ''})\n")
    figures: dict = {"device": name, "torch": torch.__version__, "smoke": args.smoke}
    started = time.perf_counter()

    pre = figures["pretraining"] = pretraining(sizes, device, precision, out)
    print("| pretraining | attention | precision | batch | tokens/s | samples/s | ms/step | peak memory | device |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {pre['model']} MLM | {pre['attention']} | {pre['precision']} | {pre['batch']} | "
          f"{pre['tokens_per_s']:,.0f} | {pre['samples_per_s']:,.1f} | {pre['ms_per_step']:,.1f} | "
          f"{pre['peak_memory_mb']:,.0f} MiB | {name} |\n")

    align = figures["alignment"] = alignment(sizes, device, precision, out)
    emb = figures["embedding"] = embedding(sizes, device)
    print("| CLIBD alignment | precision | batch | steps/s | samples/s | device |")
    print("|---|---|---|---|---|---|")
    print(f"| {align['model']} | {align['precision']} | {align['batch']} | {align['steps_per_s']:.2f} | "
          f"{align['samples_per_s']:,.1f} | {name} |\n")
    print("| embedding | barcodes | batch | fp32 barcodes/s | bf16 barcodes/s | device |")
    print("|---|---|---|---|---|---|")
    print(f"| {emb['model']} | {emb['barcodes']:,} | {emb['batch']} | {emb['fp32_barcodes_per_s']:,.0f} | "
          f"{emb['bf16_barcodes_per_s']:,.0f} | {name} |\n")

    task = figures["task1"] = task_one(sizes, device, out)
    said = "; ".join(task["deviations"]) or "none"
    print(f"Task I on synthetic data ({task['protocol']} protocol; deviations: {said}), {task['seconds']:.0f} s "
          f"on {name}; records used: "
          + ", ".join(f"{split} {c['records_used']}/{c['records']}" for split, c in task["splits"].items()))
    print("| model | fine-tuned species acc. | linear probe | 1-NN genus (unseen) |")
    print("|---|---|---|---|")
    for row in task["rows"]:
        cells = [row.get(c) for c in ("fine-tuned species acc.", "linear probe", "1-NN genus (unseen)")]
        print(f"| {row['model']} | " + " | ".join("–" if c is None else f"{c:.2f}" for c in cells) + " |")
    figures["seconds"] = time.perf_counter() - started
    (out / "gpu_check.json").write_text(json.dumps(figures, indent=2))
    print(f"\nall parts in {figures['seconds']:.0f} s; figures in {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
