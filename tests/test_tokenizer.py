"""KmerTokenizer on real BarcodeBERT barcodes: vocabulary, round trips, UNK, padding, offsets, settings."""

from functools import lru_cache
from itertools import product

import numpy as np
import pytest
import torch

from bioscan5m.errors import BioscanError
from bioscan5m.models.tokenizer import AUTHORS_SPECIALS, SPECIALS, KmerTokenizer


@pytest.fixture(scope="module")
def unseen(vendored_unseen_barcodes) -> list[str]:
    return vendored_unseen_barcodes


@lru_cache
def authors_vocab(k: int) -> dict[str, int]:
    """Their vocabulary: specials [MASK], [UNK], then itertools.product("ACGT") order."""
    return {
        kmer: i
        for i, kmer in enumerate([*AUTHORS_SPECIALS, *("".join(p) for p in product("ACGT", repeat=k))])
    }


def authors_tokenize(sequence: str, k: int, max_len: int = 660, offset: int = 0):
    """The authors' KmerTokenizer (padding=True, stride=k), written out plainly."""
    vocab = authors_vocab(k)
    unk = vocab["[UNK]"]
    x = sequence[offset:]
    mask = [1] * (max_len // k)
    if len(x) > max_len:
        x = x[:max_len]
    else:
        mask[len(x) // k :] = [0] * (len(mask) - len(x) // k)
        x = x + "N" * (max_len - len(x))
    ids = [vocab.get(x[i : i + k], unk) for i in range(0, len(x) - k + 1, k)]
    return ids, mask


def test_vocabulary_is_specials_then_all_kmers_in_acgt_order():
    tok = KmerTokenizer(k=4)
    vocab = tok.vocab()
    assert tok.vocab_size == len(vocab) == 4**4 + 5
    assert vocab[:5] == list(SPECIALS)
    assert vocab[5:9] == ["AAAA", "AAAC", "AAAG", "AAAT"] and vocab[-1] == "TTTT"
    assert vocab[5:] == ["".join(p) for p in product("ACGT", repeat=4)]
    assert tok.token_id("ACGT") == 5 + 0 * 64 + 1 * 16 + 2 * 4 + 3
    assert (tok.pad_token_id, tok.unk_token_id, tok.mask_token_id) == (0, 1, 4)
    big = KmerTokenizer(k=8)
    assert big.vocab_size == 65536 + 5 and big.n_tokens == 82  # 660 nt → 82 8-mers
    authors = KmerTokenizer.authors(k=8)
    assert authors.vocab_size == 65536 + 2 and authors.first_kmer_id == 2
    assert (authors.mask_token_id, authors.unk_token_id, authors.pad_token_id) == (0, 1, 1)


@pytest.mark.parametrize("k, stride", [(4, 4), (8, 8), (5, 1), (6, 3)])
def test_decode_encode_round_trips_clean_real_barcodes(unseen, k, stride):
    tok = KmerTokenizer(k=k, stride=stride)
    clean = [s for s in unseen if set(s) <= set("ACGT")][:300]
    assert len(clean) == 300
    for seq in clean:
        seq = seq[:660]
        seq = seq[: k + (len(seq) - k) // stride * stride]  # whole number of strides after the first k-mer
        encoded = tok.encode(seq)
        assert tok.decode(encoded["input_ids"][0], encoded["attention_mask"][0]) == seq
        assert encoded["attention_mask"][0].sum() == (len(seq) - k) // stride + 1


def test_matches_the_authors_tokenizer_on_every_real_barcode_including_n(unseen):
    """Same ids and attention mask as the authors' code, N-containing k-mers as [UNK]."""
    with_n = [s for s in unseen if "N" in s]
    assert len(with_n) == 113  # tests/data/README.md: 113 of the 428 rows contain N
    tok = KmerTokenizer.authors(k=8)
    offsets = np.arange(len(unseen)) % 8
    encoded = tok.encode(unseen, offsets=offsets)
    for row, (seq, offset) in enumerate(zip(unseen, offsets)):
        ids, mask = authors_tokenize(seq, 8, offset=int(offset))
        assert encoded["input_ids"][row].tolist() == ids, seq
        assert encoded["attention_mask"][row].tolist() == mask, seq
    unk_rows = (encoded["input_ids"] == tok.unk_token_id) & (encoded["attention_mask"] == 1)
    assert unk_rows.any(axis=1).sum() > 100  # nearly every N-containing barcode has an UNK token


def test_unk_exactly_where_a_kmer_holds_a_non_acgt_letter(unseen):
    tok = KmerTokenizer(k=4)
    encoded = tok.encode(unseen)
    for seq, ids, mask in zip(unseen[:500], encoded["input_ids"], encoded["attention_mask"]):
        kmers = [seq[i : i + 4] for i in range(0, min(len(seq), 660) - 3, 4)]
        assert mask.sum() == len(kmers)
        expected = [tok.unk_token_id if set(kmer) - set("ACGT") else tok.token_id(kmer) for kmer in kmers]
        assert ids[: len(kmers)].tolist() == expected
        assert (ids[len(kmers) :] == tok.pad_token_id).all()
    assert tok.encode("ACGTRYKM")["input_ids"][0, :2].tolist() == [tok.token_id("ACGT"), tok.unk_token_id]
    assert tok.encode("acgtacgt")["input_ids"].tolist() == tok.encode("ACGTACGT")["input_ids"].tolist()
    assert tok.encode("ACGTÄCGT")["input_ids"][0, 1] == tok.unk_token_id  # non-ASCII letter


def test_long_barcodes_are_cut_to_max_length_and_short_ones_padded():
    tok = KmerTokenizer(k=8)
    encoded = tok.encode(["A" * 1000, "ACGTACG", ""])
    assert encoded["input_ids"].shape == (3, 82)
    assert encoded["attention_mask"].sum(1).tolist() == [82, 0, 0]
    assert (encoded["input_ids"][1:] == tok.pad_token_id).all()


def test_trim_drops_the_padding_columns_past_the_longest_barcode(unseen):
    tok = KmerTokenizer(k=8)
    seqs = [unseen[0][:100], unseen[1][:50], ""]  # 12 and 6 k-mers
    full, trimmed = tok.encode(seqs), tok.encode(seqs, trim=True, return_tensors="pt")
    assert trimmed["input_ids"].shape == (3, 12)
    assert (trimmed["input_ids"].numpy() == full["input_ids"][:, :12]).all()
    assert (trimmed["attention_mask"].numpy() == full["attention_mask"][:, :12]).all()
    assert tok.encode(["", "ACG"], trim=True)["input_ids"].shape == (2, 1)  # one column at least
    assert tok.encode([], trim=True)["input_ids"].shape == (0, 1)


def test_offsets_skip_nucleotides_and_random_offsets_are_seeded(unseen):
    tok = KmerTokenizer(k=8)
    seqs = unseen[:200]
    shifted = tok.encode(seqs, offsets=[3] * len(seqs))
    assert (shifted["input_ids"] == tok.encode([s[3:] for s in seqs])["input_ids"]).all()
    first = tok.encode(seqs, random_offset=True, rng=7)["input_ids"]
    again = tok.encode(seqs, random_offset=True, rng=np.random.default_rng(7))["input_ids"]
    other = tok.encode(seqs, random_offset=True, rng=8)["input_ids"]
    assert (first == again).all() and not (first == other).all()
    # every row equals the encoding at one offset in [0, k)
    by_offset = [tok.encode(seqs, offsets=[o] * len(seqs))["input_ids"] for o in range(8)]
    matches = np.array(
        [[np.array_equal(first[i], by_offset[o][i]) for o in range(8)] for i in range(len(seqs))]
    )
    assert matches.any(axis=1).all()
    assert len({int(np.argmax(row)) for row in matches}) == 8  # all offsets drawn


def test_torch_output_and_batch_of_ten_thousand(unseen):
    tok = KmerTokenizer(k=8)
    seqs = (unseen * (10_000 // len(unseen) + 1))[:10_000]
    encoded = tok(seqs, random_offset=True, rng=0, return_tensors="pt")
    assert encoded["input_ids"].shape == (10_000, 82) and encoded["input_ids"].dtype == torch.int64
    assert int(encoded["input_ids"].max()) < tok.vocab_size and int(encoded["input_ids"].min()) >= 0


def test_settings_save_and_load(tmp_path):
    tok = KmerTokenizer.authors(k=6, stride=3, max_length=600)
    path = tok.save(tmp_path)
    assert path.name == "kmer_tokenizer.json"
    again = KmerTokenizer.load(tmp_path)
    assert again == tok and again.pad_token == "[UNK]" and again.specials == AUTHORS_SPECIALS
    (tmp_path / "bad.json").write_text('{"k": 4,\n oops}')
    with pytest.raises(BioscanError, match=r"bad.json:2: not valid JSON"):
        KmerTokenizer.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"k": 0}, "k-mer size"),
        ({"k": 13}, "k-mer size"),
        ({"k": 4, "stride": 0}, "stride"),
        ({"k": 8, "max_length": 4}, "max_length"),
        ({"k": 4, "specials": ("[PAD]", "[UNK]")}, "lack '\\[MASK\\]'"),
    ],
)
def test_bad_settings_are_user_errors(options, message):
    with pytest.raises(BioscanError, match=message):
        KmerTokenizer(**options)
