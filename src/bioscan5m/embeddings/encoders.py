"""The one encoder factory (timm-like): a name → a frozen encoder that turns barcodes, images or taxonomy
sentences into embedding vectors.

``create_encoder(name)`` understands:

- ``kmer-profile`` / ``kmer-profile-<k>``: overlapping k-mer frequencies (default k=5), no training.
- ``barcodebert:<dir>``: BarcodeBERT (``bioscan5m.models.dna.from_pretrained``: our directory, the authors'
  directory or ``.pt`` checkpoint, or a hub id), padding-aware mean pooling.
- ``hf-dna:<hub id or dir>``: any Hugging Face DNA language model, mean-pooled over non-padding tokens.
  Models that ship their own Python code (DNABERT-2, HyenaDNA...) run it only when trusted: pass
  ``trust_remote_code=True`` or build the encoder inside ``with remote_code_trusted():`` (the CLI's
  ``--trust-remote-code``); otherwise they are refused with a BioscanError.
- ``image-stats`` / ``image-stats-<bins>``: colour histogram and silhouette of the specimen, no training.
- ``hf-image:<hub id or dir>``: any Hugging Face vision model (DINO, DINOv2, CLIP vision tower, MAE ViT...),
  the [CLS] token (``pooling="cls"``, default) or the mean of the patch tokens (``pooling="mean"``).
- ``timm:<name, hub id or dir>``: any timm image model (``vit_base_patch16_224.dino``,
  ``vit_base_patch14_dinov2.lvd142m``...), its pooled features; needs the optional ``timm`` package.
- ``clibd:<dir>/<image|dna|text>``: one tower of a CLIBD model written by ``bioscan5m align``, projected into the
  shared space (L2-normalised), with the model's own evaluation transform and tokenizers.

Every encoder reports ``describe()``: its name, options and a content hash of its checkpoint, which is what
the embedding cache is keyed on. Weights are loaded lazily, on the first ``encode``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import inspect
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bioscan5m.embeddings.loop import resolve_device
from bioscan5m.errors import BioscanError
from bioscan5m.filehash import file_sha256, stream_sha256

#: Bumped when an encoder's output changes for the same checkpoint, so stale caches are not reused.
ENCODER_CODE_VERSION = 1

#: Whether Hugging Face models may run the Python code they ship (never unless asked: it is arbitrary code).
_TRUST_REMOTE_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("trust_remote_code", default=False)


@contextlib.contextmanager
def remote_code_trusted(trusted: bool = True) -> Iterator[None]:
    """Within the block, ``hf-dna`` encoders built without ``trust_remote_code=`` may run their models' code."""
    token = _TRUST_REMOTE_CODE.set(trusted)
    try:
        yield
    finally:
        _TRUST_REMOTE_CODE.reset(token)


def check_model_folder(checkpoint: str, what: str) -> None:
    """A local folder given as a Hugging Face model must hold one (a ``config.json``)."""
    path = Path(checkpoint)
    if path.is_dir() and not (path / "config.json").is_file():
        raise BioscanError(f"not a Hugging Face {what} model folder (no config.json)", path=path)


def hub_options(checkpoint: str) -> dict[str, Any]:
    """Options for ``from_pretrained`` that keep an offline machine from retrying the Hub for a minute.

    A local folder needs none. Otherwise, when the Hub's host name does not resolve (no network), a model
    in the local Hugging Face cache is loaded from it alone (``local_files_only``) and one that is not is a
    BioscanError at once.
    """
    import socket
    import urllib.parse

    if Path(checkpoint).exists():
        return {}
    host = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(checkpoint, "config.json"), str):
            return {"local_files_only": True}
        raise BioscanError(f"cannot reach {host} to fetch {checkpoint!r} (no network?), and it is not in the "
                           "local Hugging Face cache", value=checkpoint) from None
    return {}


def _ships_code(checkpoint: str) -> bool:
    """True when a local model folder's config.json points at Python files of its own (``auto_map``)."""
    import json

    config = Path(checkpoint) / "config.json"
    if not config.is_file():
        return False
    try:
        return "auto_map" in json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BioscanError(f"unreadable model configuration ({error})", path=config) from None


POOLINGS = ("cls", "mean")
#: Our pooling names in timm's ``global_pool`` vocabulary.
TIMM_GLOBAL_POOL = {"cls": "token", "mean": "avg"}


