"""Indexing a reference says what it is doing (it takes minutes for a million barcodes)."""

from bioscan5m.tasks.identify import BarcodeIdentifier


def test_indexing_a_reference_shows_its_steps(tmp_path, capsys):
    rows = [f"R{i}\tDiptera\tAus\tAus b{i % 3}\t{'ACGT' * 40}{'ACGT'[i % 4] * 8}{'TTGCA' * 30}" for i in range(30)]
    reference = tmp_path / "reference.tsv"
    reference.write_text("processid\torder_name\tgenus_name\tspecies_name\tnucleotides\n" + "\n".join(rows) + "\n")
    BarcodeIdentifier(n_simulated=20, threads=1, use_cache=False, progress=True).fit(reference)
    shown = capsys.readouterr().err
    assert "indexing 30 reference barcodes" not in shown  # distinct barcodes are counted, not records
    assert "indexing 4 reference barcodes" in shown
    assert "k-mer and containment indexes" in shown and "calibrating on queries simulated from the reference" in shown
    assert "2/2" in shown
    BarcodeIdentifier(n_simulated=20, threads=1, use_cache=False, progress=False).fit(reference)
    assert "indexing" not in capsys.readouterr().err
