"""Fixtures of the web app's tests: a tiny synthetic dataset with a CLIBD model aligned for two steps, real
BOLD barcodes split into a reference and held-out queries, and a server context over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioscan5m.data.schema import TAXONOMIC_RANKS

NL_BOLD = "bold_v5/BOLD_Public.21-Jun-2024.curated.NL_873b975.tsv.gz"
#: Every HELD_OUT-th real record (by process id) is a query; the others are the reference.
HELD_OUT = 8


@pytest.fixture(scope="session")
def tiny_clibd(tmp_path_factory) -> tuple[Path, Path]:
    """A 300-record synthetic dataset with images, and a tiny CLIBD model aligned on it by ``bioscan5m align``."""
    from bioscan5m.cli import main
    from bioscan5m.data.synthetic import write_synthetic_dataset

    base = tmp_path_factory.mktemp("serve-clibd")
    root = write_synthetic_dataset(base / "data", 300, images=True, seed=11)
    code = main(["align", "--data", str(root), "--out", str(base / "model"), "--model", "tiny", "--modalities",
                 "image,dna,text", "--steps", "2", "--batch-size", "8"])
    assert code == 0
    return root, base / "model"


@pytest.fixture(scope="session")
def real_barcodes(vendored_data, tmp_path_factory) -> dict[str, Path]:
    """Real BOLD COI-5P records of the Netherlands: the reference as FASTA + taxonomy TSV, and every 8th record
    held out as queries (FASTA, raw barcodes as BOLD has them)."""
    from bioscan5m.data.records import load_records
    from bioscan5m.peers.programs import write_fasta

    records = load_records(vendored_data / NL_BOLD, columns=[*TAXONOMIC_RANKS, "dna_barcode"], use_cache=False)
    frame = records.to_pandas().sort_values("processid").reset_index(drop=True)
    frame = frame[frame["dna_barcode"].notna() & (frame["dna_barcode"].str.len() >= 200)].reset_index(drop=True)
    held_out = frame.index % HELD_OUT == 0
    folder = tmp_path_factory.mktemp("serve-real")
    reference, queries = frame[~held_out], frame[held_out]
    write_fasta(folder / "reference.fasta", reference["processid"], reference["dna_barcode"].str.replace("-", ""))
    reference[["processid", *TAXONOMIC_RANKS]].to_csv(folder / "taxonomy.tsv", sep="\t", index=False)
    write_fasta(folder / "queries.fasta", queries["processid"], queries["dna_barcode"].str.replace("-", ""))
    return {"reference": folder / "reference.fasta", "taxonomy": folder / "taxonomy.tsv",
            "queries": folder / "queries.fasta", "n_queries": int(held_out.sum()),
            "query_species": dict(zip(queries["processid"], queries["species"]))}


@pytest.fixture(scope="session")
def fast_identifier() -> dict:
    """Options of a quick identifier, for the tests that do not compare with the CLI (which uses the defaults)."""
    return {"n_simulated": 300, "threads": 1}
