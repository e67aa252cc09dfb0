"""The training engine: schedules, checkpoints, exact resume, DDP on CPU, and the pretrain command."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from bioscan5m.cli import main
from bioscan5m.embeddings.encoders import embed_barcodes
from bioscan5m.errors import BioscanError
from bioscan5m.models.dna import BarcodeBERT
from bioscan5m.models.registry import create_dna_model
from bioscan5m.train.distributed import all_gather_with_grad
from bioscan5m.train.engine import TrainConfig, train
from bioscan5m.train.pretrain import pretrain
from bioscan5m.train.schedules import one_cycle
from bioscan5m.train.seeding import hashed_uniform, sample_seeds

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def barcodes(vendored_unseen_barcodes) -> list[str]:
    return vendored_unseen_barcodes


def tiny_model(dropout: float = 0.1) -> BarcodeBERT:
    torch.manual_seed(0)  # the same initial weights in every run (and every process)
    return create_dna_model("4-2-2-tiny", hidden=32, intermediate=64, max_length=200, dropout=dropout)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def test_one_cycle_is_torchs_onecycle():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-3, total_steps=50, cycle_momentum=False
    )
    for step in range(50):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * one_cycle(step, 50), rel=1e-12)
        optimizer.step()
        scheduler.step()


def test_per_sample_draws_depend_only_on_seed_epoch_and_index():
    draws = hashed_uniform(sample_seeds(0, 3, np.array([5, 9, 5])), 4)
    np.testing.assert_array_equal(draws[0], draws[2])
    assert not np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], hashed_uniform(sample_seeds(0, 4, np.array([5])), 4)[0])
    many = hashed_uniform(sample_seeds(1, 0, np.arange(2000)), 50)
    assert 0 <= many.min() and many.max() < 1 and abs(many.mean() - 0.5) < 0.01


def test_resume_after_a_crash_reproduces_the_uninterrupted_weights(tmp_path, barcodes):
    """Crash after step 3 (checkpoint at 2), resume: bit-identical to a run that never stopped."""
    data = barcodes[:40]  # 5 micro-batches of 8 per epoch: 6 steps x 2 micro-batches cross two epochs
    settings = {
        "steps": 6,
        "batch_size": 8,
        "accumulate": 2,
        "lr": 2e-3,
        "save_every": 2,
        "log_every": 1,
        "device": "cpu",
    }
    straight = tiny_model()
    pretrain(straight, data, TrainConfig(tmp_path / "straight", **settings))

    class Crash(Exception):
        pass

    def crash_after_step_3(step, model):
        if step == 3:
            raise Crash

    interrupted = tiny_model()
    with pytest.raises(Crash):
        pretrain(interrupted, data, TrainConfig(tmp_path / "resumed", **settings), on_step=crash_after_step_3)
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir()) == ["step-00000002"]
    logged = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "train_log.jsonl").open()]
    assert logged == [1, 2, 3]
    resumed = tiny_model()  # fresh weights: everything must come from the checkpoint
    result = pretrain(resumed, data, TrainConfig(tmp_path / "resumed", resume=True, **settings))
    assert result.steps == 6
    expected = weights(straight)
    for key, value in weights(resumed).items():
        assert torch.equal(value, expected[key]), key
    logged = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "train_log.jsonl").open()]
    assert logged == [1, 2, 3, 4, 5, 6]  # the dead run's row for step 3 was replaced


def test_run_folder_log_checkpoints_and_guards(tmp_path, barcodes):
    out = tmp_path / "run"
    config = TrainConfig(
        out, steps=6, batch_size=8, lr=2e-3, save_every=2, keep_checkpoints=2, log_every=3, device="cpu"
    )
    result = pretrain(tiny_model(), barcodes[:64], config)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000004", "step-00000006"]
    assert sorted(p.name for p in (out / "checkpoints" / "step-00000006").iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    state = json.loads((out / "checkpoints" / "step-00000006" / "state.json").read_text())
    assert (state["step"], state["epoch"], state["position"]) == (6, 0, 6)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").open()]
    assert [row["step"] for row in rows] == [3, 6]
    assert rows[0]["samples"] == 24 and rows[0]["tokens"] > 24 * 40 and rows[0]["tokens_per_s"] > 0
    assert {"loss", "lr", "grad_norm", "masked_accuracy"} <= set(rows[0])
    assert result.steps == 6 and result.loss == rows[-1]["loss"] and result.peak_memory_mb > 0
    assert embed_barcodes(BarcodeBERT.from_pretrained(out), barcodes[:2]).shape == (2, 32)
    with pytest.raises(BioscanError, match="holds checkpoints of an earlier run"):
        pretrain(tiny_model(), barcodes[:64], config)
    changed = TrainConfig(out, steps=8, batch_size=16, lr=2e-3, device="cpu", resume=True)
    with pytest.raises(BioscanError, match="cannot resume with --batch-size 16: the run was started with 8"):
        pretrain(tiny_model(), barcodes[:64], changed)
    with pytest.raises(BioscanError, match="only 4 training samples, fewer than the batch size 8"):
        pretrain(tiny_model(), barcodes[:4], TrainConfig(tmp_path / "small", steps=1, batch_size=8))


def test_engine_is_task_agnostic_and_honours_param_groups(tmp_path):
    """A regression model and its own step function: the loop knows nothing about MLM."""
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    dataset = list(zip(x, y))
    model = nn.Linear(4, 1)
    nn.init.constant_(model.bias, 0.25)

    def step_fn(model, batch, ctx):
        inputs, targets = batch
        return {"loss": ((model(inputs.to(ctx.device)).squeeze(1) - targets.to(ctx.device)) ** 2).mean()}

    groups = [{"params": [model.weight], "lr_scale": 1.0}, {"params": [model.bias], "lr_scale": 0.0}]
    result = train(
        model,
        step_fn,
        dataset,
        TrainConfig(
            tmp_path, steps=150, batch_size=32, lr=0.05, schedule="constant", weight_decay=0.0, device="cpu"
        ),
        param_groups=groups,
    )
    assert result.loss < 0.1  # the frozen bias costs 0.25**2
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[1.0, -2.0, 0.5, 3.0]]), atol=0.1, rtol=0)
    assert float(model.bias.detach()) == 0.25  # its group's lr_scale of 0 froze it


def test_precision_choices(tmp_path, barcodes):
    with pytest.raises(BioscanError, match="fp16 training needs a GPU"):
        pretrain(
            tiny_model(),
            barcodes[:16],
            TrainConfig(tmp_path / "a", steps=1, batch_size=8, precision="fp16", device="cpu"),
        )
    with pytest.raises(BioscanError, match="unknown precision 'fp8'"):
        pretrain(
            tiny_model(), barcodes[:16], TrainConfig(tmp_path / "b", steps=1, batch_size=8, precision="fp8")
        )
    result = pretrain(
        tiny_model(),
        barcodes[:16],
        TrainConfig(tmp_path / "c", steps=2, batch_size=8, precision="bf16", device="cpu"),
    )
    assert result.precision == "bf16" and np.isfinite(result.loss)


# -- DDP on CPU: 2 processes (gloo) must train the same weights as 1 process on the same global batch ----
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, port: int, out: str, data: list[str]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2"
    )
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        # all_gather_with_grad: rows of both ranks, in rank order, uneven sizes, summed gradients.
        local = torch.arange(3.0 + rank, requires_grad=True)
        gathered = all_gather_with_grad(local)
        assert gathered.tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 3.0]
        (gathered * torch.arange(7.0)).sum().backward()  # the same global loss on each rank
        expected = torch.arange(7.0)[:3] if rank == 0 else torch.arange(7.0)[3:]
        assert torch.equal(
            local.grad, 2 * expected
        )  # DDP's average over 2 ranks then gives the true gradient
        pretrain(
            tiny_model(dropout=0.0),
            data,
            TrainConfig(out, steps=3, batch_size=8, accumulate=2, lr=2e-3, device="cpu", log_every=1),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, barcodes):
    data = barcodes[:48]
    single = tiny_model(dropout=0.0)
    pretrain(
        single,
        data,
        TrainConfig(
            tmp_path / "one", steps=3, batch_size=8, accumulate=2, lr=2e-3, device="cpu", log_every=1
        ),
    )
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path / "two"), data), nprocs=2, join=True)
    two = BarcodeBERT.from_pretrained(tmp_path / "two")
    one = BarcodeBERT.from_pretrained(tmp_path / "one")
    for key, value in one.state_dict().items():
        torch.testing.assert_close(two.state_dict()[key], value, atol=2e-5, rtol=1e-4, msg=key)
    rows_one = [json.loads(line) for line in (tmp_path / "one" / "train_log.jsonl").open()]
    rows_two = [json.loads(line) for line in (tmp_path / "two" / "train_log.jsonl").open()]
    assert [r["samples"] for r in rows_two] == [r["samples"] for r in rows_one] == [16, 16, 16]
    for a, b in zip(rows_one, rows_two):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


# -- the command ---------------------------------------------------------------------------------------
def write_fasta(path, sequences: list[str]) -> None:
    path.write_text("".join(f">seq{i}\n{seq[:60]}\n{seq[60:]}\n" for i, seq in enumerate(sequences)))


def test_pretrain_command_on_real_fasta_and_resume(tmp_path, barcodes, capsys):
    fasta = tmp_path / "barcodes.fasta"
    write_fasta(fasta, barcodes[:30] + barcodes[:10])  # ten duplicates, removed before training
    out = tmp_path / "model"

    def command(data, steps: int, *extra: str) -> list[str]:
        return [
            "pretrain",
            "--data",
            str(data),
            "--model",
            "4-2-2-tiny",
            "--out",
            str(out),
            "--steps",
            str(steps),
            "--batch-size",
            "8",
            "--save-every",
            "1",
            "--log-every",
            "1",
            "--device",
            "cpu",
            *extra,
        ]

    assert main(command(fasta, 2)) == 0
    summary = capsys.readouterr().out
    assert "pretrained 4-2-2-tiny on 30 unique barcodes: step 2" in summary
    model = BarcodeBERT.from_pretrained(out)
    assert model.name == "4-2-2-tiny" and embed_barcodes(model, barcodes[:3]).shape == (3, 128)
    assert main(command(fasta, 3, "--resume")) == 2  # a longer run is another run unless allowed
    assert "cannot resume with --steps 3: the run was started with 2 (add --allow-change steps" in (
        capsys.readouterr().err
    )
    assert main(command(fasta, 3, "--resume", "--allow-change", "steps")) == 0
    assert [json.loads(line)["step"] for line in (out / "train_log.jsonl").open()] == [1, 2, 3]
    assert main(command(tmp_path / "missing.fasta", 3)) == 2
    assert "bioscan5m pretrain: error:" in capsys.readouterr().err
    assert main(command(fasta, 3)) == 2  # the folder holds a run: refuse to overwrite it without --resume
    assert "holds checkpoints of an earlier run" in capsys.readouterr().err
