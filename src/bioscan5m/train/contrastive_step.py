"""CLIBD contrastive training (the ``align`` command): image, DNA and text of the same specimen pulled
together, through the engine.

As in the paper, the model trains on ``pretrain`` ∪ ``train`` with the symmetric InfoNCE loss over
every pair of modalities. As in CLIBD every record has a taxonomy sentence (missing ranks written
``not_classified``); a model with a ``text_required_rank`` gives text only to records named at that rank,
and the others take part through image–DNA only.

Data flow: :class:`~bioscan5m.data.datasets.BIOSCAN5M` decodes each image and applies the
deterministic :func:`~bioscan5m.models.image.prepare_image` (in DataLoader workers);
:class:`AlignmentCollate` tokenizes barcodes and taxonomy sentences; :class:`AlignStep` applies the
random augmentation on the whole batch with the engine's per-sample draws (same on any rank, exact on
resume) and computes the loss. The engine does everything else (device, precision, DDP, checkpoints).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from bioscan5m.data.schema import DNA_COLUMN
from bioscan5m.models.image import AUGMENT_DRAWS, clibd_augment, prepare_image
from bioscan5m.models.multimodal import (
    MULTIMODAL_MODELS,
    MultimodalModel,
    create_multimodal_model,
    tokenize_barcodes,
)
from bioscan5m.models.text import MISSING_RANK_WORD, TEXT_RANKS, taxonomy_text, tokenize_texts
from bioscan5m.train.contrastive import contrastive_loss
from bioscan5m.train.engine import StepContext, TrainConfig, TrainResult, train
from bioscan5m.train.run_definition import content_fingerprint, model_definition
from bioscan5m.train.seeding import seed_everything

#: The splits CLIBD trains on.
TRAINING_SPLITS = "pretrain+train"


class AlignmentCollate:
    """Dataset dicts (``image`` uint8 tensor, ``dna`` barcode, one name per rank) → a model batch.

    Adds ``dna_mask`` / ``text_mask`` (B,) bool: which records have a barcode / a taxonomy sentence.
    """

    def __init__(self, modalities: Sequence[str], dna_tokenizer: Any = None, text_tokenizer: Any = None,
                 text_required_rank: str | None = None, text_missing_word: str = MISSING_RANK_WORD,
                 text_pooling: str = "padded-mean") -> None:
        self.modalities = tuple(modalities)
        self.dna_tokenizer = dna_tokenizer
        self.text_tokenizer = text_tokenizer
        self.text_required_rank = text_required_rank
        self.text_missing_word = text_missing_word
        self.text_pooling = text_pooling

    @classmethod
    def for_model(cls, model: MultimodalModel) -> AlignmentCollate:
        """The collate of ``model``: its modalities, tokenizers and text settings."""
        config = model.config
        return cls(model.modalities, model.dna_tokenizer, model.text_tokenizer, config.text_required_rank,
                   config.text_missing_word, config.text_pooling)

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        if "image" in self.modalities:
            batch["image"] = torch.stack([item["image"] for item in items])
        if "dna" in self.modalities:
            batch.update(tokenize_barcodes(self.dna_tokenizer, [item["dna"] for item in items]))
        if "text" in self.modalities:
            sentences = [taxonomy_text({rank: item[rank] for rank in TEXT_RANKS}, self.text_required_rank,
                                       self.text_missing_word) for item in items]
            tokens = tokenize_texts(self.text_tokenizer, sentences, pooling=self.text_pooling)
            batch["text_input_ids"], batch["text_attention_mask"] = tokens["input_ids"], tokens["attention_mask"]
            batch["text_mask"] = torch.tensor([s is not None for s in sentences])
        return batch


class AlignStep:
    """The engine step: augment images (per-sample draws), embed every modality, symmetric InfoNCE."""

    def __init__(self, image_size: int | None, mean: Sequence[float] | None, std: Sequence[float] | None,
                 augment: bool = True) -> None:
        self.image_size = image_size
        self.mean = torch.tensor(mean or (0.0, 0.0, 0.0)).view(1, 3, 1, 1)
        self.std = torch.tensor(std or (1.0, 1.0, 1.0)).view(1, 3, 1, 1)
        self.augment = augment

    def images(self, images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Augmented, normalised ``(B, 3, size, size)`` from prepared uint8 ``(B, 3, R, R)``."""
        if self.augment:
            draws = torch.from_numpy(ctx.uniform(AUGMENT_DRAWS)).float()
        else:  # the whole prepared square, no flip, no rotation
            draws = torch.tensor([[1.0, 0.5, 0.5, 0.5, 1.0, 1.0, 0.5]]).expand(len(images), -1)
        pixels = clibd_augment(images.to(ctx.device), draws, self.image_size)
        return (pixels - self.mean.to(pixels.device)) / self.std.to(pixels.device)

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict:
        inputs = {key: value.to(ctx.device) for key, value in batch.items() if key != "image"}
        if "image" in batch:
            inputs["image"] = self.images(batch["image"], ctx)
        out = model(inputs)
        features = {name: out[name] for name in ("image", "dna", "text") if name in out}
        masks = {name: inputs[f"{name}_mask"] for name in features if f"{name}_mask" in inputs}
        loss, _ = contrastive_loss(features, out["logit_scale"], masks)
        n = len(next(iter(features.values())))
        row = {"loss": loss, "samples": n, "logit_scale": float(out["logit_scale"].detach())}
        if "text_mask" in inputs:
            row["text_fraction"] = float(inputs["text_mask"].float().mean())
        return row


