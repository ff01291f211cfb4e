"""The training loop shared by backbone pretraining and fine-tuning.

AdamW (betas 0.9/0.95, weight decay 0.1) with gradient clipping at 1.0, as in the CNNT recipe; a warm-up
then cosine learning-rate decay driven by whichever runs out first, the step count or the time budget, so
a run cut short by its minutes still ends on a small learning rate; early stopping on the validation PSNR,
keeping the best weights; float16 autocast on a CUDA GPU only; a rich progress bar.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from livedenoise.cpu import cpu_threads
from livedenoise.metrics import psnr
from livedenoise.model import CNNT
from livedenoise.training.batches import Batch
from livedenoise.training.losses import LossWeights

BatchFn = Callable[[np.random.Generator], Batch]


@dataclass(frozen=True)
class LoopSettings:
    """Optimiser, schedule and stopping rules; ``minutes`` and ``max_steps`` both bound a run."""

    lr: float = 1e-4
    minutes: float | None = 10.0
    max_steps: int | None = None
    warmup_steps: int = 20
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    eval_every: int = 25  # steps between validations
    patience: int = 8  # validations without improvement before stopping early
    seed: int = 0

    def __post_init__(self) -> None:
        if self.minutes is None and self.max_steps is None:
            raise ValueError("give a time budget (minutes), a step count, or both")


@dataclass
class TrainResult:
    """What a run did; the model holds the weights of ``best_step``."""

    steps: int
    seconds: float
    best_psnr: float
    best_step: int
    stopped: str  # "steps", "time" or "early"
    history: list[tuple[int, float, float]] = field(default_factory=list)  # step, loss, val PSNR


def pick_device() -> torch.device:
    """A CUDA GPU when there is one; otherwise the CPU, with ``cpu_threads()`` torch threads."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(cpu_threads())
    return torch.device("cpu")


@torch.no_grad()
def validation_psnr(model: CNNT, validation: Sequence[Batch], device: torch.device) -> float:
    """Mean PSNR (dB) of the model's output against the targets, over each target's own range."""
    model.eval()
    scores = []
    for batch in validation:
        b = batch.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            pred = model(b.inputs)
        p, t = pred.float().cpu().numpy(), b.targets.float().cpu().numpy()
        if b.mask is not None:
            keep = b.mask.cpu().numpy().astype(bool)
            p, t = p[keep], t[keep]
        scores.append(psnr(p, t, data_range=float(t.max() - t.min()) or 1.0))
    model.train()
    return float(np.mean(scores))


def train(
    model: CNNT,
    batches: BatchFn,
    validation: Sequence[Batch],
    loss_fn: LossWeights,
    settings: LoopSettings,
    label: str = "training",
    console: Console | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train ``model`` in place; it ends with the weights that scored best on ``validation``."""
    device = pick_device()
    model.to(device).train()
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    budget = None if settings.minutes is None else settings.minutes * 60

    best = validation_psnr(model, validation, device)
    best_state, stale, running = _copy_state(model), 0, math.nan
    result = TrainResult(0, 0.0, best, 0, "steps", [(0, math.nan, best)])

    def validate(step: int) -> None:
        nonlocal best, best_state, stale
        score = validation_psnr(model, validation, device)
        result.history.append((step, running, score))
        if score > best + 1e-3:
            best, best_state, stale, result.best_step = score, _copy_state(model), 0, step
        else:
            stale += 1

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("step {task.fields[step]}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("val PSNR {task.fields[psnr]:.2f} dB"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    )
    start, step = time.perf_counter(), 0
    with progress:
        task = progress.add_task(label, total=1.0, step=0, loss=math.nan, psnr=best)
        while True:
            elapsed = time.perf_counter() - start
            done = max(
                step / settings.max_steps if settings.max_steps else 0.0,
                elapsed / budget if budget else 0.0,
            )
            if done >= 1.0:
                hit_steps = settings.max_steps is not None and step >= settings.max_steps
                result.stopped = "steps" if hit_steps else "time"
                break
            for group in opt.param_groups:
                group["lr"] = settings.lr * _lr_factor(step, done, settings)
            batch = batches(rng).to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                pred = model(batch.inputs)
            loss = loss_fn(pred, batch.targets, batch.mask)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RuntimeError(
                    f"{label}: the loss became {value} at step {step}; lower the learning rate."
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            scaler.step(opt)
            scaler.update()
            step += 1
            running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            if step % settings.eval_every == 0:
                validate(step)
                if stale >= settings.patience:
                    result.stopped = "early"
                    break
            progress.update(task, completed=done, step=step, loss=running, psnr=best)
        if step % settings.eval_every:  # the steps since the last validation
            validate(step)
        progress.update(task, completed=1.0, step=step, loss=running, psnr=best)
    model.load_state_dict(best_state)
    model.eval()
    result.steps, result.seconds, result.best_psnr = step, time.perf_counter() - start, best
    return result


def _lr_factor(step: int, done: float, settings: LoopSettings) -> float:
    """Linear warm-up over the first steps, then cosine decay to ``final_lr_fraction`` as ``done`` -> 1."""
    warm = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
    low = settings.final_lr_fraction
    return warm * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


def _copy_state(model: CNNT) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
