"""Image transforms without torchvision: PIL image → normalised float tensor ``(3, H, W)``.

Small composable callables (:class:`Compose`, :class:`ResizeShorterSide`, :class:`CenterCrop`,
:class:`RandomResizedCrop`, :class:`RandomHorizontalFlip`, :class:`ToTensor`, :class:`Normalize`) and
one factory, :func:`image_transform`, for the usual training and evaluation pipelines.

Randomness: every random transform takes ``generator``. ``None`` (default) draws from torch's global RNG,
which DataLoader reseeds per worker and per epoch (reproducible through ``torch.manual_seed``). A
``torch.Generator`` is used as given (note that forked workers each get a copy in the same state). An
``int`` seed gives a private generator: seeded with the seed itself in the main process and with the seed
plus the worker's torch seed in a DataLoader worker, so workers and epochs differ but reruns repeat.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from bioscan5m.data.images import to_rgb
from bioscan5m.errors import BioscanError

#: ImageNet channel statistics (RGB, 0..1): the default, matching ImageNet-pretrained backbones.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: BIOSCAN-5M channel statistics (RGB, 0..1) as published with the authors' ``bioscan-dataset`` loader.
BIOSCAN5M_MEAN: tuple[float, float, float] = (0.76281859, 0.76503749, 0.76373138)
BIOSCAN5M_STD: tuple[float, float, float] = (0.14205404, 0.15642502, 0.17309470)

INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _interpolation(name: str | Image.Resampling) -> Image.Resampling:
    if isinstance(name, Image.Resampling):
        return name
    if name not in INTERPOLATIONS:
        raise BioscanError(f"unknown interpolation {name!r}; choose from {', '.join(INTERPOLATIONS)}", value=name)
    return INTERPOLATIONS[name]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width) in pixels; both must be positive."""
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height < 1 or width < 1:
        raise BioscanError(f"image size must be positive, got {size!r}", value=size)
    return int(height), int(width)


class RandomSource:
    """Where a random transform draws from: torch's global RNG, a given Generator, or a seed (see module doc)."""

    def __init__(self, generator: torch.Generator | int | None = None) -> None:
        self.seed = generator if isinstance(generator, int) else None
        self._generator = generator if isinstance(generator, torch.Generator) else None
        self._pid: int | None = None

    def generator(self) -> torch.Generator | None:
        """The generator to pass to torch's sampling functions (None: the global RNG)."""
        if self.seed is None:
            return self._generator
        if self._generator is None or self._pid != os.getpid():
            worker = torch.utils.data.get_worker_info()
            seed = self.seed if worker is None else (self.seed + torch.initial_seed()) % (2**63)
            self._generator = torch.Generator().manual_seed(seed)
            self._pid = os.getpid()
        return self._generator

    def uniform(self, low: float, high: float) -> float:
        """One float drawn uniformly from [low, high)."""
        return low + (high - low) * float(torch.rand(1, generator=self.generator()))

    def __getstate__(self) -> dict:
        # A spawned worker starts its own stream (seeded as in a forked one).
        state = self.__dict__.copy()
        if self.seed is not None:
            state["_generator"], state["_pid"] = None, None
        return state


