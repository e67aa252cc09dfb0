"""CLIBD: image, DNA and text encoders projected into one shared, L2-normalised embedding space.

open_clip-style split: this module holds the model (with its logit scale and its barcode tokenizing) and
its factory; the loss lives in ``bioscan5m.train.contrastive`` and the training loop in
``bioscan5m.train.engine``.

>>> built = create_multimodal_model("tiny")  # model, its image transforms and tokenizers (open_clip style)
>>> sorted(built.model.modalities), built.model.eval_transform is built.eval_transform
(['dna', 'image', 'text'], True)

Encoders: a transformers vision model (ViT-B/16 by default), BarcodeBERT (the padding-aware MEAN of
its last hidden states, not the reference code's softmax of MLM logits), and a BERT over taxonomy
sentences. Each gets a linear projection to ``embed_dim``. An encoder can be frozen, or trained
through LoRA adapters (peft) on its attention query/value layers while its own weights stay fixed.

A model is saved as one directory: ``config.json`` (the whole architecture, so loading never needs
the Hub), ``model.safetensors``, ``kmer_tokenizer.json`` and ``text_tokenizer/``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bioscan5m.errors import BioscanError, reading
from bioscan5m.fileio import atomic_folder, atomic_path, read_json, write_json
from bioscan5m.models.dna import mean_pool
from bioscan5m.models.image import (
    IMAGE_BACKBONES,
    ImageEncoder,
    clibd_image_transforms,
    create_image_encoder,
    image_backbone_spec,
)
from bioscan5m.models.text import (
    MISSING_RANK_WORD,
    TEXT_BACKBONES,
    TEXT_POOLINGS,
    TEXT_RANKS,
    TextEncoder,
    create_text_encoder,
    taxonomy_vocabulary,
    text_backbone_spec,
)
from bioscan5m.models.tokenizer import TOKENIZER_FILE, KmerTokenizer

#: CLIP's initial logit scale: log(1 / 0.07).
INIT_LOGIT_SCALE = math.log(1 / 0.07)
#: CLIP clamps the scale (the inverse temperature) at 100.
MAX_LOGIT_SCALE = math.log(100)


class LogitScale(nn.Module):
    """A learnable inverse temperature stored as a log: ``forward() -> exp(log_scale)``, in [1, 100].

    As CLIP, the stored value itself is clamped to [0, log 100] (here before each use rather than after
    each optimizer step), so it can still move back down after reaching the cap.
    """

    def __init__(self, init: float = INIT_LOGIT_SCALE) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        if not 0.0 <= self.log_scale.detach().item() <= MAX_LOGIT_SCALE:
            # Only when out of range: an in-place change would invalidate graphs still awaiting backward.
            with torch.no_grad():
                self.log_scale.clamp_(0.0, MAX_LOGIT_SCALE)
        return self.log_scale.exp()


def tokenize_barcodes(tokenizer: KmerTokenizer, barcodes: Sequence[str]) -> dict[str, torch.Tensor]:
    """``dna_input_ids`` / ``dna_attention_mask`` (B, T) trimmed to the longest barcode, and ``dna_mask``
    (B,) True where the record has a barcode."""
    encoded = tokenizer.encode(list(barcodes), return_tensors="pt", trim=True)
    return {"dna_input_ids": encoded["input_ids"], "dna_attention_mask": encoded["attention_mask"],
            "dna_mask": torch.tensor([bool(b) for b in barcodes])}


#: The three modalities CLIBD aligns.
MODALITIES: tuple[str, ...] = ("image", "dna", "text")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TEXT_TOKENIZER_DIR = "text_tokenizer"
#: How the DNA encoder turns BarcodeBERT's token states into one vector: ``masked-mean`` of the last hidden
#: states over real k-mer tokens (ours), or ``authors-softmax-logits``, CLIBD's (``bioscanclip/model/
#: dna_encoder.py:137``, a known defect kept to reproduce their table): the masked-LM head with its decoder
#: replaced by a new ``hidden → embed_dim`` layer, softmax over those logits, mean over every position
#: (they pass no attention mask), and no projection after it.
DNA_POOLINGS: tuple[str, ...] = ("masked-mean", "authors-softmax-logits")
#: Linear layers that receive LoRA adapters (attention query and value, as in the LoRA paper).
LORA_TARGETS: tuple[str, ...] = ("query", "value", "q_proj", "v_proj")


@dataclass
class MultimodalConfig:
    """Everything that defines a CLIBD model; saved as ``config.json``.

    image_model / text_model: a built-in backbone name (``IMAGE_BACKBONES``, ``TEXT_BACKBONES``), a
    Hub id or a model directory. dna_model: a registered BarcodeBERT name
    (``bioscan5m.models.registry.DNA_MODELS``); dna_checkpoint: a BarcodeBERT directory to start from.
    pretrained_image / pretrained_text: True = Hub weights required, None = when reachable,
    False = random init. modalities: which encoders the model has (at least two).
    freeze / lora: modalities whose encoder is frozen, or trained through LoRA adapters of rank
    ``lora_rank`` (scaling ``lora_alpha / lora_rank``). Text, as in CLIBD by default: every record has a
    sentence, missing ranks written ``text_missing_word``, pooled by ``text_pooling`` (``padded-mean``, the
    authors', or ``masked-mean``); with ``text_required_rank`` records without a name at that rank have no
    text (their text terms are masked out of the loss). dna_pooling: one of :data:`DNA_POOLINGS`.
    The ``*_backbone`` fields are filled when the model is built, so a saved model rebuilds offline.
    """

    image_model: str = "vit-b16"
    dna_model: str = "8-4-4"
    text_model: str = "bert-small"
    embed_dim: int = 768
    modalities: tuple[str, ...] = MODALITIES
    pretrained_image: bool | None = None
    pretrained_text: bool | None = None
    dna_checkpoint: str | None = None
    freeze: tuple[str, ...] = ()
    lora: tuple[str, ...] = ()
    lora_rank: int = 8
    lora_alpha: int = 16
    init_logit_scale: float = INIT_LOGIT_SCALE
    text_required_rank: str | None = None
    text_missing_word: str = MISSING_RANK_WORD
    text_pooling: str = "padded-mean"
    dna_pooling: str = "masked-mean"
    image_backbone: dict[str, Any] | None = None
    image_size: int | None = None
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None
    dna_backbone: dict[str, Any] | None = None
    text_backbone: dict[str, Any] | None = None

    def check(self) -> MultimodalConfig:
        """Raise a BioscanError for an impossible combination; return self."""
        unknown = [m for m in (*self.modalities, *self.freeze, *self.lora) if m not in MODALITIES]
        if unknown:
            raise BioscanError(f"unknown modality {unknown[0]!r}; choose from {', '.join(MODALITIES)}",
                               value=unknown[0])
        if len(set(self.modalities)) < 2:
            raise BioscanError(f"alignment needs at least two modalities, got {','.join(self.modalities)}")
        both = set(self.freeze) & set(self.lora)
        if both:
            raise BioscanError(f"{min(both)} encoder cannot be both frozen and LoRA-tuned")
        if self.embed_dim < 1 or self.lora_rank < 1:
            raise BioscanError("embed_dim and lora_rank must be positive")
        if self.text_required_rank is not None and self.text_required_rank not in TEXT_RANKS:
            raise BioscanError(f"text_required_rank must be one of {', '.join(TEXT_RANKS)}, not "
                               f"{self.text_required_rank!r}", value=self.text_required_rank)
        if self.dna_pooling not in DNA_POOLINGS:
            raise BioscanError(f"dna_pooling must be one of {', '.join(DNA_POOLINGS)}, not "
                               f"{self.dna_pooling!r}", value=self.dna_pooling)
        if self.text_pooling not in TEXT_POOLINGS:
            raise BioscanError(f"text_pooling must be one of {', '.join(TEXT_POOLINGS)}, not "
                               f"{self.text_pooling!r}", value=self.text_pooling)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MultimodalConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(values) - known)
        if extra:
            raise BioscanError(f"unknown multimodal setting(s): {', '.join(extra)}", value=extra)
        values = dict(values)
        for name in ("modalities", "freeze", "lora", "image_mean", "image_std"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values).check()


#: Named configurations (timm style): "tiny" trains on a CPU in minutes; the other is the paper's.
MULTIMODAL_MODELS: dict[str, MultimodalConfig] = {
    # embed_dim = the tiny DNA encoder's width, so its projection need not throw barcode detail away.
    "tiny": MultimodalConfig(image_model="vit-tiny", dna_model="4-2-2-tiny", text_model="bert-tiny",
                             embed_dim=128, pretrained_image=False, pretrained_text=False),
    "vit-b16-844-bertsmall": MultimodalConfig(image_model="vit-b16", dna_model="8-4-4",
                                              text_model="bert-small", embed_dim=768),
}


class DnaEncoder(nn.Module):
    """BarcodeBERT's encoder without its MLM head: ``forward(input_ids, attention_mask) -> (B, width)``,
    the mean of the last hidden states over real k-mer tokens (padding excluded).

    With ``head`` (CLIBD's ``authors-softmax-logits`` pooling, see :data:`DNA_POOLINGS`): the softmax of
    ``head``'s logits, averaged over every position of a batch encoded without attention mask.
    """

    def __init__(self, bert: nn.Module, head: nn.Sequential | None = None) -> None:
        super().__init__()
        self.backbone = bert
        self.head = head
        self.width = int(bert.config.hidden_size) if head is None else int(head[-1].out_features)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.head is not None:  # the authors call their BertForMaskedLM without an attention mask
            return self.head(self.backbone(input_ids=input_ids).last_hidden_state).softmax(dim=-1).mean(dim=1)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def config_dict(self) -> dict[str, Any]:
        return self.backbone.config.to_dict()


class MultimodalModel(nn.Module):
    """Encoders + linear projections + a learnable logit scale.

    ``encode_image(pixels (B, 3, H, W))``, ``encode_dna(ids (B, T), mask (B, T))`` and
    ``encode_text(ids (B, L), mask (B, L))`` return L2-normalised ``(B, embed_dim)`` embeddings;
    ``forward(batch)`` encodes every modality whose inputs are in the batch (keys ``image``,
    ``dna_input_ids``/``dna_attention_mask``, ``text_input_ids``/``text_attention_mask``) and returns
    ``{modality: embeddings, "logit_scale": exp(log scale)}``. The tokenizers travel with the model (``dna_tokenizer``,
    ``text_tokenizer``) so a saved directory is self-contained, and so do the image transforms the factory built
    (``train_transform``, ``eval_transform``; None without an image encoder).
    """

    train_transform: Any = None
    eval_transform: Any = None

    def __init__(self, config: MultimodalConfig, encoders: dict[str, nn.Module],
                 dna_tokenizer: KmerTokenizer | None = None, text_tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config.check()
        self.encoders = nn.ModuleDict(encoders)
        # CLIBD's softmax-of-logits DNA embedding is already embed_dim wide and is not projected.
        self.projections = nn.ModuleDict({
            name: nn.Identity() if name == "dna" and config.dna_pooling == "authors-softmax-logits"
            else nn.Linear(encoder.width, config.embed_dim) for name, encoder in encoders.items()
        })
        self.logit_scale = LogitScale(config.init_logit_scale)
        self.dna_tokenizer = dna_tokenizer
        self.text_tokenizer = text_tokenizer

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.encoders)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _project(self, modality: str, features: torch.Tensor, normalize: bool) -> torch.Tensor:
        embedded = self.projections[modality](features)
        return F.normalize(embedded, dim=-1) if normalize else embedded

    def _encoder(self, modality: str) -> nn.Module:
        if modality not in self.encoders:
            raise BioscanError(f"this model has no {modality} encoder (it has {', '.join(self.modalities)})",
                               value=modality)
        return self.encoders[modality]

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self._project("image", self._encoder("image")(pixel_values), normalize)

    def encode_dna(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True
                   ) -> torch.Tensor:
        return self._project("dna", self._encoder("dna")(input_ids, attention_mask), normalize)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, normalize: bool = True
                    ) -> torch.Tensor:
        return self._project("text", self._encoder("text")(input_ids, attention_mask), normalize)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # The logit scale is returned from forward (as open_clip does) so DDP sees it used.
        out = {"logit_scale": self.logit_scale()}
        if "image" in self.encoders and "image" in batch:
            out["image"] = self.encode_image(batch["image"])
        if "dna" in self.encoders and "dna_input_ids" in batch:
            out["dna"] = self.encode_dna(batch["dna_input_ids"], batch["dna_attention_mask"])
        if "text" in self.encoders and "text_input_ids" in batch:
            out["text"] = self.encode_text(batch["text_input_ids"], batch["text_attention_mask"])
        return out

    # -- trainable parts ------------------------------------------------------------------------------
    def trainable_parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part (encoders by modality, ``projections``, ``logit_scale``)."""
        counts = {name: sum(p.numel() for p in enc.parameters() if p.requires_grad)
                  for name, enc in self.encoders.items()}
        counts["projections"] = sum(p.numel() for p in self.projections.parameters() if p.requires_grad)
        counts["logit_scale"] = sum(p.numel() for p in self.logit_scale.parameters() if p.requires_grad)
        return counts

    # -- files ----------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write the model directory; each file atomically, ``config.json`` (which marks it complete) last."""
        from bioscan5m.models.weights import save_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / WEIGHTS_FILE) as tmp:
            save_weights(self, tmp)  # byte-identical for identical weights
        if self.dna_tokenizer is not None:
            self.dna_tokenizer.save(directory / TOKENIZER_FILE)
        if self.text_tokenizer is not None:  # replaced whole
            with atomic_folder(directory / TEXT_TOKENIZER_DIR) as staging:
                self.text_tokenizer.save_pretrained(str(staging))
        write_json(directory / CONFIG_FILE, {"bioscan5m": "multimodal", **self.config.to_dict()})
        return directory


class MultimodalBundle(NamedTuple):
    """What the factory builds, once (open_clip's ``create_model_and_transforms``): the model and its image
    transforms and tokenizers (None for absent modalities; the model carries them too)."""

    model: MultimodalModel
    train_transform: Any
    eval_transform: Any
    dna_tokenizer: KmerTokenizer | None
    text_tokenizer: Any


# -- factory ---------------------------------------------------------------------------------------------
def _resolve_config(name_or_config: str | MultimodalConfig | dict[str, Any], overrides: dict[str, Any]
                    ) -> MultimodalConfig:
    if isinstance(name_or_config, MultimodalConfig):
        config = name_or_config
    elif isinstance(name_or_config, dict):
        config = MultimodalConfig.from_dict(name_or_config)
    elif name_or_config in MULTIMODAL_MODELS:
        config = MULTIMODAL_MODELS[name_or_config]
    else:
        known = ", ".join(MULTIMODAL_MODELS)
        raise BioscanError(f"unknown multimodal model {name_or_config!r}; choose from {known} or pass a "
                           "MultimodalConfig", value=name_or_config)
    try:
        config = dataclasses.replace(config, **overrides)
    except TypeError as error:
        raise BioscanError(f"bad multimodal setting: {error}", value=overrides) from None
    for name in ("modalities", "freeze", "lora"):
        setattr(config, name, tuple(getattr(config, name)))
    return config.check()


def _build_dna(config: MultimodalConfig) -> tuple[DnaEncoder, KmerTokenizer]:
    from transformers import BertConfig, BertModel

    if config.dna_backbone is not None:
        bert_values = dict(config.dna_backbone["bert"])
        tokenizer = KmerTokenizer.from_config(config.dna_backbone["tokenizer"])
        bert = BertModel(BertConfig.from_dict(bert_values), add_pooling_layer=False)
        return DnaEncoder(bert, _authors_dna_head(config, bert.config)), tokenizer
    from bioscan5m.models.registry import create_dna_model

    barcode_bert = create_dna_model(config.dna_model, pretrained=config.dna_checkpoint)
    # Keep the encoder only: the 4**k-way MLM head is unused here (and unused parameters upset DDP).
    bert = barcode_bert.bert
    config.dna_backbone = {"bert": bert.config.to_dict(), "tokenizer": barcode_bert.tokenizer.config()}
    head = _authors_dna_head(config, bert.config, barcode_bert.mlm.cls.predictions.transform)
    return DnaEncoder(bert, head), barcode_bert.tokenizer


def _authors_dna_head(config: MultimodalConfig, bert_config: Any, transform: nn.Module | None = None
                      ) -> nn.Sequential | None:
    """CLIBD's DNA head for ``authors-softmax-logits`` (None otherwise): the masked-LM head's transform (the
    pretrained one when given) and a new decoder to ``embed_dim`` logits, as their ``num_classes`` branch."""
    if config.dna_pooling != "authors-softmax-logits":
        return None
    from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

    return nn.Sequential(transform or BertPredictionHeadTransform(bert_config),
                         nn.Linear(bert_config.hidden_size, config.embed_dim))


def _build_image(config: MultimodalConfig) -> ImageEncoder:
    if config.image_backbone is not None:
        return create_image_encoder(config.image_backbone, pretrained=False)
    spec = image_backbone_spec(config.image_model)
    encoder = create_image_encoder(spec["config"], spec["hub"], config.pretrained_image)
    config.image_backbone = encoder.config_dict()
    config.image_size = int(config.image_size or config.image_backbone.get("image_size") or 224)
    config.image_mean = tuple(config.image_mean or spec["mean"])
    config.image_std = tuple(config.image_std or spec["std"])
    return encoder


def _build_text(config: MultimodalConfig, vocabulary: Sequence[str] | None, tokenizer: Any
                ) -> tuple[TextEncoder, Any]:
    if config.text_backbone is not None:
        if tokenizer is None:
            raise BioscanError("a saved text encoder needs its tokenizer directory")
        return create_text_encoder(config.text_backbone, pretrained=False, tokenizer=tokenizer,
                                   pooling=config.text_pooling)
    spec = text_backbone_spec(config.text_model)
    encoder, tokenizer = create_text_encoder(spec["config"], spec["hub"], config.pretrained_text,
                                             vocabulary=vocabulary, pooling=config.text_pooling)
    config.text_backbone = encoder.config_dict()
    return encoder, tokenizer


def _apply_training_mode(model: MultimodalModel) -> None:
    """Freeze encoders, or swap their training to LoRA adapters, as the config asks."""
    config = model.config
    for modality in config.freeze:
        if modality in model.encoders:
            model.encoders[modality].requires_grad_(False)
    for modality in config.lora:
        if modality in model.encoders:
            add_lora_adapters(model.encoders[modality].backbone, config.lora_rank, config.lora_alpha)


def add_lora_adapters(backbone: nn.Module, rank: int = 8, alpha: int = 16) -> list[str]:
    """Add LoRA adapters (peft) to the attention query/value layers of ``backbone``, in place, and make
    the adapters its only trainable parameters. Returns the names of the adapted layers."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise BioscanError("LoRA needs the peft package: pip install 'bioscan5m[lora]'") from None
    targets = sorted({name.rsplit(".", 1)[-1] for name, module in backbone.named_modules()
                      if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS})
    if not targets:
        raise BioscanError(f"no attention layers named {', '.join(LORA_TARGETS)} to put LoRA adapters on")
    backbone.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets),
                            backbone)
    for name, parameter in backbone.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return [name for name, module in backbone.named_modules() if name.rsplit(".", 1)[-1] in targets]


def create_multimodal_model(
    name_or_config: str | MultimodalConfig | dict[str, Any] = "tiny",
    *,
    text_vocabulary: Iterable[str | None] | None = None,
    **overrides: Any,
) -> MultimodalBundle:
    """Build a CLIBD model with its image transforms and tokenizers (a :class:`MultimodalBundle`).

    name_or_config: a name from ``MULTIMODAL_MODELS``, a :class:`MultimodalConfig` or its dict.
    text_vocabulary: taxonomy sentences or names the offline text vocabulary is built from (used when
    the text encoder has no reachable pretrained tokenizer).
    overrides: replace config fields, e.g. ``modalities=("image", "dna"), lora=("image",)``.
    """
    # _resolve_config returns a copy: the build fills its backbone fields, never the registry's.
    config = _resolve_config(name_or_config, overrides)
    return _assemble(config, text_vocabulary=text_vocabulary)


def _assemble(config: MultimodalConfig, *, text_vocabulary: Iterable[str | None] | None = None,
              text_tokenizer: Any = None) -> MultimodalBundle:
    encoders: dict[str, nn.Module] = {}
    dna_tokenizer = None
    train_transform = eval_transform = None
    for modality in MODALITIES:  # fixed order: parameter names do not depend on how modalities were listed
        if modality not in config.modalities:
            continue
        if modality == "image":
            encoders["image"] = _build_image(config)
            train_transform, eval_transform = clibd_image_transforms(config.image_size, config.image_mean,
                                                                     config.image_std)
        elif modality == "dna":
            encoders["dna"], dna_tokenizer = _build_dna(config)
        else:
            vocabulary = taxonomy_vocabulary(text_vocabulary) if text_vocabulary is not None else None
            encoders["text"], text_tokenizer = _build_text(config, vocabulary, text_tokenizer)
    model = MultimodalModel(config, encoders, dna_tokenizer, text_tokenizer)
    model.train_transform, model.eval_transform = train_transform, eval_transform
    _apply_training_mode(model)
    return MultimodalBundle(model, train_transform, eval_transform, dna_tokenizer, text_tokenizer)


#: How models saved before the text settings existed wrote and pooled their text.
LEGACY_TEXT_SETTINGS: dict[str, str] = {"text_missing_word": "unknown", "text_pooling": "masked-mean"}


def load_multimodal_model(directory: str | os.PathLike[str], device: str | torch.device | None = None
                          ) -> MultimodalBundle:
    """Load a directory written by ``MultimodalModel.save_pretrained`` (no network needed), with its
    transforms and tokenizers, as :func:`create_multimodal_model` builds them."""
    from safetensors.torch import load_model

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise BioscanError("not a multimodal model directory (no config.json)", path=directory)
    values = read_json(config_path)
    if values.pop("bioscan5m", None) != "multimodal":
        raise BioscanError("config.json is not a bioscan5m multimodal model", path=config_path)
    values = {**LEGACY_TEXT_SETTINGS, **values}
    config = MultimodalConfig.from_dict(values)
    text_tokenizer = None
    if "text" in config.modalities:
        from transformers import AutoTokenizer

        text_tokenizer = AutoTokenizer.from_pretrained(str(directory / TEXT_TOKENIZER_DIR))
    built = _assemble(config, text_tokenizer=text_tokenizer)
    model = built.model
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise BioscanError("missing model weights", path=weights)
    with reading(weights):
        missing, unexpected = load_model(model, str(weights), strict=False)
    if missing or unexpected:
        raise BioscanError(f"weights do not fit the configuration (missing {list(missing)[:3]}, "
                           f"unexpected {list(unexpected)[:3]})", path=weights)
    if device is not None:
        model.to(device)
    return built


__all__ = [
    "DNA_POOLINGS", "IMAGE_BACKBONES", "MODALITIES", "MULTIMODAL_MODELS", "TEXT_BACKBONES", "DnaEncoder",
    "MultimodalBundle", "MultimodalConfig", "MultimodalModel", "add_lora_adapters", "create_multimodal_model",
    "load_multimodal_model", "tokenize_barcodes",
]
