"""The k-mer tokenizer of BarcodeBERT: DNA barcodes → fixed-length token ids, vectorised with numpy.

A barcode is cut (after an optional offset) into k-mers starting every ``stride`` nucleotides
(non-overlapping when ``stride == k``, the default), within the first ``max_length`` nucleotides.
Every sequence gives the same number of tokens, ``n_tokens = (max_length - k) // stride + 1``
(82 for k=8 and 660 nt): positions past the end of the barcode are padding (``attention_mask`` 0).
The vocabulary is the special tokens followed by all 4**k k-mers in lexicographic ACGT order
(``AA..A, AA..C, ..., TT..T``); a k-mer containing N or any other non-ACGT letter is ``[UNK]``.
No [CLS]/[SEP] is added: BarcodeBERT pools the k-mer tokens.

Two vocabulary layouts exist. Ours puts ``[PAD] [UNK] [CLS] [SEP] [MASK]`` first (BERT's names,
padding id 0). The authors' published checkpoints use ``[MASK] [UNK]`` only and pad with
N-k-mers, which are ``[UNK]`` (see :data:`AUTHORS_SPECIALS`); :meth:`KmerTokenizer.authors` builds
that layout so their embedding matrices are used as they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bioscan5m.data.schema import MAX_NUCLEOTIDES
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import read_json, write_json

#: Our vocabulary's special tokens, in id order (0..4).
SPECIALS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
#: The special tokens of the authors' BarcodeBERT checkpoints (bioscan-ml/BarcodeBERT), in id order.
AUTHORS_SPECIALS: tuple[str, ...] = ("[MASK]", "[UNK]")
#: The settings file written beside a model's weights.
TOKENIZER_FILE = "kmer_tokenizer.json"
#: k above 12 gives a vocabulary (16.7M k-mers) no embedding matrix can hold.
MAX_K = 12

_OTHER = np.uint8(4)  # code for any letter that is not A/C/G/T
_PAD_BYTE = 0  # the byte used to pad sequences; code 5 marks "past the end"
_PAST_END = np.uint8(5)
_CODES = np.full(256, _OTHER, dtype=np.uint8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt")):
    for _letter in _letters:
        _CODES[ord(_letter)] = _code
_CODES[_PAD_BYTE] = _PAST_END
_LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)


class KmerTokenizer:
    """Cut DNA barcodes into k-mer token ids of a fixed length.

    k: k-mer size (8 for the BIOSCAN-5M BarcodeBERT). stride: step between k-mer starts (default k:
    non-overlapping). max_length: nucleotides kept (660). specials: the special tokens, in id order,
    placed before the k-mers; they must include ``[UNK]`` and ``[MASK]``. pad_token: which special
    token fills positions past the end of a barcode (``[PAD]``; the authors' layout uses ``[UNK]``).

    >>> tok = KmerTokenizer(k=4, max_length=12)
    >>> tok(["ACGTACGTNCGT"])["input_ids"].tolist()
    [[32, 32, 1]]
    """

    def __init__(
        self,
        k: int = 8,
        stride: int | None = None,
        max_length: int = MAX_NUCLEOTIDES,
        *,
        specials: Sequence[str] = SPECIALS,
        pad_token: str = "[PAD]",
    ) -> None:
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise BioscanError(f"k-mer size must be an integer from 1 to {MAX_K}, got {k!r}", value=k)
        stride = k if stride is None else stride
        if not isinstance(stride, (int, np.integer)) or stride < 1:
            raise BioscanError(f"stride must be a positive integer, got {stride!r}", value=stride)
        if max_length < k:
            raise BioscanError(f"max_length ({max_length}) must be at least k ({k})", value=max_length)
        specials = tuple(specials)
        for needed in ("[UNK]", "[MASK]", pad_token):
            if needed not in specials:
                raise BioscanError(f"special tokens {specials} lack {needed!r}", value=specials)
        if len(set(specials)) != len(specials):
            raise BioscanError(f"special tokens {specials} repeat a name", value=specials)
        self.k = int(k)
        self.stride = int(stride)
        self.max_length = int(max_length)
        self.specials = specials
        self.pad_token = pad_token
        self.n_tokens = (self.max_length - self.k) // self.stride + 1
        self._place_values = (4 ** np.arange(self.k - 1, -1, -1)).astype(np.int64)

    @classmethod
    def authors(
        cls,
        k: int = 8,
        stride: int | None = None,
        max_length: int = MAX_NUCLEOTIDES,
        specials: Sequence[str] = AUTHORS_SPECIALS,
    ) -> KmerTokenizer:
        """The vocabulary layout of the published BarcodeBERT checkpoints: ``[MASK] [UNK]`` + k-mers,
        padding with ``[UNK]`` (their loaders pad barcodes with N)."""
        return cls(k, stride, max_length, specials=specials, pad_token="[UNK]")

    # -- vocabulary -------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Special tokens + 4**k k-mers."""
        return len(self.specials) + 4**self.k

    @property
    def first_kmer_id(self) -> int:
        """Id of ``AA..A``; k-mer ids are ``first_kmer_id + base-4 value``."""
        return len(self.specials)

    def token_id(self, token: str) -> int:
        """Id of a special token or a k-mer."""
        if token in self.specials:
            return self.specials.index(token)
        codes = _CODES[np.frombuffer(token.encode("latin-1", errors="replace"), dtype=np.uint8)]
        if len(token) != self.k or (codes > 3).any():
            raise BioscanError(f"{token!r} is neither a special token nor an ACGT {self.k}-mer", value=token)
        return self.first_kmer_id + int(codes.astype(np.int64) @ self._place_values)

    @property
    def pad_token_id(self) -> int:
        return self.specials.index(self.pad_token)

    @property
    def unk_token_id(self) -> int:
        return self.specials.index("[UNK]")

    @property
    def mask_token_id(self) -> int:
        return self.specials.index("[MASK]")

    def vocab(self) -> list[str]:
        """Every token, in id order (4**k + specials strings: avoid for k > 10)."""
        return list(self.specials) + self._kmers(np.arange(4**self.k, dtype=np.int64))

    def _kmers(self, values: np.ndarray) -> list[str]:
        """The k-mer strings of base-4 values ``int64 [N]``."""
        digits = (values[:, None] >> (2 * np.arange(self.k - 1, -1, -1))) & 3
        return _LETTERS[digits].view(f"S{self.k}").ravel().astype(str).tolist()

    # -- encoding ---------------------------------------------------------------------------------
    def __call__(self, sequences: Sequence[str] | str, **options) -> dict:
        """Alias of :meth:`encode`."""
        return self.encode(sequences, **options)

    def encode(
        self,
        sequences: Sequence[str] | str,
        *,
        offsets: Sequence[int] | np.ndarray | None = None,
        random_offset: bool = False,
        rng: np.random.Generator | int | None = None,
        return_tensors: str = "np",
        trim: bool = False,
    ) -> dict:
        """Token ids and attention mask of each barcode, both ``[len(sequences), n_tokens]``.

        offsets: nucleotides to skip at the start of each barcode (one per barcode), or
        random_offset: draw each offset uniformly from ``[0, k)`` with ``rng`` (a numpy Generator or a
        seed), the BarcodeBERT training augmentation. Letters are case-insensitive; a k-mer with any
        letter other than A/C/G/T is ``[UNK]``; a k-mer that runs past the end of the barcode is padding.
        return_tensors: ``"np"`` (int64 ids, int64 mask) or ``"pt"`` (torch tensors).
        trim: drop the columns past the longest barcode's end (at least one is kept): padding is on the
        right only, so a model's output for the real tokens is the same and costs less.
        """
        if isinstance(sequences, str):
            sequences = [sequences]
        n = len(sequences)
        if random_offset:
            if offsets is not None:
                raise BioscanError("give either offsets or random_offset, not both")
            generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
            offsets = generator.integers(0, self.k, size=n)
        codes = self._codes(sequences, offsets)
        # [n, n_tokens, k] view of the codes: every k-mer window at the stride, without copying.
        windows = np.lib.stride_tricks.sliding_window_view(codes, self.k, axis=1)[:, :: self.stride]
        windows = windows[:, : self.n_tokens]
        past_end = windows[:, :, -1] == _PAST_END  # codes only become _PAST_END at the tail
        unknown = (windows > 3).any(axis=2)
        values = windows.astype(np.int64) @ self._place_values
        input_ids = np.where(unknown, self.unk_token_id, values + self.first_kmer_id)
        input_ids[past_end] = self.pad_token_id
        attention_mask = (~past_end).astype(np.int64)
        if trim:
            width = max(int(attention_mask.sum(1).max(initial=0)), 1)
            input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
        encoded = {"input_ids": input_ids, "attention_mask": attention_mask}
        if return_tensors == "pt":
            import torch

            return {name: torch.from_numpy(array) for name, array in encoded.items()}
        if return_tensors != "np":
            raise BioscanError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}", value=return_tensors)
        return encoded

    def _codes(self, sequences: Sequence[str], offsets: Sequence[int] | np.ndarray | None) -> np.ndarray:
        """``uint8 [n, max_length]`` letter codes: 0-3 = ACGT, 4 = other letter, 5 = past the end."""
        width = self.max_length
        if offsets is None:
            cut = [s[:width] for s in sequences]
        else:
            if len(offsets) != len(sequences):
                raise BioscanError(f"{len(offsets)} offsets for {len(sequences)} sequences")
            cut = [s[int(o) : int(o) + width] for s, o in zip(sequences, offsets)]
        # One fixed-width byte buffer: every non-ASCII character becomes one '?' (an unknown letter).
        joined = "".join(s.ljust(width, "\0") for s in cut).encode("ascii", errors="replace")
        if not cut:
            return np.empty((0, width), dtype=np.uint8)
        return _CODES[np.frombuffer(joined, dtype=np.uint8).reshape(len(cut), width)]

    def tokenize(self, sequence: str, offset: int = 0) -> list[str]:
        """The k-mer strings of one barcode (special tokens by name), padding left out."""
        encoded = self.encode([sequence], offsets=[offset])
        ids = encoded["input_ids"][0][encoded["attention_mask"][0] == 1]
        return self.convert_ids_to_tokens(ids)

    def convert_ids_to_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Token strings of ids: special tokens by name, k-mers as letters."""
        ids = np.asarray(ids, dtype=np.int64)
        kmers = self._kmers(np.clip(ids - self.first_kmer_id, 0, None)) if len(ids) else []
        return [self.specials[i] if i < self.first_kmer_id else kmer for i, kmer in zip(ids.tolist(), kmers)]

    def decode(
        self, input_ids: Sequence[int] | np.ndarray, attention_mask: Sequence[int] | None = None
    ) -> str:
        """The nucleotides a row of token ids spells; ``[UNK]`` k-mers read as N, padding is dropped.

        With overlapping k-mers (stride < k) each token after the first adds its last ``stride`` letters.
        ``decode(encode(x))`` gives back a clean barcode ``x`` whose length is a multiple of the stride
        (and at most max_length).
        """
        ids = np.asarray(input_ids, dtype=np.int64)
        keep = ids != self.pad_token_id if attention_mask is None else np.asarray(attention_mask) == 1
        pieces = []
        for position, token in enumerate(self.convert_ids_to_tokens(ids[keep])):
            kmer = token if token not in self.specials else "N" * self.k
            pieces.append(kmer if position == 0 else kmer[self.k - min(self.stride, self.k) :])
        return "".join(pieces)

    # -- settings ---------------------------------------------------------------------------------
    def config(self) -> dict:
        """The settings that rebuild this tokenizer (JSON-serialisable)."""
        return {
            "tokenizer": "kmer",
            "k": self.k,
            "stride": self.stride,
            "max_length": self.max_length,
            "specials": list(self.specials),
            "pad_token": self.pad_token,
        }

    @classmethod
    def from_config(cls, config: dict) -> KmerTokenizer:
        if config.get("tokenizer", "kmer") != "kmer":
            raise BioscanError(f"not a k-mer tokenizer: {config.get('tokenizer')!r}", value=config)
        return cls(
            config["k"],
            config.get("stride"),
            config.get("max_length", MAX_NUCLEOTIDES),
            specials=config.get("specials", SPECIALS),
            pad_token=config.get("pad_token", "[PAD]"),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the settings as JSON; a directory gets ``kmer_tokenizer.json`` inside it."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        return write_json(path, self.config())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KmerTokenizer:
        """Read settings written by :meth:`save` (a JSON file or a directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise BioscanError("no k-mer tokenizer settings here", path=path)
        return cls.from_config(read_json(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KmerTokenizer) and self.config() == other.config()

    def __repr__(self) -> str:
        return (
            f"KmerTokenizer(k={self.k}, stride={self.stride}, max_length={self.max_length}, "
            f"vocab_size={self.vocab_size}, n_tokens={self.n_tokens})"
        )
