"""Identification of held-out real BOLD barcodes: ``bioscan5m identify`` against BLAST+ and VSEARCH.

Data: the real BOLD insect records (COI-5P rows, gaps stripped by ``load_records``). Held out, seeded
(``bioscan5m.data.partition``): ~5% of the records of species with >= 10 records ("seen", scored
at species) and every record of a random ~15% of the species of genera with >= 2 species ("unseen",
scored at genus). The reference is the rest. ``--queries N`` draws N/2 seen and N/2 unseen queries.

The queries are chosen by the seeded split and sample before anything is tuned, and every method sees
them in four forms, as barcodes come from the field: forward (as stored), reverse complement, the
313 bp 3' end (a Leray-type amplicon) and the 150 bp 5' end (a mini-barcode).

All methods get the same reference, queries and threads; BLAST searches both strands (its default),
VSEARCH with ``--strand both``. Reported per form: species accuracy on seen queries, genus accuracy on
unseen ones (micro = per query, macro = mean per class), the share of seen queries flagged novel
(identify: ``novel_species`` or ``no_hit``; BLAST/VSEARCH: top hit under 97% identity, or none), the AUROC
of the novelty score for telling unseen-species queries from seen ones (BLAST/VSEARCH: 1 - top-hit
identity), and queries per second of the search alone (index / database built beforehand, timed apart).

    python benchmarks/identify_bold.py --queries 1000 --threads 2 --markdown identify_bold.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bioscan5m.data.partition import SEEN, UNSEEN, holdout_split
from bioscan5m.data.records import load_records
from bioscan5m.peers.blast import blast_search, make_blast_db
from bioscan5m.peers.programs import write_fasta
from bioscan5m.peers.vsearch import vsearch_search
from bioscan5m.tasks.identify import DEFAULT_METHOD, BarcodeIdentifier
from bioscan5m.tasks.identify.queries import reverse_complement
from bioscan5m.tasks.metrics import accuracy, auroc

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "insect_bold_degobbi" / "insect_bold_records.tsv.gz"
PEERS = ("blast", "vsearch")
#: The forms every query is searched in.
VARIANTS = {
    "forward": lambda seq: seq,
    "reverse complement": reverse_complement,
    "313 bp 3' fragment": lambda seq: seq[-313:],
    "150 bp 5' fragment": lambda seq: seq[:150],
}
#: Short names of the forms for ``--forms``.
FORM_NAMES = dict(zip(("forward", "reverse", "leray313", "mini150"), VARIANTS))
#: Top-hit identity under which a peer's answer counts as "novel" (the usual 3% species threshold).
PEER_NOVEL_IDENTITY = 0.97


def load(path: Path) -> pd.DataFrame:
    records = load_records(path, columns=["processid", "order", "family", "subfamily", "genus", "species",
                                          "dna_barcode"])
    frame = records.to_pandas()
    frame["dna_barcode"] = records.barcodes(clean=True, iupac="mask")
    frame = frame[frame["dna_barcode"].str.len() > 0].reset_index(drop=True)
    for rank in ("order", "family", "subfamily", "genus", "species"):
        frame[rank] = frame[rank].astype(object)
    return frame


def choose_queries(frame: pd.DataFrame, n: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    roles = holdout_split(frame["species"].to_numpy(), frame["genus"].to_numpy(), seed=seed)
    reference = frame[roles == "reference"].reset_index(drop=True)
    queries = frame[roles != "reference"].assign(kind=roles[roles != "reference"])
    if n is not None:
        parts = [group.sample(min(len(group), n // 2), random_state=seed) for _, group in queries.groupby("kind")]
        queries = pd.concat(parts)
    return reference, queries.reset_index(drop=True)


def score(queries: pd.DataFrame, species: np.ndarray, genus: np.ndarray, novelty: np.ndarray, flagged: np.ndarray,
          seconds: float) -> dict:
    seen = (queries["kind"] == SEEN).to_numpy()
    unseen = (queries["kind"] == UNSEEN).to_numpy()
    species_acc = accuracy(queries["species"].to_numpy()[seen], species[seen])
    genus_acc = accuracy(queries["genus"].to_numpy()[unseen], genus[unseen])
    return {
        "species_micro": species_acc["micro"], "species_macro": species_acc["macro"],
        "genus_micro": genus_acc["micro"], "genus_macro": genus_acc["macro"],
        "seen_flagged": float(flagged[seen].mean()), "queries_per_s": len(queries) / seconds,
        "novelty_auroc": auroc(unseen[seen | unseen], novelty[seen | unseen]),
    }


def variant(queries: pd.DataFrame, form: str) -> pd.DataFrame:
    return queries.assign(dna_barcode=queries["dna_barcode"].map(VARIANTS[form]))


def run_identify(reference: pd.DataFrame, queries: pd.DataFrame, threads: int, method: str, forms: list[str]
                 ) -> tuple[dict[str, dict], float]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="identify-bench-") as cache:
        start = time.perf_counter()
        model = BarcodeIdentifier(method, threads=threads, cache_dir=cache).fit(reference)
        built = time.perf_counter() - start
        for form in forms:
            start = time.perf_counter()
            table = model.predict(variant(queries, form)[["processid", "dna_barcode"]])
            seconds = time.perf_counter() - start
            answered = table["status"] == "ok"
            # A query without an answer is scored as "most novel" (it has no related reference).
            novelty = np.where(answered, table["novelty_score"].to_numpy(), 1.0)
            flagged = (table["novel_species"] | (table["status"] == "no_hit")).to_numpy()
            results[form] = score(queries, table["species"].to_numpy(object), table["genus"].to_numpy(object),
                                  novelty, flagged, seconds)
    return results, built


def run_peer(name: str, reference: pd.DataFrame, queries: pd.DataFrame, threads: int, forms: list[str]
             ) -> tuple[dict[str, dict], float]:
    results = {}
    with tempfile.TemporaryDirectory(prefix=f"{name}-bench-") as tmp:
        tmp = Path(tmp)
        ref_fasta = write_fasta(tmp / "reference.fasta", [f"r{i}" for i in range(len(reference))],
                                reference["dna_barcode"])
        start = time.perf_counter()
        database = make_blast_db(ref_fasta, tmp / "reference") if name == "blast" else ref_fasta
        built = time.perf_counter() - start
        for form in forms:
            query_fasta = write_fasta(tmp / "queries.fasta", [f"q{i}" for i in range(len(queries))],
                                      variant(queries, form)["dna_barcode"])
            start = time.perf_counter()
            search = blast_search if name == "blast" else vsearch_search
            hits = search(database, query_fasta, threads=threads, max_hits=1)
            seconds = time.perf_counter() - start
            top = hits.set_index(hits["query_id"].str[1:].astype(int))
            subject = np.full(len(queries), -1)
            identity = np.zeros(len(queries))
            subject[top.index] = top["subject_id"].str[1:].astype(int)
            identity[top.index] = top["identity"]
            species, genus = (np.where(subject >= 0, reference[rank].to_numpy(object)[np.maximum(subject, 0)], None)
                              for rank in ("species", "genus"))
            results[form] = score(queries, species, genus, 1.0 - identity,
                                  identity < PEER_NOVEL_IDENTITY, seconds)
            print(f"{name} {form}: done in {seconds:.1f} s", file=sys.stderr)
    return results, built


def report(results: dict[str, dict[str, dict]], built: dict[str, float], args: argparse.Namespace,
           sizes: dict) -> str:
    ours = f"identify ({args.method})"
    lines = [
        (f"Reference {sizes['reference']:,} records; queries {sizes['seen']:,} seen + {sizes['unseen']:,} unseen; "
         f"threads {args.threads}; seed {args.seed}."),
        "",
        ("| queries | method | species acc. seen (micro / macro) | genus acc. unseen (micro / macro) | "
         "seen flagged novel | novelty AUROC | queries/s | index build s |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for form in args.forms:
        for name, by_form in results.items():
            r = by_form[form]
            lines.append(f"| {form} | {name} | {100 * r['species_micro']:.2f} / {100 * r['species_macro']:.2f} | "
                         f"{100 * r['genus_micro']:.2f} / {100 * r['genus_macro']:.2f} | "
                         f"{100 * r['seen_flagged']:.1f}% | {r['novelty_auroc']:.4f} | {r['queries_per_s']:,.1f} | "
                         f"{built[name]:.1f} |")
    for peer in PEERS:
        if peer in results and ours in results:
            lines.append("")
            for form in args.forms:
                a, b = results[ours][form], results[peer][form]
                lines.append(
                    f"{ours} vs {peer}, {form}: species {100 * (a['species_micro'] - b['species_micro']):+.2f} "
                    f"points, unseen genus {100 * (a['genus_micro'] - b['genus_micro']):+.2f} points, "
                    f"throughput x{a['queries_per_s'] / b['queries_per_s']:.1f}, "
                    f"novelty AUROC {a['novelty_auroc'] - b['novelty_auroc']:+.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="BOLD TSV of records with taxonomy")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries (half seen, half unseen); "
                                                                  "0 = every held-out record")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default=DEFAULT_METHOD, help="identify's method")
    parser.add_argument("--peers", default="blast,vsearch", help="comma-separated peers to run ('' for none)")
    parser.add_argument("--forms", default=",".join(FORM_NAMES),
                        help=f"comma-separated forms of the queries to search (of {', '.join(FORM_NAMES)})")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    unknown = set(args.forms.split(",")) - set(FORM_NAMES)
    if unknown:
        parser.error(f"unknown form(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORM_NAMES)}")
    args.forms = [FORM_NAMES[name] for name in args.forms.split(",")]

    frame = load(args.data)
    reference, queries = choose_queries(frame, args.queries or None, args.seed)
    sizes = {"reference": len(reference), "seen": int((queries["kind"] == SEEN).sum()),
             "unseen": int((queries["kind"] == UNSEEN).sum())}
    print(f"reference {sizes['reference']} records, {sizes['seen']} seen + {sizes['unseen']} unseen queries",
          file=sys.stderr)
    results, built = {}, {}
    name = f"identify ({args.method})"
    results[name], built[name] = run_identify(reference, queries, args.threads, args.method, args.forms)
    for peer in filter(None, args.peers.split(",")):
        results[peer], built[peer] = run_peer(peer, reference, queries, args.threads, args.forms)
    text = report(results, built, args, sizes)
    print(text)
    if args.markdown:
        args.markdown.write_text(f"# Identification of held-out BOLD barcodes\n\n{text}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
