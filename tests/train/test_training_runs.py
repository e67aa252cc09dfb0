"""Training runs as a user drives them: same seed same weights, resume rules, verified checkpoints, progress."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from bioscan5m.cli import main
from bioscan5m.errors import BioscanError
from bioscan5m.models.multimodal import create_multimodal_model
from bioscan5m.models.registry import create_dna_model
from bioscan5m.train import engine
from bioscan5m.train.checkpoint import load_checkpoint, save_checkpoint
from bioscan5m.train.engine import TrainConfig, train
from bioscan5m.train.pretrain import load_pretraining_barcodes
from bioscan5m.train.run_definition import check_resume, content_fingerprint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fasta(vendored_unseen_barcodes, tmp_path_factory) -> Path:
    """40 real barcodes (BarcodeBERT's unseen set) as FASTA: 5 batches of 8 per epoch."""
    path = tmp_path_factory.mktemp("data") / "barcodes.fasta"
    path.write_text("".join(f">seq{i}\n{seq}\n" for i, seq in enumerate(vendored_unseen_barcodes[:40])))
    return path


def pretrain_args(data: Path, out: Path, *extra: str, steps: int = 6) -> list[str]:
    return ["pretrain", "--data", str(data), "--model", "4-2-2-tiny", "--out", str(out), "--steps", str(steps),
            "--batch-size", "8", "--save-every", "2", "--log-every", "2", "--device", "cpu", *extra]


def safetensors_bytes(folder: Path) -> dict[str, bytes]:
    """Every weights file written at the top of a model folder, by name."""
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.safetensors"))}


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- same seed, same data, same machine: the same bytes --------------------------------------------------
def test_same_seed_pretrain_runs_write_identical_weights(fasta, tmp_path, capsys):
    for name, seed in [("a", "0"), ("b", "0"), ("c", "1")]:
        assert run_cli(pretrain_args(fasta, tmp_path / name, "--seed", seed, steps=3), capsys)[0] == 0
    first, second, other = (safetensors_bytes(tmp_path / name) for name in "abc")
    assert list(first) == ["model.safetensors"] and first == second
    assert other["model.safetensors"] != first["model.safetensors"]


@pytest.fixture(scope="module")
def labelled_root(tmp_path_factory) -> Path:
    from bioscan5m.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("labelled"), records=600, images=False, seed=0)


def test_same_seed_finetune_runs_write_identical_weights(labelled_root, tmp_path, capsys):
    """From an architecture name: the encoder's random weights and the new head both follow the seed."""
    for name, seed in [("a", "0"), ("b", "0"), ("c", "1")]:
        argv = ["finetune", "--model", "4-2-2-tiny", "--data", str(labelled_root), "--out", str(tmp_path / name),
                "--steps", "3", "--batch-size", "8", "--eval-split", "none", "--device", "cpu", "--seed", seed]
        assert run_cli(argv, capsys)[0] == 0
    first, second, other = (safetensors_bytes(tmp_path / name) for name in "abc")
    assert "model.safetensors" in first and first == second
    assert all(other[name] != first[name] for name in first)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    from bioscan5m.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("images"), 200, images=True, seed=5)


def align_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["align", "--data", str(root), "--out", str(out), "--model", "tiny", "--no-pretrained", "--steps", "2",
            "--batch-size", "4", "--device", "cpu", *extra]


