"""Fine-tuning BarcodeBERT to classify barcodes at one rank (the paper's Task I fine-tuning).

The classifier is the encoder, mean pooling over the real k-mer tokens (padding excluded) and one linear
layer over the rank's classes; the class indices are those of the rank's label map over the WHOLE source
(``Records.label_map``), so they mean the same in every split. Training runs through the project's one
engine (:func:`bioscan5m.train.engine.train`: checkpoints, exact resume, progress, DDP under torchrun) with
a cross-entropy step; records without a label at the rank are dropped from training.

Evaluation scores the predicted class at its rank and, through the class's lineage (the genus, family
and order its records carry), at every scored rank above it: micro and macro accuracy per rank.

A saved classifier directory is one Hugging Face model folder: ``model.safetensors`` (encoder, masked-LM
head and the linear layer ``classifier.*``), ``config.json`` (model type ``barcodebert``, ``id2label``;
``AutoModelForSequenceClassification`` loads it once :mod:`bioscan5m.models.hf_classifier` is imported,
``BarcodeBERT.from_pretrained`` loads the fine-tuned encoder), the tokenizer files, the model card
``README.md`` and ``classifier.json`` (rank, class names, lineage). Folders of earlier versions, with the
layer in ``classifier.safetensors``, still load.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from bioscan5m.data.schema import DNA_COLUMN, check_rank
from bioscan5m.errors import BioscanError, reading
from bioscan5m.fileio import atomic_write
from bioscan5m.models.card import CLASSIFIER, ModelCard
from bioscan5m.models.dna import CLASSIFIER_PREFIX, WEIGHTS_FILE, BarcodeBERT, check_pooling
from bioscan5m.models.hf_classifier import classifier_config
from bioscan5m.tasks.probes import (
    BY_RECORD,
    check_labelled,
    class_lineage,
    load_partition,
    score_predictions,
    scored_ranks,
    with_barcodes,
    write_tsv,
)
from bioscan5m.train.distributed import dist_info
from bioscan5m.train.engine import StepContext, TrainConfig, TrainResult, train
from bioscan5m.train.run_definition import content_fingerprint, model_definition
from bioscan5m.train.seeding import seed_everything

CLASSIFIER_CONFIG = "classifier.json"
CLASSIFIER_WEIGHTS = "classifier.safetensors"  # where folders of earlier versions kept the layer
METRICS_FILE = "metrics.tsv"
PREDICTIONS_FILE = "predictions.tsv"
FORMAT = "bioscan5m-barcode-classifier/1"


class BarcodeClassifier(nn.Module):
    """BarcodeBERT → mean pooling (padding excluded) → linear layer over the classes of one rank.

    encoder: the BarcodeBERT to fine-tune. rank: the rank classified (e.g. "species"). class_names: the
    rank's names, index i = class i (a ``LabelMap``'s ``names``). lineage: ``{rank: names [C]}``, each
    class's name at the ranks above (None where unknown), used to score and report those ranks.
    pooling: ``masked-mean`` (default) or ``all-positions`` (the authors' classifier: padding included).
    """

    def __init__(self, encoder: BarcodeBERT, rank: str, class_names: Sequence[str],
                 lineage: dict[str, Sequence[str | None]] | None = None, pooling: str = "masked-mean") -> None:
        super().__init__()
        self.pooling = check_pooling(pooling)
        if not class_names:
            raise BioscanError(f"a classifier needs at least one {rank} class", value=rank)
        self.encoder = encoder
        self.rank = check_rank(rank)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.lineage = {r: np.asarray(names, dtype=object) for r, names in (lineage or {}).items() if r != rank}
        for other, names in self.lineage.items():
            if len(names) != len(self.class_names):
                raise BioscanError(f"lineage at {other} has {len(names)} names for {len(self.class_names)} classes")
        self.head = nn.Linear(encoder.hidden_size, len(self.class_names))
        # The masked-LM head is not used; freeze its own parameters (the decoder weight is tied to the
        # token embeddings, which do train) so the optimizer skips them and DDP sees no unused gradients.
        encoder_parameters = {id(p) for p in encoder.bert.parameters()}
        for parameter in encoder.mlm.cls.parameters():
            if id(parameter) not in encoder_parameters:
                parameter.requires_grad_(False)

    @property
    def ranks(self) -> tuple[str, ...]:
        """The ranks this classifier predicts: those of its lineage, then its own."""
        return (*self.lineage, self.rank)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) ``[B, C]`` of token batches ``[B, T]``."""
        return self.head(self.encoder.features(input_ids, attention_mask, self.pooling))

    @torch.no_grad()
    def predict_logits(self, sequences: Sequence[str], *, batch_size: int = 256,
                       device: str | torch.device | None = None, progress: bool | None = None) -> np.ndarray:
        """Class scores ``float32 [N, C]`` of cleaned barcodes (eval mode, see ``embed_barcodes``)."""
        from bioscan5m.embeddings.encoders import embed_barcodes

        features = embed_barcodes(self.encoder, sequences, batch_size=batch_size, device=device, progress=progress,
                                  pooling=self.pooling)
        head = self.head.to(self.encoder.device)
        logits = head(torch.from_numpy(features).to(self.encoder.device))
        return logits.float().cpu().numpy()

    def predict(self, sequences: Sequence[str], **options) -> np.ndarray:
        """Predicted class index ``int64 [N]`` of each barcode (``class_names[i]`` names it)."""
        return self.predict_logits(sequences, **options).argmax(1).astype(np.int64)

    def classify(self, sequences: Sequence[str], **options) -> pd.DataFrame:
        """One row per barcode: the predicted name at each rank of :attr:`ranks`, and ``probability``
        (softmax probability of the predicted class)."""
        logits = torch.from_numpy(self.predict_logits(sequences, **options))
        probability, predicted = F.softmax(logits, dim=1).max(1)
        table = self.names_of(predicted.numpy())
        table["probability"] = probability.numpy()
        return table

    def top_k(self, sequences: Sequence[str], k: int = 5, **options) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable classes of each barcode, best first: class indices ``int64 [N, k]`` and
        their softmax probabilities ``float32 [N, k]`` (k is capped at the number of classes)."""
        if k < 1:
            raise BioscanError(f"top-k needs k >= 1, got {k}", value=k)
        logits = torch.from_numpy(self.predict_logits(sequences, **options))
        probabilities, classes = F.softmax(logits, dim=1).topk(min(k, len(self.class_names)), dim=1)
        return classes.numpy().astype(np.int64), probabilities.numpy()

    def names_of(self, classes: np.ndarray) -> pd.DataFrame:
        """The names of class indices ``[N]`` at every rank of :attr:`ranks` (one column per rank)."""
        classes = np.asarray(classes, dtype=np.int64)
        own = np.array(self.class_names, dtype=object)
        return pd.DataFrame({r: (own if r == self.rank else self.lineage[r])[classes] for r in self.ranks})

    # -- files --------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], *, card: ModelCard | None = None) -> Path:
        """Write the classifier as one Hugging Face folder (``AutoModelForSequenceClassification`` after
        ``import bioscan5m.models.hf_classifier``; ``BarcodeBERT.from_pretrained`` reads its encoder):
        ``model.safetensors`` (encoder, masked-LM head and ``classifier.*``), the tokenizer files,
        ``README.md``, ``config.json`` (model type ``barcodebert``, ``id2label``/``label2id``) and
        ``classifier.json`` (rank, class names, lineage), which marks a complete classifier and comes last.
        """
        directory = Path(directory)
        card = card or self.model_card()
        config = classifier_config(self.encoder.config, self.class_names, pooling=self.pooling)
        self.encoder.save_pretrained(directory, card=card, extra_modules={"classifier": self.head}, config=config)
        config = {
            "format": FORMAT,
            "rank": self.rank,
            "classes": list(self.class_names),
            "lineage": {r: names.tolist() for r, names in self.lineage.items()},
            "pooling": self.pooling,
        }
        with atomic_write(directory / CLASSIFIER_CONFIG) as handle:
            json.dump(config, handle, indent=1)
            handle.write("\n")
        return directory

    def model_card(self, **facts) -> ModelCard:
        """This classifier's model card; ``facts`` fill the other fields (data, training, metrics ...)."""
        name = f"BarcodeBERT {self.rank} classifier"
        return ModelCard(CLASSIFIER, name, self.encoder.card_architecture(), rank=self.rank,
                         classes=len(self.class_names), **facts)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *,
                        device: str | torch.device | None = None) -> BarcodeClassifier:
        """Load a directory written by :meth:`save_pretrained` (returned in eval mode)."""
        directory = Path(directory)
        config_path = directory / CLASSIFIER_CONFIG
        if not config_path.is_file():
            raise BioscanError(f"not a fine-tuned classifier (no {CLASSIFIER_CONFIG}); train one with "
                               "`bioscan5m finetune`", path=directory)
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BioscanError(f"not valid JSON: {error.msg}", path=config_path, line=error.lineno) from None
        encoder = BarcodeBERT.from_pretrained(directory)
        model = cls(encoder, config["rank"], config["classes"], config.get("lineage"),
                    config.get("pooling", "masked-mean"))
        weights = directory / WEIGHTS_FILE
        with reading(weights), safe_open(str(weights), framework="pt") as tensors:
            names = [key for key in tensors.keys() if key.startswith(CLASSIFIER_PREFIX)]  # noqa: SIM118
            state = {key[len(CLASSIFIER_PREFIX):]: tensors.get_tensor(key) for key in names}
        if not state:  # folders of earlier versions kept the layer in classifier.safetensors
            weights = directory / CLASSIFIER_WEIGHTS
            if not weights.is_file():
                raise BioscanError("missing classifier weights (no classifier.* in model.safetensors)",
                                   path=directory)
            with reading(weights):
                state = load_file(str(weights))
        try:
            model.head.load_state_dict(state)
        except RuntimeError as error:
            raise BioscanError(f"classifier weights do not fit {len(model.class_names)} classes: {error}",
                               path=weights) from None
        model.eval()
        return model.to(device) if device is not None else model


