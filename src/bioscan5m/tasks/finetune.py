"""Fine-tuning BarcodeBERT to classify barcodes at one rank (the paper's Task I fine-tuning): the
``bioscan5m finetune`` command.

The model is a :class:`~bioscan5m.models.classifier.BarcodeClassifier` (encoder, mean pooling over the real
k-mer tokens, one linear layer over the rank's classes), trained by :mod:`bioscan5m.train.classification`
(records without a label at the rank are dropped from training). Evaluation scores the predicted class
at its rank and, through the class's lineage (the genus, family and order its records carry), at every
scored rank above it: micro and macro accuracy per rank.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from bioscan5m.data.partition import BY_RECORD, load_partition, with_barcodes
from bioscan5m.data.schema import DNA_COLUMN, check_rank
from bioscan5m.errors import BioscanError
from bioscan5m.models.classifier import BarcodeClassifier
from bioscan5m.models.dna import BarcodeBERT
from bioscan5m.tasks.probes import (
    accuracy_at,
    check_labelled,
    class_lineage,
    score_predictions,
    scored_ranks,
    write_tsv,
)
from bioscan5m.train.classification import train_classifier, training_pairs
from bioscan5m.train.distributed import dist_info
from bioscan5m.train.engine import TrainConfig, TrainResult
from bioscan5m.train.run_definition import content_fingerprint, model_definition
from bioscan5m.train.seeding import seed_everything

METRICS_FILE = "metrics.tsv"
PREDICTIONS_FILE = "predictions.tsv"


def evaluate_classifier(classifier: BarcodeClassifier, records, *, batch_size: int = 256,
                        device: str | torch.device | None = None,
                        cleaning: str = "standard") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score ``classifier`` on ``records`` (all with a barcode) at each of its ranks.

    Returns ``(scores, predictions)``: micro/macro accuracy per rank (``rank, micro, macro, queries,
    classes``; accuracies in [0, 1]; records without a true label at a rank are left out there), and one
    row per record (processid, then ``<rank>`` and ``predicted_<rank>`` per rank, and ``probability``).
    """
    from bioscan5m.embeddings.encoders import embed_barcodes
    from bioscan5m.embeddings.loop import resolve_device

    device = None if device is None else resolve_device(device)
    table = classifier.classify(embed_barcodes(classifier, records.barcodes(mode=cleaning), batch_size=batch_size,
                                               device=device))
    scores, predictions = score_predictions(records, {rank: table[rank].to_numpy(dtype=object)
                                                      for rank in classifier.ranks})
    predictions["probability"] = table["probability"].to_numpy()
    return scores, predictions


@dataclass
class FinetuneResult:
    """What :func:`finetune` did: the classifier folder, the training summary and the evaluation."""

    directory: Path
    training: TrainResult = field(repr=False)
    n_train: int
    n_classes: int
    scores: pd.DataFrame | None
    predictions: pd.DataFrame | None = field(default=None, repr=False)
    files: dict[str, Path] = field(default_factory=dict)

    def accuracy(self, rank: str | None = None, average: str = "micro") -> float:
        """Evaluation accuracy in [0, 1] at ``rank`` (default: the fine-tuned rank)."""
        if self.scores is None:
            raise BioscanError("this run was not evaluated")
        return accuracy_at(self.scores, rank or self.scores["rank"].iloc[-1], average)


def load_encoder(model: str | os.PathLike[str] | BarcodeBERT) -> BarcodeBERT:
    """A BarcodeBERT to fine-tune: a loaded one, a model directory / checkpoint / Hub id, or the name of a
    registered architecture (e.g. ``8-4-4``: random weights, training from scratch)."""
    if isinstance(model, BarcodeBERT):
        return model
    from bioscan5m.models.registry import DNA_MODELS, create_dna_model

    if not Path(model).exists() and str(model) in DNA_MODELS:
        return create_dna_model(str(model))
    return BarcodeBERT.from_pretrained(model)


def _model_source(model: str | os.PathLike[str] | BarcodeBERT) -> str | None:
    """What the encoder was loaded from (an absolute folder, a Hub id or a name; None for a model object)."""
    if isinstance(model, BarcodeBERT):
        return None
    return os.path.abspath(model) if Path(model).exists() else str(model)


