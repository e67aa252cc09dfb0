"""``bioscan5m benchmark``: the paper's three benchmark protocols on a dataset directory, as tables."""

from __future__ import annotations

import argparse

from bioscan5m.cli import _types as t
from bioscan5m.cli._cache_option import add_cache_dir_option
from bioscan5m.cli._clustering_options import add_protocol_arguments, protocol_options, protocol_summary
from bioscan5m.data.schema import TARGET_RANKS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run one of the paper's benchmarks (dna, zsc, retrieval) and write its table",
        description=(
            "Run a BIOSCAN-5M benchmark protocol end to end on a dataset folder (the real BIOSCAN-5M layout, "
            "or one made by 'bioscan5m synth') and write the paper-shaped table as TSV and Markdown."),
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)

    dna = _task_parser(
        tasks, "dna", "Task I: DNA-based taxonomic classification (fine-tuning, probes, BLAST)",
        (
            "Fine-tune a BarcodeBERT model on 'train' and score species on 'test', run the linear probe "
            "(train → test, species) and the 1-nearest-neighbour probe ('test_unseen' against 'train', genus), "
            "for the model and for k-mer baselines, plus BLAST's top hit when blastn is installed. The table "
            "holds the paper's published numbers beside ours. By default every step follows the BarcodeBERT "
            "authors' code (--protocol paper: de-duplication, cleaning, training recipe, probe, BLAST); "
            "protocol.json records the records used per column and any deviation."),
        "bioscan5m benchmark dna --data demo/data --model demo/barcodebert --out demo/task1")
    dna.add_argument("--data", required=True, metavar="ROOT", type=t.existing_path, help="BIOSCAN-5M dataset folder")
    dna.add_argument("--model", default=None, metavar="DIR",
                     help="a pretrained BarcodeBERT folder (from 'bioscan5m pretrain') or Hub id; "
                          "without it only the baselines run")
    dna.add_argument("--out", required=True, metavar="DIR", help="folder for dna_benchmark.tsv/.md")
    dna.add_argument("--baselines", nargs="*", default=["kmer-profile-5"], metavar="ENCODER",
                     help="frozen encoders probed beside the model (default: kmer-profile-5)")
    dna.add_argument("--no-blast", action="store_true", help="skip the BLAST row")
    dna.add_argument("--device", default="auto", type=t.device, help="cpu, cuda, ... (default: auto)")
    add_dna_protocol_arguments(dna)
    dna.add_argument("--threads", type=t.positive_int, default=1, help="BLAST threads (default 1)")
    dna.add_argument("--seed", type=t.any_int, default=0, help="random seed (default 0)")
    add_cache_dir_option(dna)
    dna.set_defaults(func=run_dna, outputs=(t.Output("out", "folder", ("data", "model")),))

    zsc = _task_parser(
        tasks, "zsc", "Task II: zero-shot clustering of embeddings (UMAP + Ward, AMI per rank)",
        (
            "Embed the chosen split with each encoder, reduce with UMAP to 50 dimensions, cluster with Ward "
            "into as many clusters as there are true taxa at each rank, and score the adjusted mutual "
            "information (AMI). Encoders: kmer-profile[-K], barcodebert:DIR, hf-dna:NAME, hf-image:NAME."),
        "bioscan5m benchmark zsc --data demo/data --encoders kmer-profile-5 --out demo/task2")
    zsc.add_argument("--data", required=True, metavar="SOURCE", type=t.existing_path, help="dataset folder or any table with taxonomy")
    zsc.add_argument("--encoders", nargs="+", default=["kmer-profile-5"], metavar="ENCODER",
                     help="encoders to compare (default: kmer-profile-5)")
    zsc.add_argument("--split", default="test+test_unseen",
                     help="records to cluster (default: test+test_unseen, as in the paper; 'none' for files "
                          "without splits)")
    zsc.add_argument("--ranks", nargs="+", choices=TARGET_RANKS, default=None, help="ranks to score")
    zsc.add_argument("--max-records", type=t.positive_int, default=None, metavar="N",
                     help="subsample to at most N records (default: all)")
    zsc.add_argument("--out", required=True, metavar="DIR", help="folder for the AMI table and plots")
    zsc.add_argument("--device", default=None, type=t.device, help="cpu, cuda, ... (default: auto)")
    add_protocol_arguments(zsc)
    t.add_trust_remote_code_argument(zsc)
    add_cache_dir_option(zsc)
    zsc.set_defaults(func=run_zsc, outputs=(t.Output("out", "folder", ("data",)),))

    retrieval = _task_parser(
        tasks, "retrieval", "Task III: image/DNA/text retrieval with an aligned model (top-k accuracy per rank)",
        (
            "Embed keys ('train' + 'key_unseen') and queries ('test' seen, 'test_unseen' unseen) with a model "
            "from 'bioscan5m align', search the nearest keys by inner product (FAISS) and score top-1/3/5 "
            "accuracy per rank, micro and macro, for image→image, DNA→DNA, image→DNA, DNA→image and "
            "image/DNA→text. Writes the paper-shaped table (TSV, Markdown) and a bar plot."),
        "bioscan5m benchmark retrieval --data demo/data --model demo/clibd --out demo/task3")
    retrieval.add_argument("--data", required=True, metavar="ROOT", type=t.existing_folder, help="BIOSCAN-5M dataset folder")
    retrieval.add_argument("--model", required=True, metavar="DIR", type=t.existing_folder, help="model folder written by 'bioscan5m align'")
    retrieval.add_argument("--out", required=True, metavar="DIR", help="folder for the table and plot")
    retrieval.add_argument("--index", default="flat", choices=("flat", "hnsw", "ivf"),
                           help="exact search (flat, default) or an approximate index for millions of keys")
    retrieval.add_argument("--batch-size", type=t.positive_int, default=64, help="specimens embedded at a time (default 64)")
    retrieval.add_argument("--device", default="cpu", type=t.device, help="cpu, cuda, ... (default: cpu)")
    retrieval.add_argument("--text-keys", default="per-record", choices=("per-record", "distinct"),
                           help="text keys: one per key record as the authors (default), or one per distinct "
                                "taxonomy sentence")
    retrieval.add_argument("--no-cache", action="store_true",
                           help="do not keep or reuse split embeddings (default: kept in the cache folder)")
    add_cache_dir_option(retrieval)
    retrieval.set_defaults(func=run_retrieval, outputs=(t.Output("out", "folder", ("data", "model")),))


