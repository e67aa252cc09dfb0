"""Write the reference part of the staged BOLD table for benchmarks/zsc_bold.py as FASTA.

The reference part is every COI-5P record whose species is NOT in the sample that ``zsc_bold.py`` clusters
(same selection: species with ≥10 records, up to 20 each, 3,000 records, seed 0), so a model pretrained on it
has never seen a barcode of the clustered species.

    python benchmarks/bold_reference_part.py bold_reference.fasta
    bioscan5m pretrain --data bold_reference.fasta --model 4-2-2-tiny --out bold_bb --steps 400
    python benchmarks/zsc_bold.py --barcodebert bold_bb
"""

from __future__ import annotations

import argparse

import numpy as np
from zsc_bold import BOLD

from bioscan5m.data.records import load_records
from bioscan5m.fileio import atomic_write
from bioscan5m.tasks.cluster import select_species_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="FASTA file to write")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    records = load_records(BOLD)
    species = records.labels("species")
    sample = select_species_sample(species, 10, args.records, seed=args.seed, max_per_species=20)
    kept = ~np.isin(species, np.unique(species[sample]))
    ids, barcodes = records.ids, records.barcodes()
    with atomic_write(args.out) as handle:
        for i in np.flatnonzero(kept):
            if barcodes[i]:
                handle.write(f">{ids[i]}\n{barcodes[i]}\n")
    print(f"{kept.sum():,} of {len(records):,} records kept ({sample.sum():,} sampled for clustering)")


if __name__ == "__main__":
    main()
