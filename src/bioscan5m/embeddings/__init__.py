"""The step every task shares, records → vectors: the one encoder factory (:mod:`.encoders`, ``create_encoder``),
the one batched inference loop (:mod:`.loop`) and the one content-keyed store of vectors + ids + manifest
(:mod:`.store`) that every task reads."""

from bioscan5m.embeddings.encoders import Encoder, create_encoder, list_encoders
from bioscan5m.embeddings.store import Embeddings, extract_embeddings, load_embeddings

__all__ = ["Embeddings", "Encoder", "create_encoder", "extract_embeddings", "list_encoders", "load_embeddings"]
