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

    dna = tasks.add_parser(
        "dna", help="Task I: DNA-based taxonomic classification (fine-tuning, probes, BLAST)",
        description=(
            "Fine-tune a BarcodeBERT model on 'train' and score species on 'test', run the linear probe "
            "(train → test, species) and the 1-nearest-neighbour probe ('test_unseen' against 'train', genus), "
            "for the model and for k-mer baselines, plus BLAST's top hit when blastn is installed. The table "
            "holds the paper's published numbers beside ours."),
        epilog="example: bioscan5m benchmark dna --data demo/data --model demo/barcodebert --out demo/task1")
    dna.add_argument("--data", required=True, metavar="ROOT", type=t.existing_path, help="BIOSCAN-5M dataset folder")
    dna.add_argument("--model", default=None, metavar="DIR",
                     help="a pretrained BarcodeBERT folder (from 'bioscan5m pretrain') or Hub id; "
                          "without it only the baselines run")
    dna.add_argument("--out", required=True, metavar="DIR", help="folder for dna_benchmark.tsv/.md")
    dna.add_argument("--baselines", nargs="*", default=["kmer-profile-5"], metavar="ENCODER",
                     help="frozen encoders probed beside the model (default: kmer-profile-5)")
    dna.add_argument("--no-blast", action="store_true", help="skip the BLAST row")
    dna.add_argument("--epochs", type=t.positive_float, default=1.0, help="fine-tuning passes over 'train' (default 1)")
    dna.add_argument("--batch-size", type=t.positive_int, default=32, help="fine-tuning batch size (default 32)")
    dna.add_argument("--lr", type=t.positive_float, default=1e-4, help="fine-tuning learning rate (default 1e-4)")
    dna.add_argument("--device", default="auto", type=t.device, help="cpu, cuda, ... (default: auto)")
    dna.add_argument("--threads", type=t.positive_int, default=1, help="BLAST threads (default 1)")
    dna.add_argument("--seed", type=t.any_int, default=0, help="random seed (default 0)")
    add_cache_dir_option(dna)
    dna.set_defaults(func=run_dna, outputs=(t.Output("out", "folder", ("data", "model")),))

    zsc = tasks.add_parser(
        "zsc", help="Task II: zero-shot clustering of embeddings (UMAP + Ward, AMI per rank)",
        description=(
            "Embed the chosen split with each encoder, reduce with UMAP to 50 dimensions, cluster with Ward "
            "into as many clusters as there are true taxa at each rank, and score the adjusted mutual "
            "information (AMI). Encoders: kmer-profile[-K], barcodebert:DIR, hf-dna:NAME, hf-image:NAME."),
        epilog="example: bioscan5m benchmark zsc --data demo/data --encoders kmer-profile-5 --out demo/task2")
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

    retrieval = tasks.add_parser(
        "retrieval", help="Task III: image/DNA/text retrieval with an aligned model (top-k accuracy per rank)",
        description=(
            "Embed keys ('train' + 'key_unseen') and queries ('test' seen, 'test_unseen' unseen) with a model "
            "from 'bioscan5m align', search the nearest keys by inner product (FAISS) and score top-1/3/5 "
            "accuracy per rank, micro and macro, for image→image, DNA→DNA, image→DNA, DNA→image and "
            "image/DNA→text. Writes the paper-shaped table (TSV, Markdown) and a bar plot."),
        epilog="example: bioscan5m benchmark retrieval --data demo/data --model demo/clibd --out demo/task3")
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


def run_dna(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.dna_benchmark import run_dna_benchmark

    result = run_dna_benchmark(
        args.data, args.model, args.out, blast=False if args.no_blast else None, baselines=args.baselines,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed,
        threads=args.threads)
    print(result.table.to_string(index=False))
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    return 0


def run_zsc(args: argparse.Namespace) -> int:
    from bioscan5m.tasks.cluster import ZSC_RANKS, run_zsc_benchmark

    table = run_zsc_benchmark(
        args.data, args.encoders, None if args.split == "none" else args.split, args.out,
        ranks=args.ranks or ZSC_RANKS, min_records_per_species=1, max_records=args.max_records, seed=args.seed,
        device=args.device, **protocol_options(args))
    print(table.to_string())
    print(protocol_summary(args.out))
    print(f"wrote {args.out}")
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    from bioscan5m.models.multimodal import load_multimodal_model
    from bioscan5m.report.retrieval import write_retrieval_report
    from bioscan5m.tasks.retrieve import (
        default_embeddings_cache,
        evaluate_retrieval,
        paper_table,
        retrieval_protocol,
    )

    model = load_multimodal_model(args.model, device=args.device)[0]
    long = evaluate_retrieval(model, args.data, index_kind=args.index, batch_size=args.batch_size,
                              embeddings_cache=None if args.no_cache else default_embeddings_cache(),
                              text_keys=args.text_keys)
    table = paper_table(long)
    protocol = retrieval_protocol(model.config, long, args.text_keys, args.index)
    paths = write_retrieval_report(long, table, args.out, protocol, data=args.data)
    print(table[table["k"] == 1].to_string(index=False))
    print("deviations from the authors' protocol: " + "; ".join(protocol["deviations"]))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
