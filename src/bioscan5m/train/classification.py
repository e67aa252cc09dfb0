"""Fine-tuning objective: cross-entropy of a :class:`~bioscan5m.models.classifier.BarcodeClassifier` on
(barcode, class) pairs, through the project's one engine (checkpoints, exact resume, progress, DDP)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bioscan5m.models.classifier import BarcodeClassifier
from bioscan5m.train.engine import StepContext, TrainConfig, TrainResult, train, weight_decay_groups


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
        encoded = self.tokenizer.encode(list(barcodes), offsets=offsets, return_tensors="pt",
                                        trim=not self.full_width)
        input_ids, mask = encoded["input_ids"].to(ctx.device), encoded["attention_mask"].to(ctx.device)
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
    groups = weight_decay_groups(classifier.head.parameters(), config.weight_decay, lr_scale=head_lr_scale)
    if freeze_encoder:
        classifier.encoder.requires_grad_(False)
    else:
        groups = weight_decay_groups(classifier.encoder.parameters(), config.weight_decay) + groups
    step = ClassificationStep(classifier.encoder.tokenizer, random_offset=random_offset,
                              full_width=classifier.pooling == "all-positions")
    return train(classifier, step, list(pairs), config, collate_fn=list, param_groups=groups,
                 save_model=lambda trained, out: trained.save_pretrained(Path(out)))
