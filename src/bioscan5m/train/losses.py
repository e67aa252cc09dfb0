"""Masked language modelling on k-mer tokens: choosing the masked tokens, and the loss over them.

BarcodeBERT (the authors' ``pretraining.py``) masks each real k-mer token with probability
``ratio`` (50 %) and replaces EVERY chosen token by ``[MASK]`` (no 80/10/10 mix); ``[UNK]`` and
padding are never chosen. That is our default, ``strategy="mask"``; ``strategy="bert"`` gives BERT's
80 % ``[MASK]`` / 10 % random k-mer / 10 % unchanged. One deliberate difference: the authors'
loss also scores the unmasked tokens (they predict every k-mer); ours scores the masked ones only,
as in BERT, which is the task the encoder must solve from context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bioscan5m.errors import BioscanError

#: Label value ignored by the loss (tokens that were not masked).
IGNORE = -100
MASKING_STRATEGIES = ("mask", "bert")


def check_masking(ratio: float, strategy: str) -> None:
    """Raise a BioscanError unless ``ratio`` is in (0, 1) and ``strategy`` one of MASKING_STRATEGIES."""
    if not 0.0 < ratio < 1.0:
        raise BioscanError(f"mask ratio must be between 0 and 1, got {ratio}", value=ratio)
    if strategy not in MASKING_STRATEGIES:
        raise BioscanError(f"unknown masking {strategy!r}; choose from {', '.join(MASKING_STRATEGIES)}",
                           value=strategy)


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    draws: torch.Tensor,
    *,
    ratio: float,
    mask_token_id: int,
    strategy: str = "mask",
    first_kmer_id: int | None = None,
    vocab_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask tokens for MLM: returns ``(masked_input_ids, labels)``, both like ``input_ids [B, T]``.

    maskable: bool ``[B, T]``, True for real k-mer tokens (not padding, [UNK] or other specials).
    draws: uniforms in [0, 1) ``[B, T, 3]`` (or ``[B, T]`` for strategy "mask"): column 0 chooses the
    tokens (< ratio), columns 1-2 the 80/10/10 replacement of the "bert" strategy. Passing the draws
    in keeps masking reproducible wherever the sample is processed.
    labels hold the original id at masked positions and IGNORE elsewhere.
    """
    check_masking(ratio, strategy)
    choose = draws if draws.dim() == input_ids.dim() else draws[..., 0]
    masked = maskable & (choose < ratio)
    labels = torch.where(masked, input_ids, torch.full_like(input_ids, IGNORE))
    output = input_ids.clone()
    if strategy == "mask":
        output[masked] = mask_token_id
        return output, labels
    if first_kmer_id is None or vocab_size is None:
        raise BioscanError("the 'bert' masking strategy needs first_kmer_id and vocab_size")
    kind, pick = draws[..., 1], draws[..., 2]
    to_mask = masked & (kind < 0.8)
    to_random = masked & (kind >= 0.8) & (kind < 0.9)
    random_ids = first_kmer_id + (pick * (vocab_size - first_kmer_id)).long()
    output[to_mask] = mask_token_id
    output[to_random] = random_ids[to_random]
    return output, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of ``logits [M, vocab]`` against the M masked ``labels``, and their accuracy.

    A batch without any masked token gives a zero loss that still depends on the logits (so every
    parameter keeps a gradient, as DDP requires).
    """
    if labels.numel() == 0:
        zero = logits.sum() * 0.0
        return zero, zero.detach()
    loss = F.cross_entropy(logits.float(), labels)
    accuracy = (logits.argmax(-1) == labels).float().mean()
    return loss, accuracy
