"""Task III (CLIBD): taxonomic identification by nearest-neighbour retrieval in an aligned embedding space.

Keys are the ``train`` and ``key_unseen`` records, queries the ``test`` (seen species) and
``test_unseen`` (unseen species) records. Every query takes the labels of its nearest keys by exact
inner product on L2-normalised embeddings (FAISS ``IndexFlatIP``; HNSW or IVF for millions of keys).
A query is correct at top-k for a rank when any of its k nearest keys carries its name at that rank.
Accuracy is reported micro (per query) and macro (mean over the true classes), per rank from order to
species, for image→image, DNA→DNA, image→DNA, DNA→image and image/DNA→text (as in CLIBD, one text key
per key record; ``text_keys="distinct"`` keeps one per distinct sentence instead, so duplicates of one name
no longer fill the top-3/5).

With ``embeddings_cache`` the image and DNA embeddings of each split are kept in the embedding store
(:mod:`bioscan5m.embeddings.clibd`), keyed by the model's weights, the metadata file, the split's records and
the image package, and reused: identifying one new photo against millions of references then costs one
forward pass and a search.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bioscan5m.embeddings.clibd import embed_texts, query_embeddings, split_embedder
from bioscan5m.errors import BioscanError
from bioscan5m.models.text import MISSING_RANK_WORD, TEXT_RANKS, taxonomy_text

if TYPE_CHECKING:
    from bioscan5m.models.multimodal import MultimodalModel

#: Ranks scored in Task III (the paper's order, family, genus, species).
RETRIEVAL_RANKS: tuple[str, ...] = TEXT_RANKS
#: Approximate and exact FAISS indexes that ``build_index`` can make.
INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf")


def build_index(keys: np.ndarray, kind: str = "flat", *, hnsw_neighbors: int = 32, ivf_lists: int | None = None,
                ivf_probe: int = 16):
    """A FAISS inner-product index over ``keys`` (N, D), to search with normalised queries.

    kind: ``flat`` (exact, the paper's choice), ``hnsw`` (graph; fast, approximate, no training) or
    ``ivf`` (inverted lists over ``ivf_lists`` k-means cells, default ≈ 4·√N; ``ivf_probe`` cells are
    visited per query). Approximate kinds are for millions of keys.
    """
    import faiss

    keys = np.ascontiguousarray(keys, dtype=np.float32)
    if keys.ndim != 2 or len(keys) == 0:
        raise BioscanError(f"need a non-empty (keys, dimensions) array of key embeddings, got shape {keys.shape}")
    dim = keys.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_neighbors, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, hnsw_neighbors * 2)
    elif kind == "ivf":
        # FAISS wants at least 39 training keys per cell.
        lists = ivf_lists or max(1, min(len(keys) // 39, int(4 * np.sqrt(len(keys)))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(keys)
        index.nprobe = min(ivf_probe, lists)
    else:
        raise BioscanError(f"unknown index kind {kind!r}; choose from {', '.join(INDEX_KINDS)}", value=kind)
    index.add(keys)
    return index


def nearest_keys(keys: np.ndarray, queries: np.ndarray, k: int = 5, index_kind: str = "flat"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` keys with the largest inner product for each query.

    keys (N, D), queries (Q, D), both L2-normalised float32. Returns ``(similarities (Q, k) float32,
    indices (Q, k) int64)``, best first; fewer than k keys are padded with index -1.
    """
    index = build_index(keys, index_kind)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise BioscanError(f"query embeddings of shape {queries.shape} do not match keys of width {keys.shape[1]}")
    if len(queries) == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    similarities, indices = index.search(queries, k)
    return similarities, indices.astype(np.int64)


def neighbour_labels(key_labels: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """The labels of each query's neighbours, best first: int64 (Q, k); -1 for padding neighbours."""
    key_labels = np.asarray(key_labels)
    return np.where(neighbours >= 0, key_labels[np.clip(neighbours, 0, None)], -1)


def retrieval_accuracy(query_labels: Mapping[str, np.ndarray], key_labels: Mapping[str, np.ndarray],
                       neighbours: np.ndarray, ks: Sequence[int] = (1, 3, 5)) -> list[dict]:
    """Top-k micro and macro accuracy per rank for one query set against one key set.

    query_labels / key_labels: rank → integer codes (Q,) / (N,) from the same LabelMap, -1 missing.
    neighbours: (Q, max k) key indices from :func:`nearest_keys`. A query is right at top-k when any
    of its first k keys has its label; queries without a label at a rank are left out of that rank,
    keys without one never match. Returns rows ``{"rank", "k", "micro", "macro", "n_queries",
    "n_classes"}`` (accuracies in [0, 1], NaN when no query has that rank).
    """
    from bioscan5m.tasks.metrics import labelled_mask, topk_accuracy

    rows = []
    for rank, truth in query_labels.items():
        truth = np.asarray(truth)
        ranked = neighbour_labels(key_labels[rank], neighbours)
        labelled = labelled_mask(truth)
        for k in ks:
            rows.append({
                "rank": rank,
                "k": int(k),
                "micro": topk_accuracy(truth, ranked, k, average="micro"),
                "macro": topk_accuracy(truth, ranked, k, average="macro"),
                "n_queries": int(labelled.sum()),
                "n_classes": len(np.unique(truth[labelled])),
            })
    return rows


# -- embedding ---------------------------------------------------------------------------------------------
#: (query modality, key modality) pairs evaluated, in the paper's order, then the text keys.
DIRECTIONS: tuple[tuple[str, str], ...] = (
    ("image", "image"), ("dna", "dna"), ("image", "dna"), ("dna", "image"), ("image", "text"), ("dna", "text"),
)
#: Keys and the two query sets of the paper.
KEY_SPLITS = "train+key_unseen"
QUERY_SPLITS: dict[str, str] = {"seen": "test", "unseen": "test_unseen"}


def _split_dataset(model: MultimodalModel, eval_transform: Any, root: str | os.PathLike[str], split: str,
                   image_package: str, cache_dir: str | os.PathLike[str] | None, modalities: Sequence[str] = ()):
    from bioscan5m.data.datasets import BIOSCAN5M

    modalities = list(modalities) or [m for m in ("image", "dna") if m in model.modalities]
    return BIOSCAN5M(root, split=split, modality=modalities, image_package=image_package, target_type=(),
                     output_format="dict", transform=eval_transform, cache_dir=cache_dir, clean_barcodes=True)


#: How the text keys are made: one per key record (the authors') or one per distinct sentence.
TEXT_KEYS: tuple[str, ...] = ("per-record", "distinct")


def _text_keys(records: Any, config: Any, mode: str = "per-record") -> tuple[list[str], dict[str, np.ndarray]]:
    """The text keys (sentences) and their labels per rank: one per key record with text, or one per
    distinct (order, family, genus, species) among them."""
    codes = np.stack([records.labels(rank) for rank in TEXT_RANKS], axis=1)
    if config.text_required_rank is not None:
        codes = codes[codes[:, TEXT_RANKS.index(config.text_required_rank)] >= 0]
    if mode == "distinct" and len(codes):
        codes = np.unique(codes, axis=0)
    names = [records.label_map(rank).decode(codes[:, i]) for i, rank in enumerate(TEXT_RANKS)]
    sentences = [taxonomy_text(list(row), config.text_required_rank, config.text_missing_word)
                 for row in zip(*names)]
    return sentences, {rank: codes[:, i] for i, rank in enumerate(TEXT_RANKS) if rank in RETRIEVAL_RANKS}


def evaluate_retrieval(
    model: MultimodalModel,
    root: str | os.PathLike[str],
    *,
    eval_transform: Any = None,
    ks: Sequence[int] = (1, 3, 5),
    index_kind: str = "flat",
    image_package: str = "cropped_256",
    batch_size: int = 64,
    num_workers: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    embeddings_cache: str | os.PathLike[str] | None = None,
    text_keys: str = "per-record",
) -> pd.DataFrame:
    """Task III on a BIOSCAN-5M dataset root: keys ``train`` + ``key_unseen``, queries ``test`` (seen)
    and ``test_unseen`` (unseen), every direction the model's modalities allow. ``cache_dir``: the
    metadata's Parquet cache; ``embeddings_cache``: where split embeddings are kept and reused (see
    :func:`cached_embed_dataset`; only with the default ``eval_transform``); ``text_keys``:
    ``per-record`` (the authors') or ``distinct`` (see the module docstring).

    Returns a long table: ``direction, queries (seen/unseen), rank, k, micro, macro, n_queries,
    n_classes, n_keys`` with accuracies in [0, 1].
    """
    if text_keys not in TEXT_KEYS:
        raise BioscanError(f"unknown text keys {text_keys!r}; choose from {', '.join(TEXT_KEYS)}", value=text_keys)
    if eval_transform is not None:
        embeddings_cache = None  # a custom transform is not part of the cache key
    else:
        eval_transform = model.eval_transform
    embed = split_embedder(model, embeddings_cache, batch_size, num_workers)
    keys = _split_dataset(model, eval_transform, root, KEY_SPLITS, image_package, cache_dir)
    key_embeddings = embed(keys, desc="keys")
    key_labels = {m: {rank: keys.records.labels(rank) for rank in RETRIEVAL_RANKS} for m in key_embeddings}
    if "text" in model.modalities:
        sentences, key_labels["text"] = _text_keys(keys.records, model.config, text_keys)
        key_embeddings["text"] = embed_texts(model, sentences)
    rows = []
    for query_set, split in QUERY_SPLITS.items():
        queries = _split_dataset(model, eval_transform, root, split, image_package, cache_dir)
        query_embeddings = embed(queries, desc=f"{query_set} queries")
        query_labels = {rank: queries.records.labels(rank) for rank in RETRIEVAL_RANKS}
        for query_modality, key_modality in DIRECTIONS:
            if query_modality not in query_embeddings or key_modality not in key_embeddings:
                continue
            if len(key_embeddings[key_modality]) == 0 or len(query_embeddings[query_modality]) == 0:
                continue
            _, neighbours = nearest_keys(key_embeddings[key_modality], query_embeddings[query_modality],
                                         max(ks), index_kind)
            for row in retrieval_accuracy(query_labels, key_labels[key_modality], neighbours, ks):
                rows.append({"direction": f"{query_modality}→{key_modality}", "queries": query_set, **row,
                             "n_keys": len(key_embeddings[key_modality])})
    columns = ["direction", "queries", "rank", "k", "micro", "macro", "n_queries", "n_classes", "n_keys"]
    return pd.DataFrame(rows, columns=columns)


def retrieval_protocol(config: Any, long: pd.DataFrame, text_keys: str, index_kind: str) -> dict[str, Any]:
    """What produced a retrieval table: keys and queries per direction, the text settings, the index, and
    each deviation from the authors' protocol (CLIBD code) in force."""
    deviations = []
    if getattr(config, "dna_pooling", "masked-mean") != "authors-softmax-logits":
        deviations.append("DNA embedding: padding-aware mean of BarcodeBERT's hidden states (the authors took the "
                          "softmax of its MLM logits averaged over tokens, a known defect; dna_pooling="
                          "authors-softmax-logits reproduces it)")
    if config.text_required_rank is not None:
        deviations.append(f"text only for records named at {config.text_required_rank} (authors: every record)")
    if config.text_missing_word != MISSING_RANK_WORD:
        deviations.append(f"missing ranks written {config.text_missing_word!r} (authors: {MISSING_RANK_WORD!r})")
    if config.text_pooling != "padded-mean":
        deviations.append(f"text pooled by {config.text_pooling} (authors: mean over 20 padded positions)")
    if text_keys != "per-record":
        deviations.append(f"{text_keys} text keys (authors: one per key record)")
    if index_kind != "flat":
        deviations.append(f"approximate {index_kind} search (authors: exact inner product)")
    directions = {}
    for (direction, query_set), rows in long.groupby(["direction", "queries"], sort=False):
        first = rows.iloc[0]
        directions.setdefault(direction, {"keys": int(first["n_keys"])})[query_set] = int(first["n_queries"])
    return {"task": "multimodal retrieval (BIOSCAN-5M Task III)", "keys": list(KEY_SPLITS.split("+")),
            "queries": dict(QUERY_SPLITS), "text_keys": text_keys, "index": index_kind,
            "exact": index_kind == "flat", "text": {"required_rank": config.text_required_rank,
                                                     "missing_word": config.text_missing_word,
                                                     "pooling": config.text_pooling},
            "dna": {"pooling": getattr(config, "dna_pooling", "masked-mean")},
            "directions": directions, "deviations": deviations}


def paper_table(long: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: one row per (direction, average, k), columns ``seen order`` … ``unseen
    species``, accuracies in percent."""
    melted = long.melt(id_vars=["direction", "queries", "rank", "k"], value_vars=["micro", "macro"],
                       var_name="average", value_name="accuracy")
    melted["column"] = melted["queries"] + " " + melted["rank"]
    wide = melted.pivot_table(index=["direction", "average", "k"], columns="column", values="accuracy",
                              sort=False, dropna=False)
    order = [f"{q} {rank}" for q in QUERY_SPLITS for rank in RETRIEVAL_RANKS if f"{q} {rank}" in wide.columns]
    directions = [f"{q}→{k}" for q, k in DIRECTIONS]
    wide = (wide[order] * 100).round(2).reset_index()
    wide["_d"] = wide["direction"].map(directions.index)
    return wide.sort_values(["_d", "average", "k"], ascending=[True, False, True]).drop(columns="_d")


# -- identifying new specimens ------------------------------------------------------------------------------
def identify(
    model: MultimodalModel,
    root: str | os.PathLike[str],
    *,
    images: Sequence[str | os.PathLike[str]] = (),
    fasta: str | os.PathLike[str] | None = None,
    key_modality: str | None = None,
    k: int = 5,
    key_splits: str = KEY_SPLITS,
    image_package: str = "cropped_256",
    batch_size: int = 64,
    num_workers: int = 0,
    index_kind: str = "flat",
    cache_dir: str | os.PathLike[str] | None = None,
    embeddings_cache: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The ``k`` nearest reference records of each query image or barcode, with their taxonomy.

    Keys are the ``key_splits`` records of the dataset at ``root``, embedded as ``key_modality``
    (default: the query's own modality; ``dna`` for image queries gives image→DNA retrieval) or read
    from ``embeddings_cache`` when an earlier call embedded them with the same model.
    Returns one row per (query, neighbour): ``query, neighbour (1..k), processid, similarity`` and the
    neighbour's names from order to species. The first neighbour's names are the predicted taxonomy.
    """
    modality, names, queries = query_embeddings(model, images=images, fasta=fasta, batch_size=batch_size)
    key_modality = key_modality or modality
    if key_modality not in ("image", "dna") or key_modality not in model.modalities:
        raise BioscanError(f"keys must be image or dna embeddings the model makes, not {key_modality!r}",
                           value=key_modality)
    keys = _split_dataset(model, model.eval_transform if key_modality == "image" else None, root, key_splits,
                          image_package, cache_dir, [key_modality])
    key_embeddings = split_embedder(model, embeddings_cache, batch_size, num_workers)(keys, desc="keys")
    similarity, neighbours = nearest_keys(key_embeddings[key_modality], queries, min(k, len(keys)), index_kind)
    ids = keys.records.ids
    taxonomy = {rank: keys.records.column(rank) for rank in RETRIEVAL_RANKS}
    rows = []
    for q, name in enumerate(names):
        for position, (score, key) in enumerate(zip(similarity[q], neighbours[q]), start=1):
            if key < 0:
                continue
            rows.append({"query": name, "neighbour": position, "processid": ids[key], "similarity": float(score),
                         **{rank: taxonomy[rank][key] for rank in RETRIEVAL_RANKS}})
    return pd.DataFrame(rows)