@pytest.mark.slow
def test_same_seed_align_runs_write_identical_weights_and_resume_keeps_the_modalities(image_root, tmp_path, capsys):
    for name, seed in [("a", "0"), ("b", "0"), ("c", "1")]:
        assert run_cli(align_args(image_root, tmp_path / name, "--seed", seed), capsys)[0] == 0
    first, second, other = (safetensors_bytes(tmp_path / name) for name in "abc")
    assert "model.safetensors" in first and first == second
    assert other["model.safetensors"] != first["model.safetensors"]
    # Resuming that run with another set of modalities is refused, naming what differs.
    code, _, err = run_cli(align_args(image_root, tmp_path / "a", "--resume", "--modalities", "image,dna"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'cannot resume with another --model: modalities is ["image", "dna"], the run was started with ' \
           '["image", "dna", "text"]' in err


# -- kill and resume, without --init: the weights of a run that never stopped ---------------------------
def test_interrupted_then_resumed_pretrain_equals_the_uninterrupted_run(fasta, tmp_path, capsys, monkeypatch):
    assert run_cli(pretrain_args(fasta, tmp_path / "straight", steps=8), capsys)[0] == 0
    expected = safetensors_bytes(tmp_path / "straight")

    real_save = engine.save_checkpoint

    def interrupted_while_saving_step_6(directory, **kwargs):
        if kwargs["state"]["step"] == 6:
            (Path(directory) / ".step-00000006.tmp").mkdir()  # what a save cut short leaves
            raise KeyboardInterrupt
        return real_save(directory, **kwargs)

    monkeypatch.setattr(engine, "save_checkpoint", interrupted_while_saving_step_6)
    out = tmp_path / "interrupted"
    assert run_cli(pretrain_args(fasta, out, steps=8), capsys)[0] == 130  # Ctrl-C
    monkeypatch.undo()
    assert not (out / "model.safetensors").exists()
    logged = [json.loads(line)["step"] for line in (out / "train_log.jsonl").open()]
    assert logged == [2, 4, 6]
    with open(out / "train_log.jsonl", "a") as log:
        log.write('{"step": 7, "lo')  # a row cut short by the kill

    code, printed, _ = run_cli(pretrain_args(fasta, out, "--resume", steps=8), capsys)
    assert code == 0 and f"resuming from {out / 'checkpoints' / 'step-00000004'} at step 4/8" in printed
    assert safetensors_bytes(out) == expected
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").open()] == [2, 4, 6, 8]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000006", "step-00000008"]


@pytest.mark.slow
def test_pretrain_killed_by_sigkill_resumes_to_the_uninterrupted_weights(fasta, tmp_path, capsys, repo):
    """A real process killed (SIGKILL) once its first checkpoint is on disk, wherever it then is."""
    steps = 12
    assert run_cli(pretrain_args(fasta, tmp_path / "straight", steps=steps), capsys)[0] == 0
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "bioscan5m", *pretrain_args(fasta, out, steps=steps)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "step-00000002").is_dir() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "model.safetensors").exists(), "the run ended before it could be killed"
    assert run_cli(pretrain_args(fasta, out, "--resume", steps=steps), capsys)[0] == 0
    assert safetensors_bytes(out) == safetensors_bytes(tmp_path / "straight")


# -- verified checkpoints: walk back past a damaged newest one ------------------------------------------
@pytest.mark.parametrize("damage, reason", [
    ("truncate", "skipping checkpoint step-00000006: model.safetensors is truncated or altered"),
    ("flip", "skipping checkpoint step-00000006: optimizer.safetensors does not match its SHA-256"),
    ("remove", "skipping checkpoint step-00000006: state.json is missing"),
    ("delete", None),
])
def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one(fasta, tmp_path, capsys, damage, reason):
    out = tmp_path / "run"
    assert run_cli(pretrain_args(fasta, out), capsys)[0] == 0
    expected = safetensors_bytes(out)
    newest = out / "checkpoints" / "step-00000006"
    if damage == "truncate":
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "flip":
        state = bytearray((newest / "optimizer.safetensors").read_bytes())
        state[-1] ^= 0xFF
        (newest / "optimizer.safetensors").write_bytes(bytes(state))
    elif damage == "remove":
        (newest / "state.json").unlink()
    else:
        shutil.rmtree(newest)
    code, printed, _ = run_cli(pretrain_args(fasta, out, "--resume"), capsys)
    assert code == 0
    if reason:
        assert reason in printed
    assert f"resuming from {out / 'checkpoints' / 'step-00000004'} at step 4/6" in printed
    assert safetensors_bytes(out) == expected  # steps 5 and 6 redone to the same bytes


