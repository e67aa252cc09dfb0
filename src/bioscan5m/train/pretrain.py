"""BarcodeBERT pretraining: masked language modelling on de-duplicated barcodes, through the engine.

The paper pretrains on the ``pretrain`` + ``other_heldout`` splits, barcodes cleaned (gaps removed,
upper case, leading/trailing N stripped), truncated to 660 nt and de-duplicated, with a random
offset in [0, k) per sample and 50 % of the k-mer tokens masked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from bioscan5m.data.schema import DNA_COLUMN, SPLIT_COLUMN, parse_splits
from bioscan5m.errors import BioscanError
from bioscan5m.models.dna import BarcodeBERT
from bioscan5m.train.engine import StepContext, TrainConfig, TrainResult, train
from bioscan5m.train.losses import IGNORE, check_masking, mask_tokens, mlm_loss
from bioscan5m.train.run_definition import content_fingerprint, model_definition

#: The paper's pretraining records on a source with BIOSCAN-5M splits.
PRETRAINING_SPLITS = "pretrain+other_heldout"
#: The benchmarks' test splits: never pretrained on unless ``split`` names them.
HELD_OUT_SPLITS: tuple[str, ...] = ("test", "test_unseen")


def pretraining_split(source: str | os.PathLike[str], split: str | None = None) -> str | None:
    """The split selection to pretrain on: ``split``, or by default ``pretrain+other_heldout`` on a source
    with BIOSCAN-5M splits (None, every record, on one without, such as a BOLD TSV or a FASTA file).

    Raises BioscanError when the selection takes in ``test`` or ``test_unseen`` records (through a group
    such as ``all`` or ``seen``) without naming them: pretraining on them leaks into every benchmark score.
    """
    from bioscan5m.data.records import load_records

    if split is None:
        splits = load_records(source, columns=[SPLIT_COLUMN]).column(SPLIT_COLUMN)
        return PRETRAINING_SPLITS if any(name is not None for name in splits) else None
    named = {part.strip() for part in split.split("+")}
    leaked = [name for name in HELD_OUT_SPLITS if name in parse_splits(split) and name not in named]
    if leaked:
        raise BioscanError(
            f"split {split!r} takes in {' and '.join(leaked)} (the benchmarks' test records); name them in "
            f"--split to pretrain on them anyway, or use the default {PRETRAINING_SPLITS}", value=split)
    return split


#: How pretraining barcodes are de-duplicated: within the chosen records (after cleaning), or the
#: BarcodeBERT authors' way (whole metadata file, trailing N stripped, first row kept; then the splits).
PRETRAINING_DEDUPLICATIONS: tuple[str, ...] = ("selection", "whole-dataset")


def load_pretraining_barcodes(source: str | os.PathLike[str], split: str | None = None, *,
                              cleaning: str = "standard", deduplicate: str = "selection") -> list[str]:
    """Cleaned, de-duplicated, non-empty barcodes of ``source`` (any table or FASTA load_records reads), of
    the splits :func:`pretraining_split` chooses (by default ``pretrain+other_heldout`` where there are
    splits; test/test_unseen only when ``split`` names them).

    cleaning: ``standard`` or ``barcodebert`` (trailing N only; see ``bioscan5m.data.sequences``).
    deduplicate: ``selection`` or ``whole-dataset`` (:data:`PRETRAINING_DEDUPLICATIONS`; the authors'
    pre_training.csv is ``cleaning="barcodebert", deduplicate="whole-dataset"``).
    """
    from bioscan5m.data.records import load_records
    from bioscan5m.data.sequences import deduplicate_barcodes

    if deduplicate not in PRETRAINING_DEDUPLICATIONS:
        raise BioscanError(f"deduplicate must be one of {', '.join(PRETRAINING_DEDUPLICATIONS)}, not "
                           f"{deduplicate!r}", value=deduplicate)
    split = pretraining_split(source, split)
    records = load_records(source, split=split, columns=[DNA_COLUMN])
    if deduplicate == "whole-dataset":
        from bioscan5m.data.authors_split import authors_deduplicated_ids, keep_deduplicated

        records = keep_deduplicated(records, authors_deduplicated_ids(source))
    barcodes = records.barcodes(mode=cleaning)
    keep, _ = deduplicate_barcodes(barcodes)
    barcodes = [barcodes[i] for i in keep if barcodes[i]]
    if not barcodes:
        where = f" in split {split!r}" if split else ""
        raise BioscanError(f"no DNA barcodes{where}", path=source)
    return barcodes


class MLMStep:
    """The engine step for masked language modelling: tokenize (random offset), mask, predict.

    mask_ratio: share of real k-mer tokens masked (paper: 0.5). masking: "mask" (all chosen tokens
    become [MASK], as the authors do) or "bert" (80/10/10). random_offset: the [0, k) augmentation.
    """

    def __init__(self, model: BarcodeBERT, *, mask_ratio: float = 0.5, masking: str = "mask",
                 random_offset: bool = True) -> None:
        check_masking(mask_ratio, masking)
        self.tokenizer = model.tokenizer
        self.mask_ratio, self.masking, self.random_offset = mask_ratio, masking, random_offset

    def __call__(self, model: torch.nn.Module, batch: Sequence[str], ctx: StepContext) -> dict:
        tokenizer = self.tokenizer
        # Per-sample uniforms: column 0 picks the offset, then 3 per token for the masking.
        draws = ctx.uniform(1 + 3 * tokenizer.n_tokens)
        offsets = (draws[:, 0] * tokenizer.k).astype(int) if self.random_offset else None
        encoded = tokenizer.encode(list(batch), offsets=offsets, return_tensors="pt")
        input_ids, attention_mask = encoded["input_ids"], encoded["attention_mask"]
        maskable = (attention_mask == 1) & (input_ids >= tokenizer.first_kmer_id)
        token_draws = torch.from_numpy(draws[:, 1:].reshape(len(batch), tokenizer.n_tokens, 3))
        # Masks are made on the CPU, where the counts below cost no device synchronisation.
        masked_ids, labels = mask_tokens(input_ids, maskable, token_draws, ratio=self.mask_ratio,
                                         mask_token_id=tokenizer.mask_token_id, strategy=self.masking,
                                         first_kmer_id=tokenizer.first_kmer_id, vocab_size=tokenizer.vocab_size)
        positions = labels != IGNORE
        n_masked, n_tokens = int(positions.sum()), int(attention_mask.sum())
        device = ctx.device
        output = model(masked_ids.to(device), attention_mask.to(device), masked_positions=positions.to(device))
        loss, accuracy = mlm_loss(output.logits, labels[positions].to(device))
        return {"loss": loss, "weight": n_masked, "tokens": n_tokens, "samples": len(batch),
                "masked_accuracy": accuracy}


def pretrain(model: BarcodeBERT, barcodes: Sequence[str], config: TrainConfig, *, mask_ratio: float = 0.5,
             masking: str = "mask", random_offset: bool = True,
             on_step: Callable[[int, torch.nn.Module], None] | None = None) -> TrainResult:
    """Pretrain ``model`` by MLM on ``barcodes``; the trained model is saved into ``config.out_dir``
    (``BarcodeBERT.from_pretrained(config.out_dir)`` loads it), checkpoints into its checkpoints/.

    The run's definition adds the model's configuration, a fingerprint of the barcodes (merged into
    ``config.definition["data"]``, where a caller may describe their source) and the masking options.
    ``on_step(step, model)`` runs after every optimizer step (e.g. for evaluation).
    """
    step = MLMStep(model, mask_ratio=mask_ratio, masking=masking, random_offset=random_offset)
    barcodes = list(barcodes)
    definition = {**config.definition, "data": content_fingerprint(barcodes, **config.definition.get("data", {})),
                  "model": model_definition(model), "mask_ratio": mask_ratio, "masking": masking,
                  "random_offset": random_offset}
    return train(model, step, barcodes, dataclasses.replace(config, definition=definition), collate_fn=list,
                 save_model=lambda trained, out: trained.save_pretrained(Path(out)), on_step=on_step)
