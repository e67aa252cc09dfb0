"""The k-mer tokenizer as a Hugging Face ``tokenizer.json``: ``AutoTokenizer`` without remote code.

A model folder holds ``tokenizer.json`` (built here with the ``tokenizers`` library) and
``tokenizer_config.json``, so ``transformers.AutoTokenizer.from_pretrained(folder)`` returns a
``PreTrainedTokenizerFast`` that gives, for a raw barcode, exactly the ids the project computes:
``KmerTokenizer.encode(clean_barcodes([raw]))`` (with ``padding="max_length"`` it also gives the
same padding and attention mask, ``[N, n_tokens]``).

The pipeline, all of it standard ``tokenizers`` components:

* normalizer: the steps of :func:`bioscan5m.data.sequences.clean_barcode` (gaps and whitespace
  removed, upper case, U → T, leading and trailing N stripped, cut to 660 nt and trailing N stripped
  again), then the tokenizer's own cut to ``max_length`` and the removal of a trailing partial k-mer
  (the project treats a k-mer that runs past the end as padding) — regular-expression replacements;
* pre-tokenizer: ``Split`` into pieces of k characters;
* model: ``WordLevel`` over the project's vocabulary, in the project's id order; a piece that is not
  an ACGT k-mer (holding N, an ambiguity code or anything else) is ``[UNK]``;
* no post-processor: like the project, no [CLS]/[SEP] is added.

Two steps of the project cannot be expressed: ``clean_barcode`` refuses a letter that is not an
IUPAC nucleotide code (a ``tokenizers`` normalizer cannot raise an error; such letters end up in an
``[UNK]`` k-mer here, as they would in ``KmerTokenizer.encode``), and overlapping k-mers (stride < k)
cannot be cut by a pre-tokenizer, whose pieces never overlap (no ``tokenizer.json`` is written then).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bioscan5m.data.schema import MAX_NUCLEOTIDES
from bioscan5m.data.sequences import GAP_CHARACTERS
from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_path, atomic_write
from bioscan5m.models.tokenizer import KmerTokenizer

HF_TOKENIZER_FILE = "tokenizer.json"
HF_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
#: Above this k the vocabulary (4**k words) makes tokenizer.json impractically large (4**10 = 1M words).
MAX_HF_K = 10

# Lower-case letters clean_barcode upper-cases that decide an id: bases, N (stripped at the ends), and
# RNA's u, written T. Other ambiguity codes give [UNK] in either case, so their case does not matter.
_CASE_AND_RNA = {"a": "A", "c": "C", "g": "G", "t": "T", "n": "N", "u": "T", "U": "T"}
# BERT's names of the roles a transformers tokenizer knows, for the specials our layouts use.
_ROLES = {"[PAD]": "pad_token", "[UNK]": "unk_token", "[CLS]": "cls_token", "[SEP]": "sep_token",
          "[MASK]": "mask_token"}


def can_export(tokenizer: KmerTokenizer) -> bool:
    """Whether ``tokenizer`` can be written as a ``tokenizer.json`` (non-overlapping k-mers, k <= 10)."""
    return tokenizer.stride == tokenizer.k and tokenizer.k <= MAX_HF_K


def hf_tokenizer(tokenizer: KmerTokenizer, clean_max_length: int | None = MAX_NUCLEOTIDES):
    """A ``tokenizers.Tokenizer`` that reproduces ``tokenizer.encode(clean_barcodes(...))``.

    clean_max_length: the cut of the cleaning step (660 nt, as ``Records.barcodes`` cleans);
    None: no cleaning cut (only the tokenizer's ``max_length``).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    if not can_export(tokenizer):
        raise BioscanError(f"{tokenizer!r} cannot be written as a tokenizer.json: only non-overlapping "
                           f"k-mers (stride = k) with k <= {MAX_HF_K} can", value=tokenizer.config())
    k, width = tokenizer.k, tokenizer.max_length
    gaps = "".join(f"\\x{ord(c):02x}" for c in GAP_CHARACTERS)
    steps = [normalizers.Replace(Regex(f"[{gaps}]"), "")]
    steps += [normalizers.Replace(lower, upper) for lower, upper in _CASE_AND_RNA.items()]
    steps.append(normalizers.Replace(Regex(r"\AN+|N+\z"), ""))
    if clean_max_length is not None:
        # \K keeps the first clean_max_length letters out of the match: only what follows is removed.
        steps.append(normalizers.Replace(Regex(rf"\A.{{{clean_max_length}}}\K.+\z"), ""))
        steps.append(normalizers.Replace(Regex(r"N+\z"), ""))
    if clean_max_length is None or width < clean_max_length:
        steps.append(normalizers.Replace(Regex(rf"\A.{{{width}}}\K.+\z"), ""))
    # The atomic group takes whole k-mers without giving any back, so only a partial tail matches.
    steps.append(normalizers.Replace(Regex(rf"\A(?>(?:.{{{k}}})*)\K.+\z"), ""))

    vocab = {token: index for index, token in enumerate(tokenizer.vocab())}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf.normalizer = normalizers.Sequence(steps)
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(f".{{{k}}}"), behavior="isolated")
    hf.decoder = decoders.Fuse()
    hf.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in tokenizer.specials])
    # The raw `tokenizers` object pads like the project (transformers decides padding per call instead).
    hf.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token, length=tokenizer.n_tokens)
    return hf


def hf_tokenizer_config(tokenizer: KmerTokenizer) -> dict:
    """The ``tokenizer_config.json`` that makes ``AutoTokenizer`` load ``tokenizer.json`` as it is."""
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": tokenizer.n_tokens,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    for token in tokenizer.specials:
        if token in _ROLES:
            config[_ROLES[token]] = token
    config["pad_token"] = tokenizer.pad_token
    return config


def save_hf_tokenizer(tokenizer: KmerTokenizer, directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``directory`` (atomically).

    Returns the files written: none for a tokenizer that :func:`can_export` refuses.
    """
    if not can_export(tokenizer):
        return []
    directory = Path(directory)
    with atomic_path(directory / HF_TOKENIZER_FILE) as tmp:
        hf_tokenizer(tokenizer).save(str(tmp))
    with atomic_write(directory / HF_TOKENIZER_CONFIG_FILE) as handle:
        json.dump(hf_tokenizer_config(tokenizer), handle, indent=2)
        handle.write("\n")
    return [directory / HF_TOKENIZER_FILE, directory / HF_TOKENIZER_CONFIG_FILE]