def finetune(
    model: str | os.PathLike[str] | BarcodeBERT,
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rank: str = "species",
    train_split: str | None = None,
    eval_split: str | None = "test",
    holdout: float | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 32,
    lr: float = 1e-4,
    head_lr_scale: float = 1.0,
    weight_decay: float = 0.01,
    schedule: str = "onecycle",
    random_offset: bool = False,
    pooling: str = "masked-mean",
    freeze_encoder: bool = False,
    cleaning: str = "standard",
    grad_clip: float | None = 1.0,
    cycle_momentum: bool = False,
    records_filter: Callable | None = None,
    precision: str = "auto",
    device: str = "auto",
    seed: int = 0,
    save_every: int = 0,
    log_every: int = 10,
    num_workers: int = 0,
    resume: bool = False,
    allow_change: Sequence[str] = (),
) -> FinetuneResult:
    """The ``bioscan5m finetune`` command: fine-tune ``model`` at ``rank`` on ``train_split`` of ``source``
    (default "train"), save the classifier into ``out`` and score it on ``eval_split`` (None: no evaluation).

    holdout: for sources without BIOSCAN-5M splits (BOLD TSV, FASTA), evaluate on this seeded fraction of
    the records and train on the rest (of ``train_split``, when given; ``eval_split`` is not used).
    steps / epochs: training length (one of the two; an epoch is one pass over the labelled records).
    batch_size: barcodes per step (all GPUs together). lr: peak learning rate. Writes ``out/metrics.tsv``
    and ``out/predictions.tsv`` next to the classifier, checkpoints and train_log.jsonl.
    resume / allow_change: continue the run in ``out`` (its definition, recorded in run.json, must be the
    same but for the options named in allow_change: "lr", "steps").

    pooling / freeze_encoder / cleaning / grad_clip / cycle_momentum: see :class:`BarcodeClassifier`,
    :func:`train_classifier`, :data:`~bioscan5m.data.sequences.CLEANING_MODES` and ``TrainConfig``
    (``benchmark dna --protocol paper`` sets them as the BarcodeBERT authors). records_filter: maps the
    loaded training and evaluation records to those to use (e.g. the authors' de-duplication).
    """
    from bioscan5m.data.records import load_records

    rank = check_rank(rank)
    if (steps is None) == (epochs is None):
        raise BioscanError("give the training length as steps or as epochs (one of the two)")
    ranks = scored_ranks(rank)
    if holdout is not None:
        train_records, eval_records = load_partition(source, train_split, None, columns=ranks, holdout=holdout,
                                                     holdout_by=BY_RECORD, seed=seed)
    elif eval_split is None:
        train_split = train_split or "train"
        columns = [DNA_COLUMN, *ranks]
        train_records, eval_records = with_barcodes(load_records(source, split=train_split, columns=columns)), None
    else:
        train_split = train_split or "train"
        train_records, eval_records = load_partition(source, train_split, eval_split, columns=ranks)
    if records_filter is not None:
        train_records = records_filter(train_records)
        eval_records = None if eval_records is None else records_filter(eval_records)
    check_labelled(train_records, rank, "training records", train_split)
    if eval_records is not None:
        check_labelled(eval_records, rank, "evaluation records", eval_split)

    seed_everything(seed)  # a fresh encoder and the new head start from seeded weights
    encoder = load_encoder(model)
    # Lineage from the whole source, as the label map is: every class of the head gets its taxonomy.
    lineage = class_lineage(load_records(source, columns=list(ranks)), rank, ranks)
    label_map = train_records.label_map(rank)
    classifier = BarcodeClassifier(encoder, rank, label_map.names, lineage, pooling)
    pairs = training_pairs(train_records, rank, cleaning)
    if steps is None:
        if epochs <= 0:
            raise BioscanError(f"epochs must be positive, got {epochs}", value=epochs)
        steps = max(1, math.ceil(epochs * len(pairs) / batch_size))
    config = TrainConfig(
        out_dir=out, steps=steps, batch_size=min(batch_size, len(pairs)), lr=lr, weight_decay=weight_decay,
        schedule=schedule, grad_clip=grad_clip, cycle_momentum=cycle_momentum,
        precision=precision, device=device, seed=seed, save_every=save_every,
        log_every=log_every, num_workers=num_workers, resume=resume, allow_change=tuple(allow_change),
        definition={
            "model": {"init": _model_source(model), **model_definition(encoder)},
            # The class names first: the same pairs with other names are another classifier.
            "data": content_fingerprint([list(label_map.names), *map(list, pairs)], source=os.path.abspath(source),
                                        split=train_split, holdout=holdout, classes=len(label_map)),
            "rank": rank, "head_lr_scale": head_lr_scale, "random_offset": random_offset,
            "pooling": pooling, "freeze_encoder": freeze_encoder, "cleaning": cleaning,
        },
    )
    training = train_classifier(classifier, pairs, config, random_offset=random_offset, head_lr_scale=head_lr_scale,
                                freeze_encoder=freeze_encoder)

    out = Path(out)
    result = FinetuneResult(out, training, len(pairs), len(label_map), None)
    if not dist_info().is_main:
        return result
    if eval_records is not None:
        scores, predictions = evaluate_classifier(classifier, eval_records, device=training.device,
                                                  cleaning=cleaning)
        scores.insert(0, "split", eval_split if holdout is None else f"held out ({holdout:g})")
        result.scores, result.predictions = scores, predictions
        result.files = {"metrics": write_tsv(scores, out / METRICS_FILE),
                        "predictions": write_tsv(predictions, out / PREDICTIONS_FILE)}
    # The card saved with the weights knew only the architecture: now the run's facts are all known.
    selection = (f"{1 - holdout:.0%} of the records; {holdout:.0%} held out for evaluation" if holdout is not None
                 else f"split {train_split}")
    card = classifier.model_card(
        data=f"{Path(source).name} ({selection})",
        base_model=model.name if isinstance(model, BarcodeBERT) else _public_name(model),
        training={"labelled barcodes": len(pairs), "steps": training.steps, "batch size": config.batch_size,
                  "peak learning rate": lr, "head learning-rate scale": head_lr_scale, "schedule": schedule,
                  "random offset": random_offset, "precision": training.precision, "seed": seed,
                  "final loss": training.loss},
        metrics=[] if result.scores is None else result.scores.to_dict("records"),
    )
    result.files["card"] = card.write(out)
    return result


def _public_name(model: str | os.PathLike[str]) -> str:
    """How a model card names a starting model: a Hub id or architecture name as given, a local folder by its
    name only (a card is meant to be published; a full local path is private)."""
    return Path(model).name if Path(model).exists() else str(model)
