"""CLIBD's towers as encoders (``clibd:DIR/image|dna|text``) and the embedding of whole dataset splits.

A BIOSCAN-5M split is embedded by both towers of a model in one pass per batch (:func:`embed_dataset`: images
through the model's evaluation transform in the data loader's workers, barcodes through its tokenizer), and
kept in the embedding store, one entry per split and modality (:func:`embed_split`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bioscan5m.data.cache import json_digest
from bioscan5m.embeddings import store
from bioscan5m.embeddings.encoders import TorchEncoder, state_dict_sha256
from bioscan5m.embeddings.loop import batches, run_inference
from bioscan5m.errors import BioscanError
from bioscan5m.models.multimodal import MultimodalModel, tokenize_barcodes


class ClibdEncoder(TorchEncoder):
    """One tower of a CLIBD model: L2-normalised ``embed_dim`` vectors of inputs prepared as in training (the
    model's evaluation transform, k-mer tokenizer, text tokenizer and pooling). :meth:`of` wraps a loaded model."""

    default_batch_size = 64

    def __init__(self, checkpoint: str, modality: str, device: str | None = None) -> None:
        super().__init__(f"clibd:{checkpoint}/{modality}", checkpoint, device)
        self.modality = modality

    @classmethod
    def of(cls, model: MultimodalModel, modality: str) -> ClibdEncoder:
        """An encoder over the loaded ``model`` (on its device); its weights are hashed on ``describe``."""
        encoder = cls("<in memory>", modality, str(model.device))
        encoder._model, encoder.hash_loaded_weights = model, True
        return encoder

    def options(self) -> dict[str, Any]:
        return {"modality": self.modality}

    def load(self) -> Any:
        from bioscan5m.models.multimodal import load_multimodal_model

        model = load_multimodal_model(self.checkpoint, device=self.device).model
        if self.modality not in model.modalities:
            raise BioscanError(f"this CLIBD model has no {self.modality} encoder (it has "
                               f"{', '.join(model.modalities)})", value=self.name)
        return model.eval()

    def inputs(self, batch: Sequence[Any]) -> dict[str, Any]:
        """The model's inputs for a batch of images, barcodes or sentences (its ``forward`` keys)."""
        from bioscan5m.models.text import tokenize_texts

        model = self._load()
        if self.modality == "image":
            return {"image": torch.stack([model.eval_transform(image) for image in batch])}
        if self.modality == "dna":
            return tokenize_barcodes(model.dna_tokenizer, batch)
        tokens = tokenize_texts(model.text_tokenizer, batch, pooling=model.config.text_pooling)
        return {"text_input_ids": tokens["input_ids"], "text_attention_mask": tokens["attention_mask"]}

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        return self.encode_inputs(self.inputs(batch))[self.modality]

    def encode_inputs(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Every modality the model embeds from prepared ``inputs`` (one forward pass, eval mode): ``{modality:
        float32 [B, D]}``."""
        model = self._load()
        was_training = model.training
        try:
            with torch.no_grad():
                out = model.eval()({key: value.to(model.device) for key, value in inputs.items()})
        finally:
            model.train(was_training)
        return {key: value.float().cpu().numpy() for key, value in out.items() if key != "logit_scale"}


def _collate(dna_tokenizer: Any, items: Sequence[dict]) -> dict:
    """Dataset dicts → model inputs: stacked evaluation-transformed images, tokenized barcodes."""
    batch = {"image": torch.stack([item["image"] for item in items])} if "image" in items[0] else {}
    return batch | (tokenize_barcodes(dna_tokenizer, [item["dna"] for item in items]) if "dna" in items[0] else {})


def embed_dataset(model: MultimodalModel, dataset: Any, *, batch_size: int = 64, num_workers: int = 0,
                  desc: str = "embedding") -> dict[str, np.ndarray]:
    """Embeddings of every item of a dataset of dicts with ``image`` (evaluation-transformed tensor)
    and/or ``dna`` (barcode) keys: ``{modality: float32 (N, embed_dim)}``, L2-normalised, from one forward
    pass per batch of both towers."""
    from torch.utils.data import DataLoader

    encoder = ClibdEncoder.of(model, "dna")
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        collate_fn=functools.partial(_collate, model.dna_tokenizer))
    return run_inference(encoder.encode_inputs, loader, keyed=True, total=len(dataset), description=desc,
                         size=lambda batch: len(next(iter(batch.values()))), device=model.device)


def embed_texts(model: MultimodalModel, sentences: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Embeddings of taxonomy sentences: float32 (N, embed_dim), L2-normalised."""
    return run_inference(ClibdEncoder.of(model, "text").encode, batches(sentences, batch_size),
                         width=model.config.embed_dim, description="text keys", device=model.device)


def embed_split(model: MultimodalModel, dataset: Any, cache: str | os.PathLike[str] | None = None, *,
                weights: str | None = None, batch_size: int = 64, num_workers: int = 0, desc: str = "embedding"
                ) -> dict[str, np.ndarray]:
    """:func:`embed_dataset` of a ``BIOSCAN5M`` dataset, kept in the embedding store folder ``cache`` (None:
    not kept; one entry per modality) and reused while the model's weights (``weights``: their SHA-256,
    computed when not given) and configuration (which sets the image preprocessing), the metadata file, the
    split's record ids, the image package and its files stay the same."""
    if cache is None:
        return embed_dataset(model, dataset, batch_size=batch_size, num_workers=num_workers, desc=desc)
    modalities = sorted(set(dataset.modality) & {"image", "dna"})
    ids = np.asarray(dataset.records.ids).astype(str)
    images = [dataset.image_package, store.image_files_fingerprint(dataset.root, dataset.image_package)]
    data = {"data": store.data_fingerprint(dataset.root)["sha256"], "split": dataset.split,
            "ids": store.ids_sha256(ids), "images": images if "image" in modalities else None}
    tower = {"name": "clibd", "checkpoint_sha256": weights or state_dict_sha256(model),
             "options": dataclasses.asdict(model.config), "modalities": modalities}
    keys = {m: json_digest({"encoder": {**tower, "modality": m}, "data": data}) for m in modalities}
    entries = {m: store.store_entry(f"{dataset.split}-{m}", keys[m], cache) for m in modalities}
    stored = {m: store.cached_embeddings(entries[m], keys[m]) for m in modalities}
    if all(found is not None for found in stored.values()):
        return {m: found.vectors for m, found in stored.items()}
    embedded = embed_dataset(model, dataset, batch_size=batch_size, num_workers=num_workers, desc=desc)
    for m in modalities:  # an empty split has no batch, so no key: its vectors are (0, embed_dim)
        embedded.setdefault(m, np.zeros((0, model.config.embed_dim), np.float32))
        store.Embeddings(ids, embedded[m], store.store_manifest({**tower, "modality": m}, data, keys[m])
                         ).save(entries[m])
    return embedded


def split_embedder(model: MultimodalModel, cache: str | os.PathLike[str] | None, batch_size: int,
                   num_workers: int) -> Any:
    """``embed(dataset, desc=...)`` for one model and cache; the weights are hashed once, not per split."""
    return functools.partial(embed_split, model, cache=cache, batch_size=batch_size,
                             num_workers=num_workers, weights=state_dict_sha256(model) if cache else None)


def query_embeddings(model: MultimodalModel, *, images: Sequence[str | os.PathLike[str]] = (),
                     fasta: str | os.PathLike[str] | None = None, batch_size: int = 64
                     ) -> tuple[str, list[str], np.ndarray]:
    """Embed query image files or the barcodes of a FASTA file: ``(modality, query names, (Q, D))``."""
    from bioscan5m.data.images import decode_image

    if bool(images) == (fasta is not None):
        raise BioscanError("give query images or a FASTA file of barcodes (one of the two)")
    if fasta is not None:
        from bioscan5m.data.records import load_records

        records = load_records(fasta, use_cache=False)
        items, names, modality = records.barcodes(clean=True), [str(i) for i in records.ids], "dna"
        if not items:
            raise BioscanError("no sequences", path=fasta)
    else:
        items, names, modality = [], [Path(p).name for p in images], "image"
        for path in images:
            try:
                data = Path(path).read_bytes()
            except OSError as error:
                raise BioscanError(f"cannot read image ({error.strerror})", path=path) from None
            items.append(decode_image(data, where=str(path)))
    vectors = run_inference(ClibdEncoder.of(model, modality).encode, batches(items, batch_size),
                            description="queries", device=model.device)
    return modality, names, vectors
