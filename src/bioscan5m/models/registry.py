"""Named DNA model configurations and the one factory in front of them (timm style).

Names read ``k-layers-heads``: "8-4-4" is the paper's BIOSCAN-5M BarcodeBERT (8-mers, 4 layers,
4 heads, hidden 768). The "-tiny" models are sized to pretrain on a laptop CPU in minutes.

>>> model = create_dna_model("4-2-2-tiny")
>>> model.encode_batch(["ACGTACGTACGT"]).shape
(1, 128)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bioscan5m.data.schema import MAX_NUCLEOTIDES
from bioscan5m.errors import BioscanError
from bioscan5m.models.tokenizer import KmerTokenizer

if TYPE_CHECKING:  # the model module imports transformers: only on demand, so the CLI starts fast
    from bioscan5m.models.dna import BarcodeBERT


@dataclass(frozen=True)
class DNAModelConfig:
    """Architecture of a BarcodeBERT: tokenizer (k, stride, max_length) and BERT sizes."""

    k: int
    layers: int
    heads: int
    hidden: int
    intermediate: int | None = None  # default 4 * hidden
    stride: int | None = None  # default k (non-overlapping k-mers)
    max_length: int = MAX_NUCLEOTIDES
    dropout: float = 0.1
    description: str = ""


DNA_MODELS: dict[str, DNAModelConfig] = {
    "8-4-4": DNAModelConfig(
        8, 4, 4, 768, 3072, description="paper model: BarcodeBERT pretrained on BIOSCAN-5M"
    ),
    "4-4-4": DNAModelConfig(
        4, 4, 4, 768, 3072, description="4-mer BarcodeBERT (authors' Canadian 1.5M recipe)"
    ),
    "4-12-12": DNAModelConfig(
        4, 12, 12, 768, 3072, description="first BarcodeBERT paper's BERT-base on 4-mers"
    ),
    "8-2-2-tiny": DNAModelConfig(8, 2, 2, 128, 512, description="paper tokenizer, CPU-sized encoder"),
    "4-2-2-tiny": DNAModelConfig(4, 2, 2, 128, 512, description="CPU-sized: pretrains in minutes"),
}


def list_dna_models() -> list[str]:
    """Names accepted by :func:`create_dna_model`."""
    return list(DNA_MODELS)


def dna_model_config(name: str, **overrides) -> DNAModelConfig:
    """The configuration registered under ``name``, with any fields replaced by ``overrides``."""
    if name not in DNA_MODELS:
        raise BioscanError(f"unknown DNA model {name!r}; choose from {', '.join(DNA_MODELS)}", value=name)
    try:
        return dataclasses.replace(DNA_MODELS[name], **overrides)
    except TypeError as error:
        raise BioscanError(f"bad setting for DNA model {name!r}: {error}", value=overrides) from None


def create_dna_model(name: str, pretrained: str | os.PathLike[str] | None = None, **overrides) -> BarcodeBERT:
    """A BarcodeBERT by registered name, with fresh weights or the weights in ``pretrained``.

    pretrained: a model directory, Hub id or authors' checkpoint (see ``BarcodeBERT.from_pretrained``);
    its architecture must match ``name`` (tokenizer k and BERT sizes).
    overrides: replace fields of the named configuration, e.g. ``hidden=64, dropout=0.0``.
    """
    from bioscan5m.models.dna import BarcodeBERT, bert_config

    config = dna_model_config(name, **overrides)
    tokenizer = KmerTokenizer(config.k, config.stride, config.max_length)
    if pretrained is not None:
        model = BarcodeBERT.from_pretrained(pretrained)
        _check_matches(model, config, name)
        model.name = name
        return model
    bert = bert_config(tokenizer, hidden=config.hidden, layers=config.layers, heads=config.heads,
                       intermediate=config.intermediate, dropout=config.dropout)
    return BarcodeBERT(bert, tokenizer, name=name)


def _check_matches(model: BarcodeBERT, config: DNAModelConfig, name: str) -> None:
    found = {"k": model.tokenizer.k, "layers": model.config.num_hidden_layers,
             "heads": model.config.num_attention_heads, "hidden": model.config.hidden_size}
    wrong = [f"{key} {value} (expected {getattr(config, key)})" for key, value in found.items()
             if value != getattr(config, key)]
    if wrong:
        raise BioscanError(f"pretrained weights do not fit {name!r}: " + ", ".join(wrong), value=name)
