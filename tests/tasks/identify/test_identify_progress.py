"""Indexing a reference says what it is doing (it takes minutes for a million barcodes), and with one thread
does it on one thread."""

import threading

from bioscan5m.tasks.identify import BarcodeIdentifier
from bioscan5m.tasks.identify import identifier as identifier_module
from bioscan5m.tasks.identify.containment import KmerContainment


def _reference(folder):
    rows = [f"R{i}\tDiptera\tAus\tAus b{i % 3}\t{'ACGT' * 40}{'ACGT'[i % 4] * 8}{'TTGCA' * 30}" for i in range(30)]
    reference = folder / "reference.tsv"
    reference.write_text("processid\torder_name\tgenus_name\tspecies_name\tnucleotides\n" + "\n".join(rows) + "\n")
    return reference


def test_indexing_a_reference_shows_its_steps(tmp_path, capsys):
    reference = _reference(tmp_path)
    BarcodeIdentifier(n_simulated=20, threads=1, use_cache=False, progress=True).fit(reference)
    shown = capsys.readouterr().err
    assert "indexing 30 reference barcodes" not in shown  # distinct barcodes are counted, not records
    assert "indexing 4 reference barcodes" in shown
    assert "k-mer and containment indexes" in shown and "calibrating on queries simulated from the reference" in shown
    assert "2/2" in shown
    BarcodeIdentifier(n_simulated=20, threads=1, use_cache=False, progress=False).fit(reference)
    assert "indexing" not in capsys.readouterr().err


def test_one_thread_builds_the_index_on_one_thread(tmp_path, monkeypatch):
    """With ``threads=1`` the containment index and the partial queries' calibration, which otherwise run beside
    the k-mer index's build, run in turn in the caller's thread (a 1-thread comparison with a peer is fair)."""
    seen = []
    for owner, name in ((KmerContainment, "build"), (identifier_module.BarcodeIdentifier, "_calibration_hits")):
        original = getattr(owner, name)

        def recording(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, threading.get_ident()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, recording)
    BarcodeIdentifier(n_simulated=20, threads=1, use_cache=False, progress=False).fit(_reference(tmp_path))
    assert {name for name, _ in seen} == {"build", "_calibration_hits"}
    assert {thread for _, thread in seen} == {threading.get_ident()}
    seen.clear()
    BarcodeIdentifier(n_simulated=20, threads=2, use_cache=False, progress=False).fit(_reference(tmp_path))
    assert len({thread for _, thread in seen}) > 1  # with two, beside it
