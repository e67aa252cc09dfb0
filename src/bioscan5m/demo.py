"""``bioscan5m demo``: every benchmark of the package, end to end, on synthetic data it generates.

The demo is the package's main job on a built-in default. It writes a synthetic BIOSCAN-5M dataset in
the official layout, then runs each part on it exactly as on the real data, and gathers the tables into
``<out>/REPORT.md`` and ``<out>/report.html`` (one self-contained page, every plot embedded). Sizes are chosen so that the whole demo finishes in minutes on a 2-core laptop.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bioscan5m.errors import BioscanError, reading
from bioscan5m.fileio import atomic_write
from bioscan5m.report.document import (
    HTML_NAME,
    ReportPlot,
    ReportSection,
    ReportTable,
    RunFacts,
    section_markdown,
    sections_from_json,
    sections_to_json,
)
from bioscan5m.report.html import write_html

#: The parts in the order they run; later parts reuse what earlier ones wrote.
PARTS: tuple[str, ...] = ("data", "dna", "identify", "cluster", "align")
#: The title of ``REPORT.md`` and ``report.html``.
TITLE = "bioscan5m demo"


@dataclass
class DemoSettings:
    """Sizes of the demo: records in the synthetic dataset and training steps of each model."""

    records: int = 4000
    seed: int = 0
    pretrain_steps: int = 150
    finetune_epochs: float = 3.0
    align_steps: int = 120
    device: str = "auto"


@dataclass
class DemoReport:
    """``REPORT.md`` and ``report.html``: sections grouped by part, both rewritten as each section completes.

    A part that runs again replaces its own sections; parts not run this time keep theirs from the report
    already on disk (so ``bioscan5m demo --parts cluster`` updates the clustering table and nothing else).
    The sections themselves (text, tables, plot paths) are kept in ``report.json`` beside ``REPORT.md``: the
    Markdown and the HTML page are both written from them.
    """

    path: Path
    sections: dict[str, list[ReportSection]] = field(default_factory=dict)
    part: str = ""
    facts: RunFacts = field(default_factory=RunFacts.collect)

    @property
    def html_path(self) -> Path:
        return self.path.with_name(HTML_NAME)

    @property
    def data_path(self) -> Path:
        return self.path.with_name("report.json")

    @classmethod
    def load(cls, path: str | os.PathLike[str], facts: RunFacts | None = None) -> DemoReport:
        """The report at ``path`` with the sections of every part it holds (empty if there is none)."""
        report = cls(Path(path), facts=facts or RunFacts.collect())
        if report.data_path.is_file():
            try:
                sections = sections_from_json(report.data_path.read_text(encoding="utf-8"), report.path.parent)
            except (ValueError, KeyError, TypeError) as error:
                raise BioscanError(f"not a demo report's data ({error}); delete it to start a new report",
                                   path=report.data_path) from None
            report.sections = {name: group for name, group in sections.items() if name in PARTS}
        elif report.path.is_file():  # a report from before report.json: its sections as text
            pieces = re.split(r"^<!-- demo part: (\S+) -->\n", report.path.read_text(encoding="utf-8"),
                              flags=re.MULTILINE)
            report.sections = {name: _text_sections(body) for name, body in zip(pieces[1::2], pieces[2::2])
                               if name in PARTS}
        return report

    def start(self, part: str) -> None:
        """Begin ``part``: its earlier sections are dropped."""
        self.part = part
        self.sections[part] = []

    def add(self, title: str, text: str, *, tables: Sequence[ReportTable] = (),
            plots: Sequence[ReportPlot] = ()) -> None:
        """Add a section to the current part and rewrite the report files."""
        section = ReportSection(title, text.strip(), list(tables), list(plots))
        self.sections.setdefault(self.part, []).append(section)
        self.write()
        print(f"\n{section_markdown(section, self.path.parent).strip()}\n", flush=True)

    def write(self) -> None:
        """Write ``REPORT.md``, ``report.html`` and ``report.json`` (each atomically)."""
        base = self.path.parent
        ordered = [(part, self.sections[part]) for part in PARTS if self.sections.get(part)]
        body = "".join(f"<!-- demo part: {part} -->\n" + "".join(section_markdown(s, base) for s in group)
                       for part, group in ordered)
        with atomic_write(self.path) as handle:
            handle.write(f"# {TITLE}\n\n" + body)
        write_html(self.html_path, TITLE, [s for _, group in ordered for s in group], self.facts)
        with atomic_write(self.data_path) as handle:
            handle.write(sections_to_json(dict(ordered), base))


def _text_sections(markdown: str) -> list[ReportSection]:
    pieces = re.split(r"^## (.+)\n", markdown, flags=re.MULTILINE)
    return [ReportSection(title, text.strip()) for title, text in zip(pieces[1::2], pieces[2::2])]


#: What the synthetic dataset of a demo folder was made with (records, seed), beside it.
DATA_SETTINGS = "demo_data.json"


def _check_same_data(root: Path, settings: DemoSettings) -> None:
    """Refuse to reuse a demo dataset of another size or seed: every later part would silently use it."""
    from bioscan5m.data.synthetic import count_splits

    stamp = root / DATA_SETTINGS
    made = {}
    if stamp.is_file():
        with reading(stamp, ValueError):
            made = dict(json.loads(stamp.read_text(encoding="utf-8")))
    made.setdefault("records", sum(count_splits(root).values()))
    if (made["records"], made.get("seed", settings.seed)) != (settings.records, settings.seed):
        raise BioscanError(f"holds a demo dataset of {made['records']:,} records (seed {made.get('seed', '?')}), "
                           f"not the {settings.records:,} records (seed {settings.seed}) asked for; give another "
                           "--out, or remove this folder to start again", path=root)


def _data_part(out: Path, settings: DemoSettings, report: DemoReport) -> None:
    from bioscan5m.data.records import load_records
    from bioscan5m.data.stats import stats_table
    from bioscan5m.data.synthetic import write_synthetic_dataset
    from bioscan5m.report.plots import write_stats_report

    root = out / "data"
    if (root / "bioscan5m").is_dir():
        _check_same_data(root, settings)
    else:
        write_synthetic_dataset(root, settings.records, images=True, seed=settings.seed)
        with atomic_write(root / DATA_SETTINGS) as handle:
            json.dump({"records": settings.records, "seed": settings.seed}, handle)
    records = load_records(root)
    table = stats_table(records)
    files = write_stats_report(records, out / "stats", table=table)
    report.add("Synthetic BIOSCAN-5M", f"{len(records):,} records in `{root}` (metadata CSV and image zip in "
               f"the official layout).", tables=[ReportTable(table, index=True)],
               plots=[ReportPlot(p, p.stem.replace("_", " ").capitalize()) for p in files if p.suffix == ".png"])


def _dna_part(out: Path, settings: DemoSettings, report: DemoReport) -> None:
    from bioscan5m.models.registry import create_dna_model
    from bioscan5m.tasks.dna_benchmark import run_dna_benchmark
    from bioscan5m.train.engine import TrainConfig
    from bioscan5m.train.pretrain import load_pretraining_barcodes, pretrain
    from bioscan5m.train.seeding import seed_everything

    model_dir = out / "barcodebert"
    if not (model_dir / "config.json").is_file():
        barcodes = load_pretraining_barcodes(out / "data", "pretrain+other_heldout")
        config = TrainConfig(out_dir=model_dir, steps=settings.pretrain_steps, batch_size=32, lr=1e-3,
                             device=settings.device, seed=settings.seed, save_every=50)
        seed_everything(settings.seed)  # the initial weights too: same seed, same model
        result = pretrain(create_dna_model("4-2-2-tiny"), barcodes, config, mask_ratio=0.5)
        loss = f"{result.loss:.3f}" if result.loss is not None else "n/a"
        report.add("BarcodeBERT pretraining", f"Model `4-2-2-tiny` pretrained by masked-language modelling "
                   f"(50% masked) on {len(barcodes):,} unique `pretrain`+`other_heldout` barcodes: "
                   f"{result.steps} steps, final loss {loss}, {result.tokens_per_second:,.0f} tokens/s on "
                   f"{result.device}. Saved to `{model_dir}`.")
    # The authors' recipe (35 epochs at lr 2.5e-5) needs a GPU; the demo uses this toolkit's CPU-sized one.
    task1 = run_dna_benchmark(out / "data", model_dir, out / "task1", protocol="bioscan5m",
                              epochs=settings.finetune_epochs, batch_size=32, lr=2e-3, head_lr_scale=10.0,
                              device=settings.device, seed=settings.seed, probe_epochs=10)
    report.add("Task I: DNA-based classification", "Paper rows are the published numbers on BIOSCAN-5M; ours "
               "are on the synthetic data, with this toolkit's CPU-sized recipe (`--protocol bioscan5m`: "
               f"{settings.finetune_epochs:g} fine-tuning epochs, no de-duplication, linear probe on frozen "
               "embeddings). `bioscan5m benchmark dna` follows the authors' protocol by default; every "
               f"difference is listed in `{out / 'task1' / 'protocol.json'}` and in docs/fidelity.md.",
               tables=[ReportTable(task1.table)])


def _identify_part(out: Path, settings: DemoSettings, report: DemoReport) -> None:
    from bioscan5m.data.records import load_records
    from bioscan5m.tasks.identify import identify
    from bioscan5m.tasks.metrics import auroc, micro_accuracy

    root = out / "data"
    queries = load_records(root, split="test+test_unseen")
    predictions = identify(load_records(root, split="train"), queries, out / "identify.tsv", seed=settings.seed)
    unseen = queries.column("split") == "test_unseen"
    species = np.asarray(queries.column("species"), dtype=object)
    genus = np.asarray(queries.column("genus"), dtype=object)
    table = pd.DataFrame([
        ("species accuracy, test (species in the reference)",
         micro_accuracy(species[~unseen], predictions["species"][~unseen])),
        ("genus accuracy, test_unseen (species absent from the reference)",
         micro_accuracy(genus[unseen], predictions["genus"][unseen])),
        ("novelty AUROC, test_unseen against test", auroc(unseen, predictions["novelty_score"].to_numpy())),
        ("test_unseen flagged novel_species", float(predictions["novel_species"][unseen].mean())),
        ("test flagged novel_species", float(predictions["novel_species"][~unseen].mean())),
    ], columns=["measure", "value"])
    report.add("Identification of new barcodes", f"`bioscan5m identify` (default method) with reference `train`, "
               f"{len(queries):,} queries from `test` and `test_unseen`; predictions in `{out / 'identify.tsv'}`.",
               tables=[ReportTable(table, digits=3)])


def _cluster_part(out: Path, settings: DemoSettings, report: DemoReport) -> None:
    from bioscan5m.tasks.cluster import run_zsc_benchmark

    encoders = ["kmer-profile-5", f"barcodebert:{out / 'barcodebert'}", "image-stats-6"]
    table = run_zsc_benchmark(out / "data", encoders, "test+test_unseen", out / "task2",
                              min_records_per_species=1, max_records=None, seed=settings.seed)
    wide = table.pivot(index="encoder", columns="rank", values="ami")[list(dict.fromkeys(table["rank"]))]
    report.add("Task II: zero-shot clustering (AMI)", "UMAP to 50 dimensions, Ward with k = true classes, "
               f"on `test`+`test_unseen`; DNA encoders (k-mer profile, the demo's BarcodeBERT) and a "
               f"training-free image encoder (colour and silhouette statistics); plots in `{out / 'task2'}`.",
               tables=[ReportTable(wide.dropna(axis=1, how="all"), index=True, digits=3)],
               plots=[ReportPlot(out / "task2" / "ami_by_rank.png", "AMI at each rank, one line per encoder")]
               + [ReportPlot(p, f"2-D UMAP of {p.stem.removeprefix('umap_').removesuffix('_species')}, coloured "
                             "by species") for p in sorted((out / "task2").glob("umap_*_species.png"))])


def _align_part(out: Path, settings: DemoSettings, report: DemoReport) -> None:
    from bioscan5m.embeddings.store import store_folder
    from bioscan5m.report.retrieval import write_retrieval_report
    from bioscan5m.tasks.retrieve import evaluate_retrieval, paper_table, retrieval_protocol
    from bioscan5m.train.contrastive_step import align
    from bioscan5m.train.engine import TrainConfig

    config = TrainConfig(out_dir=out / "clibd", steps=settings.align_steps, batch_size=32, lr=1e-3,
                         schedule="cosine", device=settings.device, seed=settings.seed, save_every=50,
                         resume=(out / "clibd" / "checkpoints").is_dir())
    # The DNA encoder stays frozen: images and text learn to meet the pretrained BarcodeBERT, and DNA→DNA
    # retrieval keeps what pretraining gave it (full fine-tuning of a tiny model costs it a few points).
    model, result = align(out / "data", config, model="tiny", dna_checkpoint=str(out / "barcodebert"),
                          freeze=("dna",))
    long = evaluate_retrieval(model, out / "data", embeddings_cache=store_folder())  # split vectors kept, reused
    table = paper_table(long)
    write_retrieval_report(long, table, out / "task3", retrieval_protocol(model.config, long, "per-record", "flat"),
                           data=out / "data")
    top1 = table[(table["k"] == 1) & (table["average"] == "macro")].drop(columns=["average", "k"])
    report.add("Task III: image-DNA-text alignment and retrieval", f"Tiny CLIBD model (image ViT, the demo's "
               f"BarcodeBERT frozen, text BERT) aligned for {result.steps} steps on `pretrain`+`train` "
               f"({result.samples_per_second:.1f} specimens/s on {result.device}); keys `train`+`key_unseen`, "
               f"queries `test` (seen) and `test_unseen` (unseen); top-1 macro accuracy in %. Full table and plot "
               f"in `{out / 'task3'}`.", tables=[ReportTable(top1)],
               plots=[ReportPlot(out / "task3" / "retrieval.png", "Top-1 macro accuracy per direction and rank")])


PART_FUNCTIONS: dict[str, Callable[[Path, DemoSettings, DemoReport], None]] = {
    "data": _data_part,
    "dna": _dna_part,
    "identify": _identify_part,
    "cluster": _cluster_part,
    "align": _align_part,
}


def run_demo(out: str | os.PathLike[str] = "bioscan5m-demo", parts: Sequence[str] = PARTS,
             settings: DemoSettings | None = None) -> Path:
    """Run the chosen demo parts into ``out``; return the path of ``REPORT.md`` (``report.html`` is beside it)."""
    settings = settings or DemoSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport.load(out / "REPORT.md", RunFacts.collect(data=out / "data"))
    for part in PARTS:
        if part in parts:
            started = time.perf_counter()
            report.start(part)
            PART_FUNCTIONS[part](out, settings, report)
            print(f"[demo] {part} done in {time.perf_counter() - started:.0f} s", flush=True)
    return report.path