def add_dna_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """--protocol and one named option per choice it fixes; an option given is a deviation, and says so."""
    from bioscan5m.data.sequences import CLEANING_MODES
    from bioscan5m.models import POOLINGS
    from bioscan5m.tasks.dna_protocol import BLAST_HITS, DEDUPLICATIONS, DNA_PROTOCOLS, LINEAR_PROBES

    group = parser.add_argument_group(
        "protocol (defaults: the BarcodeBERT authors'; any option below that changes it is listed as a "
        "deviation in protocol.json and under the table)")
    group.add_argument("--protocol", choices=DNA_PROTOCOLS, default="paper",
                       help="paper: the authors' code (whole-dataset de-duplication, trailing-N cleaning, 35 "
                            "epochs of OneCycle fine-tuning with random k-mer offsets, frozen-encoder linear "
                            "probe, BLAST's first hit); bioscan5m: this project's earlier defaults (default: "
                            "paper)")
    group.add_argument("--deduplicate", choices=DEDUPLICATIONS, default=None,
                       help="whole-dataset: one record per barcode over the whole metadata file, first row kept "
                            "(authors); none: every record")
    group.add_argument("--cleaning", choices=CLEANING_MODES, default=None,
                       help="barcodebert: only trailing N stripped (authors); standard: also leading N and gaps "
                            "stripped, upper-cased, cut to 660 nt")
    group.add_argument("--epochs", type=t.positive_float, default=None, help="fine-tuning passes over 'train' (authors: 35)")
    group.add_argument("--steps", type=t.positive_int, default=None, help="fine-tuning length in steps (overrides --epochs)")
    group.add_argument("--batch-size", type=t.positive_int, default=None, help="fine-tuning batch size (authors: 16)")
    group.add_argument("--lr", type=t.positive_float, default=None, help="peak learning rate (authors: 2.5e-5 = 1e-4 × 16/64)")
    group.add_argument("--weight-decay", type=t.non_negative_float, default=None, help="AdamW weight decay (authors: 0)")
    group.add_argument("--cycle-momentum", choices=("on", "off"), default=None,
                       help="cycle AdamW's beta1 0.95 → 0.85 → 0.95 with the OneCycle rate, as torch's "
                            "OneCycleLR (authors: on)")
    group.add_argument("--pooling", choices=POOLINGS, default=None,
                       help="classifier input: all-positions (authors: mean of every position, padding "
                            "included) or masked-mean (real k-mer tokens only)")
    group.add_argument("--random-offset", choices=("on", "off"), default=None,
                       help="random k-mer offset in [0, k) per training barcode (authors: on)")
    group.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default=None,
                       help="training precision (authors: fp32)")
    group.add_argument("--linear-probe", choices=LINEAR_PROBES, default=None,
                       help="frozen-finetune: the fine-tuning recipe with the encoder frozen (authors); "
                            "embeddings: softmax regression on standardised embeddings")
    group.add_argument("--probe-epochs", type=t.positive_int, default=None, help="linear-probe epochs (authors: 35)")
    group.add_argument("--blast-hit", choices=BLAST_HITS, default=None,
                       help="first-reported: blastn's defaults and its first hit (authors); best-bitscore: the "
                            "best bitscore among 5 targets")


