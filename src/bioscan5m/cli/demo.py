"""``bioscan5m demo``: the whole package, end to end, on synthetic data it generates itself."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option


def register(subparsers) -> None:
    from bioscan5m.demo import PARTS, DemoSettings

    defaults = DemoSettings()
    parser = subparsers.add_parser(
        "demo",
        help="run every benchmark end to end on a generated synthetic BIOSCAN-5M dataset",
        description=(
            "Generate a small synthetic BIOSCAN-5M dataset (metadata CSV and image zip in the official layout), "
            "then run the package on it as on the real data: statistics and plots, BarcodeBERT pretraining, "
            "fine-tuning and probes (Task I), identification of new barcodes with novelty flags, zero-shot "
            "clustering (Task II) and image-DNA-text alignment with retrieval (Task III). Tables are gathered "
            "in OUT/REPORT.md and, with every plot embedded, in OUT/report.html (one file that opens in any "
            "browser, offline). Rerunning reuses what is already there."),
    )
    parser.add_argument("--out", default="bioscan5m-demo", metavar="DIR", help="output folder (default: %(default)s)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="parts to run (default: all, in order; later parts need 'data' and 'dna'); REPORT.md and "
                             "report.html keep the sections of parts not run again")
    parser.add_argument("--records", type=t.positive_int, default=defaults.records,
                        help="specimens in the synthetic dataset (default: %(default)s)")
    parser.add_argument("--seed", type=t.any_int, default=defaults.seed, help="random seed (default: %(default)s)")
    parser.add_argument("--device", default=defaults.device, type=t.device, help="cpu, cuda, ... (default: %(default)s)")
    add_cache_dir_option(parser)
    parser.set_defaults(func=run, outputs=(t.Output("out", "folder"),))


def run(args: argparse.Namespace) -> int:
    from bioscan5m.demo import DemoSettings, run_demo

    settings = DemoSettings(records=args.records, seed=args.seed, device=args.device)
    report = run_demo(args.out, args.parts, settings)
    print(f"report: {report}")
    return 0
