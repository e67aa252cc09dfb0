"""Symmetric InfoNCE (CLIP loss) over every pair of modalities, as used by CLIBD.

For features ``a``, ``b`` of shape (N, D), L2-normalised, and a logit scale ``s`` (the inverse
temperature), the pair loss is ``(CE(s·a·bᵀ, diag) + CE(s·b·aᵀ, diag)) / 2``; the total is the mean
over the pairs of chosen modalities (image–DNA, image–text, DNA–text, ...). Rows a modality lacks
(records without a species name have no text) are left out of that modality's pairs only.

Under torchrun the features of every rank are gathered WITH gradients before the loss, so each rank
computes the loss over the global batch (every sample sees every other as a negative) and the
data-parallel average of the gradients equals the single-process gradient.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from bioscan5m.train.distributed import all_gather_with_grad, is_distributed


def pair_infonce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between row-aligned features ``a``, ``b`` (N, D): row i of each is a positive pair."""
    logits = scale * a @ b.t()
    targets = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


def contrastive_loss(
    features: Mapping[str, torch.Tensor],
    scale: torch.Tensor,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    modalities: Sequence[str] | None = None,
    gather: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean symmetric InfoNCE over every pair of ``modalities`` (default: all keys of ``features``).

    features: modality → (B, D) L2-normalised embeddings of the same B records on this rank.
    scale: the logit scale (a positive scalar tensor, e.g. the model's ``LogitScale()()``).
    masks: modality → (B,) bool, True where the record has that modality (absent = all True).
    gather: concatenate the features of all ranks (with gradients) when torch.distributed is running.
    Returns ``(loss, {"image-dna": pair loss, ...})``: the loss is the mean over the pairs that have at
    least two usable rows (a batch of unlabelled records has no text pairs), the same on every rank.
    """
    names = list(modalities) if modalities is not None else list(features)
    if len(names) < 2:
        raise ValueError(f"contrastive alignment needs at least two modalities, got {names}")
    distributed = gather and is_distributed()
    feats, valid = {}, {}
    for name in names:
        x = features[name]
        m = masks.get(name) if masks is not None else None
        m = torch.ones(len(x), dtype=torch.bool, device=x.device) if m is None else m.to(x.device).bool()
        if distributed:
            x, m = all_gather_with_grad(x), all_gather_with_grad(m.to(torch.uint8)).bool()
        feats[name], valid[name] = x, m
    pair_losses: dict[str, torch.Tensor] = {}
    for first, second in itertools.combinations(names, 2):
        both = valid[first] & valid[second]
        if int(both.sum()) >= 2:
            pair_losses[f"{first}-{second}"] = pair_infonce(feats[first][both], feats[second][both], scale)
    # A zero that depends on every input: an encoder whose pairs are all empty in this batch (no
    # labelled record, so no text) still gets a (zero) gradient, which keeps DDP's ranks in step.
    zero = sum(x.sum() for x in feats.values()) * 0.0 + scale * 0.0
    if not pair_losses:
        return zero, {}
    return torch.stack(list(pair_losses.values())).mean() + zero, pair_losses
