"""Zero-shot clustering runs with their reports: several encoders on one table, and the benchmark that
embeds, clusters and reports in one call (``bioscan5m cluster`` and ``bioscan5m benchmark zsc``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioscan5m.cachedir import cache_folder
from bioscan5m.data.schema import ID_COLUMN, check_rank
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_write
from bioscan5m.tasks.cluster.protocol import (
    PAPER_PROTOCOL,
    ZSC_RANKS,
    ClusteringProtocol,
    combine_embeddings,
    record_rows,
    zero_shot_clustering,
)
from bioscan5m.tasks.embed import Embeddings, load_embeddings


def slug(name: str) -> str:
    """A file-name-safe version of an encoder name (``hf-image:facebook/dino`` → ``hf-image_facebook_dino``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_")[:100] or "embeddings"


def evaluate_encoders(
    entries: Mapping[str, Embeddings | Sequence[Embeddings]],
    records: Any,
    out: str | os.PathLike[str],
    ranks: Iterable[str] = ZSC_RANKS,
    protocol: ClusteringProtocol = PAPER_PROTOCOL,
    *,
    scatter_rank: str | None = "species",
    scatter_max_points: int = 20_000,
    reuse_reduced: bool = True,
) -> pd.DataFrame:
    """Zero-shot clustering (:func:`zero_shot_clustering`) of each named entry, reported in ``out``.

    Writes ``ami.tsv`` (encoder × rank), ``ami_by_rank.png`` (AMI against rank, one line per encoder) and,
    unless ``scatter_rank`` is None, ``umap_<encoder>_<rank>.png`` (a 2-D UMAP of up to
    ``scatter_max_points`` records coloured by ``scatter_rank``; ``pca_...`` when the reducer is not UMAP).
    With ``reuse_reduced`` the UMAP/PCA outputs are kept in the ``reduced`` cache folder and reused by the
    next run on the same embeddings with the same reduction settings (another clusterer or rank list costs
    no UMAP).
    Returns the AMI table.
    """
    from bioscan5m.report.cluster_plots import plot_ami_by_rank, plot_embedding_scatter

    ranks = list(ranks)
    scatter_rank = None if scatter_rank is None else check_rank(scatter_rank)  # before any UMAP runs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = cache_folder("reduced") if reuse_reduced else None
    tables = []
    for name, embeddings in entries.items():
        combined = combine_embeddings(embeddings)  # once, for the scores and the map
        table = zero_shot_clustering(combined, records, ranks, protocol, cache_dir=cache_dir)
        table.insert(0, "encoder", name)
        tables.append(table)
        if scatter_rank is not None:
            _write_scatter(name, combined, records, scatter_rank, out, scatter_max_points, protocol, cache_dir,
                           plot_embedding_scatter)
    table = pd.concat(tables, ignore_index=True)
    with atomic_write(out / "ami.tsv") as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.4f")
    plot_ami_by_rank(table, out / "ami_by_rank.png")
    return table


def _write_scatter(name: str, combined: Embeddings, records: Any, rank: str, out: Path, max_points: int,
                   protocol: ClusteringProtocol, cache_dir: Path | None, plot: Any) -> None:
    seed = protocol.seed
    rows = record_rows(combined.ids, records)
    take = np.arange(len(rows))
    if len(take) > max_points:  # a picture of 20k points says as much as one of 200k, in far less time
        take = np.sort(np.random.default_rng(seed).choice(len(take), max_points, replace=False))
    method = "umap" if protocol.reducer == "umap" else "pca"  # a map needs 2 dimensions, even with reducer "none"
    layout = ClusteringProtocol(reducer=method, n_components=2, n_neighbors=30, min_dist=0.1, seed=seed)
    coords = layout.reduce(combined.vectors[take], cache_dir)
    codes = np.asarray(records.labels(rank))[rows[take]]
    names = np.asarray(records.label_map(rank).decode(codes), dtype=object)
    plot(coords, names, out / f"{method}_{slug(name)}_{rank}.png",
         title=f"{name}: 2-D {method.upper()} coloured by {rank}")


def run_zero_shot_clustering(
    embedding_groups: Sequence[Sequence[str | os.PathLike[str]]],
    labels: str | os.PathLike[str],
    out: str | os.PathLike[str],
    ranks: Iterable[str] = ZSC_RANKS,
    protocol: ClusteringProtocol = PAPER_PROTOCOL,
    *,
    scatter_rank: str | None = "species",
    reuse_reduced: bool = True,
) -> pd.DataFrame:
    """The ``bioscan5m cluster`` command: each group of embedding directories is one encoder (several
    directories in a group are modalities to combine); ``labels`` is any source ``load_records`` reads."""
    from bioscan5m.data.records import load_records

    ranks = [check_rank(rank) for rank in ranks]
    entries: dict[str, list[Embeddings]] = {}
    for group in embedding_groups:
        parts = [load_embeddings(directory) for directory in group]
        name = " + ".join(part.name for part in parts)
        entries[name if name not in entries else f"{name} ({len(entries) + 1})"] = parts
    needed = list(dict.fromkeys([ID_COLUMN, *ranks, *([scatter_rank] if scatter_rank else [])]))
    records = load_records(labels, columns=needed)
    return evaluate_encoders(entries, records, out, ranks, protocol, scatter_rank=scatter_rank,
                             reuse_reduced=reuse_reduced)


def run_zsc_benchmark(
    source: str | os.PathLike[str],
    encoders: Sequence[str],
    split: str | None,
    out: str | os.PathLike[str],
    *,
    ranks: Iterable[str] = ZSC_RANKS,
    min_records_per_species: int = 10,
    max_records_per_species: int | None = None,
    max_records: int | None = 3000,
    seed: int = 0,
    device: str | None = None,
    protocol: ClusteringProtocol | None = None,
    scatter_rank: str | None = "species",
    reuse_reduced: bool = True,
) -> pd.DataFrame:
    """Zero-shot clustering of each encoder on one source: embed (cached in the ``embeddings`` cache folder), cluster,
    report (``out/ami.tsv`` and plots, see :func:`evaluate_encoders`).

    Records are those of ``split`` (None: all) whose species has at least ``min_records_per_species``
    records; species are drawn at random (``seed``) with up to ``max_records_per_species`` of their records
    each (None: all), until ``max_records`` (see :func:`select_species_sample`). Records without a species
    name are not used. ``protocol`` defaults to the paper's, seeded with ``seed``.
    """
    from bioscan5m.data.records import load_records
    from bioscan5m.tasks.embed import embeddings_cache_entry, extract_embeddings

    records = load_records(source, split=split)
    records = records.filter(select_species_sample(records.labels("species"), min_records_per_species,
                                                   max_records, seed, max_records_per_species))
    if len(records) == 0:
        raise BioscanError(f"no species with at least {min_records_per_species} records", path=source)
    entries = {}
    for name in encoders:
        embeddings = extract_embeddings(records, name, embeddings_cache_entry(slug(name), records), split=split,
                                        device=device)
        entries[embeddings.name] = embeddings
    protocol = protocol or ClusteringProtocol(seed=seed)
    return evaluate_encoders(entries, records, out, ranks, protocol, scatter_rank=scatter_rank,
                             reuse_reduced=reuse_reduced)


def select_species_sample(species: np.ndarray, min_records: int, max_records: int | None, seed: int = 0,
                          max_per_species: int | None = None) -> np.ndarray:
    """Boolean mask over records: species with ≥ ``min_records`` records, in random order, each contributing
    all its records (at most ``max_per_species`` of them, drawn at random) while the total stays within
    ``max_records`` (None: no cap)."""
    species = np.asarray(species)
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(species >= 0)
    order = labelled[np.argsort(species[labelled], kind="stable")]
    groups = np.split(order, np.flatnonzero(np.diff(species[order])) + 1) if len(order) else []
    mask = np.zeros(len(species), dtype=bool)
    total = 0
    for group in (groups[i] for i in rng.permutation(len(groups))):
        if len(group) < min_records:
            continue
        if max_per_species is not None and len(group) > max_per_species:
            group = rng.choice(group, max_per_species, replace=False)
        if max_records is not None and total + len(group) > max_records:
            continue
        mask[group] = True
        total += len(group)
    return mask

