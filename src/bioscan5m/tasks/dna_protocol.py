"""How Task I (DNA-based classification) is run: the BarcodeBERT authors' protocol, or ours.

``--protocol paper`` (:data:`PAPER_DNA_PROTOCOL`, the default of ``bioscan5m benchmark dna``) follows the
authors' code, bioscan-ml/BarcodeBERT branch ``BIOSCAN-5M`` (commit b51d7c2):

* **de-duplication** (``data/data_split.py``): the WHOLE metadata file is read in its row order, trailing
  ``N`` are stripped from every barcode (``str.rstrip("N")``, nothing else), and
  ``DataFrame.drop_duplicates(subset=["nucleotides"])`` keeps the first row of each barcode; only then
  are the splits taken (``train``; ``test``; ``test_unseen``). A barcode first seen in another split is
  therefore gone from ``test`` too. :func:`~bioscan5m.data.authors_split.authors_deduplicated_ids` does
  the same.
* **cleaning**: that ``rstrip("N")`` is all (the ``barcodebert`` mode of
  :func:`~bioscan5m.data.sequences.clean_barcodes`): leading ``N`` stay and keep the k-mer frame.
* **fine-tuning** (``barcodebert/finetuning.py`` with ``pretraining.py``'s defaults): 35 epochs, batch 16,
  AdamW (weight decay 0) at a peak 1e-4 × 16 / 64 = 2.5e-5, OneCycle per step (beta1 cycled
  0.95-0.85-0.95), incomplete last batch dropped, no gradient clipping, fp32, a random k-mer offset in [0, k) per training barcode, and a linear
  layer over ``hidden_states[-1].mean(1)``: the mean of ALL 660 / k positions, padding included.
* **linear probe**: the same script with ``--freeze-encoder`` (only the linear layer trains, same schedule).
* **1-NN**: ``knn_probing.py``: masked-mean embeddings, cosine, one neighbour, genus of ``test_unseen``
  against ``train``.
* **BLAST**: ``makeblastdb`` on ``train``, ``blastn`` with its defaults (megablast, up to 500 targets),
  ``-outfmt 6``; the top hit is the first hit reported per query.

``--protocol bioscan5m`` (:data:`BIOSCAN5M_DNA_PROTOCOL`) is this project's earlier default: no
de-duplication, standard cleaning, one fine-tuning epoch, masked-mean pooling, the linear probe as a
softmax regression on standardised embeddings, BLAST's best-bitscore subject among 5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bioscan5m.data.sequences import CLEANING_MODES
from bioscan5m.errors import BioscanError
from bioscan5m.models import POOLINGS

#: The protocols ``benchmark dna --protocol`` knows.
DNA_PROTOCOLS: tuple[str, ...] = ("paper", "bioscan5m")
#: De-duplication: the authors' (whole file, trailing N stripped, first row kept) or none.
DEDUPLICATIONS: tuple[str, ...] = ("whole-dataset", "none")
#: Linear probes: the authors' (frozen encoder + linear layer trained like fine-tuning) or ours
#: (softmax regression on standardised, cached embeddings).
LINEAR_PROBES: tuple[str, ...] = ("frozen-finetune", "embeddings")
#: BLAST's top hit: the first reported (blastn's order, 500 targets) or the best bitscore among 5 targets.
BLAST_HITS: tuple[str, ...] = ("first-reported", "best-bitscore")
#: The authors' base batch size for learning-rate scaling (``BASE_BATCH_SIZE`` in finetuning.py).
AUTHORS_BASE_BATCH = 64
#: The code the paper protocol follows.
AUTHORS_CODE = "bioscan-ml/BarcodeBERT, branch BIOSCAN-5M, commit b51d7c2"
#: What each de-duplication does (for protocol.json).
DEDUPLICATION_RULES: dict[str, str] = {
    "whole-dataset": "every row of the metadata file, in file order; key: the barcode with trailing N stripped "
                     "(nothing else); the first row of each key is kept, then the splits are taken (the "
                     "authors' data/data_split.py: rstrip('N'), drop_duplicates(subset=['nucleotides']))",
    "none": "none: every record of each split with a barcode",
}


@dataclass(frozen=True)
class DNAProtocol:
    """Every choice Task I makes; the defaults are the BarcodeBERT authors' (see the module docstring).

    deduplicate: one of :data:`DEDUPLICATIONS`. cleaning: a ``CLEANING_MODES`` mode. epochs (or steps,
    which win), batch_size, lr (peak), head_lr_scale, weight_decay, cycle_momentum (Adam's beta1 cycled
    as torch's OneCycleLR does), grad_clip (None: none), random_offset,
    pooling (``POOLINGS``), precision: fine-tuning, and the linear probe when it is ``frozen-finetune``.
    linear_probe: one of :data:`LINEAR_PROBES`, trained for ``probe_epochs``. blast_hit: one of
    :data:`BLAST_HITS`.
    """

    name: str = "paper"
    deduplicate: str = "whole-dataset"
    cleaning: str = "barcodebert"
    epochs: float = 35
    steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-4 * 16 / AUTHORS_BASE_BATCH
    head_lr_scale: float = 1.0
    weight_decay: float = 0.0
    cycle_momentum: bool = True
    grad_clip: float | None = None
    random_offset: bool = True
    pooling: str = "all-positions"
    precision: str = "fp32"
    linear_probe: str = "frozen-finetune"
    probe_epochs: int = 35
    blast_hit: str = "first-reported"

    def __post_init__(self) -> None:
        for name, allowed in (("deduplicate", DEDUPLICATIONS), ("cleaning", CLEANING_MODES),
                              ("pooling", POOLINGS), ("linear_probe", LINEAR_PROBES), ("blast_hit", BLAST_HITS)):
            if getattr(self, name) not in allowed:
                raise BioscanError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}",
                                   value=getattr(self, name))
        if (self.epochs <= 0 or self.batch_size < 1 or self.lr <= 0 or self.probe_epochs < 1
                or self.steps is not None and self.steps < 1):
            raise BioscanError("epochs, steps, batch size, learning rate and probe epochs must be positive")

    def with_options(self, **options: Any) -> DNAProtocol:
        """This protocol with the options that are not None changed (the CLI's named overrides)."""
        return dataclasses.replace(self, **{k: v for k, v in options.items() if v is not None})

    def deviations(self, settings: Sequence[str] | None = None) -> list[str]:
        """How this protocol differs from the authors' (:data:`PAPER_DNA_PROTOCOL`), one phrase each;
        ``settings``: only these fields (default: all)."""
        paper = PAPER_DNA_PROTOCOL
        said = []
        for field in dataclasses.fields(self):
            if field.name == "name" or settings is not None and field.name not in settings:
                continue
            if field.name == "epochs" and self.steps is not None:
                continue  # steps win: the length is said once, below
            ours, theirs = getattr(self, field.name), getattr(paper, field.name)
            if field.name == "steps" and ours is not None:
                said.append(f"fine-tuning length {ours} steps (authors: {paper.epochs:g} epochs)")
            elif ours != theirs:
                said.append(f"{field.name.replace('_', ' ')} {_said(ours)} (authors: {_said(theirs)})")
        return said

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _said(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


#: The BarcodeBERT authors' Task I protocol.
PAPER_DNA_PROTOCOL = DNAProtocol()
#: This project's earlier Task I defaults.
BIOSCAN5M_DNA_PROTOCOL = DNAProtocol(
    name="bioscan5m", deduplicate="none", cleaning="standard", epochs=1.0, batch_size=32, lr=1e-4,
    weight_decay=0.01, cycle_momentum=False, grad_clip=1.0, random_offset=False, pooling="masked-mean", precision="auto",
    linear_probe="embeddings", probe_epochs=30, blast_hit="best-bitscore")


def dna_protocol(name: str) -> DNAProtocol:
    """The named protocol (``paper`` or ``bioscan5m``)."""
    protocols = {"paper": PAPER_DNA_PROTOCOL, "bioscan5m": BIOSCAN5M_DNA_PROTOCOL}
    if name not in protocols:
        raise BioscanError(f"unknown protocol {name!r}; choose from {', '.join(DNA_PROTOCOLS)}", value=name)
    return protocols[name]
