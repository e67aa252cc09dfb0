"""The BIOSCAN-5M Task I benchmark: DNA-based taxonomic classification, in the paper's table.

On any dataset directory in the BIOSCAN-5M layout (the real one or a synthetic one) and for each model:

* **fine-tuned species acc.**: the model fine-tuned at species on ``train``, scored on ``test``
  (:func:`bioscan5m.tasks.finetune.finetune`; only for a BarcodeBERT model directory);
* **linear probe**: a linear layer over the frozen encoder, ``train`` → ``test``, species (the authors'
  fine-tuning recipe with the encoder frozen, or a softmax regression on cached embeddings);
* **1-NN genus (unseen)**: ``test_unseen`` queries against ``train`` keys by cosine, scored at genus;
* **BLAST (top hit)**: each query takes the taxonomy of its top BLAST hit among the ``train`` barcodes:
  species on ``test`` (in the fine-tuned column, as the paper lays it out) and genus on ``test_unseen``.

How each column is computed (de-duplication, cleaning, training recipe, probe, BLAST hit) is a
:class:`~bioscan5m.tasks.dna_protocol.DNAProtocol`: the authors' by default (``paper``), or ``bioscan5m``.
The table holds the paper's published numbers as reference rows (``source = paper``) above this run's
rows; all numbers are micro accuracies in percent. Every rank's micro and macro accuracy is in the
details table, whose ``protocol`` column names the protocol (with a ``*`` when a deviation from the
authors' protocol is in force: listed in ``protocol.json`` and under the Markdown table).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bioscan5m.data.authors_split import authors_deduplicated_ids, keep_deduplicated
from bioscan5m.data.partition import with_barcodes
from bioscan5m.data.schema import DNA_COLUMN, SCORED_RANKS, SPLIT_COLUMN
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import write_json
from bioscan5m.tasks.dna_protocol import AUTHORS_CODE, DEDUPLICATION_RULES, DNAProtocol, dna_protocol
from bioscan5m.tasks.probes import (
    accuracy_at,
    check_labelled,
    encoder_slug,
    linear_probe,
    nearest_neighbour_probe,
    score_predictions,
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
PROTOCOL_FILE = "protocol.json"
#: The protocol settings each column depends on (its deviations are those of these settings).
_TRAINING = ("deduplicate", "cleaning", "epochs", "steps", "batch_size", "lr", "head_lr_scale", "weight_decay",
             "cycle_momentum", "grad_clip", "random_offset", "pooling", "precision")
COLUMN_SETTINGS: dict[str, tuple[str, ...]] = {
    FINETUNED: _TRAINING,
    LINEAR: (*_TRAINING, "linear_probe", "probe_epochs"),
    NEAREST: ("deduplicate", "cleaning"),
    "BLAST": ("deduplicate", "cleaning", "blast_hit"),
}

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
    """The paper-shaped ``table`` (percent), the per-rank ``details`` (fractions), the files written and the
    ``protocol`` record (protocol.json's content)."""

    table: pd.DataFrame
    details: pd.DataFrame = field(repr=False)
    files: dict[str, Path] = field(default_factory=dict)
    protocol: dict = field(default_factory=dict, repr=False)


def paper_rows() -> pd.DataFrame:
    """The paper's published Task I numbers as table rows (``source = paper``)."""
    rows = [{"model": name, "source": "paper", FINETUNED: f, LINEAR: lp, NEAREST: nn}
            for name, f, lp, nn in PAPER_RESULTS]
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def blast_top_hit(keys, queries, *, ranks: Sequence[str] = SCORED_RANKS, threads: int = 1,
                  cleaning: str = "standard", hit: str = "best-bitscore") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each query takes the taxonomy of its top BLAST hit among the keys; no hit = wrong.

    keys / queries: records with barcodes and the ``ranks`` columns. cleaning: the barcodes' cleaning mode.
    hit: ``best-bitscore`` (the best subject among blastn's first 5) or ``first-reported`` (the authors':
    blastn's defaults, 500 targets, its first reported hit). Returns ``(scores, predictions)`` as
    :func:`bioscan5m.tasks.probes.score_predictions`.
    """
    from bioscan5m.peers.blast import blast_top_hits

    options = {"max_target_seqs": 500, "ranking": "blast"} if hit == "first-reported" else {}
    # Positional ids: processids may repeat across sources and BLAST reads ids up to the first space.
    hits = blast_top_hits([f"k{i}" for i in range(len(keys))], keys.barcodes(mode=cleaning),
                          [f"q{i}" for i in range(len(queries))], queries.barcodes(mode=cleaning),
                          threads=threads, max_hits=1, **options)
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


def run_dna_benchmark(
    root: str | os.PathLike[str],
    model_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "dna_benchmark",
    *,
    model_name: str | None = None,
    baselines: Sequence[str] = ("kmer-profile-5",),
    blast: bool | None = None,
    protocol: DNAProtocol | str = "paper",
    epochs: float | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    head_lr_scale: float | None = None,
    probe_epochs: int | None = None,
    precision: str | None = None,
    device: str = "auto",
    seed: int = 0,
    threads: int = 1,
) -> DNABenchmarkResult:
    """Task I on the BIOSCAN-layout dataset at ``root``; writes the table (TSV + Markdown), the details and
    ``protocol.json`` into ``out``.

    model_dir: a pretrained BarcodeBERT (fine-tuned, linear-probed and 1-NN-probed); None runs only the
    baselines. model_name: its row label (default: "BarcodeBERT (<folder name>)"). baselines: frozen encoder
    names probed without fine-tuning (``kmer-profile-5``: k-mer frequencies; ``hf-dna:...``); their linear
    probe is always the softmax regression on embeddings. blast: run the BLAST top-hit peer (None: when
    ``blastn`` is installed). protocol: ``paper`` (the authors', see :mod:`bioscan5m.tasks.dna_protocol`),
    ``bioscan5m``, or a :class:`DNAProtocol`; epochs / steps (steps win) / batch_size / lr / head_lr_scale /
    probe_epochs / precision override it, and every override is listed as a deviation. threads: BLAST
    threads. Embeddings are cached in the ``embeddings`` cache folder, the fine-tuned classifier goes to
    ``out/finetuned/`` (the authors' linear probe to ``out/linear_probe/``).
    """
    from bioscan5m.data.records import load_records
    from bioscan5m.embeddings.encoders import create_encoder
    from bioscan5m.embeddings.store import embed_records, embeddings_cache_entry
    from bioscan5m.peers.programs import find_program

    protocol = (dna_protocol(protocol) if isinstance(protocol, str) else protocol).with_options(
        epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, head_lr_scale=head_lr_scale,
        probe_epochs=probe_epochs, precision=precision)
    out = Path(out)
    records = with_barcodes(load_records(root, split="+".join(BENCHMARK_SPLITS),
                                         columns=[DNA_COLUMN, SPLIT_COLUMN, *SCORED_RANKS]))
    splits = records.column(SPLIT_COLUMN)
    loaded = {name: records.filter(splits == name) for name in BENCHMARK_SPLITS}
    keep = _deduplication(root, protocol)
    used = {name: keep(part) for name, part in loaded.items()}
    train, test, unseen = (used[name] for name in BENCHMARK_SPLITS)
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
    columns: dict[str, dict] = {}
    encoders: list[tuple[str, str]] = []
    if model_dir is not None:
        encoders.append((model_name or f"BarcodeBERT ({Path(model_dir).resolve().name})", str(model_dir)))
    encoders += [(name, name) for name in baselines]
    for label, spec in encoders:
        row = {"model": label, "source": "this run"}
        is_model = model_dir is not None and spec == str(model_dir)
        if is_model:
            tuned, length = _finetune(model_dir, root, out / "finetuned", protocol, keep, train,
                                      frozen=False, device=device, seed=seed)
            parts.append(_details(tuned.scores, label, "fine-tuned", "test"))
            row[FINETUNED] = 100 * accuracy_at(tuned.scores, "species")
            columns[f"{label}: {FINETUNED}"] = _column(protocol, used, loaded, ("train", "test"), FINETUNED,
                                                       rank="species", **length)
        encoder = create_encoder(spec, "dna", device=device)
        cleaning = "" if protocol.cleaning == "standard" else f"-{protocol.cleaning}"
        label_for_cache = encoder_slug(encoder.name) + cleaning  # one cache entry per cleaning of the barcodes
        frozen_probe = is_model and protocol.linear_probe == "frozen-finetune"
        wanted = ("train", "test_unseen") if frozen_probe else BENCHMARK_SPLITS
        features = {name: embed_records(used[name], encoder, embeddings_cache_entry(label_for_cache, used[name]),
                                        device=device, cleaning=protocol.cleaning)
                    for name in wanted}
        if frozen_probe:
            probed, length = _finetune(model_dir, root, out / "linear_probe", protocol, keep, train,
                                       frozen=True, device=device, seed=seed)
            scores = probed.scores
        else:
            scores, _ = linear_probe(features["train"], train, features["test"], test, "species",
                                     epochs=protocol.probe_epochs, device=device, seed=seed)
            length = {"epochs": protocol.probe_epochs, "method": "softmax regression on standardised embeddings",
                      "optimizer": "AdamW", "lr": 1e-2}
        parts.append(_details(scores, label, "linear probe", "test"))
        row[LINEAR] = 100 * accuracy_at(scores, "species")
        columns[f"{label}: {LINEAR}"] = _column(protocol, used, loaded, ("train", "test"), LINEAR, rank="species",
                                                **length)
        if not frozen_probe and protocol.linear_probe == "frozen-finetune":  # a baseline: nothing to fine-tune
            columns[f"{label}: {LINEAR}"]["deviations"].append(
                "linear probe on embeddings (a frozen baseline encoder; the authors' recipe needs a BarcodeBERT)")
        scores, _ = nearest_neighbour_probe(features["train"], train, features["test_unseen"], unseen)
        parts.append(_details(scores, label, "1-NN", "test_unseen"))
        row[NEAREST] = 100 * accuracy_at(scores, "genus")
        columns[f"{label}: {NEAREST}"] = _column(protocol, used, loaded, ("train", "test_unseen"), NEAREST,
                                                 rank="genus", keys="train", queries="test_unseen",
                                                 metric="cosine", neighbours=1, embedding=encoder.name)
        rows.append(row)
    if blast:
        row = {"model": "BLAST (top hit)", "source": "this run"}
        for split, queries, column, rank in (("test", test, FINETUNED, "species"),
                                             ("test_unseen", unseen, NEAREST, "genus")):
            scores, _ = blast_top_hit(train, queries, threads=threads, cleaning=protocol.cleaning,
                                      hit=protocol.blast_hit)
            parts.append(_details(scores, row["model"], "BLAST top hit", split))
            row[column] = 100 * accuracy_at(scores, rank)
            columns[f"BLAST (top hit): {column}"] = _column(
                protocol, used, loaded, ("train", split), "BLAST", rank=rank, database="train", queries=split,
                program="blastn -task megablast", max_target_seqs=500 if protocol.blast_hit == "first-reported" else 5,
                hit=protocol.blast_hit)
        rows.append(row)
    if not rows:
        raise BioscanError("nothing to benchmark: give a model directory, a baseline encoder or enable BLAST")

    details = pd.concat(parts, ignore_index=True)
    details.insert(0, "protocol", protocol.name + ("*" if protocol.deviations() else ""))
    table = pd.concat([paper_rows(), pd.DataFrame(rows, columns=list(TABLE_COLUMNS))], ignore_index=True)
    record = protocol_record(protocol, loaded, used, columns)
    files = write_benchmark(table, details, out, root=root, counts={s: len(p) for s, p in used.items()},
                            protocol=record)
    return DNABenchmarkResult(table, details, files, record)


def _deduplication(root, protocol: DNAProtocol) -> Callable:
    """The records filter of ``protocol``: the authors' whole-dataset de-duplication, or none."""
    if protocol.deduplicate == "none":
        return lambda part: part
    kept = authors_deduplicated_ids(root)
    return lambda part: keep_deduplicated(part, kept)


def _finetune(model_dir, root, out: Path, protocol: DNAProtocol, keep: Callable, train, *, frozen: bool,
              device: str, seed: int):
    """Fine-tune (or, ``frozen``, linear-probe as the authors) at species on train → test; returns the
    result and how long it trained ({epochs, steps, batch_size, optimizer...}). ``out`` belongs to the
    benchmark: a run left there by an earlier benchmark is replaced, not resumed."""
    from bioscan5m.tasks.finetune import finetune

    if out.is_dir():
        log.info("replacing the earlier benchmark run in %s", out)
        shutil.rmtree(out)

    epochs = protocol.probe_epochs if frozen else protocol.epochs
    if protocol.steps is not None:
        steps = protocol.steps
    else:
        # The engine drops the incomplete last batch of every epoch, as the authors' loader (drop_last=True).
        labelled = int((train.labels("species") >= 0).sum())
        steps = max(1, math.ceil(epochs * max(1, labelled // protocol.batch_size)))
    result = finetune(
        model_dir, root, out, rank="species", train_split="train", eval_split="test", steps=steps,
        batch_size=protocol.batch_size, lr=protocol.lr, head_lr_scale=protocol.head_lr_scale,
        weight_decay=protocol.weight_decay, schedule="onecycle", cycle_momentum=protocol.cycle_momentum,
        random_offset=protocol.random_offset,
        pooling=protocol.pooling, freeze_encoder=frozen, cleaning=protocol.cleaning, grad_clip=protocol.grad_clip,
        records_filter=keep, precision=protocol.precision, device=device, seed=seed)
    length = {"epochs": None if protocol.steps is not None else epochs, "steps": steps,
              "batch_size": protocol.batch_size, "optimizer": "AdamW", "lr": protocol.lr,
              "weight_decay": protocol.weight_decay, "schedule": "onecycle",
              "cycle_momentum": protocol.cycle_momentum, "grad_clip": protocol.grad_clip,
              "random_offset": protocol.random_offset, "pooling": protocol.pooling,
              "precision": result.training.precision, "trained": "linear layer only" if frozen else "everything"}
    return result, length


def _column(protocol: DNAProtocol, used: dict, loaded: dict, splits: Sequence[str], column: str,
            **facts) -> dict:
    """One column's entry of protocol.json: its splits with their counts, its settings and deviations."""
    counts = {name: _split_counts(loaded[name], used[name], protocol.cleaning) for name in splits}
    return {"splits": counts, **facts, "deviations": protocol.deviations(COLUMN_SETTINGS[column])}


def _split_counts(loaded, used, cleaning: str) -> dict[str, int]:
    return {"records": len(loaded), "records_used": len(used),
            "distinct_sequences": len(set(used.barcodes(mode=cleaning)))}


def protocol_record(protocol: DNAProtocol, loaded: dict, used: dict, columns: dict[str, dict]) -> dict:
    """protocol.json: the protocol's name and settings, per split the records loaded (with a barcode), used
    (after de-duplication) and their distinct sequences, per column its facts, and every deviation."""
    return {
        "task": "BIOSCAN-5M Task I: DNA-based taxonomic classification",
        "protocol": protocol.name,
        "authors_code": AUTHORS_CODE,
        "settings": protocol.as_dict(),
        "deduplication": DEDUPLICATION_RULES[protocol.deduplicate],
        "splits": {name: _split_counts(loaded[name], used[name], protocol.cleaning) for name in loaded},
        "columns": columns,
        "deviations": protocol.deviations(),
    }


def write_benchmark(table: pd.DataFrame, details: pd.DataFrame, out: str | os.PathLike[str], *,
                    root: str | os.PathLike[str], counts: dict[str, int],
                    protocol: dict | None = None) -> dict[str, Path]:
    """Write ``dna_benchmark.tsv`` (percent, 2 decimals), ``dna_benchmark.md``, ``report.html`` (the same
    table, one self-contained page), ``dna_benchmark_details.tsv`` and, given a ``protocol`` record,
    ``protocol.json``; the reports name the protocol and carry a footnote with any deviation in force."""
    from bioscan5m.report.document import ReportSection, ReportTable, RunFacts, write_report

    out = Path(out)
    files = {key: out / name for key, name in FILES.items()}
    write_tsv(table.round(2), files["table"])
    write_tsv(details, files["details"])
    sizes = ", ".join(f"{split} {n:,}" for split, n in counts.items())
    text = (
        f"Data: `{root}` (records used: {sizes}). Micro accuracy (%): fine-tuned and linear probe "
        "at species on `test`; 1-NN (cosine) at genus on `test_unseen` queries against `train` keys; BLAST "
        "top hit among `train` barcodes, species on `test` and genus on `test_unseen`. `paper` rows are the "
        "published numbers on the real BIOSCAN-5M; per-rank micro and macro accuracy are in "
        f"`{FILES['details']}`."
    )
    sections = [ReportSection("Accuracy (%)", text, tables=[ReportTable(table)])]
    if protocol is not None:
        files["protocol"] = write_json(out / PROTOCOL_FILE, protocol)
        sections.append(ReportSection("Protocol", protocol_footnote(protocol)))
    files |= write_report(files["markdown"], "BIOSCAN-5M Task I: DNA-based taxonomic classification", sections,
                          RunFacts.collect(data=root))
    return files


def protocol_footnote(protocol: dict) -> str:
    """One paragraph naming the protocol of the `this run` rows and, when any, the deviations in force."""
    name = protocol["protocol"]
    said = (f"`this run` rows: the `{name}` protocol"
            + (" (the BarcodeBERT authors' code, " + AUTHORS_CODE + ")" if name == "paper" else "")
            + f"; details in `{PROTOCOL_FILE}`.")
    if protocol["deviations"]:
        said += " \\* Deviations from the authors' protocol in force: " + "; ".join(protocol["deviations"]) + "."
    else:
        said += " No deviation from the authors' protocol."
    return said