class Encoder(ABC):
    """A frozen model: ``encode(batch) -> float32 [len(batch), dim]``.

    ``modality`` is ``"dna"`` (batches of cleaned barcode strings), ``"image"`` (batches of ``PIL.Image``)
    or ``"text"`` (batches of taxonomy sentences); each encoder prepares its inputs itself (tokenizer,
    image transform), so a caller only batches records.
    """

    modality: str = "dna"
    #: Items per forward pass when the caller does not choose.
    default_batch_size: int = 256

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """``{"name", "modality", "options", "checkpoint_sha256"}``: what the output depends on."""

    @abstractmethod
    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Embed one batch: ``float32 [len(batch), dim]``."""


# --------------------------------------------------------------------------------------------- registry

_FAMILIES: dict[str, tuple[Callable[..., Encoder], str]] = {}


def register_encoder(family: str, help: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Decorator: make ``factory(argument, **options)`` available as ``<family>`` / ``<family>:<argument>``."""

    def decorate(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _FAMILIES[family] = (factory, help)
        return factory

    return decorate


def list_encoders() -> dict[str, str]:
    """Registered encoder families and a one-line description of each."""
    return {family: help for family, (_, help) in sorted(_FAMILIES.items())}


def split_encoder_name(name: str) -> tuple[str, str | None]:
    """``"hf-dna:zhihan1996/DNABERT-2-117M"`` → ``("hf-dna", "zhihan1996/DNABERT-2-117M")``;
    ``"kmer-profile-6"`` → ``("kmer-profile", "6")``; ``"kmer-profile"`` → ``("kmer-profile", None)``."""
    if ":" in name:
        family, argument = name.split(":", 1)
        return family, argument
    match = re.fullmatch(r"(.+?)-(\d+)", name)
    if name not in _FAMILIES and match and match.group(1) in _FAMILIES:
        return match.group(1), match.group(2)
    return name, None


def create_encoder(name: str | os.PathLike[str], modality: str | None = None, **options: Any) -> Encoder:
    """Build an encoder by name (a bare BarcodeBERT folder or checkpoint reads as ``barcodebert:<it>``);
    ``options`` (``device``, ``pooling``, ``max_length``...) go to its factory. With ``modality``, an encoder
    of another modality is refused. Unknown names raise a BioscanError listing the registered families.
    """
    name = str(name)
    if ":" not in name and Path(name).exists():
        name = f"barcodebert:{name}"
    family, argument = split_encoder_name(name)
    if family not in _FAMILIES:
        known = "; ".join(f"{f} ({h})" for f, h in list_encoders().items())
        raise BioscanError(f"unknown encoder {name!r}; known: {known}", value=name)
    factory, _ = _FAMILIES[family]
    options = {key: value for key, value in options.items() if value is not None}
    accepted = set(inspect.signature(factory).parameters) - {"argument"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise BioscanError(f"encoder {name!r} takes no option {', '.join(unknown)} (it takes: "
                           f"{', '.join(sorted(accepted)) or 'none'})", value=unknown)
    encoder = factory(argument, **options)
    if modality is not None and encoder.modality != modality:
        raise BioscanError(f"{name!r} is an {encoder.modality} encoder; probes here need a {modality.upper()} "
                           "encoder", value=name)
    return encoder


# --------------------------------------------------------------------------------------------- helpers


#: What a model folder holds besides the model: the run's log and its intermediate checkpoints. They do not
#: change what the model computes, so a model re-trained to the same weights keeps its hash (and its caches).
NOT_THE_MODEL = ("checkpoints", "train_log.jsonl")


def directory_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 over the model files below ``path`` (relative names and contents, in sorted order): every file
    but hidden ones and :data:`NOT_THE_MODEL`. Each file's digest is remembered by :func:`file_sha256`."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = file.relative_to(root).parts
        if parts[0] in NOT_THE_MODEL or any(part.startswith(".") for part in parts):
            continue
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file_sha256(file).encode() + b"\0")
    return digest.hexdigest()


def checkpoint_sha256(checkpoint: str | os.PathLike[str]) -> str:
    """Content hash of a checkpoint: a file, a directory, or a Hugging Face hub id already downloaded."""
    path = Path(checkpoint)
    if path.is_file():
        return stream_sha256(path)
    if path.is_dir():
        return directory_sha256(path)
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(str(checkpoint), "config.json")
    if isinstance(config, str):
        return directory_sha256(Path(config).parent)
    raise BioscanError(f"model {str(checkpoint)!r} is neither a local file or directory nor in the Hugging "
                       "Face cache", value=str(checkpoint))


def _check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise BioscanError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}", value=pooling)
    return pooling


