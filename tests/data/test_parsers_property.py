"""Property-based tests of the parsers a user's files go through (FASTA, BOLD TSV, BIOSCAN-5M CSV, JSON-LD) and
of the k-mer tokenizer: whatever the bytes, a reader returns records or raises BioscanError (never another
exception), and well-formed input comes back exactly.

Few examples by default so that CI stays fast; ``BIOSCAN5M_HYPOTHESIS_EXAMPLES=500`` searches harder.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioscan5m.data.readers import BIOSCAN_CSV, BIOSCAN_JSONLD, BOLD_TSV, FASTA, read_table
from bioscan5m.data.schema import COLUMN_NAMES
from bioscan5m.errors import BioscanError
from bioscan5m.models.tokenizer import KmerTokenizer

FEW = settings(max_examples=int(os.environ.get("BIOSCAN5M_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
               suppress_health_check=[HealthCheck.too_slow], derandomize=True)

record_ids = st.text(st.characters(codec="ascii", categories=("L", "N"), include_characters="-_.:"),
                     min_size=1, max_size=12)
barcodes = st.text("ACGTNacgtn-RYKM", min_size=1, max_size=80).filter(lambda s: s.strip("-"))


def _read(data: bytes, format: str, suffix: str = ""):
    """Read ``data`` as a file of ``format``; return the table, or the BioscanError it raised."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            return read_table(path, format)
        except BioscanError as error:
            assert str(error).startswith(str(path)), f"the message must name the file: {error}"
            return error


@FEW
@given(st.binary(max_size=400), st.sampled_from([FASTA, BOLD_TSV, BIOSCAN_CSV, BIOSCAN_JSONLD]),
       st.booleans())
def test_any_bytes_give_records_or_a_bioscan_error(data, format, compressed):
    payload = gzip.compress(data) if compressed else data
    _read(payload, format, ".gz" if compressed else "")


@FEW
@given(st.binary(min_size=1, max_size=200), st.sampled_from([FASTA, BOLD_TSV, BIOSCAN_CSV, BIOSCAN_JSONLD]))
def test_truncated_gzip_is_a_bioscan_error_naming_the_file(data, format):
    whole = gzip.compress(data * 5)
    result = _read(whole[: len(whole) // 2], format, ".gz")
    assert isinstance(result, BioscanError)


@FEW
@given(st.lists(st.tuples(record_ids, barcodes), min_size=1, max_size=8, unique_by=lambda r: r[0]),
       st.integers(1, 30))
def test_fasta_round_trip(records, width):
    text = "".join(f">{rid} description\n" + "\n".join(seq[i:i + width] for i in range(0, len(seq), width)) + "\n"
                   for rid, seq in records)
    table = _read(text.encode(), FASTA)
    assert not isinstance(table, BioscanError), table
    assert table.column("processid").to_pylist() == [rid for rid, _ in records]
    assert table.column("dna_barcode").to_pylist() == [seq for _, seq in records]


@FEW
@given(st.lists(st.tuples(record_ids, barcodes, st.text("abcdefgh ", max_size=10)), min_size=1, max_size=8,
                unique_by=lambda r: r[0]))
def test_bold_tsv_round_trip(records):
    text = "processid\tnucleotides\tspecies_name\n" + "".join(f"{rid}\t{seq}\t{name}\n" for rid, seq, name in records)
    table = _read(text.encode(), BOLD_TSV)
    assert not isinstance(table, BioscanError), table
    assert table.column("processid").to_pylist() == [rid for rid, _, _ in records]
    assert table.column("dna_barcode").to_pylist() == [seq for _, seq, _ in records]
    assert table.column("species").to_pylist() == [name.strip() or None for _, _, name in records]


@FEW
@given(st.lists(st.lists(st.text(max_size=6), min_size=0, max_size=30), min_size=1, max_size=5))
def test_bioscan_csv_rows_of_any_shape_are_records_or_errors(rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMN_NAMES)
    writer.writerows(rows)
    result = _read(buffer.getvalue().encode(), BIOSCAN_CSV)
    if not isinstance(result, BioscanError):
        assert result.num_rows == sum(1 for row in rows if row)  # a row of no fields is a blank line
        assert all("\n" not in rid for rid in result.column("processid").to_pylist() if rid)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["processid", "species", "@graph", "schema:genus", "coord-lat", "@value", "x"]),
        children, max_size=4),
    max_leaves=12)


@FEW
@given(json_values)
def test_any_json_document_gives_records_or_a_bioscan_error(document):
    _read(json.dumps(document).encode(), BIOSCAN_JSONLD)


@FEW
@given(st.lists(st.text(max_size=40), min_size=1, max_size=6), st.integers(1, 6), st.integers(1, 6),
       st.integers(6, 40))
def test_tokenizer_shapes_and_ids_for_any_text(sequences, k, stride, max_length):
    tokenizer = KmerTokenizer(k=k, stride=min(stride, k), max_length=max(max_length, k))
    encoded = tokenizer.encode(sequences)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    assert ids.shape == mask.shape == (len(sequences), tokenizer.n_tokens)
    assert ((ids >= 0) & (ids < tokenizer.vocab_size)).all()
    assert (ids[mask == 0] == tokenizer.pad_token_id).all()


@FEW
@given(st.text("ACGT", max_size=60), st.integers(1, 5))
def test_tokenizer_decode_inverts_encode_on_clean_barcodes(barcode, k):
    tokenizer = KmerTokenizer(k=k, max_length=60)
    barcode = barcode[: len(barcode) - len(barcode) % k]
    ids = tokenizer.encode([barcode])["input_ids"][0]
    assert tokenizer.decode(ids) == barcode
    assert np.array_equal(tokenizer.encode([barcode.lower()])["input_ids"][0], ids)
