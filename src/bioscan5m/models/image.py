"""Image encoders: any transformers vision backbone as a ``(B, 3, H, W) → (B, D)`` feature extractor.

Named backbones (``IMAGE_BACKBONES``) are configs kept as data; any other name is read as a Hugging Face
model id or a local directory holding ``config.json`` (+ weights). The transforms follow CLIBD: resize the
shorter side to 256/224 of the crop size, then a random resized crop, horizontal and vertical flips and a
rotation of up to ±45° for training (done on whole batches as one affine resampling per image, seeded
per sample so training resumes exactly), and a centre crop for evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from bioscan5m.data.images import to_rgb
from bioscan5m.data.transforms import CenterCrop, Compose, Normalize, ResizeShorterSide, image_transform
from bioscan5m.errors import BioscanError
from bioscan5m.models.hf_backbone import backbone_spec, load_backbone

#: Named image backbones: ``hub`` is the pretrained checkpoint (if any), ``config`` its architecture.
IMAGE_BACKBONES: dict[str, dict[str, Any]] = {
    # ViT-B/16 at 224 px, as in CLIBD (ImageNet-21k pretrained, fine-tuned on ImageNet-1k).
    "vit-b16": {
        "hub": "google/vit-base-patch16-224",
        "config": {"model_type": "vit", "image_size": 224, "patch_size": 16},
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    },
    # A 2-layer ViT on 64 px crops: random init, trains in seconds on a CPU.
    "vit-tiny": {
        "hub": None,
        "config": {
            "model_type": "vit",
            "image_size": 64,
            "patch_size": 8,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
        },
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    },
}

# Backbones whose first output token is a [CLS] summary; their tanh "pooler" is not used.
_CLS_TOKEN_MODELS = ("vit", "deit", "dinov2", "beit", "data2vec-vision")


def _hidden_size(config: Any) -> int:
    if getattr(config, "hidden_size", None):
        return int(config.hidden_size)
    sizes = getattr(config, "hidden_sizes", None) or getattr(config, "num_channels_list", None)
    if sizes:
        return int(sizes[-1])
    raise BioscanError(f"cannot tell the feature width of image model type {config.model_type!r}")


class ImageEncoder(nn.Module):
    """A vision backbone returning one feature vector per image.

    ``forward(pixel_values: (B, 3, H, W) float) -> (B, width)``: the [CLS] token of ViT-like models,
    otherwise the backbone's pooled output (global average for CNNs and Swin).
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.model_type = backbone.config.model_type
        self.width = _hidden_size(backbone.config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.backbone(pixel_values=pixel_values)
        if self.model_type in _CLS_TOKEN_MODELS or getattr(out, "pooler_output", None) is None:
            hidden = out.last_hidden_state
            return hidden[:, 0] if hidden.ndim == 3 else hidden.mean(dim=(2, 3))
        return out.pooler_output.flatten(1)

    def config_dict(self) -> dict[str, Any]:
        """The backbone's architecture as plain data (enough to rebuild it offline)."""
        return self.backbone.config.to_dict()


def image_backbone_spec(name: str) -> dict[str, Any]:
    """Resolve an image model name to ``{"hub", "config", "mean", "std"}`` (see ``backbone_spec``); a Hub
    model's normalisation comes from its image processor, when it has one."""
    spec = backbone_spec(name, IMAGE_BACKBONES, "image")
    if name not in IMAGE_BACKBONES:
        try:
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(name)
            spec.update(mean=tuple(processor.image_mean), std=tuple(processor.image_std))
        except (OSError, AttributeError, ValueError):  # no preprocessor config: keep the ViT defaults
            spec.update(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    return spec


def create_image_encoder(config: dict[str, Any], hub: str | None = None, pretrained: bool | None = None
                         ) -> ImageEncoder:
    """An image encoder of architecture ``config``, with ``hub`` weights when asked (see ``load_backbone``)."""
    return ImageEncoder(load_backbone(config, hub, pretrained, "image"))


class ToUint8Tensor:
    """PIL image (any mode) → uint8 tensor ``(3, H, W)``: a quarter of float32's memory between workers."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(to_rgb(image), dtype=np.uint8, copy=True)).permute(2, 0, 1)

    def __repr__(self) -> str:
        return "ToUint8Tensor()"


#: Uniform draws per image that :func:`clibd_augment` consumes.
AUGMENT_DRAWS = 7


def _resize_side(size: int) -> int:
    # CLIBD resizes the shorter side to 256 before cropping 224: keep that ratio for any crop size.
    return round(size * 256 / 224)


def prepare_image(size: int) -> Compose:
    """The deterministic half of training preparation: shorter side to size·256/224, central square,
    as a uint8 tensor ``(3, R, R)``; :func:`clibd_augment` does the random half on whole batches."""
    resize = _resize_side(size)
    return Compose([ResizeShorterSide(resize), CenterCrop(resize), ToUint8Tensor()])


def clibd_augment(images: torch.Tensor, draws: torch.Tensor, size: int) -> torch.Tensor:
    """CLIBD's training augmentation on a batch, as ONE affine resampling per image.

    images: ``(B, 3, R, R)`` float (any range; uint8 is converted to 0..1). draws: ``(B, 7)``
    uniforms in [0, 1) (e.g. the engine's per-sample ``ctx.uniform``), so an image is augmented the
    same way on any rank and after a restart. Per image: a random resized crop (area 8–100 %, aspect
    3/4–4/3, anywhere in the image), horizontal and vertical flips (p = 1/2 each), and a rotation
    within ±45° (corners outside the image are black). Returns ``(B, 3, size, size)`` (not normalised).
    """
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    draws = draws.to(device=images.device, dtype=images.dtype)
    area = 0.08 + 0.92 * draws[:, 0]
    aspect = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * draws[:, 1])
    # Crop half-sizes in the [-1, 1] coordinates of affine_grid; a crop never exceeds the image.
    half_w = torch.sqrt(area * aspect).clamp(max=1.0)
    half_h = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (1 - half_w) * (2 * draws[:, 2] - 1)
    centre_y = (1 - half_h) * (2 * draws[:, 3] - 1)
    flip_x = torch.where(draws[:, 4] < 0.5, -1.0, 1.0).to(images.dtype)
    flip_y = torch.where(draws[:, 5] < 0.5, -1.0, 1.0).to(images.dtype)
    angle = torch.deg2rad(-45.0 + 90.0 * draws[:, 6])
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output pixel (x, y) samples input point centre + Rotation · diag(flip·half) · (x, y).
    theta = torch.stack([
        torch.stack([cos * half_w * flip_x, -sin * half_h * flip_y, centre_x], dim=1),
        torch.stack([sin * half_w * flip_x, cos * half_h * flip_y, centre_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [len(images), images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomAugment:
    """:func:`clibd_augment` for one image tensor, drawing from torch's global RNG (for ad-hoc use)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return clibd_augment(image[None], torch.rand(1, AUGMENT_DRAWS), self.size)[0]

    def __repr__(self) -> str:
        return f"RandomAugment(size={self.size}, area=(0.08, 1), aspect=(3/4, 4/3), flips, rotation=±45°)"


def clibd_image_transforms(size: int, mean: Sequence[float], std: Sequence[float]) -> tuple[Compose, Compose]:
    """The (training, evaluation) transforms of CLIBD for ``size``-pixel crops: PIL image → normalised
    float tensor ``(3, size, size)``; any PIL mode or image size is accepted.

    Training: :func:`prepare_image` then :func:`clibd_augment` (global RNG). Evaluation: shorter side
    to size·256/224, centre crop.
    """
    train = Compose([prepare_image(size), RandomAugment(size), Normalize(mean, std)])
    return train, image_transform(size, train=False, resize=_resize_side(size), mean=mean, std=std)