# --------------------------------------------------------------------------------------------- encoders


class KmerProfileEncoder(Encoder):
    """Overlapping k-mer frequency profile (``bioscan5m.models.kmer``): dim 4**k, nothing to train."""

    default_batch_size = 1024

    def __init__(self, k: int = 5) -> None:
        super().__init__(f"kmer-profile-{k}")
        self.k = k

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, "options": {"k": self.k},
                "checkpoint_sha256": None, "code_version": ENCODER_CODE_VERSION}

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        from bioscan5m.models.kmer import kmer_profiles

        return kmer_profiles(batch, k=self.k)


@register_encoder("kmer-profile", "overlapping k-mer frequencies, e.g. kmer-profile-6 (default k=5)")
def _kmer_profile(argument: str | None, device: str | None = None) -> Encoder:
    # ``device`` is accepted so callers can pass it to any encoder; counting k-mers runs on the CPU.
    try:
        k = 5 if argument is None else int(argument)
    except ValueError:
        raise BioscanError(f"kmer-profile needs an integer k, got {argument!r}", value=argument) from None
    from bioscan5m.models.kmer import MAX_K

    if not 1 <= k <= MAX_K:
        raise BioscanError(f"kmer-profile k must be between 1 and {MAX_K}, got {k}", value=k)
    return KmerProfileEncoder(k)


class TorchEncoder(Encoder):
    """Shared lazy loading and checkpoint hashing of encoders backed by a local or hub checkpoint."""

    hash_loaded_weights = False

    def __init__(self, name: str, checkpoint: str, device: str | None) -> None:
        super().__init__(name)
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self._model: Any = None
        self._sha256: str | None = None

    def options(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        if self._sha256 is None and not Path(self.checkpoint).exists():
            model = self._load()  # a hub id: downloading is the only way to know which weights we get
            if self.hash_loaded_weights:  # a timm name or a model in memory: no file to hash
                self._sha256 = state_dict_sha256(model)
        if self._sha256 is None:
            self._sha256 = checkpoint_sha256(self.checkpoint)
        return {"name": self.name, "modality": self.modality, "options": self.options(),
                "checkpoint_sha256": self._sha256, "code_version": ENCODER_CODE_VERSION}

    def _load(self) -> Any:
        if self._model is None:
            self._model = self.load()
        return self._model

    @property
    def model(self) -> Any:
        """The loaded network (loaded now if it was not yet)."""
        return self._load()

    @abstractmethod
    def load(self) -> Any:
        """Load weights (called once, on first use)."""


class BarcodeBertEncoder(TorchEncoder):
    """BarcodeBERT from ``bioscan5m.models.dna``: mean of the last hidden states over real tokens (or every
    position, ``pooling="all-positions"``); :meth:`of` wraps a model already in memory."""

    default_batch_size = 128

    def __init__(self, checkpoint: str, device: str | None = None, pooling: str = "masked-mean") -> None:
        super().__init__(f"barcodebert:{checkpoint}", checkpoint, device)
        self.pooling = pooling

    @classmethod
    def of(cls, model: Any, pooling: str = "masked-mean", device: Any = None) -> BarcodeBertEncoder:
        """An encoder over the loaded ``model``, moved to ``device`` (None: where it is)."""
        encoder = cls("<in memory>", str(device or model.device), pooling)
        encoder._model, encoder.hash_loaded_weights = model.to(encoder.device), True
        return encoder

    def options(self) -> dict[str, Any]:
        return {} if self.pooling == "masked-mean" else {"pooling": self.pooling}

    def load(self) -> Any:
        from bioscan5m.models import dna

        return dna.from_pretrained(self.checkpoint, device=self.device)

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        return self._load().encode_batch(batch, self.pooling)


def embed_barcodes(model: Any, sequences: Sequence[str], *, batch_size: int = 256, device: Any = None,
                   progress: bool | None = None, pooling: str = "masked-mean") -> np.ndarray:
    """Embeddings ``float32 [len(sequences), hidden]`` of barcodes by a loaded BarcodeBERT (or the class scores
    ``[N, C]`` of a ``BarcodeClassifier``), batch by batch through the one inference loop (eval mode;
    ``device``: where to compute, the model moves there; None: where it is). pooling: see
    ``bioscan5m.models.POOLINGS``."""
    from bioscan5m.embeddings.loop import embed_items

    sequences = [sequences] if isinstance(sequences, str) else list(sequences)
    vectors = embed_items(BarcodeBertEncoder.of(model, pooling, device), sequences, batch_size=batch_size,
                          progress=progress, description="embedding")
    return vectors.reshape(len(sequences), model.hidden_size)  # (0, hidden) when there is nothing to embed


@register_encoder("barcodebert", "a BarcodeBERT directory, checkpoint or hub id, e.g. barcodebert:runs/8-4-4")
def _barcodebert(argument: str | None, device: str | None = None) -> Encoder:
    if not argument:
        raise BioscanError("name the model directory: barcodebert:<dir>", value="barcodebert")
    return BarcodeBertEncoder(argument, device)


class ImageStatisticsEncoder(Encoder):
    """Colour and silhouette statistics of the specimen: the image counterpart of the k-mer profile.

    Nothing to train. The background colour is the median of the border pixels; pixels far from it form
    the specimen. Features: a joint RGB histogram (``bins``³) of the specimen's pixels, normalised, and its
    silhouette on a ``thumbnail``² grid of the centre-cropped image (unit norm). A floor for learned encoders.
    """

    modality = "image"
    default_batch_size = 256
    #: RGB distance from the background colour above which a pixel counts as specimen.
    foreground_distance = 40.0

    def __init__(self, bins: int = 6, thumbnail: int = 16) -> None:
        super().__init__(f"image-stats-{bins}")
        self.bins = bins
        self.thumbnail = thumbnail

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality,
                "options": {"bins": self.bins, "thumbnail": self.thumbnail},
                "checkpoint_sha256": None, "code_version": ENCODER_CODE_VERSION + 1}

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return np.stack([self._features(image) for image in batch]).astype(np.float32)

    def _features(self, image: Any) -> np.ndarray:
        from PIL import Image

        side = min(image.size)
        left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
        pixels = np.asarray(image.convert("RGB").crop((left, top, left + side, top + side)), dtype=np.int64)
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        distance = np.linalg.norm(pixels - np.median(border, axis=0), axis=2)
        mask = distance > self.foreground_distance
        if mask.sum() < 0.01 * mask.size:  # no clear specimen: describe the whole image
            mask[:] = True
        codes = (pixels[mask] * self.bins // 256) @ np.array([self.bins**2, self.bins, 1])
        histogram = np.bincount(codes, minlength=self.bins**3).astype(np.float64)
        histogram /= histogram.sum()
        silhouette = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255)
                                .resize((self.thumbnail, self.thumbnail), Image.BILINEAR), dtype=np.float64).ravel()
        silhouette /= max(np.linalg.norm(silhouette), 1e-9)
        return np.concatenate([histogram, silhouette])