def alignment_dataset(root: str | os.PathLike[str], model: MultimodalModel, split: str = TRAINING_SPLITS,
                      image_package: str = "cropped_256", cache_dir: str | os.PathLike[str] | None = None):
    """The BIOSCAN-5M records of ``split`` as dicts of the modalities ``model`` aligns."""
    from bioscan5m.data.datasets import BIOSCAN5M

    wanted = [m for m in ("image", "dna") if m in model.modalities]
    if "text" in model.modalities:
        wanted += list(TEXT_RANKS)
    transform = prepare_image(model.config.image_size) if "image" in model.modalities else None
    # Barcodes cleaned (gaps, case, flanking N) as everywhere else in the toolkit; missing names are NaN,
    # which taxonomy_text reads as missing.
    return BIOSCAN5M(root, split=split, modality=wanted, image_package=image_package, target_type=(),
                     output_format="dict", transform=transform, cache_dir=cache_dir, clean_barcodes=True)


def taxonomy_names(root: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Every order/family/genus/species name of the dataset (for the offline text vocabulary)."""
    from bioscan5m.data.records import load_records

    records = load_records(root, cache_dir=cache_dir)
    return [name for rank in TEXT_RANKS for name in records.label_map(rank).names]


def records_fingerprint(records: Any, root: str | os.PathLike[str], split: str, image_package: str) -> dict[str, Any]:
    """Fingerprint of the training records (ids, barcodes, taxonomy, in order) with where they came from.

    Image bytes are not hashed (hundreds of GB); a record's image is named by its id in the package.
    """
    columns = [records.column(name) for name in (DNA_COLUMN, *TEXT_RANKS) if name in records.table.column_names]
    rows = ([None if value is None else str(value) for value in values] for values in zip(records.ids, *columns))
    return content_fingerprint(rows, source=os.path.abspath(root), split=split, image_package=image_package)


def align(
    root: str | os.PathLike[str],
    config: TrainConfig,
    *,
    model: str | MultimodalModel = "tiny",
    split: str = TRAINING_SPLITS,
    image_package: str = "cropped_256",
    augment: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    on_step: Callable[[int, torch.nn.Module], None] | None = None,
    **model_options: Any,
) -> tuple[MultimodalModel, TrainResult]:
    """Train a CLIBD model on the dataset at ``root``; the trained model is saved into ``config.out_dir``.

    model: a name from ``MULTIMODAL_MODELS`` (built here after seeding with ``config.seed``, with
    ``model_options`` such as ``modalities=("image", "dna")``, ``freeze=("dna",)``, ``lora=("image",)``)
    or a model to continue. Checkpoints, the JSONL log and resume are the engine's (``config.resume``);
    the run's definition adds the model's configuration (modalities included), the training records'
    fingerprint, the split, the image package and ``augment``. ``on_step(step, model)`` runs after
    every optimizer step (e.g. for evaluation).
    """
    if isinstance(model, str):
        modalities = model_options.get("modalities") or MULTIMODAL_MODELS.get(model, MULTIMODAL_MODELS["tiny"]).modalities
        vocabulary = taxonomy_names(root, cache_dir) if "text" in modalities else None
        seed_everything(config.seed)  # the initial weights are part of what the seed fixes
        model = create_multimodal_model(model, text_vocabulary=vocabulary, **model_options)[0]
    dataset = alignment_dataset(root, model, split, image_package, cache_dir)
    config_ = model.config
    collate = AlignmentCollate.for_model(model)
    step = AlignStep(config_.image_size, config_.image_mean, config_.image_std, augment=augment)
    definition = {**config.definition, "data": records_fingerprint(dataset.records, root, split, image_package),
                  "model": model_definition(model), "augment": augment}
    result = train(model, step, dataset, dataclasses.replace(config, definition=definition),
                   collate_fn=collate, on_step=on_step,
                   save_model=lambda trained, out_dir: trained.save_pretrained(Path(out_dir)))
    return model, result
