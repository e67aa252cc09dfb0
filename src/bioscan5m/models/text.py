"""Text encoder for taxonomy strings ("order family genus species"), as in CLIBD.

The text of a record is its order, family, genus and species names joined by spaces. A missing rank is
written as a placeholder word, ``not_classified`` as in the authors' data, so every rank keeps its position
in the sentence (a record with order and family only reads
``"Diptera Culicidae not_classified not_classified"``). As in CLIBD, every record has text; with a
``required`` rank, records missing it have none (``None``) and the alignment loss masks them out.

Pooling: the authors pad every sentence to 20 tokens and average the last hidden states over all 20
positions, padding included (``padded-mean``, the default of new models); ``masked-mean`` averages over the
real tokens only, which makes an embedding independent of the padding.

Two tokenizers: the pretrained BERT-small WordPiece vocabulary when reachable, or a small offline
WordPiece vocabulary built from the taxonomy names (whole lower-cased names as words, plus single
letters as ``##`` pieces so an unseen name is still spelled out rather than lost to [UNK]).
"""

from __future__ import annotations

import re
import string
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bioscan5m.data.schema import SCORED_RANKS
from bioscan5m.errors import BioscanError
from bioscan5m.models.dna import mean_pool
from bioscan5m.models.hf_backbone import backbone_from_config, backbone_spec, load_backbone

#: The ranks that make up a taxonomy sentence, from the top down (CLIBD leaves out subfamily).
TEXT_RANKS: tuple[str, ...] = tuple(rank for rank in SCORED_RANKS if rank != "subfamily")
#: The word that stands in for a missing rank (the authors' ``not_classified``).
MISSING_RANK_WORD = "not_classified"
#: Longest token sequence fed to the text encoder ([CLS] + words + [SEP]).
MAX_TEXT_TOKENS = 32
#: Text poolings: the authors' mean over all positions of a 20-token padded sentence, or over real tokens.
TEXT_POOLINGS: tuple[str, ...] = ("padded-mean", "masked-mean")
#: The authors' fixed text length (``padding="max_length", max_length=20``).
PADDED_TEXT_TOKENS = 20

#: Named text backbones: ``hub`` is the pretrained checkpoint (if any), ``config`` its architecture.
TEXT_BACKBONES: dict[str, dict[str, Any]] = {
    "bert-small": {
        "hub": "prajjwal1/bert-small",
        "config": {"model_type": "bert", "hidden_size": 512, "num_hidden_layers": 4,
                   "num_attention_heads": 8, "intermediate_size": 2048},
    },
    "bert-tiny": {
        "hub": None,
        "config": {"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 2, "intermediate_size": 128,
                   "max_position_embeddings": MAX_TEXT_TOKENS},
    },
}

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: Words as BERT's basic tokenizer splits them: runs of letters/digits; every punctuation mark (``_`` too) alone.
_WORD_SPLIT = re.compile(r"[^\W_]+|[^\w\s]|_")


def taxonomy_text(names: dict[str, str | None] | Sequence[str | None], required: str | None = None,
                  missing_word: str = MISSING_RANK_WORD) -> str | None:
    """One record's taxonomy sentence, or None when its ``required`` rank (None: none) is missing.

    ``names`` maps each of TEXT_RANKS to a name (or is a sequence in that order); empty or None
    means missing and is written ``missing_word``.

    >>> taxonomy_text({"order": "Diptera", "family": "Culicidae", "genus": "Aedes",
    ...                "species": "Aedes albopictus"})
    'Diptera Culicidae Aedes Aedes albopictus'
    """
    ranks = TEXT_RANKS
    if required is not None and required not in ranks:
        raise BioscanError(f"text needs one of the ranks {', '.join(ranks)}, not {required!r}", value=required)
    values = [names.get(rank) for rank in ranks] if isinstance(names, dict) else list(names)
    cleaned = [(v.strip() if isinstance(v, str) else None) or None for v in values]
    if required is not None and cleaned[ranks.index(required)] is None:
        return None
    return " ".join(v if v is not None else missing_word for v in cleaned)


def taxonomy_vocabulary(texts: Iterable[str | None]) -> list[str]:
    """A WordPiece vocabulary for taxonomy sentences: special tokens, the placeholder's words, single
    characters (as words and ``##`` pieces) and every lower-cased word seen in ``texts``."""
    characters = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = sorted({w for text in texts if text for w in _WORD_SPLIT.findall(text.lower())})
    placeholder = [w for w in _WORD_SPLIT.findall(MISSING_RANK_WORD) if w not in characters]
    vocab = list(_SPECIAL_TOKENS) + placeholder + characters + [f"##{c}" for c in characters]
    seen = set(vocab)
    vocab += [w for w in words if w not in seen]
    return vocab


def build_text_tokenizer(vocabulary: Sequence[str]) -> Any:
    """A BERT (uncased) WordPiece tokenizer over ``vocabulary``."""
    import inspect

    from transformers import BertTokenizerFast

    options = {"do_lower_case": True, "model_max_length": MAX_TEXT_TOKENS}
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers >= 5
        return BertTokenizerFast(vocab={word: i for i, word in enumerate(vocabulary)}, **options)
    with tempfile.TemporaryDirectory() as tmp:  # transformers 4 reads the vocabulary from a file
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        return BertTokenizerFast(vocab_file=str(vocab_file), **options)


def tokenize_texts(tokenizer: Any, texts: Sequence[str | None], max_length: int = MAX_TEXT_TOKENS,
                   pooling: str = "masked-mean") -> dict[str, torch.Tensor]:
    """Tokenize sentences (None → empty) to ``input_ids``/``attention_mask`` of shape (B, L).

    ``padded-mean`` pooling pads every sentence to the authors' 20 tokens (L = 20); otherwise L is the
    batch's longest sentence, at most ``max_length``.
    """
    if pooling == "padded-mean":
        padding, max_length = "max_length", PADDED_TEXT_TOKENS
    else:
        padding = True
    encoded = tokenizer([t or "" for t in texts], padding=padding, truncation=True, max_length=max_length,
                        return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


class TextEncoder(nn.Module):
    """A BERT-style encoder: ``forward(input_ids, attention_mask) -> (B, width)``, the mean of the last
    hidden states over every position (``padded-mean``, the authors') or over real tokens (``masked-mean``)."""

    def __init__(self, backbone: nn.Module, pooling: str = "masked-mean") -> None:
        super().__init__()
        if pooling not in TEXT_POOLINGS:
            raise BioscanError(f"unknown text pooling {pooling!r}; choose from {', '.join(TEXT_POOLINGS)}",
                               value=pooling)
        self.backbone = backbone
        self.pooling = pooling
        self.width = int(backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden.mean(1) if self.pooling == "padded-mean" else mean_pool(hidden, attention_mask)

    def config_dict(self) -> dict[str, Any]:
        """The backbone's architecture as plain data (enough to rebuild it offline)."""
        return self.backbone.config.to_dict()


def text_backbone_spec(name: str) -> dict[str, Any]:
    """Resolve a text model name to ``{"hub", "config"}`` (registered name, hub id or directory)."""
    return backbone_spec(name, TEXT_BACKBONES, "text")


def create_text_encoder(config: dict[str, Any], hub: str | None = None, pretrained: bool | None = None,
                        vocabulary: Sequence[str] | None = None, tokenizer: Any = None,
                        pooling: str = "masked-mean") -> tuple[TextEncoder, Any]:
    """Build ``(encoder, tokenizer)``.

    With ``tokenizer`` given (a saved model being rebuilt), ``config`` is used as is. Otherwise, with
    ``hub`` weights (``pretrained`` True, or None and reachable) the hub tokenizer is used, else the
    encoder starts from random weights over a WordPiece ``vocabulary`` (see
    :func:`taxonomy_vocabulary`; default: characters only). ``pooling``: see :class:`TextEncoder`.
    """
    if tokenizer is not None:
        return TextEncoder(backbone_from_config(config), pooling), tokenizer
    if pretrained is not False and hub:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(hub)
        except OSError as error:
            if pretrained:
                raise BioscanError(f"cannot load the text tokenizer of {hub!r}: {error}", value=hub) from None
        else:
            return TextEncoder(load_backbone(config, hub, pretrained, "text"), pooling), tokenizer
        warnings.warn(f"text model {hub!r} unreachable; using a taxonomy vocabulary and random weights",
                      stacklevel=2)
    tokenizer = build_text_tokenizer(vocabulary or taxonomy_vocabulary([]))
    values = {**config, "vocab_size": len(tokenizer)}
    values.setdefault("max_position_embeddings", MAX_TEXT_TOKENS)
    return TextEncoder(backbone_from_config(values), pooling), tokenizer