@register_encoder("image-stats", "colour histogram and silhouette of the specimen, no training, "
                                 "e.g. image-stats-6 (default 6 bins per channel)")
def _image_stats(argument: str | None, device: str | None = None) -> Encoder:
    try:
        bins = 6 if argument is None else int(argument)
    except ValueError:
        raise BioscanError(f"image-stats needs an integer number of bins, got {argument!r}", value=argument) from None
    if not 2 <= bins <= 32:
        raise BioscanError(f"image-stats bins must be between 2 and 32, got {bins}", value=bins)
    return ImageStatisticsEncoder(bins)


class HuggingFaceDnaEncoder(TorchEncoder):
    """Any Hugging Face DNA model (DNABERT-2, DNABERT-S, HyenaDNA, Nucleotide Transformer...), mean-pooled."""

    default_batch_size = 32

    def __init__(self, checkpoint: str, device: str | None = None, max_length: int = 1024,
                 trust_remote_code: bool | None = None) -> None:
        super().__init__(f"hf-dna:{checkpoint}", checkpoint, device)
        self.max_length = max_length
        self.trust_remote_code = _TRUST_REMOTE_CODE.get() if trust_remote_code is None else trust_remote_code

    def options(self) -> dict[str, Any]:
        return {"pooling": "mean", "max_length": self.max_length}

    def load(self) -> Any:
        check_model_folder(self.checkpoint, "DNA")
        trust = self.trust_remote_code
        if not trust and _ships_code(self.checkpoint):
            raise BioscanError(f"DNA model {self.checkpoint!r} runs its own Python code (auto_map in config.json); "
                               "pass --trust-remote-code (trust_remote_code=True) only if you trust its author",
                               value=self.checkpoint)
        from transformers import AutoModel, AutoTokenizer

        try:
            hub = hub_options(self.checkpoint)
            self.tokenizer = AutoTokenizer.from_pretrained(self.checkpoint, trust_remote_code=trust, **hub)
            model = AutoModel.from_pretrained(self.checkpoint, trust_remote_code=trust, **hub)
        except ValueError as error:
            if "trust_remote_code" not in str(error):
                raise BioscanError(f"cannot load DNA model {self.checkpoint!r}: {error}", value=self.checkpoint
                                   ) from None
            raise BioscanError(f"DNA model {self.checkpoint!r} runs its own Python code; pass --trust-remote-code "
                               "(trust_remote_code=True) only if you trust its author", value=self.checkpoint
                               ) from None
        except OSError as error:
            raise BioscanError(f"cannot load DNA model {self.checkpoint!r}: {error}", value=self.checkpoint
                               ) from None
        return model.to(self.device).eval()

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        import torch

        from bioscan5m.models.dna import mean_pool

        model = self._load()
        limit = min(self.max_length, getattr(self.tokenizer, "model_max_length", self.max_length))
        tokens = self.tokenizer(list(batch), padding=True, truncation=True, max_length=limit,
                                return_tensors="pt")
        mask = tokens.get("attention_mask")
        inputs = {"input_ids": tokens["input_ids"].to(self.device)}
        if mask is not None and "attention_mask" in _forward_arguments(model):
            inputs["attention_mask"] = mask.to(self.device)
        with torch.inference_mode():
            output = model(**inputs)
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        return mean_pool(hidden.float(), mask.to(hidden.device)).cpu().numpy().astype(np.float32)


