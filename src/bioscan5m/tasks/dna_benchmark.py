"""The BIOSCAN-5M Task I benchmark: DNA-based taxonomic classification, in the paper's table.

On any dataset directory in the BIOSCAN-5M layout (the real one or a synthetic one) and for each model:

* **fine-tuned species acc.**: the model fine-tuned at species on ``train``, scored on ``test``
  (:func:`bioscan5m.tasks.finetune.finetune`; only for a BarcodeBERT model directory);
* **linear probe**: softmax regression on frozen embeddings, ``train`` → ``test``, species;
* **1-NN genus (unseen)**: ``test_unseen`` queries against ``train`` keys by cosine, scored at genus;
* **BLAST (top hit)**: each query takes the taxonomy of its best BLAST hit among the ``train`` barcodes:
  species on ``test`` (in the fine-tuned column, as the paper lays it out) and genus on ``test_unseen``.

The table holds the paper's published numbers as reference rows (``source = paper``) above this run's
rows; all numbers are micro accuracies in percent. Every rank's micro and macro accuracy is in the
details table.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bioscan5m.data.schema import DNA_COLUMN, SCORED_RANKS, SPLIT_COLUMN
from bioscan5m.errors import BioscanError
from bioscan5m.tasks.probes import (
    check_labelled,
    embed_records,
    encoder_slug,
    linear_probe,
    nearest_neighbour_probe,
    resolve_encoder,
    score_predictions,
    with_barcodes,
    write_tsv,
)

log = logging.getLogger(__name__)

FINETUNED = "fine-tuned species acc."
LINEAR = "linear probe"
NEAREST = "1-NN genus (unseen)"
TABLE_COLUMNS: tuple[str, ...] = ("model", "source", FINETUNED, LINEAR, NEAREST)
DETAIL_COLUMNS: tuple[str, ...] = ("model", "task", "split", "rank", "micro", "macro", "queries", "classes")
BENCHMARK_SPLITS = ("train", "test", "test_unseen")
FILES = {"table": "dna_benchmark.tsv", "markdown": "dna_benchmark.md", "details": "dna_benchmark_details.tsv"}

_ = float("nan")
#: The paper's Task I results on the real BIOSCAN-5M (micro accuracy, %): fine-tuned species on test,
#: linear probe species on test, 1-NN genus on test_unseen. BLAST's row holds its top-hit species on test
#: and genus on test_unseen.
PAPER_RESULTS: tuple[tuple[str, float, float, float], ...] = (
    ("CNN baseline", 97.70, _, 29.88),
    ("DNABERT-2 (117M)", 99.23, 67.81, 17.99),
    ("DNABERT-S", 98.99, 95.50, 17.70),
    ("HyenaDNA tiny", 98.71, 54.82, 19.26),
    ("Nucleotide Transformer v2-50M", 98.99, 52.41, 21.67),
    ("BarcodeBERT pretrained on 1.5M Canadian barcodes", 98.52, 91.93, 23.15),
    ("BarcodeBERT pretrained on BIOSCAN-5M (8-4-4)", 99.28, 94.47, 47.03),
    ("BLAST (top hit)", 99.78, _, 58.74),
)


@dataclass
class DNABenchmarkResult:
    """The paper-shaped ``table`` (percent), the per-rank ``details`` (fractions) and the files written."""

    table: pd.DataFrame
    details: pd.DataFrame = field(repr=False)
    files: dict[str, Path] = field(default_factory=dict)


def paper_rows() -> pd.DataFrame:
    """The paper's published Task I numbers as table rows (``source = paper``)."""
    rows = [{"model": name, "source": "paper", FINETUNED: f, LINEAR: lp, NEAREST: nn}
            for name, f, lp, nn in PAPER_RESULTS]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def blast_top_hit(keys, queries, *, ranks: Sequence[str] = SCORED_RANKS,
                  threads: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each query takes the taxonomy of its best BLAST hit (bitscore) among the keys; no hit = wrong.

    keys / queries: records with barcodes and the ``ranks`` columns. Returns ``(scores, predictions)``
    as :func:`bioscan5m.tasks.probes.score_predictions`.
    """
    from bioscan5m.peers.blast import blast_top_hits

    # Positional ids: processids may repeat across sources and BLAST reads ids up to the first space.
    hits = blast_top_hits([f"k{i}" for i in range(len(keys))], keys.barcodes(clean=True),
                          [f"q{i}" for i in range(len(queries))], queries.barcodes(clean=True),
                          threads=threads, max_hits=1)
    nearest = np.full(len(queries), -1, dtype=np.int64)
    nearest[hits["query_id"].str[1:].astype(int).to_numpy()] = hits["subject_id"].str[1:].astype(int).to_numpy()
    found = nearest >= 0
    predicted = {}
    for rank in ranks:
        names = np.full(len(queries), None, dtype=object)
        names[found] = keys.column(rank)[nearest[found]]
        predicted[rank] = names
    return score_predictions(queries, predicted)


def _details(scores: pd.DataFrame, model: str, task: str, split: str) -> pd.DataFrame:
    scores = scores.drop(columns=[c for c in scores.columns if c not in DETAIL_COLUMNS])
    return scores.assign(model=model, task=task, split=split)[list(DETAIL_COLUMNS)]


def _percent(scores: pd.DataFrame, rank: str) -> float:
    """Micro accuracy at ``rank`` in percent."""
    return float(100 * scores.loc[scores["rank"] == rank, "micro"].iloc[0])


def run_dna_benchmark(
    root: str | os.PathLike[str],
    model_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "dna_benchmark",
    *,
    model_name: str | None = None,
    baselines: Sequence[str] = ("kmer-profile-5",),
    blast: bool | None = None,
    epochs: float | None = 1.0,
    steps: int | None = None,
    batch_size: int = 32,
    lr: float = 1e-4,
    head_lr_scale: float = 1.0,
    probe_epochs: int = 30,
    precision: str = "auto",
    device: str = "auto",
    seed: int = 0,
    threads: int = 1,
) -> DNABenchmarkResult:
    """Task I on the BIOSCAN-layout dataset at ``root``; writes the table (TSV + Markdown) and details into ``out``.

    model_dir: a pretrained BarcodeBERT (fine-tuned, linear-probed and 1-NN-probed); None runs only the
    baselines. model_name: its row label (default: "BarcodeBERT (<folder name>)"). baselines: frozen encoder
    names probed without fine-tuning (``kmer-profile-5``: k-mer frequencies; ``hf-dna:...``). blast: run the
    BLAST top-hit peer (None: when ``blastn`` is installed). epochs / steps: fine-tuning length (give one;
    steps wins), with batch_size, lr and head_lr_scale as in :func:`~bioscan5m.tasks.finetune.finetune`.
    probe_epochs: linear-probe training passes. threads: BLAST threads. Embeddings are cached in the
    ``embeddings`` cache folder, the fine-tuned classifier goes to ``out/finetuned/``.
    """
    from bioscan5m.data.records import load_records
    from bioscan5m.peers.programs import find_program
    from bioscan5m.tasks.embed import embeddings_cache_entry

    out = Path(out)
    records = with_barcodes(load_records(root, split="+".join(BENCHMARK_SPLITS),
                                         columns=[DNA_COLUMN, SPLIT_COLUMN, *SCORED_RANKS]))
    splits = records.column(SPLIT_COLUMN)
    train, test, unseen = (records.filter(splits == name) for name in BENCHMARK_SPLITS)
    check_labelled(train, "species", "training records and keys", "train")
    check_labelled(test, "species", "seen-species test records", "test")
    check_labelled(unseen, "genus", "unseen-species queries", "test_unseen")
    if blast is None:
        blast = shutil.which("blastn") is not None and shutil.which("makeblastdb") is not None
        if not blast:
            log.warning("BLAST+ is not installed: the BLAST row is left out")
    elif blast:
        find_program("blastn")

    rows: list[dict] = []
    parts: list[pd.DataFrame] = []
    encoders: list[tuple[str, str]] = []
    if model_dir is not None:
        encoders.append((model_name or f"BarcodeBERT ({Path(model_dir).resolve().name})", str(model_dir)))
    encoders += [(name, name) for name in baselines]
    for label, spec in encoders:
        row = {"model": label, "source": "this run"}
        if model_dir is not None and spec == str(model_dir):
            from bioscan5m.tasks.finetune import finetune

            tuned = finetune(model_dir, root, out / "finetuned", rank="species", train_split="train",
                             eval_split="test", steps=steps, epochs=None if steps is not None else epochs,
                             batch_size=batch_size, lr=lr, head_lr_scale=head_lr_scale, precision=precision,
                             device=device, seed=seed)
            parts.append(_details(tuned.scores, label, "fine-tuned", "test"))
            row[FINETUNED] = _percent(tuned.scores, "species")
        encoder = resolve_encoder(spec, device)
        features = {name: embed_records(part, encoder, embeddings_cache_entry(encoder_slug(encoder.name), part),
                                        device=device)
                    for name, part in zip(BENCHMARK_SPLITS, (train, test, unseen))}
        scores, _ = linear_probe(features["train"], train, features["test"], test, "species",
                                 epochs=probe_epochs, device=device, seed=seed)
        parts.append(_details(scores, label, "linear probe", "test"))
        row[LINEAR] = _percent(scores, "species")
        scores, _ = nearest_neighbour_probe(features["train"], train, features["test_unseen"], unseen)
        parts.append(_details(scores, label, "1-NN", "test_unseen"))
        row[NEAREST] = _percent(scores, "genus")
        rows.append(row)
    if blast:
        row = {"model": "BLAST (top hit)", "source": "this run"}
        for split, queries, column, rank in (("test", test, FINETUNED, "species"),
                                             ("test_unseen", unseen, NEAREST, "genus")):
            scores, _ = blast_top_hit(train, queries, threads=threads)
            parts.append(_details(scores, row["model"], "BLAST top hit", split))
            row[column] = _percent(scores, rank)
        rows.append(row)
    if not rows:
        raise BioscanError("nothing to benchmark: give a model directory, a baseline encoder or enable BLAST")

    details = pd.concat(parts, ignore_index=True)
    table = pd.concat([paper_rows(), pd.DataFrame(rows, columns=list(TABLE_COLUMNS))], ignore_index=True)
    files = write_benchmark(table, details, out, root=root, counts={s: len(p) for s, p in
                                                                    zip(BENCHMARK_SPLITS, (train, test, unseen))})
    return DNABenchmarkResult(table, details, files)


def write_benchmark(table: pd.DataFrame, details: pd.DataFrame, out: str | os.PathLike[str], *,
                    root: str | os.PathLike[str], counts: dict[str, int]) -> dict[str, Path]:
    """Write ``dna_benchmark.tsv`` (percent, 2 decimals), ``dna_benchmark.md``, ``report.html`` (the same
    table, one self-contained page) and ``dna_benchmark_details.tsv``."""
    from bioscan5m.report.document import ReportSection, ReportTable, RunFacts, write_report

    out = Path(out)
    files = {key: out / name for key, name in FILES.items()}
    write_tsv(table.round(2), files["table"])
    write_tsv(details, files["details"])
    sizes = ", ".join(f"{split} {n:,}" for split, n in counts.items())
    text = (
        f"Data: `{root}` (records with a barcode: {sizes}). Micro accuracy (%): fine-tuned and linear probe "
        "at species on `test`; 1-NN (cosine) at genus on `test_unseen` queries against `train` keys; BLAST "
        "top hit among `train` barcodes, species on `test` and genus on `test_unseen`. `paper` rows are the "
        "published numbers on the real BIOSCAN-5M; per-rank micro and macro accuracy are in "
        f"`{FILES['details']}`."
    )
    section = ReportSection("Accuracy (%)", text, tables=[ReportTable(table)])
    files |= write_report(files["markdown"], "BIOSCAN-5M Task I: DNA-based taxonomic classification", [section],
                          RunFacts.collect(data=root))
    return files
