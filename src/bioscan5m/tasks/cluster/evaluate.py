"""Zero-shot clustering runs with their reports: several encoders on one table, and the benchmark that
embeds, clusters and reports in one call (``bioscan5m cluster`` and ``bioscan5m benchmark zsc``)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioscan5m.cachedir import cache_folder
from bioscan5m.data.schema import ID_COLUMN, SPLIT_COLUMN, check_rank
from bioscan5m.embeddings.store import Embeddings, load_embeddings
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

    Writes ``ami.tsv`` (encoder × rank), ``protocol.json`` (see :func:`protocol_record`),
    ``ami_by_rank.png`` (AMI against rank, one line per encoder) and,
    unless ``scatter_rank`` is None, ``umap_<encoder>_<rank>.png`` (a 2-D UMAP of up to
    ``scatter_max_points`` records coloured by ``scatter_rank``; ``pca_...`` when the reducer is not UMAP);
    then ``ami.md`` and ``report.html`` (the AMI table, and the plots embedded in one self-contained page).
    With ``reuse_reduced`` the UMAP/PCA outputs are kept in the ``reduced`` cache folder and reused by the
    next run on the same embeddings with the same reduction settings (another clusterer or rank list costs
    no UMAP).
    Returns the AMI table (``attrs["protocol"]``: the record written to ``protocol.json``).
    """
    from bioscan5m.report.cluster_plots import plot_ami_by_rank, plot_embedding_scatter

    ranks = list(ranks)
    scatter_rank = None if scatter_rank is None else check_rank(scatter_rank)  # before any UMAP runs
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = cache_folder("reduced") if reuse_reduced else None
    tables, plots = [], [out / "ami_by_rank.png"]
    notes: dict[str, dict[str, Any]] = {}
    for name, embeddings in entries.items():
        combined = combine_embeddings(embeddings)  # once, for the scores and the map
        notes[name] = {"records": len(combined)}
        table = zero_shot_clustering(combined, records, ranks, protocol, cache_dir=cache_dir, notes=notes[name])
        notes[name]["records_per_split"] = _records_per_split(records, combined.ids)
        table.insert(0, "encoder", name)
        tables.append(table)
        if scatter_rank is not None:
            plots.append(_write_scatter(name, combined, records, scatter_rank, out, scatter_max_points, protocol,
                                        cache_dir, plot_embedding_scatter))
    table = pd.concat(tables, ignore_index=True)
    with atomic_write(out / "ami.tsv") as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.4f")
    record = protocol_record(table, protocol, notes)
    with atomic_write(out / "protocol.json") as handle:
        json.dump(record, handle, indent=2)
    plot_ami_by_rank(table, plots[0])
    _write_report(table, plots, out, protocol, record["deviations"], getattr(records, "source", None))
    table.attrs["protocol"] = record
    return table


def protocol_record(table: pd.DataFrame, protocol: ClusteringProtocol,
                    notes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What produced an AMI table: the protocol's settings, its reading, the records of each encoder per split,
    k and the clusterer (exact or approximate) per rank, and every deviation from the paper's protocol."""
    encoders = {}
    deviations = protocol.deviations()
    for name, rows in table.groupby("encoder", sort=False):
        ranks = {row.rank: {"records": int(row.n_records), "k": int(row.n_classes), "clusterer": row.clusterer,
                            "exact": row.clusterer in ("ward", "kmeans", "hdbscan")}
                 for row in rows.itertuples()}
        encoders[name] = {**notes.get(name, {}), "ranks": ranks}
        approximate = [rank for rank, info in ranks.items() if info["clusterer"] == "ward-knn"]
        if approximate and protocol.clusterer == "ward":
            deviations.append(f"{name}: approximate Ward (ward-knn) at {', '.join(approximate)}")
        if notes.get(name, {}).get("umap_init") == "pca":
            deviations.append(f"{name}: UMAP started from PCA (its neighbour graph fell into many pieces)")
    return {"task": "zero-shot clustering (BIOSCAN-5M Task II)", "reading": protocol.reading,
            "settings": dataclasses.asdict(protocol), "deviations": deviations, "encoders": encoders}


def _records_per_split(records: Any, ids: np.ndarray) -> dict[str, int]:
    """How many of the clustered records come from each split (empty when the source has no splits)."""
    if SPLIT_COLUMN not in records.table.column_names:
        return {}
    splits = records.column(SPLIT_COLUMN)[record_rows(ids, records)]
    names, counts = np.unique(np.asarray([str(s) for s in splits]), return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}



def _write_report(table: pd.DataFrame, plots: Sequence[Path], out: Path, protocol: ClusteringProtocol,
                  deviations: Sequence[str], source: Any) -> None:
    from bioscan5m.report.document import ReportPlot, ReportSection, ReportTable, RunFacts, write_report

    wide = table.pivot(index="encoder", columns="rank", values="ami")
    wide = wide[list(dict.fromkeys(table["rank"]))].reindex(list(dict.fromkeys(table["encoder"])))
    reduction = "no reduction" if protocol.reducer == "none" else \
        f"{protocol.reducer.upper()} to {protocol.n_components} dimensions"
    reading = ("clustering into as many clusters as there are true taxa at each rank"
               if protocol.reading == "per-rank"
               else "clustering of every record into as many clusters as there are species, scored at each rank")
    said = "; ".join(deviations) if deviations else "none"
    section = ReportSection(
        "Adjusted mutual information", f"{reduction}, then {protocol.clusterer} {reading} ({protocol.reading} "
        "reading); adjusted mutual information (AMI, 0–1) between clusters and taxa. Records, classes and the "
        f"clusterer used at each rank are in `ami.tsv` and `protocol.json`. Deviations from the paper: {said}.",
        tables=[ReportTable(wide, index=True, digits=3)],
        plots=[ReportPlot(plots[0], "AMI at each rank, one line per encoder")]
        + [ReportPlot(path, "2-D map of one encoder's embeddings, coloured by taxon") for path in plots[1:]])
    write_report(out / "ami.md", "BIOSCAN-5M Task II: zero-shot clustering", [section], RunFacts.collect(data=source))


def _write_scatter(name: str, combined: Embeddings, records: Any, rank: str, out: Path, max_points: int,
                   protocol: ClusteringProtocol, cache_dir: Path | None, plot: Any) -> Path:
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
    path = out / f"{method}_{slug(name)}_{rank}.png"
    plot(coords, names, path, title=f"{name}: 2-D {method.upper()} coloured by {rank}")
    return path


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
    needed = list(dict.fromkeys([ID_COLUMN, *ranks, *([scatter_rank] if scatter_rank else []),
                                 *(["species"] if protocol.reading == "species-cut" else [])]))
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
    from bioscan5m.embeddings.store import embeddings_cache_entry, extract_embeddings

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