class Compose:
    """Apply transforms in order: ``Compose([a, b])(x) == b(a(x))``."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, value):
        for transform in self.transforms:
            value = transform(value)
        return value

    def __repr__(self) -> str:
        inner = "".join(f"\n    {transform!r}," for transform in self.transforms)
        return f"Compose([{inner}\n])"


class ResizeShorterSide:
    """Resize so that the shorter side is ``size`` pixels, keeping the aspect ratio (longer side ≥ 1 px)."""

    def __init__(self, size: int, interpolation: str | Image.Resampling = "bicubic") -> None:
        self.size = _pair(size)[0]
        self.interpolation = _interpolation(interpolation)

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if min(width, height) == self.size:
            return image
        scale = self.size / min(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if width <= height:
            new_size = (self.size, new_size[1])
        else:
            new_size = (new_size[0], self.size)
        return image.resize(new_size, self.interpolation)

    def __repr__(self) -> str:
        return f"ResizeShorterSide(size={self.size}, interpolation={self.interpolation.name.lower()!r})"


class CenterCrop:
    """Crop the central ``size`` (int or (height, width)) pixels; smaller images are padded with black."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size)

    def __call__(self, image: Image.Image) -> Image.Image:
        height, width = self.size
        left = (image.width - width) // 2
        top = (image.height - height) // 2
        # PIL pads a box that reaches outside the image with zeros.
        return image.crop((left, top, left + width, top + height))

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomResizedCrop:
    """Crop a random region (area fraction in ``scale``, aspect ratio in ``ratio``) and resize it to ``size``.

    Same sampling as torchvision's ``RandomResizedCrop``: ten tries at a region that fits, else the
    largest central region whose aspect ratio lies within ``ratio``.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.8, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        interpolation: str | Image.Resampling = "bicubic",
        generator: torch.Generator | int | None = None,
    ) -> None:
        if not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
            raise BioscanError(f"scale and ratio must be increasing positive ranges, got {scale} and {ratio}")
        self.size = _pair(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.interpolation = _interpolation(interpolation)
        self.random = RandomSource(generator)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """A random (left, top, right, bottom) box inside a ``width`` × ``height`` image."""
        area = width * height
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target_area = area * self.random.uniform(*self.scale)
            aspect = math.exp(self.random.uniform(log_low, log_high))
            crop_w = round(math.sqrt(target_area * aspect))
            crop_h = round(math.sqrt(target_area / aspect))
            if 0 < crop_w <= width and 0 < crop_h <= height:
                left = int(torch.randint(0, width - crop_w + 1, (1,), generator=self.random.generator()))
                top = int(torch.randint(0, height - crop_h + 1, (1,), generator=self.random.generator()))
                return left, top, left + crop_w, top + crop_h
        # Fallback: central crop, aspect ratio clamped into range.
        aspect = width / height
        if aspect < self.ratio[0]:
            crop_w, crop_h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            crop_w, crop_h = round(height * self.ratio[1]), height
        else:
            crop_w, crop_h = width, height
        crop_w, crop_h = max(1, min(crop_w, width)), max(1, min(crop_h, height))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        return left, top, left + crop_w, top + crop_h

    def __call__(self, image: Image.Image) -> Image.Image:
        box = self.crop_box(*image.size)
        height, width = self.size
        # resize(box=...) crops and resamples in one step, without an intermediate image.
        return image.resize((width, height), self.interpolation, box=box)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio=({self.ratio[0]:.3g}, "
                f"{self.ratio[1]:.3g}), interpolation={self.interpolation.name.lower()!r})")


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | int | None = None) -> None:
        self.p = p
        self.random = RandomSource(generator)

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.random.uniform(0.0, 1.0) < self.p:
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ToTensor:
    """PIL image (any mode) → float32 tensor ``(3, H, W)`` with values in [0, 1]."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        # NumPy, not torch ops: per-image arithmetic this small runs single-threaded, and torch's thread
        # pool made it several times slower on a busy machine.
        pixels = np.asarray(to_rgb(image), dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
        return torch.from_numpy(np.ascontiguousarray(pixels))

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """Per channel ``(x - mean) / std`` on a ``(3, H, W)`` (or ``(B, 3, H, W)``) tensor."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise BioscanError(f"need one positive std per mean, got mean={mean} std={std}")
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type == "cpu" and not tensor.requires_grad and tensor.dtype == torch.float32:
            # Single-threaded NumPy for one image on the CPU (see ToTensor).
            return torch.from_numpy((tensor.numpy() - self.mean) / self.std)
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        return (tensor - mean) / std

    def __repr__(self) -> str:
        return (f"Normalize(mean={tuple(round(float(m), 4) for m in self.mean.flat)}, "
                f"std={tuple(round(float(s), 4) for s in self.std.flat)})")


def image_transform(
    size: int = 224,
    train: bool = False,
    *,
    resize: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
    interpolation: str = "bicubic",
    generator: torch.Generator | int | None = None,
) -> Compose:
    """The standard pipeline from a PIL image to a normalised ``(3, size, size)`` float tensor.

    Evaluation (``train=False``): resize the shorter side to ``resize`` pixels (default ``size`` × 256/224,
    i.e. 256 for 224) then take the central ``size`` × ``size`` crop: deterministic.
    Training: a random resized crop (area fraction ``scale``, aspect ``ratio``) to ``size`` × ``size``,
    then a horizontal flip with probability 1/2 (if ``flip``). ``generator``: see the module docstring.
    """
    size = _pair(size)[0]
    finish = [ToTensor(), Normalize(mean, std)]
    if train:
        steps: list[Callable] = [RandomResizedCrop(size, scale, ratio, interpolation, generator=generator)]
        if flip:
            # A separate stream from the crop's when seeded, so crops don't depend on flips.
            flip_generator = generator + 1 if isinstance(generator, int) else generator
            steps.append(RandomHorizontalFlip(0.5, generator=flip_generator))
        return Compose(steps + finish)
    resize = round(size * 256 / 224) if resize is None else resize
    if resize < size:
        raise BioscanError(f"resize ({resize} px) must be at least the crop size ({size} px)", value=resize)
    return Compose([ResizeShorterSide(resize, interpolation), CenterCrop(size)] + finish)
