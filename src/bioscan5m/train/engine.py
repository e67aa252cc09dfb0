"""The one training loop: MLM pretraining, fine-tuning and contrastive alignment all run through it.

The engine knows nothing about any task. It takes a model, a dataset (anything indexable with a
length), and a step function that turns one micro-batch into a loss::

    def step_fn(model, batch, ctx: StepContext) -> dict:
        ...                       # forward pass under the engine's autocast
        return {"loss": loss,     # scalar tensor, the mean over what this micro-batch scores
                "weight": n,      # optional: how many items that mean is over (e.g. masked tokens)
                "tokens": t,      # optional: counted for tokens/s
                "accuracy": acc}  # any other scalar is averaged and logged

and does the rest: device, bf16/fp16 autocast (GradScaler for fp16), gradient accumulation,
AdamW with a step-wise learning-rate schedule, gradient clipping, progress lines (and a bar in a
terminal), a JSONL log, checksummed atomic checkpoints, exact resume under a recorded run definition
(``run.json``, see :mod:`bioscan5m.train.run_definition`), and DistributedDataParallel under torchrun.

Batches. ``batch_size`` is the GLOBAL micro-batch (summed over processes); each optimizer step
sees ``batch_size * accumulate`` samples. Every epoch is a seeded permutation cut into global
micro-batches; rank r takes the r-th slice of each. A run is therefore the same computation on
1 or N processes, and the data position (epoch, micro-batch) is all a checkpoint needs.

Randomness. Before each micro-batch the engine reseeds torch from (seed, step, micro-batch, rank)
(dropout), and ``ctx.uniform`` draws per-sample numbers from (seed, epoch, sample index) — use it
for masking and augmentation so a sample is treated the same on any rank and after a restart. A
run killed after a checkpoint and resumed is bit-identical to an uninterrupted one on CPU. The
model's initial weights are the caller's: build it after :func:`~bioscan5m.train.seeding.seed_everything`.
On a GPU the engine asks torch for deterministic kernels, so that the same seed gives the same weights.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate
from tqdm.auto import tqdm

from bioscan5m.errors import BioscanError
from bioscan5m.fileio import atomic_write
from bioscan5m.train.checkpoint import find_checkpoint, load_checkpoint, read_state, save_checkpoint
from bioscan5m.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    init_distributed,
    shutdown_distributed,
    unwrap,
)
from bioscan5m.train.run_definition import (
    CHANGEABLE,
    ENGINE_OPTIONS,
    check_resume,
    normalised,
    read_changes,
    write_run_file,
)
from bioscan5m.train.schedules import get_schedule, one_cycle_momentum
from bioscan5m.train.seeding import deterministic_algorithms, hashed_uniform, mix_seed, sample_seeds

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LOG_FILE = "train_log.jsonl"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class TrainConfig:
    """Everything the engine needs besides the model, data and step function.

    out_dir: run folder (checkpoints/, train_log.jsonl). steps: optimizer steps in the whole run.
    batch_size: global micro-batch (all processes together). accumulate: micro-batches per step.
    lr: peak learning rate; cycle_momentum: with "onecycle", cycle AdamW's beta1 0.95 → 0.85 → 0.95 as
    torch's OneCycleLR does (the BarcodeBERT authors' fine-tuning);
    schedule: "onecycle" (BarcodeBERT's), "cosine" or "constant"; warmup:
    fraction of steps rising to the peak (None: the schedule's default). grad_clip: max gradient norm
    (None: no clipping). precision: "auto" (bf16 on GPUs that have it, else fp16 on GPU, fp32 on CPU),
    "bf16", "fp16" (GPU only) or "fp32". device: "auto", "cpu", "cuda", "cuda:1"...
    save_every: checkpoint every N steps (0: only at the end). keep_checkpoints: how many to keep.
    log_every: a progress line (stdout) and a train_log.jsonl row every N steps. quiet: no progress
    lines or bar (for short inner fits such as a linear probe).
    resume: continue from out_dir's newest intact checkpoint (a fresh start when there is none).
    definition: what the task adds to the run's definition (data fingerprint, model configuration,
    mask ratio...; JSON-able). allow_change: options of the definition a resume may change ("lr", "steps").
    """

    out_dir: str | Path
    steps: int
    batch_size: int
    accumulate: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    cycle_momentum: bool = False
    schedule: str = "onecycle"
    warmup: float | None = None
    grad_clip: float | None = 1.0
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    save_every: int = 0
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    find_unused_parameters: bool = False
    resume: bool = False
    definition: dict = field(default_factory=dict)
    allow_change: tuple[str, ...] = ()
    quiet: bool = False

    def check(self) -> None:
        for name in ("steps", "batch_size", "accumulate", "log_every"):
            if int(getattr(self, name)) < 1:
                raise BioscanError(
                    f"{name} must be at least 1, got {getattr(self, name)}", value=getattr(self, name)
                )
        if self.save_every < 0:
            raise BioscanError(f"save_every must be 0 or more, got {self.save_every}", value=self.save_every)
        if self.precision not in PRECISIONS:
            raise BioscanError(
                f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}",
                value=self.precision,
            )
        if not self.lr > 0:
            raise BioscanError(f"learning rate must be positive, got {self.lr}", value=self.lr)
        get_schedule(self.schedule)
        unknown = sorted(set(self.allow_change) - set(CHANGEABLE))
        if unknown:
            raise BioscanError(
                f"cannot allow changes to {', '.join(unknown)}; only {', '.join(CHANGEABLE)} may change on resume",
                value=unknown[0],
            )

    def run_definition(self) -> dict:
        """The options that define the run: the engine's settings and the task's ``definition``."""
        return normalised({**{name: getattr(self, name) for name in ENGINE_OPTIONS}, **self.definition})


@dataclass
class StepContext:
    """What a step function may use besides the model and the batch."""

    step: int  # optimizer step being computed (0-based)
    micro: int  # micro-batch within the step (0 .. accumulate-1)
    epoch: int
    indices: np.ndarray  # dataset indices of this process's micro-batch
    device: torch.device
    dist: DistInfo
    seed: int

    def uniform(self, count: int) -> np.ndarray:
        """``float64 [len(indices), count]`` uniforms fixed by (seed, epoch, sample): for masking and
        augmentation that must not depend on the rank, the batch or a restart."""
        return hashed_uniform(sample_seeds(self.seed, self.epoch, self.indices), count)


@dataclass
class TrainResult:
    """Summary of a run (this session's speed; steps and loss of the whole run)."""

    steps: int
    loss: float | None
    samples_per_second: float
    tokens_per_second: float
    seconds: float
    peak_memory_mb: float
    device: str
    precision: str
    checkpoint: Path | None
    history: list[dict] = field(default_factory=list, repr=False)


# -- set-up helpers ----------------------------------------------------------------------------------
def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BioscanError("device 'cuda' requested but no GPU is available", value=name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name on a device (None: full fp32)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise BioscanError("fp16 training needs a GPU; use bf16 or fp32 on the CPU", value=precision)
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def weight_decay_groups(parameters: Iterable[nn.Parameter], weight_decay: float, **options) -> list[dict]:
    """Optimizer groups of the trainable ``parameters``: weight decay on matrices (and embeddings), none on
    biases and norms, as in nanoGPT; ``options`` (e.g. ``lr_scale``) go into both groups."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise BioscanError("the model has no trainable parameters")
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, **options},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, **options},
    ]


def cpu_heap_trimmer() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, to call after each CPU step (None off glibc).

    Tensor sizes change every step (the number of masked tokens varies) and glibc keeps the freed
    blocks in a fragmenting heap: a CPU run grew by ~10 MB per step, without bound. Trimming after
    each step keeps it flat and costs less than a fixed mmap threshold (which pays page faults on
    every large tensor).
    """
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class _Batches:
    """This process's micro-batches, epoch after epoch, from a given position (epoch, micro-batch)."""

    def __init__(self, dataset, config: TrainConfig, dist: DistInfo, collate_fn, epoch: int, position: int):
        self.dataset, self.config, self.dist = dataset, config, dist
        self.collate_fn = collate_fn or default_collate
        self.per_epoch = len(dataset) // config.batch_size  # the incomplete last batch is dropped
        self.local = config.batch_size // dist.world_size
        self.epoch, self.position = epoch, position
        self._order: np.ndarray | None = None
        self._loader = None

    def _indices(self, batch: int) -> np.ndarray:
        """Dataset indices of this process's slice of global micro-batch ``batch`` of the epoch."""
        start = batch * self.config.batch_size + self.dist.rank * self.local
        return self._order[start : start + self.local]

    def _start_epoch(self) -> None:
        seed = mix_seed(self.config.seed, self.epoch)
        self._order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(seed)).numpy()
        remaining = range(self.position, self.per_epoch)
        sampler = _LazyBatches(lambda: (self._indices(b).tolist() for b in remaining), len(remaining))
        self._loader = iter(
            DataLoader(
                self.dataset,
                batch_sampler=sampler,
                collate_fn=self.collate_fn,
                num_workers=self.config.num_workers,
            )
        )

    def __next__(self) -> tuple[int, np.ndarray, object]:
        """(epoch, dataset indices, collated batch) of the next micro-batch."""
        if self.position >= self.per_epoch:
            self.epoch, self.position, self._loader = self.epoch + 1, 0, None
        if self._loader is None:
            self._start_epoch()
        batch = next(self._loader)
        indices = self._indices(self.position)
        self.position += 1
        return self.epoch, indices, batch


class _LazyBatches:
    """A batch sampler making its index lists on demand (millions of them as lists take hundreds of MB)."""

    def __init__(self, make: Callable[[], object], length: int) -> None:
        self.make, self.length = make, length

    def __iter__(self):
        return iter(self.make())

    def __len__(self) -> int:
        return self.length


def _as_float(value) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


# -- the loop ----------------------------------------------------------------------------------------
def train(
    model: nn.Module,
    step_fn: Callable[[nn.Module, object, StepContext], dict],
    dataset: Sequence,
    config: TrainConfig,
    *,
    collate_fn: Callable | None = None,
    param_groups: list[dict] | None = None,
    save_model: Callable[[nn.Module, Path], object] | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps; see the module docstring for the contract.

    collate_fn: turns a list of dataset items into the batch given to ``step_fn`` (torch's default).
    param_groups: optimizer groups (``lr_scale`` multiplies the scheduled rate per group); default:
    weight decay on matrices only. save_model: called on the main process at the end with the
    trained (unwrapped) model and out_dir, to write it in its own format. on_step: called on every
    process after each optimizer step with (step, model), e.g. for evaluation.
    """
    config.check()
    info, created = init_distributed()
    try:
        return _run(model, step_fn, dataset, config, info, collate_fn, param_groups, save_model, on_step)
    finally:
        if created:
            shutdown_distributed()


def _run(model, step_fn, dataset, config, info, collate_fn, param_groups, save_model, on_step) -> TrainResult:
    out_dir = Path(config.out_dir)
    if config.batch_size % info.world_size:
        raise BioscanError(
            f"batch size {config.batch_size} is not divisible by {info.world_size} processes",
            value=config.batch_size,
        )
    if len(dataset) < config.batch_size:
        raise BioscanError(
            f"only {len(dataset)} training samples, fewer than the batch size {config.batch_size}",
            value=len(dataset),
        )
    device = select_device(config.device, info.local_rank)
    dtype = autocast_dtype(config.precision, device)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    trim_heap = cpu_heap_trimmer() if device.type == "cpu" else None
    say = _announcer(info.is_main and not config.quiet)
    model.to(device)
    optimizer = torch.optim.AdamW(
        param_groups or weight_decay_groups(model.parameters(), config.weight_decay),
        lr=config.lr,
        betas=tuple(config.betas),
        weight_decay=config.weight_decay,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    schedule = get_schedule(config.schedule)
    schedule_kwargs = {} if config.warmup is None else {"warmup": config.warmup}

    # Start or resume. The step, the data position and the weights are all the state there is.
    state, checkpoint_path = _start_or_resume(model, optimizer, scaler, config, info, device, say)
    ddp_model = model
    if info.world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=config.find_unused_parameters,
        )

    batches = _Batches(dataset, config, info, collate_fn, state["epoch"], state["position"])
    progress = tqdm(
        total=config.steps,
        initial=state["step"],
        desc="training",
        unit="step",
        disable=None if info.is_main and not config.quiet else True,
        dynamic_ncols=True,
    )
    history: list[dict] = []
    window = {"loss": 0.0, "samples": 0, "tokens": 0, "steps": 0, "metrics": {}}
    session_start, window_start = time.perf_counter(), time.perf_counter()
    session_samples = session_tokens = 0
    first_step = state["step"]
    ddp_model.train()

    with deterministic_algorithms(device):
        while state["step"] < config.steps:
            step = state["step"]
            lr_factor = schedule(step, config.steps, **schedule_kwargs)
            beta1 = (one_cycle_momentum(step, config.steps, **schedule_kwargs)
                     if config.cycle_momentum and config.schedule == "onecycle" else None)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor * group.get("lr_scale", 1.0)
                if beta1 is not None:
                    group["betas"] = (beta1, group["betas"][1])
            for micro in range(config.accumulate):
                epoch, indices, batch = next(batches)
                torch.manual_seed(mix_seed(config.seed, step, micro, info.rank))
                ctx = StepContext(step, micro, epoch, indices, device, info, config.seed)
                last_micro = micro == config.accumulate - 1
                sync = contextlib.nullcontext() if last_micro or ddp_model is model else ddp_model.no_sync()
                with sync:
                    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        out = step_fn(ddp_model, batch, ctx)
                    loss, micro_loss = _global_loss(out, device, info.world_size)
                    scaler.scale(loss / config.accumulate).backward()
                # Tensors stay on the device until the next log row: no host sync in the loop.
                window["loss"] = window["loss"] + micro_loss / config.accumulate
                window["samples"] += int(out.get("samples", len(indices)))
                window["tokens"] += int(out.get("tokens", 0))
                for key, value in out.items():
                    if key not in ("loss", "weight", "samples", "tokens"):
                        value = value.detach() if torch.is_tensor(value) else value
                        window["metrics"][key] = window["metrics"].get(key, 0.0) + value / config.accumulate
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or math.inf)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if trim_heap is not None:
                trim_heap(0)
            state["step"] = step + 1
            state["epoch"], state["position"] = batches.epoch, batches.position
            window["steps"] += 1
            progress.update(1)

            done = state["step"] == config.steps
            if state["step"] % config.log_every == 0 or done:
                row = _log_row(
                    state,
                    window,
                    time.perf_counter() - window_start,
                    lr_factor * config.lr,
                    float(grad_norm),
                    info,
                    device,
                )
                session_samples += row["samples"]
                session_tokens += row["tokens"]
                history.append(row)
                if info.is_main:
                    with open(out_dir / LOG_FILE, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(row) + "\n")
                    elapsed = time.perf_counter() - session_start
                    say(progress_line(row, config.steps, elapsed, elapsed / (state["step"] - first_step)))
                window = {"loss": 0.0, "samples": 0, "tokens": 0, "steps": 0, "metrics": {}}
                window_start = time.perf_counter()
            if (config.save_every and state["step"] % config.save_every == 0) or done:
                checkpoint_path = _save(out_dir / CHECKPOINT_DIR, model, optimizer, scaler, state, config, info)
            if on_step is not None:
                on_step(state["step"], model)
    progress.close()

    if save_model is not None and info.is_main:
        save_model(unwrap(model), out_dir)
    barrier()
    seconds = time.perf_counter() - session_start
    return TrainResult(
        steps=state["step"],
        loss=history[-1]["loss"] if history else None,
        samples_per_second=session_samples / seconds if seconds else 0.0,
        tokens_per_second=session_tokens / seconds if seconds else 0.0,
        seconds=seconds,
        peak_memory_mb=peak_memory_mb(device),
        device=str(device),
        precision=precision,
        checkpoint=checkpoint_path,
        history=history,
    )


def _start_or_resume(
    model, optimizer, scaler, config: TrainConfig, info: DistInfo, device, say
) -> tuple[dict, Path | None]:
    """The run's state at the start of this session: a fresh one, or the newest intact checkpoint's.

    Writes ``run.json`` (fresh start, or a resume that changed an allowed option) and trims log rows
    past the step resumed from.
    """
    out_dir = Path(config.out_dir)
    definition = config.run_definition()
    latest, skipped = find_checkpoint(out_dir / CHECKPOINT_DIR)
    if (latest or skipped) and not config.resume:
        raise BioscanError(
            "holds checkpoints of an earlier run; resume it (--resume) or choose another output folder",
            path=out_dir,
        )
    if skipped and latest is None:
        reasons = "; ".join(f"{path.name}: {why}" for path, why in skipped)
        raise BioscanError(f"no intact checkpoint to resume from ({reasons})", path=out_dir / CHECKPOINT_DIR)
    for path, why in skipped:
        say(f"skipping checkpoint {path.name}: {why}")

    state = {"step": 0, "epoch": 0, "position": 0}
    changes = []
    if latest is not None:
        saved = read_state(latest)
        changed = check_resume(
            saved.get("definition", {}), definition, step=saved["step"], allow_change=config.allow_change,
            where=out_dir,
        )
        saved = load_checkpoint(latest, model=model, optimizer=optimizer, device=device)
        if scaler.is_enabled() and saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        state = {key: saved[key] for key in state}
        changes = [
            {"step": state["step"], "option": key, "from": saved["definition"].get(key), "to": definition[key]}
            for key in changed
        ]
        say(f"resuming from {latest} at step {state['step']}/{config.steps}"
            + "".join(f"; {c['option']} changed from {c['from']} to {c['to']}" for c in changes))
    else:
        say(f"training for {config.steps} steps of {config.batch_size * config.accumulate} samples (seed "
            f"{config.seed}); run folder {out_dir}")
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if latest is None or changes:
            write_run_file(out_dir, definition, (read_changes(out_dir) if latest else []) + changes)
        _trim_log(out_dir / LOG_FILE, state["step"])
    return state, latest


def _announcer(enabled: bool) -> Callable[[str], None]:
    """Print a line on stdout (through tqdm, so a bar in the terminal stays intact); a no-op if disabled."""
    if not enabled:
        return lambda line: None
    return lambda line: tqdm.write(line, file=sys.stdout)


def progress_line(row: dict, total: int, elapsed: float, seconds_per_step: float) -> str:
    """``step 20/100 (20%) | loss 3.1416 | 812 samples/s, 41,230 tokens/s | elapsed 0:00:25 | eta 0:01:40``."""
    rates = f"{row['samples_per_s']:,.1f} samples/s"
    if row["tokens_per_s"]:
        rates += f", {row['tokens_per_s']:,.0f} tokens/s"
    eta = (total - row["step"]) * seconds_per_step
    return (f"step {row['step']}/{total} ({100 * row['step'] / total:.0f}%) | loss {row['loss']:.4f} | {rates} | "
            f"elapsed {_clock(elapsed)} | eta {_clock(eta)}")


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _global_loss(out: dict, device: torch.device, world_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to backpropagate, detached loss of the global micro-batch) from a step function's output.

    With a "weight" (how many items this process's mean loss is over), each process's loss is scaled
    by its share of the global count, so that after DDP's gradient averaging the gradient is that of
    the mean over the whole global micro-batch, exactly as on one process.
    """
    loss = out["loss"]
    if world_size == 1:
        return loss, loss.detach().float()
    if "weight" not in out:
        return loss, all_reduce_sum(loss.detach().double()) / world_size
    weight = out["weight"]
    weight = (weight.detach() if torch.is_tensor(weight) else torch.tensor(float(weight))).to(
        device, torch.float64
    )
    total = all_reduce_sum(torch.stack([weight, loss.detach().double() * weight]))
    count = total[0].clamp(min=1.0)  # no item anywhere: every weight is 0, and so is every share
    return loss * (weight * world_size / count).to(loss.dtype), total[1] / count


def _log_row(
    state: dict,
    window: dict,
    seconds: float,
    lr: float,
    grad_norm: float,
    info: DistInfo,
    device: torch.device,
) -> dict:
    """One JSONL row: averages over the steps since the last row, counts summed over processes."""
    names = sorted(window["metrics"])
    local = torch.tensor(
        [window["samples"], window["tokens"], *(_as_float(window["metrics"][n]) for n in names)],
        dtype=torch.float64,
        device=device,
    )
    summed = all_reduce_sum(local).cpu()
    samples, tokens = int(summed[0]), int(summed[1])
    steps = max(window["steps"], 1)
    row = {
        "step": state["step"],
        "epoch": state["epoch"],
        "loss": _as_float(window["loss"]) / steps,
        "lr": lr,
        "grad_norm": grad_norm,
        "samples": samples,
        "tokens": tokens,
        "samples_per_s": samples / seconds if seconds > 0 else 0.0,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
    }
    row.update({name: float(summed[2 + i]) / info.world_size / steps for i, name in enumerate(names)})
    return row


def _save(
    checkpoints: Path, model, optimizer, scaler, state: dict, config: TrainConfig, info: DistInfo
) -> Path:
    """Rank 0 writes the checkpoint (the weights and optimizer are the same on every rank)."""
    path = checkpoints / f"step-{state['step']:08d}"
    if info.is_main:
        settings = {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in asdict(config).items()
            if key != "definition"  # stored normalised, below
        }
        payload = {
            **state,
            "definition": config.run_definition(),
            "config": settings,
            "world_size": info.world_size,
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        }
        path = save_checkpoint(
            checkpoints, model=unwrap(model), optimizer=optimizer, state=payload, keep=config.keep_checkpoints
        )
    barrier()
    return path


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows past ``step`` (written by a run that died before its next checkpoint), and a row
    cut short by the kill."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = [line for line in lines if _row_step(line) <= step]
    with atomic_write(path) as handle:
        handle.writelines(row + "\n" for row in rows)


def _row_step(line: str) -> float:
    """The step of a log row; infinity for a line that is not a complete row (so it is dropped)."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf
