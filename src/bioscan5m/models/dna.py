"""BarcodeBERT: a BERT encoder over k-mer tokens of DNA barcodes, with a masked-language-model head.

The network is ``transformers.BertForMaskedLM`` (SDPA attention); this module adds what a barcode
model needs around it: its :class:`KmerTokenizer`, padding-aware mean pooling (the embedding used by
every task), :meth:`BarcodeBERT.encode_batch`, and one directory format shared with Hugging Face
(``config.json`` + ``model.safetensors`` + ``kmer_tokenizer.json`` + ``tokenizer.json`` + a model card:
``AutoModelForMaskedLM``, ``AutoModel`` and ``AutoTokenizer`` read the same directory).
:meth:`BarcodeBERT.from_pretrained` also reads the authors' published checkpoints (Hub repository or local copy, or their ``.pt`` training checkpoints) in THEIR vocabulary
order: ``[MASK] [UNK]`` + k-mers (or ``[MASK] [CLS] [UNK]`` + k-mers for the first paper's models).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model
from torch import nn
from transformers import BertConfig, BertForMaskedLM

from bioscan5m.errors import BioscanError, reading
from bioscan5m.fileio import atomic_path, atomic_write, read_json
from bioscan5m.models import POOLINGS  # ``embeddings.mean(1)`` in the authors' finetuning.py: all-positions
from bioscan5m.models.card import MASKED_LM, ModelCard
from bioscan5m.models.hf_tokenizer import save_hf_tokenizer
from bioscan5m.models.tokenizer import AUTHORS_SPECIALS, TOKENIZER_FILE, KmerTokenizer
from bioscan5m.models.weights import save_weights

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
#: Weights under this prefix in model.safetensors belong to a fine-tuned classifier's linear layer.
CLASSIFIER_PREFIX = "classifier."
#: Special tokens of the first BarcodeBERT paper's checkpoints (vocabulary 4**k + 3).
AUTHORS_V1_SPECIALS: tuple[str, ...] = ("[MASK]", "[CLS]", "[UNK]")
#: BertConfig fields read from a foreign config.json (everything else there is ignored).
_BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range", "layer_norm_eps", "position_embedding_type", "pad_token_id")


def bert_config(tokenizer: KmerTokenizer, *, hidden: int, layers: int, heads: int, intermediate: int | None = None,
                dropout: float = 0.1) -> BertConfig:
    """A BERT configuration sized for ``tokenizer`` (vocabulary, and at least 512 positions)."""
    if hidden % heads:
        raise BioscanError(f"hidden size {hidden} is not divisible by {heads} attention heads", value=hidden)
    return BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=intermediate or 4 * hidden,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                      max_position_embeddings=max(512, tokenizer.n_tokens), pad_token_id=tokenizer.pad_token_id,
                      attn_implementation="sdpa")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden [B, T, H]`` over the tokens where ``attention_mask [B, T]`` is 1 → ``[B, H]``.

    A row without any token (a barcode shorter than k) pools to zeros.
    """
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise BioscanError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}", value=pooling)
    return pooling


@dataclass
class DNAModelOutput:
    """hidden: last hidden states ``[B, T, H]``; logits: MLM logits ``[M, vocab]`` at the M requested
    positions (None when none were requested)."""

    hidden: torch.Tensor
    logits: torch.Tensor | None = None


class BarcodeBERT(nn.Module):
    """A k-mer BERT for DNA barcodes: ``tokenizer`` + ``BertForMaskedLM(config)``.

    Create one by name with :func:`bioscan5m.models.registry.create_dna_model`, or load one with
    :meth:`from_pretrained`.
    """

    def __init__(self, config: BertConfig, tokenizer: KmerTokenizer, name: str | None = None) -> None:
        super().__init__()
        if config.vocab_size != tokenizer.vocab_size:
            raise BioscanError(
                f"model vocabulary ({config.vocab_size}) does not match the tokenizer's "
                f"({tokenizer.vocab_size})"
            )
        config._attn_implementation = "sdpa"
        self.mlm = BertForMaskedLM(config)
        self.tokenizer = tokenizer
        self.name = name

    @property
    def config(self) -> BertConfig:
        return self.mlm.config

    @property
    def bert(self) -> nn.Module:
        """The encoder (``transformers.BertModel``, without pooler)."""
        return self.mlm.bert

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        masked_positions: torch.Tensor | None = None,
    ) -> DNAModelOutput:
        """Encode ``input_ids [B, T]``; with ``masked_positions`` (bool ``[B, T]``) also return MLM logits
        for those positions only (the head over 4**k k-mers is the costly part, so it skips the rest)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = None if masked_positions is None else self.mlm.cls(hidden[masked_positions])
        return DNAModelOutput(hidden=hidden, logits=logits)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 pooling: str = "masked-mean") -> torch.Tensor:
        """Mean-pooled embeddings ``[B, H]`` of token batches (padding excluded, unless ``pooling`` is
        ``all-positions``: then every column of the batch counts, so give it full-width batches)."""
        hidden = self(input_ids, attention_mask).hidden
        return hidden.mean(1) if check_pooling(pooling) == "all-positions" else mean_pool(hidden, attention_mask)

    @torch.no_grad()
    def encode_batch(self, sequences: Sequence[str], pooling: str = "masked-mean") -> np.ndarray:
        """Embeddings of one batch of barcodes, in eval mode on the model's device: ``float32 [B, hidden]``, the
        mean of the last hidden states over each barcode's k-mer tokens (padding excluded; see :data:`POOLINGS`).
        Many barcodes go through :func:`bioscan5m.embeddings.encoders.embed_barcodes` (the one inference loop)."""
        # All-positions pooling needs the padding columns; the padding-aware mean does not (trim).
        encoded = self.tokenizer.encode(list(sequences), return_tensors="pt",
                                        trim=check_pooling(pooling) != "all-positions")
        was_training = self.training
        self.eval()
        try:
            ids, mask = encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device)
            return self.features(ids, mask, pooling).float().cpu().numpy()
        finally:
            self.train(was_training)

    # -- files --------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], *, card: ModelCard | None = None,
                        extra_modules: dict[str, nn.Module] | None = None, config: dict | None = None) -> Path:
        """Write a Hugging Face model folder into ``directory``, each file atomically:

        ``model.safetensors`` (``bert.*``, ``cls.*``), ``kmer_tokenizer.json`` (our tokenizer's settings),
        ``tokenizer.json`` + ``tokenizer_config.json`` (the same tokenizer for ``AutoTokenizer``, see
        :mod:`bioscan5m.models.hf_tokenizer`), ``README.md`` (the model card: ``card``, or one from the
        architecture alone) and, last since it marks a complete model, ``config.json``.

        extra_modules / config: for a fine-tuned classifier's folder (``BarcodeClassifier``): modules saved
        beside the network under their names (e.g. ``{"classifier": head}``) and the config.json to write.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        network: nn.Module = self.mlm
        if extra_modules:
            network = nn.Module()
            network.bert, network.cls = self.mlm.bert, self.mlm.cls
            for name, module in extra_modules.items():
                network.add_module(name, module)
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_weights(network, tmp)  # byte-identical for identical weights
        self.tokenizer.save(directory / TOKENIZER_FILE)
        save_hf_tokenizer(self.tokenizer, directory)
        (card or ModelCard(MASKED_LM, self.name, self.card_architecture())).write(directory)
        if config is None:
            config = {**self.config.to_dict(), "architectures": ["BertForMaskedLM"]}
        config = {**config, "bioscan5m": {"model": self.name, "tokenizer": TOKENIZER_FILE}}
        with atomic_write(directory / CONFIG_FILE) as handle:
            json.dump(config, handle, indent=2, sort_keys=True)
            handle.write("\n")
        return directory

    def card_architecture(self) -> dict[str, object]:
        """The architecture facts a model card shows."""
        c, tok = self.config, self.tokenizer
        return {
            "architecture": "BERT encoder (transformers BertModel) over k-mer tokens",
            "configuration": self.name,
            "k-mer size": tok.k,
            "tokens per barcode": f"{tok.n_tokens} non-overlapping {tok.k}-mers of the first {tok.max_length} nt"
            if tok.stride == tok.k else f"{tok.n_tokens} {tok.k}-mers every {tok.stride} nt",
            "vocabulary": f"{c.vocab_size:,} ({' '.join(tok.specials)} + 4^{tok.k} k-mers)",
            "layers": c.num_hidden_layers,
            "attention heads": c.num_attention_heads,
            "hidden size": c.hidden_size,
            "parameters": sum(p.numel() for p in self.mlm.bert.parameters()),
        }

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], *, specials: Sequence[str] | None = None,
                        device: str | torch.device | None = None) -> BarcodeBERT:
        """Load a model directory written by :meth:`save_pretrained`, or one of the authors' checkpoints.

        source: a directory; a Hub repository id such as ``bioscan-ml/BarcodeBERT`` (downloaded with
        huggingface_hub when it is not a local path); or an authors' ``.pt`` training checkpoint.
        specials: the special tokens of a foreign checkpoint, in id order, when they are not the
        published ones (``[MASK] [UNK]`` for vocabularies of 4**k + 2, ``[MASK] [CLS] [UNK]`` for 4**k + 3).
        A foreign checkpoint's encoder is loaded exactly; its MLM head is too if it has BERT's, while a
        token-classifier head (the authors' pretraining head) is left out and ours starts fresh.
        The model is returned in eval mode, as Hugging Face does (the training engine switches it back).
        """
        path = _resolve_source(source)
        if path.is_file():
            model = _from_authors_training_checkpoint(path, specials)
        elif (path / TOKENIZER_FILE).is_file():
            model = _from_our_directory(path)
        else:
            model = _from_authors_directory(path, specials)
        model.eval()
        return model.to(device) if device is not None else model

    def __repr__(self) -> str:
        c = self.config
        return (
            f"BarcodeBERT(name={self.name!r}, k={self.tokenizer.k}, layers={c.num_hidden_layers}, "
            f"heads={c.num_attention_heads}, hidden={c.hidden_size}, vocab={c.vocab_size})"
        )


def from_pretrained(source: str | os.PathLike[str], **options) -> BarcodeBERT:
    """Shorthand for :meth:`BarcodeBERT.from_pretrained`."""
    return BarcodeBERT.from_pretrained(source, **options)


# -- loading helpers ---------------------------------------------------------------------------------
def _resolve_source(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if path.exists():
        return path
    text = str(source)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError

        try:
            return Path(snapshot_download(text, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt"]))
        except (
            OSError,
            HFValidationError,
        ) as error:  # offline, no such repository (HTTP errors are OSErrors)
            raise BioscanError(
                f"could not download {text!r} from the Hugging Face Hub: {error}", value=text
            ) from None
    raise BioscanError("no such model directory or checkpoint", path=path)


def _from_our_directory(directory: Path) -> BarcodeBERT:
    config = read_json(directory / CONFIG_FILE)
    name = (config.pop("bioscan5m", None) or {}).get("model")
    # A fine-tuned classifier's folder holds the encoder too: its label fields are not the encoder's.
    for key in ("architectures", "id2label", "label2id", "model_type"):
        config.pop(key, None)
    tokenizer = KmerTokenizer.load(directory / TOKENIZER_FILE)
    model = BarcodeBERT(BertConfig.from_dict(config), tokenizer, name=name)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise BioscanError("missing model weights", path=weights)
    with reading(weights):
        missing, unexpected = load_model(model.mlm, str(weights), strict=False)
    unexpected = [key for key in unexpected if not key.startswith(CLASSIFIER_PREFIX)]
    if missing or unexpected:
        raise BioscanError(
            f"weights do not fit the configuration (missing {missing[:3]}, unexpected {unexpected[:3]})",
            path=weights,
        )
    return model


def authors_tokenizer(vocab_size: int, *, k: int | None = None, stride: int | None = None,
                      max_length: int | None = None, specials: Sequence[str] | None = None) -> KmerTokenizer:
    """The tokenizer of an authors' checkpoint, from its vocabulary size (k and specials inferred)."""
    if k is None:
        fits = [k for k in range(1, 13) if 0 < vocab_size - 4**k <= 3]
        if not fits:
            raise BioscanError(
                f"vocabulary size {vocab_size} is not 4**k plus 2 or 3 special tokens; "
                "checkpoints that tokenise N-k-mers are not supported",
                value=vocab_size,
            )
        k = fits[0]
    if specials is None:
        n_specials = vocab_size - 4**k
        specials = {2: AUTHORS_SPECIALS, 3: AUTHORS_V1_SPECIALS}.get(n_specials)
        if specials is None:
            raise BioscanError(f"vocabulary size {vocab_size} does not fit k={k}; pass specials=", value=k)
    tokenizer = KmerTokenizer.authors(k, stride, max_length or 660, specials=specials)
    if tokenizer.vocab_size != vocab_size:
        raise BioscanError(
            f"vocabulary size {vocab_size} does not fit k={k} with specials {tuple(specials)}",
            value=vocab_size,
        )
    return tokenizer


def _tokenizer_of(vocab_size: int, settings: dict, specials: Sequence[str] | None) -> KmerTokenizer:
    """:func:`authors_tokenizer` from an authors' settings (``k_mer``, ``stride``, ``max_len``, each optional)."""
    return authors_tokenizer(vocab_size, k=settings.get("k_mer"), stride=settings.get("stride"),
                             max_length=settings.get("max_len"), specials=specials)


def _bert_config_from_foreign(config: dict) -> BertConfig:
    # pad_token_id keeps the checkpoint's value (BERT's default 0 = their [MASK]): it only decides which
    # embedding row receives no gradient, and fine-tuning should treat that row as the authors did.
    fields = {key: config[key] for key in _BERT_FIELDS if key in config}
    return BertConfig(**fields, attn_implementation="sdpa")


def _load_foreign_state(model: BarcodeBERT, state: dict[str, torch.Tensor], where: Path) -> None:
    """Load an authors' state dict (BertForTokenClassification / BertForMaskedLM / BertModel keys)."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod.", "model.", "base_model."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        if key.startswith(("embeddings.", "encoder.", "pooler.")):
            key = "bert." + key
        if key.endswith("position_ids") or key.startswith(("bert.pooler.", "classifier.")):
            continue  # buffers, the unused pooler, and the authors' 4**k token-classifier head
        renamed[key] = value
    result = model.mlm.load_state_dict(renamed, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("cls.")]
    if missing or result.unexpected_keys:
        raise BioscanError(
            f"checkpoint does not fit a BERT of its configuration (missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]})",
            path=where,
        )
    if any(key.startswith("cls.") for key in result.missing_keys):
        log.info("%s has no masked-language-model head; a fresh one was initialised", where)


def _from_authors_directory(directory: Path, specials: Sequence[str] | None) -> BarcodeBERT:
    config = read_json(directory / CONFIG_FILE)
    if "vocab_size" not in config:
        raise BioscanError(
            "config.json has no vocab_size: not a BERT checkpoint", path=directory / CONFIG_FILE
        )
    tokenizer = _tokenizer_of(config["vocab_size"], config, specials)
    model = BarcodeBERT(_bert_config_from_foreign(config), tokenizer, name=directory.name)
    if (directory / WEIGHTS_FILE).is_file():
        with reading(directory / WEIGHTS_FILE):
            state = load_file(str(directory / WEIGHTS_FILE))
    elif (directory / "pytorch_model.bin").is_file():
        with reading(directory / "pytorch_model.bin", pickle.UnpicklingError, RuntimeError):
            state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise BioscanError("no model.safetensors or pytorch_model.bin", path=directory)
    _load_foreign_state(model, state, directory)
    return model


def _from_authors_training_checkpoint(path: Path, specials: Sequence[str] | None) -> BarcodeBERT:
    """An authors' ``checkpoint_pretraining.pt``: {"model", "bert_config", "config" (argparse.Namespace)}."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise BioscanError(f"cannot read as a PyTorch checkpoint: {error}", path=path) from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "bert_config" not in checkpoint:
        raise BioscanError(
            "not a BarcodeBERT training checkpoint (needs 'model' and 'bert_config')", path=path
        )
    settings = vars(checkpoint.get("config") or argparse.Namespace())
    bert = checkpoint["bert_config"]
    tokenizer = _tokenizer_of(bert["vocab_size"], settings, specials)
    model = BarcodeBERT(_bert_config_from_foreign(bert), tokenizer, name=path.stem)
    _load_foreign_state(model, checkpoint["model"], path)
    return model