def _forward_arguments(model: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(model.forward).parameters)


@register_encoder("hf-dna", "a Hugging Face DNA model id or directory, e.g. hf-dna:zhihan1996/DNABERT-S")
def _hf_dna(argument: str | None, device: str | None = None, pooling: str = "mean",
            max_length: int = 1024, trust_remote_code: bool | None = None) -> Encoder:
    if not argument:
        raise BioscanError("name the model: hf-dna:<hub id or directory>", value="hf-dna")
    if pooling != "mean":
        raise BioscanError("hf-dna encoders are mean-pooled over real tokens", value=pooling)
    return HuggingFaceDnaEncoder(argument, device, max_length, trust_remote_code)


class HuggingFaceImageEncoder(TorchEncoder):
    """Any Hugging Face vision model; [CLS] token or mean of patch tokens of the last layer.

    Images are prepared by the checkpoint's own ``AutoImageProcessor`` (its resize, crop and
    normalisation); a checkpoint without one gets ``bioscan5m.data.transforms.image_transform`` at the
    model's input size.
    """

    modality = "image"
    default_batch_size = 64

    def __init__(self, checkpoint: str, device: str | None = None, pooling: str = "cls") -> None:
        super().__init__(f"hf-image:{checkpoint}", checkpoint, device)
        self.pooling = _check_pooling(pooling)

    def options(self) -> dict[str, Any]:
        return {"pooling": self.pooling}

    def load(self) -> Any:
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        from bioscan5m.models.hf_backbone import embedding_overrides

        check_model_folder(self.checkpoint, "image")
        try:
            hub = hub_options(self.checkpoint)
            config = AutoConfig.from_pretrained(self.checkpoint, **hub)
            config.update(embedding_overrides(config.model_type))
            model = AutoModel.from_pretrained(self.checkpoint, config=config, **hub)
        except (OSError, ValueError) as error:  # ValueError: a model that needs its own code, a bad config
            raise BioscanError(f"cannot load image model {self.checkpoint!r}: {error}", value=self.checkpoint
                               ) from None
        if hasattr(model, "vision_model"):  # CLIP, SigLIP...: keep the image tower only
            model = model.vision_model
        try:
            self.processor = AutoImageProcessor.from_pretrained(self.checkpoint, **hub)
        except (OSError, ValueError):
            from bioscan5m.data.transforms import image_transform

            vision = getattr(config, "vision_config", config)
            self.processor = None
            self.transform = image_transform(size=int(getattr(vision, "image_size", 224)), train=False)
        return model.to(self.device).eval()

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        model = self._load()
        if self.processor is not None:
            pixels = self.processor(images=list(batch), return_tensors="pt")["pixel_values"]
        else:
            pixels = torch.stack([self.transform(image) for image in batch])
        with torch.inference_mode():
            hidden = model(pixel_values=pixels.to(self.device)).last_hidden_state
        if hidden.ndim == 4:  # convolutional feature map [B, C, H, W]: only mean pooling makes sense
            pooled = hidden.mean(dim=(2, 3))
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = hidden[:, 1:].mean(dim=1)
        return pooled.float().cpu().numpy().astype(np.float32)


