"""The one place the server calls the project's tasks: identification, CLIBD retrieval, k-mer embeddings and
their reduction, the demo's building steps. Everything else in :mod:`bioscan5m.serve` goes through here, so a
change of those functions' signatures is adapted in this module alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioscan5m.data.schema import TAXONOMIC_RANKS

#: The ranks the pages show (the map colours by any of them): the dataset's.
RANKS: tuple[str, ...] = TAXONOMIC_RANKS
#: The records of a dataset root that serve as reference and as retrieval keys (the retrieval benchmark's).
KEY_SPLITS = "train+key_unseen"
#: The encoder of the map: k-mer profiles need no model, so every reference gets a map.
MAP_ENCODER = "kmer-profile-5"
#: UMAP for looking at rather than clustering: fewer neighbours and some room between points (the clustering
#: protocol's min_dist 0 packs each species into a dot).
MAP_UMAP = {"n_neighbors": 15, "min_dist": 0.25}


# -- records --------------------------------------------------------------------------------------------------
def load_reference(source: str | os.PathLike[str], taxonomy: str | os.PathLike[str] | None = None,
                   split: str | None = None) -> Any:
    """The reference's :class:`~bioscan5m.data.records.Records` (any source ``identify --reference`` reads)."""
    from bioscan5m.data.records import load_records

    return load_records(source, taxonomy=taxonomy, split=split) if taxonomy else load_records(source, split=split)


def read_upload_records(path: Path) -> pd.DataFrame:
    """``processid`` and raw ``dna_barcode`` of an uploaded FASTA/FASTQ file, read as the CLI reads queries."""
    from bioscan5m.data.records import load_records

    frame = load_records(path, use_cache=False).to_pandas()  # an upload never enters the record cache
    return frame[["processid", "dna_barcode"]]


def taxonomy_table(records: Any) -> pd.DataFrame:
    """``processid`` and the names at each rank the records have (None where missing)."""
    columns = {"processid": records.ids}
    for rank in RANKS:
        # a reference may lack a rank (a FASTA with a partial taxonomy)
        present = rank in records.table.column_names
        columns[rank] = records.column(rank) if present else np.full(len(records), None, dtype=object)
    return pd.DataFrame(columns)


# -- identification -------------------------------------------------------------------------------------------
def fit_identifier(reference: Any, options: dict[str, Any], cache_dir: str | os.PathLike[str] | None) -> Any:
    """A fitted :class:`~bioscan5m.tasks.identify.BarcodeIdentifier` (its index cached as the CLI's is)."""
    from bioscan5m.tasks.identify import BarcodeIdentifier

    return BarcodeIdentifier(**{"progress": False, "cache_dir": cache_dir, **options}).fit(reference)


def predict(identifier: Any, queries: pd.DataFrame, hits: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions (``identify``'s columns) and the ``hits`` best reference hits of each query."""
    return identifier.predict_with_hits(queries, hits)


def tsv_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The predictions as ``bioscan5m identify`` writes them to its TSV (rounded; novel_species true/false)."""
    from bioscan5m.tasks.identify.identifier import as_written

    return as_written(predictions)


# -- CLIBD retrieval ------------------------------------------------------------------------------------------
def load_clibd(folder: str | os.PathLike[str], device: str) -> Any:
    """The CLIBD model saved by ``bioscan5m align`` in ``folder``."""
    from bioscan5m.models.multimodal import load_multimodal_model

    return load_multimodal_model(folder, device=device).model


def model_modalities(model: Any) -> tuple[str, ...]:
    return tuple(m for m in ("image", "dna") if m in model.modalities)


def photo_neighbours(model: Any, root: str | os.PathLike[str], photos: Sequence[Path], key_modality: str,
                     k: int, cache_dir: str | os.PathLike[str] | None) -> pd.DataFrame:
    """``bioscan5m retrieve --query-image``: the ``k`` nearest ``key_modality`` keys of each photo (one row per
    photo and neighbour: query, neighbour, processid, similarity, order…species). Key embeddings are kept in
    the embeddings cache, so only the first call embeds the references."""
    from bioscan5m.embeddings.store import store_folder
    from bioscan5m.tasks.retrieve import identify

    return identify(model, root, images=list(photos), key_modality=key_modality, k=k,
                    embeddings_cache=store_folder(cache_dir))


def image_store(root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None) -> Any:
    """The ``cropped_256`` images of a dataset root (read by record id, from zips or the extracted folder)."""
    from bioscan5m.data.images import ImageStore

    return ImageStore.open(root, "cropped_256", cache_dir=cache_dir)


# -- the map --------------------------------------------------------------------------------------------------
def map_vectors(barcodes: Sequence[str]) -> np.ndarray:
    """The reference's k-mer profile embeddings (the ``embed --encoder kmer-profile-5`` vectors)."""
    from bioscan5m.embeddings.encoders import create_encoder
    from bioscan5m.embeddings.loop import embed_items

    return embed_items(create_encoder(MAP_ENCODER), list(barcodes), progress=False)


def reduce_to_2d(vectors: np.ndarray, reducer: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates by the project's reduction (PCA to 50 first, so UMAP stays quick at 100k points)."""
    from bioscan5m.tasks.cluster import reduce_embeddings

    if reducer == "umap" and vectors.shape[1] > 50 and len(vectors) > 52:
        vectors = reduce_embeddings(vectors, "pca", n_components=50, seed=seed)
    options = MAP_UMAP if reducer == "umap" else {}
    return reduce_embeddings(vectors, reducer, n_components=2, seed=seed, **options)


# -- the embedded default -------------------------------------------------------------------------------------
def build_demo_dataset(folder: Path, records: int, seed: int) -> Path:
    """The demo's synthetic dataset in ``folder/data`` (``bioscan5m demo --parts data``), made once."""
    from bioscan5m.demo import DemoSettings, run_demo

    run_demo(folder, parts=("data",), settings=DemoSettings(records=records, seed=seed))
    return folder / "data"


def train_clibd(root: Path, out: Path, steps: int, seed: int, device: str) -> None:
    """A tiny CLIBD model aligned on ``root`` (``bioscan5m align --model tiny``), saved to ``out``; resumes."""
    from bioscan5m.train.contrastive_step import align
    from bioscan5m.train.engine import TrainConfig

    config = TrainConfig(out_dir=out, steps=steps, batch_size=32, lr=1e-3, schedule="cosine", device=device,
                         seed=seed, save_every=max(1, steps // 4), resume=(out / "checkpoints").is_dir())
    align(root, config, model="tiny")
