"""Model cards: the ``README.md`` of a saved model folder, as the Hugging Face Hub shows it.

A card is YAML front matter (``library_name``, ``pipeline_tag``, ``tags``, ``license``) and a body
written from the facts of the run that made the model: architecture and tokenizer, data, training
settings and steps, evaluation scores when there are any, intended use, how to load it, licence.
:meth:`BarcodeBERT.save_pretrained` writes one from what the model knows; the commands that train
(``pretrain``, ``finetune``) write it again with their data, steps and scores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bioscan5m.fileio import atomic_write

CARD_FILE = "README.md"
#: The kinds of folder a card describes.
MASKED_LM, CLASSIFIER = "masked-lm", "classifier"
_TAGS = ("biology", "dna", "dna-barcoding", "genomics", "barcodebert", "bioscan-5m", "insects", "bioscan5m")


@dataclass
class ModelCard:
    """Facts of a saved model, rendered by :meth:`render`.

    kind: ``"masked-lm"`` (a pretrained BarcodeBERT) or ``"classifier"`` (a fine-tuned one).
    architecture: ``{"k": 8, "layers": 4, ...}``, in display order. data: where the training barcodes
    came from (a file or folder name and split, never a full local path). training: settings and
    outcome (steps, batch size, learning rate, seed, final loss ...). metrics: rows of evaluation
    scores (``{"split", "rank", "micro", "macro", ...}``; accuracies in [0, 1]). rank/classes: what a
    classifier names. base_model: what training started from.
    """

    kind: str
    name: str | None = None
    architecture: dict[str, object] = field(default_factory=dict)
    data: str | None = None
    training: dict[str, object] = field(default_factory=dict)
    metrics: list[dict[str, object]] = field(default_factory=list)
    rank: str | None = None
    classes: int | None = None
    base_model: str | None = None

    def render(self) -> str:
        """The whole README.md text."""
        classifier = self.kind == CLASSIFIER
        front = [
            "---",
            "library_name: transformers",
            f"pipeline_tag: {'text-classification' if classifier else 'fill-mask'}",
            "license: other",
            "tags:",
            *(f"- {tag}" for tag in _TAGS),
        ]
        if self.base_model and "/" in self.base_model and not Path(self.base_model).exists():
            front.append(f"base_model: {self.base_model}")  # a Hub id links the two models on the Hub
        front.append("---")
        title = self.name or ("BarcodeBERT classifier" if classifier else "BarcodeBERT")
        what = (f"a BarcodeBERT fine-tuned to name the {self.rank} of a DNA barcode"
                f"{f' ({self.classes:,} classes)' if self.classes else ''}" if classifier else
                "a BarcodeBERT: a BERT encoder over the non-overlapping k-mers of DNA barcodes, pretrained "
                "by masked-language modelling (hidden k-mers filled in)")
        body = [f"# {title}", "", f"This folder holds {what}. It was written by the `bioscan5m` toolkit.", ""]
        body += _section("Model", self.architecture)
        if self.data:
            body += ["## Data", "", (f"Trained on barcodes from `{self.data}`, cleaned as the toolkit cleans every "
                     "barcode (gaps removed, upper case, leading/trailing N stripped, cut to 660 nt)."), ""]
        training = dict(self.training)
        if self.base_model:
            training = {"started from": self.base_model, **training}
        body += _section("Training", training)
        if self.metrics:
            body += _metrics_table(self.metrics)
        body += _intended_use(classifier) + _how_to_load(classifier) + _licence()
        return "\n".join(front + [""] + body).rstrip() + "\n"

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``README.md`` into ``directory`` atomically; returns its path."""
        path = Path(directory) / CARD_FILE
        with atomic_write(path) as handle:
            handle.write(self.render())
        return path


def _section(title: str, facts: dict[str, object]) -> list[str]:
    if not facts:
        return []
    lines = [f"## {title}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {_format(value)} |" for key, value in facts.items() if value is not None]
    return lines + [""]


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def _metrics_table(rows: list[dict[str, object]]) -> list[str]:
    columns = list(rows[0])
    lines = ["## Evaluation", "", "Accuracies in % (micro: share of records named right; macro: mean over taxa).",
             "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{100 * value:.2f}" if key in ("micro", "macro") else _format(value) for key, value in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _intended_use(classifier: bool) -> list[str]:
    text = ("Naming insect specimens from their COI-5P DNA barcode, among the classes it was trained on; a "
            "barcode of a taxon outside them still gets one of those names (check the probability)."
            if classifier else
            "Embedding DNA barcodes (the mean of the last hidden states over the k-mer tokens, padding excluded) "
            "for identification, clustering and retrieval, and as the starting point for fine-tuning.")
    return ["## Intended use", "", text, "Research use; not validated for regulatory or clinical decisions.", ""]


def _how_to_load(classifier: bool) -> list[str]:
    if classifier:
        code = [
            "import bioscan5m.models.hf_classifier  # registers model_type 'barcodebert' (no remote code)",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            'tokenizer = AutoTokenizer.from_pretrained("MODEL_DIR")',
            'model = AutoModelForSequenceClassification.from_pretrained("MODEL_DIR")',
            'batch = tokenizer(["AACATTATATTTTATTTTTGG..."], padding=True, return_tensors="pt")',
            "probabilities = model(**batch).logits.softmax(-1)",
            "names = [model.config.id2label[i] for i in probabilities.argmax(-1).tolist()]",
        ]
        shell = ["bioscan5m classify --model MODEL_DIR --queries queries.fasta --out predictions.tsv --top-k 5"]
    else:
        code = [
            "from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer",
            "",
            'tokenizer = AutoTokenizer.from_pretrained("MODEL_DIR")   # k-mer tokenizer.json, no remote code',
            'model = AutoModel.from_pretrained("MODEL_DIR", add_pooling_layer=False)',
            'batch = tokenizer(["AACATTATATTTTATTTTTGG..."], padding=True, return_tensors="pt")',
            "hidden = model(**batch).last_hidden_state",
            'mask = batch["attention_mask"].unsqueeze(-1)',
            "embedding = (hidden * mask).sum(1) / mask.sum(1)   # BarcodeBERT's barcode embedding",
            'mlm = AutoModelForMaskedLM.from_pretrained("MODEL_DIR")   # with the masked-k-mer head',
        ]
        shell = ["bioscan5m embed --encoder barcodebert:MODEL_DIR --data barcodes.fasta --out embeddings/"]
    return ["## How to load", "", ("The tokenizer cleans raw barcodes itself (gaps, case, N at the ends, 660 nt) and "
            "gives the same k-mer ids as the toolkit; no [CLS]/[SEP] is added."), "", "```python", *code, "```",
            "", "With the toolkit (`pip install bioscan5m`):", "", "```bash", *shell, "```", ""]


def _licence() -> list[str]:
    return ["## Licence", "", ("The `bioscan5m` code is MIT-licensed. These weights were trained on the data named "
            "above and follow its terms: BIOSCAN-5M is CC BY 3.0; BOLD public records are under BOLD's terms."), ""]
