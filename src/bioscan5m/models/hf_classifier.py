"""A fine-tuned BarcodeBERT classifier as a ``transformers`` model: ``AutoModelForSequenceClassification``.

The project's classifier (``bioscan5m.models.classifier.BarcodeClassifier``) is BERT → the mean of the
last hidden states over the real k-mer tokens (padding excluded) → one linear layer. No class that
ships with ``transformers`` computes that: ``BertForSequenceClassification`` classifies
``tanh(dense(hidden[:, 0]))`` (a [CLS] pooler, which BarcodeBERT has no token for), the
``SequenceSummary`` "mean" of XLM/Flaubert averages over the padding too, and ModernBERT's masked mean
sits on a different encoder (rotary positions). So the saved folder names its own small model type,
``barcodebert``: :class:`BarcodeBertConfig` (a ``BertConfig``) and
:class:`BarcodeBertForSequenceClassification` (``BertModel`` + masked mean + ``Linear``), registered
with the Auto classes when this module is imported — no ``trust_remote_code``, no code in the folder::

    import bioscan5m.models.hf_classifier  # registers model_type "barcodebert"
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained("runs/species")   # id2label in its config
    tokenizer = AutoTokenizer.from_pretrained("runs/species")                    # tokenizer.json

``AutoModel`` and ``AutoModelForMaskedLM`` load the same folder as the fine-tuned encoder (the
masked-LM head is kept in the weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from bioscan5m.models.dna import mean_pool

MODEL_TYPE = "barcodebert"
ARCHITECTURE = "BarcodeBertForSequenceClassification"


class BarcodeBertConfig(BertConfig):
    """A ``BertConfig`` under its own model type, so the Auto classes pick the classes below."""

    model_type = MODEL_TYPE


class BarcodeBertModel(BertModel):
    """The encoder of a classifier folder (``AutoModel``), without BERT's unused [CLS] pooler."""

    config_class = BarcodeBertConfig
    _keys_to_ignore_on_load_unexpected = (r"^cls\.", r"^classifier\.")  # the heads of the folder

    def __init__(self, config: BarcodeBertConfig, add_pooling_layer: bool = False) -> None:
        super().__init__(config, add_pooling_layer=add_pooling_layer)


class BarcodeBertForMaskedLM(BertForMaskedLM):
    """The fine-tuned encoder with its masked-LM head (``AutoModelForMaskedLM``)."""

    config_class = BarcodeBertConfig
    _keys_to_ignore_on_load_unexpected = (r"^classifier\.",)


class BarcodeBertForSequenceClassification(BertPreTrainedModel):
    """BERT → mean of the last hidden states where ``attention_mask`` is 1 → linear layer over the labels.

    The same computation as ``BarcodeClassifier`` (no dropout before the layer, as there): logits
    ``[B, num_labels]``; with ``labels`` (class indices ``[B]``) also the cross-entropy loss.
    """

    config_class = BarcodeBertConfig
    # The folder keeps the masked-LM head (cls.*) so the encoder can still be pretrained further.
    _keys_to_ignore_on_load_unexpected = (r"^cls\.",)

    def __init__(self, config: BarcodeBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        outputs = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds,
                            output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                            return_dict=True)
        hidden = outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        if getattr(self.config, "pooling", "masked-mean") == "all-positions":  # the BarcodeBERT authors' pooling
            logits = self.classifier(hidden.mean(1))  # padding counts: tokenize with padding="max_length"
        else:
            logits = self.classifier(mean_pool(hidden, attention_mask))
        loss = None if labels is None else F.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                        attentions=outputs.attentions)


def classifier_config(encoder_config: BertConfig, class_names: list[str] | tuple[str, ...], **extra) -> dict:
    """``config.json`` of a classifier folder: the encoder's fields, model type ``barcodebert``, the
    architecture, and ``id2label``/``label2id`` from ``class_names`` (index i = class i)."""
    fields = {key: value for key, value in encoder_config.to_dict().items()
              if key not in ("architectures", "id2label", "label2id", "model_type", "transformers_version")}
    config = BarcodeBertConfig(**fields, id2label=dict(enumerate(class_names)),
                               label2id={name: i for i, name in enumerate(class_names)})
    values = config.to_dict()
    values["architectures"] = [ARCHITECTURE]
    values.update(extra)
    return values


def _register() -> None:
    AutoConfig.register(MODEL_TYPE, BarcodeBertConfig, exist_ok=True)
    AutoModel.register(BarcodeBertConfig, BarcodeBertModel, exist_ok=True)
    AutoModelForMaskedLM.register(BarcodeBertConfig, BarcodeBertForMaskedLM, exist_ok=True)
    AutoModelForSequenceClassification.register(BarcodeBertConfig, BarcodeBertForSequenceClassification,
                                                exist_ok=True)


_register()
