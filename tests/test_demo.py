"""`bioscan5m demo`, the README's main job, on a small synthetic dataset: every part runs and its numbers hold."""

import pandas as pd
import pytest

from bioscan5m.cli import main
from bioscan5m.data.records import load_records
from bioscan5m.demo import DemoReport, DemoSettings, run_demo


@pytest.mark.slow
def test_demo_runs_every_dna_and_clustering_part(tmp_path):
    settings = DemoSettings(records=2000, pretrain_steps=6, finetune_epochs=1.0)
    report = run_demo(tmp_path, ("data", "dna", "identify", "cluster"), settings)

    text = report.read_text()
    for title in ("Synthetic BIOSCAN-5M", "BarcodeBERT pretraining", "Task I", "Identification", "Task II"):
        assert f"## {title}" in text
    assert (tmp_path / "barcodebert" / "model.safetensors").is_file()
    page = (tmp_path / "report.html").read_text()  # the same tables, every plot embedded
    assert page.count("<table>") == sum(line.startswith("|---") for line in text.splitlines()) == 4
    assert page.count('<img src="data:image/png;base64,') == text.count("![") >= 5  # 3 stats plots, AMI, maps

    task1 = pd.read_csv(tmp_path / "task1" / "dna_benchmark.tsv", sep="\t")
    assert {"paper", "this run"} <= set(task1["source"])
    ours = task1[task1["source"] == "this run"].set_index("model")
    assert ours.filter(like="kmer-profile", axis=0).iloc[0, -1] > 50  # 1-NN genus (unseen), percent

    predictions = pd.read_csv(tmp_path / "identify.tsv", sep="\t", keep_default_na=False)
    assert len(predictions) == len(load_records(tmp_path / "data", split="test+test_unseen"))
    assert predictions["species_confidence"].between(0, 1).all()

    ami = pd.read_csv(tmp_path / "task2" / "ami.tsv", sep="\t").pivot(index="encoder", columns="rank", values="ami")
    assert ami.loc["kmer-profile-5", "species"] > 0.5
    assert ami.loc["kmer-profile-5", "species"] > ami.loc["image-stats-6", "species"] + 0.3  # DNA ≫ images


def test_demo_help_names_every_part(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert all(part in text for part in ("data", "dna", "identify", "cluster"))


def test_report_keeps_the_sections_of_parts_not_run_again(tmp_path, capsys):
    path = tmp_path / "REPORT.md"
    first = DemoReport.load(path)
    for part, title in (("data", "Synthetic BIOSCAN-5M"), ("cluster", "Task II"), ("dna", "Task I")):
        first.start(part)
        first.add(title, f"{part} table, first run")
    text = path.read_text()
    assert text.index("## Synthetic") < text.index("## Task I") < text.index("## Task II")  # in PARTS order

    again = DemoReport.load(path)  # `bioscan5m demo --parts cluster` in the same folder
    again.start("cluster")
    again.add("Task II", "cluster table, second run")
    again.add("Task II, images", "a second section of the same part")
    text = path.read_text()
    assert text.startswith("# bioscan5m demo\n")
    assert "data table, first run" in text and "dna table, first run" in text
    assert "cluster table, first run" not in text and "cluster table, second run" in text
    assert text.count("## Task II") == 2 and text.count("## Synthetic") == 1
    assert text.index("## Task I\n") < text.index("## Task II\n") < text.index("## Task II, images")
    assert DemoReport.load(path).sections.keys() == {"data", "dna", "cluster"}
