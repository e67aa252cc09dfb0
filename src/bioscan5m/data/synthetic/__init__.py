"""Synthetic BIOSCAN-5M: a seeded, realistic stand-in for the real dataset, in its exact on-disk layout.

>>> from bioscan5m.data.synthetic import write_synthetic_dataset
>>> root = write_synthetic_dataset("synthetic", records=5000)  # doctest: +SKIP

Modules: ``taxonomy`` (the tree and its names), ``barcodes`` (COI-like sequences evolving down the tree),
``specimens`` (abundances, identification depth, splits, provenance), ``appearance`` and ``render`` (the
photos), ``writer`` (CSV and image zip).
"""

from bioscan5m.data.synthetic.writer import METADATA_CSV, count_splits, image_chunk, write_synthetic_dataset

__all__ = ["METADATA_CSV", "count_splits", "image_chunk", "write_synthetic_dataset"]