@register_encoder("hf-image", "a Hugging Face image model id or directory, e.g. hf-image:facebook/dinov2-base")
def _hf_image(argument: str | None, device: str | None = None, pooling: str = "cls") -> Encoder:
    if not argument:
        raise BioscanError("name the model: hf-image:<hub id or directory>", value="hf-image")
    return HuggingFaceImageEncoder(argument, device, pooling)


class TimmImageEncoder(TorchEncoder):
    """Any timm image model: its pooled features (``num_classes=0``), with its own preprocessing.

    ``checkpoint`` is a timm name (``vit_base_patch16_224.dino``; weights from the Hub), a Hub id
    (``timm/vit_small_patch14_dinov2.lvd142m``) or a folder written by ``timm.models.save_for_hf``
    (offline). ``pooling``: the model's own (None), the class token (``cls``) or the mean of the patch
    tokens / feature map (``mean``).
    """

    modality = "image"
    default_batch_size = 64
    hash_loaded_weights = True

    def __init__(self, checkpoint: str, device: str | None = None, pooling: str | None = None) -> None:
        super().__init__(f"timm:{checkpoint}", checkpoint, device)
        self.pooling = None if pooling is None else _check_pooling(pooling)

    def options(self) -> dict[str, Any]:
        return {"pooling": self.pooling or "model default"}

    def load(self) -> Any:
        timm = import_timm()
        name = self.checkpoint
        if Path(name).is_dir():
            name = f"local-dir:{name}"
        elif name.startswith(("/", "./", "../", "~")):
            raise BioscanError(f"no timm model folder {name}", path=name)
        elif "/" in name and ":" not in name:
            name = f"hf-hub:{name}"
        try:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        except (OSError, RuntimeError, ValueError) as error:
            raise BioscanError(f"cannot load timm model {self.checkpoint!r}: {error}", value=self.checkpoint
                               ) from None
        if self.pooling:  # after loading: rebuilding with another pooling can change which weights exist
            try:
                model.reset_classifier(0, global_pool=TIMM_GLOBAL_POOL[self.pooling])
            except (AssertionError, ValueError, TypeError, NotImplementedError):
                raise BioscanError(f"timm model {self.checkpoint!r} has no {self.pooling!r} pooling",
                                   value=self.pooling) from None
        self.transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
        return model.to(self.device).eval()

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        model = self._load()
        pixels = torch.stack([self.transform(image.convert("RGB")) for image in batch])
        with torch.inference_mode():
            features = model(pixels.to(self.device))
        return features.float().cpu().numpy().astype(np.float32)


def import_timm() -> Any:
    """The ``timm`` package, or a BioscanError saying how to install it (it needs a matching torchvision)."""
    try:
        import timm
        import timm.data
    except (ImportError, RuntimeError, OSError) as error:
        raise BioscanError("timm encoders need the timm package and a torchvision built for this torch: "
                           f"pip install 'bioscan5m[timm]' ({type(error).__name__}: {error})") from None
    return timm


def state_dict_sha256(model: Any) -> str:
    """SHA-256 over a torch model's parameter and buffer names and values: what its weights are."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}\0{tuple(tensor.shape)}\0{tensor.dtype}\0".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@register_encoder("timm", "a timm image model name, Hub id or saved folder, e.g. timm:vit_base_patch16_224.dino "
                          "(needs pip install 'bioscan5m[timm]')")
def _timm(argument: str | None, device: str | None = None, pooling: str | None = None) -> Encoder:
    if not argument:
        raise BioscanError("name the model: timm:<model name, hub id or directory>", value="timm")
    import_timm()
    return TimmImageEncoder(argument, device, pooling)


@register_encoder("clibd", "one tower of a CLIBD model folder written by 'bioscan5m align', e.g. clibd:runs/clibd/dna")
def _clibd(argument: str | None, device: str | None = None) -> Encoder:
    folder, _, modality = (argument or "").rpartition("/")
    if not folder or modality not in ("image", "dna", "text"):
        raise BioscanError("name the model folder and the tower: clibd:<dir>/image, clibd:<dir>/dna or "
                           "clibd:<dir>/text", value=f"clibd:{argument or ''}")
    from bioscan5m.embeddings.clibd import ClibdEncoder

    return ClibdEncoder(folder, modality, device)
