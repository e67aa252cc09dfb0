"""Naming new barcodes with a fine-tuned classifier: the ``bioscan5m classify`` command.

Each query barcode is cleaned as in training (:func:`bioscan5m.data.sequences.clean_barcodes`), run
through the classifier (``BarcodeClassifier``: BarcodeBERT, mean pooling, linear layer), and gets its
``top_k`` most probable classes with their softmax probabilities.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.embeddings.loop import resolve_device
from bioscan5m.errors import BioscanError
from bioscan5m.models.classifier import BarcodeClassifier
from bioscan5m.tasks.probes import write_tsv


def top_k_table(classifier: BarcodeClassifier, ids, sequences, *, top_k: int = 5, batch_size: int = 256,
                device: str | torch.device | None = None, progress: bool | None = None) -> pd.DataFrame:
    """One row per barcode: ``id``, then ``label_1, prob_1, ..., label_K, prob_K`` (best first;
    probabilities in [0, 1]; K = min(top_k, classes)). ``sequences`` are cleaned barcodes."""
    logits = embed_barcodes(classifier, list(sequences), batch_size=batch_size, device=device, progress=progress)
    classes, probabilities = classifier.top_k(logits, top_k)
    names = np.array(classifier.class_names, dtype=object)
    table = {"id": list(ids)}
    for column in range(classes.shape[1]):
        table[f"label_{column + 1}"] = names[classes[:, column]]
        table[f"prob_{column + 1}"] = np.round(probabilities[:, column].astype(np.float64), 6)
    return pd.DataFrame(table)


def classify_barcodes(model: str | os.PathLike[str], queries: str | os.PathLike[str], out: str | os.PathLike[str],
                      *, top_k: int = 5, batch_size: int = 256, device: str = "auto",
                      progress: bool | None = None) -> pd.DataFrame:
    """Classify every barcode of ``queries`` (FASTA, plain or gzipped, or any table ``load_records`` reads)
    with the fine-tuned classifier in folder ``model`` and write :func:`top_k_table` to ``out`` (TSV,
    atomically). Returns the table. A folder that is not a fine-tuned classifier raises BioscanError."""
    from bioscan5m.data.records import load_records

    if top_k < 1:
        raise BioscanError(f"--top-k must be at least 1, got {top_k}", value=top_k)
    if batch_size < 1:
        raise BioscanError(f"--batch-size must be at least 1, got {batch_size}", value=batch_size)
    if not Path(model).is_dir():
        raise BioscanError("no such model folder", path=model)
    classifier = BarcodeClassifier.from_pretrained(model)
    # The queries are read once: no Parquet cache is written for them.
    records = load_records(queries, use_cache=False)
    device = resolve_device(device)
    table = top_k_table(classifier, records.ids, records.barcodes(clean=True), top_k=top_k,
                        batch_size=batch_size, device=device, progress=progress)
    write_tsv(table, out)
    return table