class ClassificationStep:
    """The engine step for fine-tuning: tokenise a batch of (barcode, class) pairs, cross-entropy loss.

    random_offset: start each barcode's k-mers at a random position in [0, k) (the pretraining
    augmentation; drawn per sample with ``ctx.uniform``, so exact on resume). Off by default.
    full_width: keep every token column (for ``all-positions`` pooling, where padding counts).
    """

    def __init__(self, tokenizer, *, random_offset: bool = False, full_width: bool = False) -> None:
        self.tokenizer = tokenizer
        self.random_offset = random_offset
        self.full_width = full_width

    def __call__(self, model: nn.Module, batch: Sequence[tuple[str, int]], ctx: StepContext) -> dict:
        barcodes, classes = zip(*batch)
        offsets = (ctx.uniform(1)[:, 0] * self.tokenizer.k).astype(int) if self.random_offset else None
        encoded = self.tokenizer.encode(list(barcodes), offsets=offsets, return_tensors="pt")
        mask = encoded["attention_mask"]
        # Right padding only: columns past the longest barcode change nothing, so drop them.
        width = mask.shape[1] if self.full_width else max(int(mask.sum(1).max()), 1)
        input_ids, mask = encoded["input_ids"][:, :width].to(ctx.device), mask[:, :width].to(ctx.device)
        targets = torch.as_tensor(classes, dtype=torch.long, device=ctx.device)
        logits = model(input_ids, mask)
        return {
            "loss": F.cross_entropy(logits.float(), targets),
            "samples": len(batch),
            "tokens": int(mask.sum()),
            "accuracy": (logits.argmax(-1) == targets).float().mean(),
        }


