"""``bioscan5m stats``: the split table, names per rank, and overview plots of a dataset."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option

if TYPE_CHECKING:
    import pandas as pd

_SPLIT_TABLE = ["records", "unique_barcodes", "species"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="count records, unique barcodes, species and names per rank in each split; plot them",
        description=(
            "Summarise a BIOSCAN-5M dataset folder or any table bioscan5m reads (BIOSCAN-5M CSV, BOLD TSV, "
            "FASTA): records, unique DNA barcodes (after cleaning) and labelled species per split, and the "
            "number of distinct names at each rank and of BINs. With --out, also write the table as TSV and "
            "PNG plots of records per split, records per order, and collection sites on a world map. "
            "Example: 'bioscan5m stats data --out data/stats'."
        ),
    )
    parser.add_argument(
        "source",
        nargs="?",
        default=".",
        type=t.existing_path,
        help="dataset folder (containing bioscan5m/metadata/...) or a metadata table file (default: .)",
    )
    parser.add_argument("--split", help="only these splits, e.g. train, seen, train+val (default: all records)")
    parser.add_argument("--out", metavar="DIR", help="folder to write split_stats.tsv and the PNG plots into")
    add_cache_dir_option(parser)
    t.add_force_argument(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder", ("source",)),))


def run(args: argparse.Namespace) -> int:
    # Imported here: every subcommand module is imported for --help, and matplotlib is slow to load.
    from bioscan5m.data.records import load_records
    from bioscan5m.data.stats import STATS_COLUMNS, stats_table
    from bioscan5m.report.plots import write_stats_report

    records = load_records(args.source, split=args.split, columns=list(STATS_COLUMNS))
    table = stats_table(records)
    print(f"{records.source}: {len(records):,} records")
    print(_format(table[_SPLIT_TABLE]))
    print()
    print("distinct names per rank")
    print(_format(table.drop(columns=_SPLIT_TABLE[:2])))
    if args.out:
        for path in write_stats_report(records, args.out, table=table):
            print(f"wrote {path}")
    return 0


def _format(table: pd.DataFrame) -> str:
    """Integers with thousands separators, as in the paper's tables."""
    return table.to_string(formatters={column: "{:,}".format for column in table.columns})
