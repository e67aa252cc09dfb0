"""Building a Hugging Face ``transformers`` backbone from plain data or from the Hub.

Image and text encoders store their architecture as a plain dict (``config.to_dict()``) inside our
model directories, so a saved model rebuilds offline without the Hub; this is the one place that
turns such a dict (or a Hub id) back into a network.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from bioscan5m.errors import BioscanError

# Model types whose transformers class adds an (unused, randomly initialised) pooler unless told not to.
_POOLER_MODEL_TYPES = ("vit", "bert", "roberta", "deit", "electra")


def _pooler_kwargs(model_type: str) -> dict[str, Any]:
    return {"add_pooling_layer": False} if model_type in _POOLER_MODEL_TYPES else {}


def embedding_overrides(model_type: str) -> dict[str, Any]:
    """Config fields that make a backbone embed every input whole and the same way each call.

    MAE (``vit_mae``) hides 75% of the patches at random by default; an encoder must see them all.
    """
    return {"mask_ratio": 0.0} if model_type == "vit_mae" else {}


def backbone_from_config(config: dict[str, Any]) -> nn.Module:
    """A randomly initialised backbone from a config dict holding ``model_type`` and its fields."""
    from transformers import AutoConfig, AutoModel

    values = dict(config)
    model_type = values.pop("model_type", None)
    if not model_type:
        raise BioscanError("backbone configuration has no model_type", value=config)
    values.update(embedding_overrides(model_type))
    return AutoModel.from_config(AutoConfig.for_model(model_type, **values), **_pooler_kwargs(model_type))


def backbone_spec(name: str, named: dict[str, dict[str, Any]], what: str) -> dict[str, Any]:
    """The backbone called ``name``: a copy of its entry in ``named`` (configs kept as data), or for any
    other name ``{"hub": name, "config": ...}`` read from that Hub id or model directory (no weights)."""
    if name in named:
        return {**named[name], "config": dict(named[name]["config"])}
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name)
    except OSError as error:
        raise BioscanError(f"{what} model {name!r} is neither a built-in name ({', '.join(named)}) nor a readable "
                           f"model directory or reachable hub id: {error}", value=name) from None
    return {"hub": name, "config": config.to_dict()}


def backbone_from_hub(name: str) -> nn.Module:
    """Pretrained weights from a Hub id or a local directory (raises OSError when unreachable)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(name)
    config.update(embedding_overrides(config.model_type))
    return AutoModel.from_pretrained(name, config=config, **_pooler_kwargs(config.model_type))


def load_backbone(config: dict[str, Any], hub: str | None, pretrained: bool | None, what: str) -> nn.Module:
    """Pretrained ``hub`` weights or a fresh backbone of architecture ``config``.

    pretrained: True = weights required (BioscanError when unreachable); None = use them when
    reachable, else warn and start from random weights; False = random weights.
    """
    if pretrained is not False and hub:
        try:
            return backbone_from_hub(hub)
        except OSError as error:
            if pretrained:
                raise BioscanError(f"cannot load pretrained {what} weights {hub!r}: {error}", value=hub) from None
            warnings.warn(f"pretrained {what} weights {hub!r} unreachable; starting from random weights",
                          stacklevel=3)
    return backbone_from_config(config)
