"""Candidate search on the embeddings of a trained BarcodeBERT (``method="barcodebert:DIR"``).

The same exact inner-product search as :class:`KmerIndex`, on unit-length mean-pooled embeddings from the
``barcodebert:DIR`` encoder of :mod:`bioscan5m.embeddings` (its one factory and inference loop) instead of
PCA-compressed k-mer profiles, so a model made by ``pretrain`` or ``finetune`` names new barcodes through the same
consensus, calibration and output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from bioscan5m.errors import BioscanError
from bioscan5m.tasks.identify.kmer_index import BATCH, KmerIndex, unit_rows

#: Prefix of the identify method that searches a model's embeddings.
BARCODEBERT_PREFIX = "barcodebert:"


def model_directory(method: str) -> Path | None:
    """The model folder of a ``barcodebert:DIR`` method (None for other methods); a BioscanError if it
    holds no model."""
    if not method.startswith(BARCODEBERT_PREFIX):
        return None
    folder = Path(method[len(BARCODEBERT_PREFIX):])
    if not (folder / "config.json").is_file():
        raise BioscanError("no BarcodeBERT model here (expected a folder written by pretrain or finetune, with "
                           "config.json)", path=folder, value=method)
    return folder


class EmbeddingIndex(KmerIndex):
    """Cosine search over BarcodeBERT embeddings of reference barcodes (``build``/``search`` as
    :class:`KmerIndex`)."""

    def __init__(self, model_dir: str | os.PathLike[str], batch_size: int = 256) -> None:
        from bioscan5m.embeddings.encoders import create_encoder

        super().__init__()
        self.model_dir = Path(model_dir)
        self.encoder = create_encoder(f"{BARCODEBERT_PREFIX}{self.model_dir}")
        self.batch_size = batch_size

    def embed(self, sequences: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, float32 ``(len(sequences), hidden)``."""
        from bioscan5m.embeddings.loop import embed_items

        return unit_rows(embed_items(self.encoder, list(sequences), batch_size=self.batch_size, progress=False))

    def build(self, sequences: Sequence[str]) -> EmbeddingIndex:
        """Embed and index all of ``sequences``."""
        self.index = faiss.IndexFlatIP(self.encoder.model.hidden_size)
        for start in range(0, len(sequences), BATCH):
            self.index.add(self.embed(sequences[start:start + BATCH]))
        return self
