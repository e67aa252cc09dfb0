"""Model weights as safetensors files that are byte-for-byte the same for the same weights."""

from __future__ import annotations

import os

from safetensors.torch import save_file
from torch import nn

from bioscan5m.fileio import current_umask


def save_weights(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``module.state_dict()`` to ``path``, each shared (tied) tensor once, under its first name.

    ``safetensors.torch.save_model`` records every tied tensor's other name in the header metadata,
    which safetensors serialises in a random order (a Rust hash map): two saves of the same weights
    then differ in their bytes. This writes only ``{"format": "pt"}``; ``safetensors.torch.load_model``
    and ``transformers`` find the ties again from the model itself.
    """
    kept, seen = {}, set()
    for name, tensor in module.state_dict().items():
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                    tensor.stride(), tensor.dtype)
        if tensor.numel() and identity in seen:
            continue
        seen.add(identity)
        kept[name] = tensor.detach().to("cpu").contiguous()
    save_file(kept, str(path), metadata={"format": "pt"})
    os.chmod(path, 0o666 & ~current_umask())  # safetensors creates its files private (0600)
