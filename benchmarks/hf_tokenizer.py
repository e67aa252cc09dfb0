"""Tokenising raw barcodes: the project's numpy ``KmerTokenizer`` vs the same tokenizer as ``tokenizer.json``.

Both get the 4,278 raw barcodes of BarcodeBERT's unseen set (../shared/data) and must give the same ids and
attention masks (the script stops otherwise). Timed, best of ``--repeats``: ``clean_barcodes`` +
``KmerTokenizer.encode`` (the project), the ``tokenizers`` library's ``Tokenizer.encode_batch`` on the
folder's ``tokenizer.json``, and ``transformers.AutoTokenizer`` with ``padding="max_length"``.

    python benchmarks/hf_tokenizer.py --k 8 --repeats 3

Prints one Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bioscan5m.data.sequences import clean_barcodes
from bioscan5m.models.hf_tokenizer import HF_TOKENIZER_FILE, save_hf_tokenizer
from bioscan5m.models.tokenizer import KmerTokenizer

UNSEEN = Path(__file__).resolve().parents[2] / "shared/data/barcodebert_unseen/unseen_2024-02-29_aab3f82.tsv"


def best_of(repeats: int, run) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = pd.read_csv(UNSEEN, sep="\t")["nucleotides"].tolist()
    kmer = KmerTokenizer(args.k)
    with tempfile.TemporaryDirectory() as folder:
        save_hf_tokenizer(kmer, folder)
        fast = Tokenizer.from_file(os.path.join(folder, HF_TOKENIZER_FILE))
        auto = AutoTokenizer.from_pretrained(folder)
    runs = {
        "bioscan5m clean_barcodes + KmerTokenizer.encode": lambda: kmer.encode(clean_barcodes(raw)),
        "tokenizers Tokenizer.encode_batch (tokenizer.json)": lambda: fast.encode_batch(raw),
        "transformers AutoTokenizer(padding='max_length')": lambda: auto(raw, padding="max_length",
                                                                           return_tensors="np"),
    }
    print(f"| tokenizer (k={args.k}, {len(raw):,} raw barcodes) | seconds | barcodes/s |\n|---|---:|---:|")
    outputs = {}
    for name, run in runs.items():
        seconds, outputs[name] = best_of(args.repeats, run)
        print(f"| {name} | {seconds:.3f} | {len(raw) / seconds:,.0f} |")
    ours, batch, hf = outputs.values()
    assert np.array_equal(hf["input_ids"], ours["input_ids"]), "AutoTokenizer ids differ"
    assert np.array_equal(hf["attention_mask"], ours["attention_mask"]), "AutoTokenizer masks differ"
    assert np.array_equal(np.array([e.ids for e in batch]), ours["input_ids"]), "tokenizers ids differ"


if __name__ == "__main__":
    main()
