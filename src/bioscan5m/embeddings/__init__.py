"""The step every task shares: records → vectors.

- :mod:`.encoders`: the one factory, ``create_encoder(name)`` (``kmer-profile-5``, ``barcodebert:DIR``,
  ``hf-dna:…``, ``image-stats-6``, ``hf-image:…``, ``timm:…``, ``clibd:DIR/image|dna|text``): an object that
  knows its modality, its preprocessing and ``encode(batch) -> float32 [N, D]``;
- :mod:`.loop`: the one batched inference loop (device, precision, progress, torchrun shards);
- :mod:`.store`: the one content-keyed store (vectors + ids + manifest) that every task reads.
"""

from bioscan5m.embeddings.encoders import Encoder, create_encoder, list_encoders
from bioscan5m.embeddings.store import Embeddings, extract_embeddings, load_embeddings

__all__ = ["Embeddings", "Encoder", "create_encoder", "extract_embeddings", "list_encoders", "load_embeddings"]
