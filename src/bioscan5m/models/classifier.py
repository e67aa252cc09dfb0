"""The barcode classifier: BarcodeBERT, mean pooling and one linear layer over the classes of one rank.

Class indices are those of the rank's label map over the WHOLE source (``Records.label_map``), so they mean
the same in every split; each class carries its *lineage* (genus, family, order...), so a prediction is a
name at the ranks above too. One Hugging Face model folder holds it (see ``save_pretrained``); folders of
earlier versions, with the layer in ``classifier.safetensors``, still load. Trained by
:mod:`bioscan5m.train.classification`; :mod:`bioscan5m.tasks.finetune` is the command.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from bioscan5m.data.schema import check_rank
from bioscan5m.errors import BioscanError, reading
from bioscan5m.fileio import read_json, write_json
from bioscan5m.models.card import CLASSIFIER, ModelCard
from bioscan5m.models.dna import CLASSIFIER_PREFIX, WEIGHTS_FILE, BarcodeBERT, check_pooling
from bioscan5m.models.hf_classifier import classifier_config

CLASSIFIER_CONFIG = "classifier.json"
CLASSIFIER_WEIGHTS = "classifier.safetensors"  # where folders of earlier versions kept the layer
FORMAT = "bioscan5m-barcode-classifier/1"


class BarcodeClassifier(nn.Module):
    """BarcodeBERT → mean pooling (padding excluded) → linear layer over the classes of one rank.

    encoder: the BarcodeBERT to fine-tune. rank: the rank classified (e.g. "species"). class_names: the
    rank's names, index i = class i (a ``LabelMap``'s ``names``). lineage: ``{rank: names [C]}``, each
    class's name at the ranks above (None where unknown), used to score and report those ranks.
    pooling: ``masked-mean`` (default) or ``all-positions`` (the authors' classifier: padding included).
    """

    def __init__(self, encoder: BarcodeBERT, rank: str, class_names: Sequence[str],
                 lineage: dict[str, Sequence[str | None]] | None = None, pooling: str = "masked-mean") -> None:
        super().__init__()
        self.pooling = check_pooling(pooling)
        if not class_names:
            raise BioscanError(f"a classifier needs at least one {rank} class", value=rank)
        self.encoder = encoder
        self.rank = check_rank(rank)
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.lineage = {r: np.asarray(names, dtype=object) for r, names in (lineage or {}).items() if r != rank}
        for other, names in self.lineage.items():
            if len(names) != len(self.class_names):
                raise BioscanError(f"lineage at {other} has {len(names)} names for {len(self.class_names)} classes")
        self.head = nn.Linear(encoder.hidden_size, len(self.class_names))
        # The masked-LM head is not used; freeze its own parameters (the decoder weight is tied to the
        # token embeddings, which do train) so the optimizer skips them and DDP sees no unused gradients.
        encoder_parameters = {id(p) for p in encoder.bert.parameters()}
        for parameter in encoder.mlm.cls.parameters():
            if id(parameter) not in encoder_parameters:
                parameter.requires_grad_(False)

    @property
    def ranks(self) -> tuple[str, ...]:
        """The ranks this classifier predicts: those of its lineage, then its own."""
        return (*self.lineage, self.rank)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) ``[B, C]`` of token batches ``[B, T]``."""
        return self.head(self.encoder.features(input_ids, attention_mask, self.pooling))

    @property
    def hidden_size(self) -> int:
        """Width of :meth:`encode_batch`'s rows: one score per class."""
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    @torch.no_grad()
    def encode_batch(self, sequences: Sequence[str], pooling: str | None = None) -> np.ndarray:
        """Class scores ``float32 [B, C]`` of one batch of cleaned barcodes, in eval mode (with the classifier's own
        pooling). Many barcodes: ``bioscan5m.embeddings.encoders.embed_barcodes(classifier, ...)``, the one
        inference loop; :meth:`classify` and :meth:`top_k` read its scores."""
        features = torch.from_numpy(self.encoder.encode_batch(sequences, self.pooling)).to(self.device)
        return self.head.to(self.device)(features).float().cpu().numpy()

    def classify(self, logits: np.ndarray) -> pd.DataFrame:
        """One row per barcode of class scores ``[N, C]``: the predicted name at each rank of :attr:`ranks`, and
        ``probability`` (softmax probability of the predicted class)."""
        probability, predicted = F.softmax(torch.from_numpy(logits), dim=1).max(1)
        table = self.names_of(predicted.numpy())
        table["probability"] = probability.numpy()
        return table

    def top_k(self, logits: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable classes of each barcode of class scores ``[N, C]``, best first: class indices
        ``int64 [N, k]`` and their softmax probabilities ``float32 [N, k]`` (k is capped at the number of
        classes)."""
        if k < 1:
            raise BioscanError(f"top-k needs k >= 1, got {k}", value=k)
        probabilities, classes = F.softmax(torch.from_numpy(logits), dim=1).topk(min(k, len(self.class_names)), dim=1)
        return classes.numpy().astype(np.int64), probabilities.numpy()

    def names_of(self, classes: np.ndarray) -> pd.DataFrame:
        """The names of class indices ``[N]`` at every rank of :attr:`ranks` (one column per rank)."""
        classes = np.asarray(classes, dtype=np.int64)
        own = np.array(self.class_names, dtype=object)
        return pd.DataFrame({r: (own if r == self.rank else self.lineage[r])[classes] for r in self.ranks})

    # -- files --------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str], *, card: ModelCard | None = None) -> Path:
        """Write the classifier as one Hugging Face folder (``AutoModelForSequenceClassification`` after
        ``import bioscan5m.models.hf_classifier``; ``BarcodeBERT.from_pretrained`` reads its encoder):
        ``model.safetensors`` (encoder, masked-LM head and ``classifier.*``), the tokenizer files,
        ``README.md``, ``config.json`` (model type ``barcodebert``, ``id2label``/``label2id``) and
        ``classifier.json`` (rank, class names, lineage), which marks a complete classifier and comes last.
        """
        directory = Path(directory)
        card = card or self.model_card()
        config = classifier_config(self.encoder.config, self.class_names, pooling=self.pooling)
        self.encoder.save_pretrained(directory, card=card, extra_modules={"classifier": self.head}, config=config)
        config = {
            "format": FORMAT,
            "rank": self.rank,
            "classes": list(self.class_names),
            "lineage": {r: names.tolist() for r, names in self.lineage.items()},
            "pooling": self.pooling,
        }
        write_json(directory / CLASSIFIER_CONFIG, config, indent=1)
        return directory

    def model_card(self, **facts) -> ModelCard:
        """This classifier's model card; ``facts`` fill the other fields (data, training, metrics ...)."""
        name = f"BarcodeBERT {self.rank} classifier"
        return ModelCard(CLASSIFIER, name, self.encoder.card_architecture(), rank=self.rank,
                         classes=len(self.class_names), **facts)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *,
                        device: str | torch.device | None = None) -> BarcodeClassifier:
        """Load a directory written by :meth:`save_pretrained` (returned in eval mode)."""
        directory = Path(directory)
        config_path = directory / CLASSIFIER_CONFIG
        if not config_path.is_file():
            raise BioscanError(f"not a fine-tuned classifier (no {CLASSIFIER_CONFIG}); train one with "
                               "`bioscan5m finetune`", path=directory)
        config = read_json(config_path)
        encoder = BarcodeBERT.from_pretrained(directory)
        model = cls(encoder, config["rank"], config["classes"], config.get("lineage"),
                    config.get("pooling", "masked-mean"))
        weights = directory / WEIGHTS_FILE
        with reading(weights), safe_open(str(weights), framework="pt") as tensors:
            names = [key for key in tensors.keys() if key.startswith(CLASSIFIER_PREFIX)]  # noqa: SIM118
            state = {key[len(CLASSIFIER_PREFIX):]: tensors.get_tensor(key) for key in names}
        if not state:  # folders of earlier versions kept the layer in classifier.safetensors
            weights = directory / CLASSIFIER_WEIGHTS
            if not weights.is_file():
                raise BioscanError("missing classifier weights (no classifier.* in model.safetensors)",
                                   path=directory)
            with reading(weights):
                state = load_file(str(weights))
        try:
            model.head.load_state_dict(state)
        except RuntimeError as error:
            raise BioscanError(f"classifier weights do not fit {len(model.class_names)} classes: {error}",
                               path=weights) from None
        model.eval()
        return model.to(device) if device is not None else model