def test_no_intact_checkpoint_is_an_error_naming_each(fasta, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(pretrain_args(fasta, out, steps=4), capsys)[0] == 0
    for folder in (out / "checkpoints").iterdir():
        (folder / "manifest.json").unlink()
    code, _, err = run_cli(pretrain_args(fasta, out, "--resume", steps=4), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no intact checkpoint to resume from (step-00000004: incomplete: no manifest.json; " \
           "step-00000002: incomplete: no manifest.json)" in err


def test_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    """Another size: the first mismatching shape; other modalities: the missing and unexpected weights."""
    def checkpoint_of(model: nn.Module, where: Path) -> Path:
        optimizer = torch.optim.AdamW(model.parameters())
        return save_checkpoint(where, model=model, optimizer=optimizer, state={"step": 1})

    small = checkpoint_of(create_dna_model("4-2-2-tiny", hidden=32, intermediate=64), tmp_path / "dna")
    larger = create_dna_model("4-2-2-tiny")
    with pytest.raises(BioscanError, match=r"checkpoint is of another model: mlm\.bert\.\S+ has shape \[32\] there, "
                                           r"\[128\] here"):
        load_checkpoint(small, model=larger, optimizer=torch.optim.AdamW(larger.parameters()))

    three = checkpoint_of(create_multimodal_model("tiny", text_vocabulary=["Aus bus"])[0], tmp_path / "clibd")
    two = create_multimodal_model("tiny", modalities=("image", "dna"))[0]
    with pytest.raises(BioscanError, match=r"checkpoint weights do not fit this model \(missing \[\], "
                                           r"unexpected \['encoders\.text\."):
        load_checkpoint(three, model=two, optimizer=torch.optim.AdamW(two.parameters()))


# -- the run definition ---------------------------------------------------------------------------------
def test_resume_refuses_a_changed_definition_naming_the_option(fasta, vendored_unseen_barcodes, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(pretrain_args(fasta, out), capsys)[0] == 0
    other = tmp_path / "other.fasta"
    other.write_text("".join(f">s{i}\n{seq}\n" for i, seq in enumerate(vendored_unseen_barcodes[40:80])))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for extra, steps, message in [
        (["--data", str(other)], 6, f"cannot resume with other --data: source {other}, 40 items, sha256"),
        (["--lr", "1e-3"], 6, ("cannot resume with --lr 0.001: the run was started with 0.0005 "
                              "(add --allow-change lr to change it)")),
        (["--mask-ratio", "0.3"], 6, "cannot resume with --mask-ratio 0.3: the run was started with 0.5"),
        (["--seed", "1"], 6, "cannot resume with --seed 1: the run was started with 0"),
        (["--batch-size", "4"], 6, "cannot resume with --batch-size 4: the run was started with 8"),
        (["--model", "8-2-2-tiny"], 6, ('cannot resume with another --model: name is "8-2-2-tiny", the run was '
                                        'started with "4-2-2-tiny"')),
        (["--allow-change", "steps"], 4, "cannot resume with --steps 4: the run has already reached step 6"),
    ]:
        code, _, err = run_cli(pretrain_args(fasta, out, "--resume", *extra, steps=steps), capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing touched

    # Explicitly allowed: a longer run at another learning rate, recorded in run.json.
    code, printed, _ = run_cli(pretrain_args(fasta, out, "--resume", "--lr", "1e-3", "--allow-change", "lr,steps",
                                             steps=8), capsys)
    assert code == 0 and "lr changed from 0.0005 to 0.001" in printed and "steps changed from 6 to 8" in printed
    run = json.loads((out / "run.json").read_text())
    assert run["definition"]["lr"] == 1e-3 and run["definition"]["steps"] == 8
    assert run["changes"] == [{"step": 6, "option": "lr", "from": 0.0005, "to": 0.001},
                              {"step": 6, "option": "steps", "from": 6, "to": 8}]
    assert run["definition"]["data"]["sha256"] == content_fingerprint(load_pretraining_barcodes(fasta))["sha256"]
    assert main(pretrain_args(fasta, out, "--resume", "--allow-change", "batch-size")) == 2  # a parser error
    err = capsys.readouterr().err
    assert "'batch-size': only lr, steps (comma-separated) may change" in err and err.count("\n") == 1


def test_definition_rules():
    saved = {"steps": 10, "lr": 0.1, "data": {"source": "/a.fasta", "sha256": "ab", "items": 3}}
    moved = {**saved, "data": {"source": "/elsewhere/a.fasta", "sha256": "ab", "items": 3}}
    assert check_resume(saved, moved, step=5) == []  # the same content under another path
    assert check_resume(saved, {**saved, "steps": 20, "lr": 0.2}, step=5, allow_change=["lr", "steps"]) == [
        "steps", "lr"]
    with pytest.raises(BioscanError, match="cannot resume with --steps 4: the run has already reached step 5"):
        check_resume(saved, {**saved, "steps": 4}, step=5, allow_change=["steps"])
    with pytest.raises(BioscanError, match=r"other --data: source /a.fasta, 3 items, sha256 cd is not the content"):
        check_resume(saved, {**saved, "data": {"source": "/a.fasta", "sha256": "cd", "items": 3}}, step=5)
    # Adam's beta1 cycling is part of the run's definition (the engine reports it with its other settings).
    from bioscan5m.train.engine import TrainConfig

    assert "cycle_momentum" in TrainConfig(out_dir="x", steps=2, batch_size=1, cycle_momentum=True).run_definition()


# -- progress lines ---------------------------------------------------------------------------------------
LINE = re.compile(r"^step (\d+)/20 \((\d+)%\) \| loss (\S+) \| [\d,.]+ samples/s \| elapsed \d+:\d\d:\d\d "
                  r"\| eta \d+:\d\d:\d\d$")


def test_progress_lines_are_printed_without_a_terminal(tmp_path, capsys):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    dataset = list(zip(x, x.sum(1)))
    model = nn.Linear(4, 1)

    def step_fn(model, batch, ctx):
        inputs, targets = batch
        return {"loss": ((model(inputs).squeeze(1) - targets) ** 2).mean()}

    config = TrainConfig(tmp_path / "run", steps=20, batch_size=16, lr=0.05, log_every=5, device="cpu")
    train(model, step_fn, dataset, config)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"training for 20 steps of 16 samples (seed 0); run folder {tmp_path / 'run'}"
    matches = [LINE.match(line) for line in printed[1:]]
    assert all(matches), printed
    assert [int(m[1]) for m in matches] == [5, 10, 15, 20] and [int(m[2]) for m in matches] == [25, 50, 75, 100]
    losses = [float(m[3]) for m in matches]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0]
    logged = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]
    assert [f"{row['loss']:.4f}" for row in logged] == [m[3] for m in matches]

    quiet = TrainConfig(tmp_path / "quiet", steps=4, batch_size=16, log_every=1, device="cpu", quiet=True)
    train(nn.Linear(4, 1), step_fn, dataset, quiet)
    assert capsys.readouterr().out == ""


def test_pretrain_progress_lines_count_tokens(fasta, tmp_path, capsys):
    code, printed, _ = run_cli(pretrain_args(fasta, tmp_path / "run", steps=4), capsys)
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert code == 0 and [line.split()[1] for line in lines] == ["2/4", "4/4"]
    assert all(re.search(r"\| [\d,.]+ samples/s, [\d,]+ tokens/s \|", line) for line in lines)