def dna_protocol_from(args: argparse.Namespace):
    """The DNAProtocol the parsed options ask for."""
    from bioscan5m.tasks.dna_protocol import dna_protocol

    offset = None if args.random_offset is None else args.random_offset == "on"
    momentum = None if args.cycle_momentum is None else args.cycle_momentum == "on"
    return dna_protocol(args.protocol).with_options(
        deduplicate=args.deduplicate, cleaning=args.cleaning, epochs=args.epochs, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, cycle_momentum=momentum, pooling=args.pooling,
        random_offset=offset, precision=args.precision, linear_probe=args.linear_probe,
        probe_epochs=args.probe_epochs, blast_hit=args.blast_hit)


def _task_parser(tasks: argparse._SubParsersAction, name: str, summary: str, description: str,
                 example: str) -> argparse.ArgumentParser:
    """The parser of one benchmark: ``summary`` in the list of tasks, ``description`` and ``example`` in its help."""
    return tasks.add_parser(name, help=summary, description=description, epilog=f"example: {example}")


def run_dna(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.dna_benchmark import protocol_footnote, run_dna_benchmark

    result = run_dna_benchmark(
        args.data, args.model, args.out, blast=False if args.no_blast else None, baselines=args.baselines,
        protocol=dna_protocol_from(args), device=args.device, seed=args.seed, threads=args.threads)
    print(result.table.to_string(index=False))
    print(protocol_footnote(result.protocol).replace("\\*", "*").replace("`", ""))
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    return 0


def run_zsc(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.cluster import ZSC_RANKS, run_zsc_benchmark

    table = run_zsc_benchmark(
        args.data, args.encoders, None if args.split == "none" else args.split, args.out,
        ranks=args.ranks or ZSC_RANKS, min_records_per_species=1, max_records=args.max_records, seed=args.seed,
        device=args.device, **protocol_options(args))
    print(table.to_string())
    print(protocol_summary(table))
    print(f"wrote {args.out}")
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    from bioscan5m.embeddings.store import store_folder
    from bioscan5m.models.multimodal import load_multimodal_model
    from bioscan5m.report.retrieval import write_retrieval_report
    from bioscan5m.tasks.retrieve import evaluate_retrieval, paper_table, retrieval_protocol

    model = load_multimodal_model(args.model, device=args.device).model
    long = evaluate_retrieval(model, args.data, index_kind=args.index, batch_size=args.batch_size,
                              embeddings_cache=None if args.no_cache else store_folder(),
                              text_keys=args.text_keys)
    table = paper_table(long)
    protocol = retrieval_protocol(model.config, long, args.text_keys, args.index)
    paths = write_retrieval_report(long, table, args.out, protocol, data=args.data)
    print(table[table["k"] == 1].to_string(index=False))
    print("deviations from the authors' protocol: " + "; ".join(protocol["deviations"]))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