def training_pairs(records, rank: str, cleaning: str = "standard") -> list[tuple[str, int]]:
    """(cleaned barcode, class index) of every record with a barcode and a label at ``rank``
    (``cleaning``: a :data:`~bioscan5m.data.sequences.CLEANING_MODES` mode)."""
    classes = records.labels(rank)
    return [(barcode, int(c)) for barcode, c in zip(records.barcodes(mode=cleaning), classes) if barcode and c >= 0]


def train_classifier(classifier: BarcodeClassifier, pairs: Sequence[tuple[str, int]], config: TrainConfig, *,
                     random_offset: bool = False, head_lr_scale: float = 1.0,
                     freeze_encoder: bool = False) -> TrainResult:
    """Fine-tune ``classifier`` on (barcode, class) pairs with the engine; the result is saved into
    ``config.out_dir`` (``BarcodeClassifier.from_pretrained`` loads it), checkpoints into its checkpoints/.

    head_lr_scale: multiplies the learning rate of the new linear layer (the encoder is pretrained, the
    head starts from scratch). freeze_encoder: train the linear layer only (the authors' linear probe:
    their fine-tuning with ``--freeze-encoder``; the encoder still runs in training mode, dropout on).
    """
    if freeze_encoder:
        classifier.encoder.requires_grad_(False)
    encoder_params = [p for p in classifier.encoder.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in encoder_params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in encoder_params if p.dim() < 2], "weight_decay": 0.0},
        {"params": [classifier.head.weight], "weight_decay": config.weight_decay, "lr_scale": head_lr_scale},
        {"params": [classifier.head.bias], "weight_decay": 0.0, "lr_scale": head_lr_scale},
    ]
    groups = [group for group in groups if group["params"]]
    step = ClassificationStep(classifier.encoder.tokenizer, random_offset=random_offset,
                              full_width=classifier.pooling == "all-positions")
    return train(classifier, step, list(pairs), config, collate_fn=list, param_groups=groups,
                 save_model=lambda trained, out: trained.save_pretrained(Path(out)))


def evaluate_classifier(classifier: BarcodeClassifier, records, *, batch_size: int = 256,
                        device: str | torch.device | None = None,
                        cleaning: str = "standard") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score ``classifier`` on ``records`` (all with a barcode) at each of its ranks.

    Returns ``(scores, predictions)``: micro/macro accuracy per rank (``rank, micro, macro, queries,
    classes``; accuracies in [0, 1]; records without a true label at a rank are left out there), and one
    row per record (processid, then ``<rank>`` and ``predicted_<rank>`` per rank, and ``probability``).
    """
    if device is not None and str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    table = classifier.classify(records.barcodes(mode=cleaning), batch_size=batch_size, device=device)
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
        row = self.scores[self.scores["rank"] == (rank or self.scores["rank"].iloc[-1])]
        if row.empty:
            raise BioscanError(f"no score at rank {rank!r}", value=rank)
        return float(row[average].iloc[0])


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
