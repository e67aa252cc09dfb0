"""``bioscan5m cache``: where the caches are, what they hold, and pruning them."""

from __future__ import annotations

import argparse
import time

from bioscan5m.cachedir import KINDS
from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import CACHE_COMMAND_HELP, add_cache_dir_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="show or prune the caches (record tables, reference indexes, embeddings, ...)",
        description=(
            "bioscan5m keeps what is slow to recompute (the Parquet table of every source file read, reference "
            "indexes, embeddings, UMAP outputs) in one cache folder: $BIOSCAN5M_CACHE_DIR, or the user cache "
            "folder (~/.cache/bioscan5m on Linux), or --cache-dir of a command. Every entry is keyed by the "
            "content it was made from, so a changed input never reuses a stale entry; old entries just take "
            "space until pruned. Examples: 'bioscan5m cache list --entries'; 'bioscan5m cache prune "
            "--older-than 30'; 'bioscan5m cache prune --max-size 20G'; 'bioscan5m cache prune --all'."),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the cache folder, each kind with its entries and size",
                                 description="Print the cache folder and, for each kind of entry, how many there "
                                 "are and their size; with --entries, every entry with its size and last use.")
    listing.add_argument("--entries", action="store_true", help="also list every entry")
    listing.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                         help=f"only this kind (repeatable): {', '.join(KINDS)}")
    add_cache_dir_option(listing, CACHE_COMMAND_HELP)
    listing.set_defaults(func=run_list)

    pruning = actions.add_parser(
        "prune", help="remove whole cache entries: old ones, the least recently used, or all",
        description="Remove whole entries, each atomically (a running command never meets half an entry). "
        "--older-than removes entries not used for DAYS days; --max-size removes the least recently used "
        "until the rest fits; --all removes every entry. Leftovers of interrupted runs older than a day go "
        "too. Only bioscan5m's own kind folders are ever touched.")
    pruning.add_argument("--kind", action="append", choices=KINDS, metavar="KIND",
                         help=f"only this kind (repeatable): {', '.join(KINDS)}")
    pruning.add_argument("--older-than", type=t.non_negative_float, metavar="DAYS", help="entries not used for DAYS days")
    pruning.add_argument("--max-size", type=_size, metavar="SIZE",
                         help="keep at most SIZE (e.g. 500M, 20G), removing the least recently used first")
    pruning.add_argument("--all", action="store_true", help="every entry")
    pruning.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    add_cache_dir_option(pruning, CACHE_COMMAND_HELP)
    pruning.set_defaults(func=run_prune)

    where = actions.add_parser("dir", help="print the cache folder",
                               description="Print the cache folder (for scripts: du -sh \"$(bioscan5m cache dir)\").")
    add_cache_dir_option(where, CACHE_COMMAND_HELP)
    where.set_defaults(func=run_dir)


def _size(text: str) -> int:
    from bioscan5m.cachedir import parse_size
    from bioscan5m.errors import BioscanError

    try:
        return parse_size(text)
    except BioscanError as error:
        raise argparse.ArgumentTypeError(error.reason) from None


def run_dir(args: argparse.Namespace) -> int:
    from bioscan5m.cachedir import cache_root

    print(cache_root(args.cache_dir))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from bioscan5m.cachedir import cache_root, cache_root_origin, format_size, list_entries

    entries = list_entries(args.kind, args.cache_dir)
    print(f"cache folder: {cache_root(args.cache_dir)} (from {cache_root_origin(args.cache_dir)})")
    print(f"{'kind':<11} {'entries':>7} {'size':>10}  holds")
    for kind in args.kind or KINDS:
        mine = [entry for entry in entries if entry.kind == kind]
        print(f"{kind:<11} {len(mine):>7} {format_size(sum(e.size for e in mine)):>10}  {KINDS[kind]}")
    print(f"{'total':<11} {len(entries):>7} {format_size(sum(e.size for e in entries)):>10}")
    if args.entries and entries:
        print()
        print(f"{'last used':<16} {'size':>10}  entry")
        for entry in sorted(entries, key=lambda e: (e.kind, -e.last_used)):
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
            print(f"{used:<16} {format_size(entry.size):>10}  {entry.kind}/{entry.name}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from bioscan5m.cachedir import cache_root, format_size, prune
    from bioscan5m.errors import BioscanError

    if not args.all and args.older_than is None and args.max_size is None:
        raise BioscanError("say what to remove: --older-than DAYS, --max-size SIZE or --all")
    removed = prune(args.kind, args.cache_dir, older_than_days=args.older_than, max_size=args.max_size,
                    everything=args.all, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for entry in removed:
        print(f"{verb} {entry.kind}/{entry.name} ({format_size(entry.size)})")
    print(f"{verb} {len(removed)} entries, {format_size(sum(e.size for e in removed))}, from "
          f"{cache_root(args.cache_dir)}")
    return 0
