"""The training loop shared by backbone pretraining and fine-tuning.

AdamW (betas 0.9/0.95, weight decay 0.1) with gradient clipping at 1.0, as in the CNNT recipe; a warm-up
then cosine learning-rate decay driven by whichever runs out first, the step count or the time budget, so
a run cut short by its minutes still ends on a small learning rate; early stopping on the validation PSNR,
keeping the best weights; float16 autocast on a CUDA GPU only.

Early stopping can smooth and restart (fine-tuning does both): patience counts validations since the
mean of the last ``smoothing`` validations last beat the best so far, so one unlucky validation does not
end a run; and when patience runs out with budget left, the run restarts from the best weights at a
lower learning rate, with a fresh optimiser, warm-up and a cosine over what is left of the budget (warm
restarts, Loshchilov & Hutter, SGDR, ICLR 2017). It stops early only when a restart did not beat the
weights it started from, or none is left. Progress goes out as events (steps,
the loss and validation PSNR as status lines), for a front end to draw.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from livedenoise.cpu import cpu_threads
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events, Progress, events_or_new
from livedenoise.metrics import psnr
from livedenoise.model import CNNT
from livedenoise.training.batches import Batch
from livedenoise.training.losses import LossWeights

BatchFn = Callable[[np.random.Generator], Batch]


class SettingsError(LivedenoiseError, ValueError):
    """Training settings that cannot train; ``option`` names the setting."""


class TrainingError(LivedenoiseError, RuntimeError):
    """Training that cannot go on as set (the loss stopped being finite); ``option`` names the fix."""


@dataclass(frozen=True)
class LoopSettings:
    """Optimiser, schedule and stopping rules; ``minutes`` and ``max_steps`` both bound a run.

    ``clock="cpu"`` counts the minutes in this process's CPU time (all its threads) instead of wall time,
    so that a busy, shared machine does not shorten a run: what a benchmark needs to give every method
    the same CPU minutes.
    """

    lr: float = 1e-4
    minutes: float | None = 10.0
    clock: Literal["wall", "cpu"] = "wall"
    max_steps: int | None = None
    warmup_steps: int = 20
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    eval_every: int = 25  # steps between validations
    patience: int = 8  # validations without improvement before restarting or stopping early
    smoothing: int = 1  # validations averaged for the patience decision (1: each on its own)
    restarts: int = 0  # warm restarts from the best weights when patience runs out with budget left
    restart_lr: float = 0.3  # each restart's learning rate, as a fraction of the one before
    seed: int = 0

    def __post_init__(self) -> None:
        if self.minutes is None and self.max_steps is None:
            raise SettingsError(
                "give a time budget (minutes), a step count, or both", option="minutes"
            )
        if self.smoothing < 1 or self.restarts < 0:
            raise SettingsError(
                f"smoothing {self.smoothing} and restarts {self.restarts}: smoothing averages "
                "at least 1 validation and restarts cannot be negative",
                option="smoothing" if self.smoothing < 1 else "restarts",
            )
        if not 0 < self.restart_lr <= 1:
            raise SettingsError(
                f"restart_lr {self.restart_lr:g}: a restart's learning rate is a fraction of the "
                "one before, above 0 and at most 1",
                option="restart_lr",
                value=self.restart_lr,
            )


@dataclass
class TrainResult:
    """What a run did; the model holds the weights of ``best_step``."""

    steps: int
    seconds: float  # by the run's clock (LoopSettings.clock)
    best_psnr: float
    best_step: int
    stopped: str  # "steps", "time", "early" or "interrupted" (Ctrl-C)
    history: list[tuple[int, float, float]] = field(default_factory=list)  # step, loss, val PSNR
    restart_steps: list[int] = field(default_factory=list)  # where warm restarts began


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
    events: Events | None = None,
) -> TrainResult:
    """Train ``model`` in place; it ends with the weights that scored best on ``validation``.

    ``events`` gets ``progress`` after each step (its total: the steps the run will take at its pace
    so far, as the time budget may end it) and a ``status`` line with the loss and validation PSNR
    after each validation, and one for each warm restart. Ctrl-C ends training like an early stop
    (``stopped="interrupted"``), with the best weights so far. Raises TrainingError when the loss stops being finite.
    """
    events = events_or_new(events)
    device = pick_device()
    model.to(device).train()
    optimiser = _Optimiser(model, settings, device)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    best = _Best(model, validation, device, settings.smoothing)
    events.status.emit(best.report())
    now = time.process_time if settings.clock == "cpu" else time.perf_counter
    start, step, running = now(), 0, math.nan
    cycle = _Cycle(settings.lr, 0, 0.0)
    restart_steps: list[int] = []
    events.progress.emit(Progress(0, settings.max_steps, "steps"))
    try:
        while (done := _fraction_done(step, now() - start, settings)) < 1.0:
            optimiser.set_lr(cycle.lr_at(step, done, settings))
            value = _train_step(model, batches(rng).to(device), loss_fn, optimiser, label, step)
            step += 1
            running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            if step % settings.eval_every == 0:
                best.validate(step, running)
                events.status.emit(best.report())
                if best.stale >= settings.patience:
                    if not _may_restart(best, restart_steps, settings):
                        stopped = "early"
                        break
                    model.load_state_dict(best.state)
                    optimiser = _Optimiser(model, settings, device)
                    cycle = _Cycle(cycle.lr * settings.restart_lr, step, done)
                    best.restart()
                    restart_steps.append(step)
                    events.status.emit(
                        f"restart {len(restart_steps)} from the best weights (step {best.step}) "
                        f"at lr {cycle.lr:.2g}"
                    )
            expected = _expected_steps(step, now() - start, settings)
            events.progress.emit(Progress(step, expected, "steps"))
        else:
            hit_steps = settings.max_steps is not None and step >= settings.max_steps
            stopped = "steps" if hit_steps else "time"
    except KeyboardInterrupt:  # Ctrl-C: keep what was learnt, as an early stop would
        stopped = "interrupted"
    if step % settings.eval_every:  # the steps since the last validation
        best.validate(step, running)
        events.status.emit(best.report())
    events.progress.emit(Progress(step, step, "steps"))
    model.load_state_dict(best.state)
    model.eval()
    seconds = now() - start
    return TrainResult(step, seconds, best.psnr, best.step, stopped, best.history, restart_steps)


@dataclass(frozen=True)
class _Cycle:
    """One cycle of the schedule: its peak learning rate, and the step and budget fraction it began at."""

    lr: float
    first_step: int
    first_done: float

    def lr_at(self, step: int, done: float, settings: LoopSettings) -> float:
        """Warm-up then cosine decay over what was left of the budget when the cycle began."""
        left = (done - self.first_done) / (1.0 - self.first_done)
        return self.lr * _lr_factor(step - self.first_step, left, settings)


def _may_restart(best: _Best, restart_steps: Sequence[int], settings: LoopSettings) -> bool:
    """Restart when restarts are left and this cycle is the first or beat the weights it began from."""
    return len(restart_steps) < settings.restarts and (
        not restart_steps or best.step > restart_steps[-1]
    )


class _Optimiser:
    """AdamW with gradient clipping, and float16 gradient scaling on a CUDA GPU."""

    def __init__(self, model: CNNT, settings: LoopSettings, device: torch.device) -> None:
        self.params = list(model.parameters())
        self.clip = settings.clip
        self.opt = torch.optim.AdamW(
            self.params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.scaler.step(self.opt)
        self.scaler.update()


class Patience:
    """Validations since the smoothed validation PSNR last beat its best by more than 0.001 dB.

    The smoothed score is the mean of the last ``smoothing`` scores, the starting weights' score
    ``start`` among them until enough validations follow: one lucky or unlucky validation moves it
    by a ``smoothing``-th of its deviation, so it neither ends a run nor sets a bar the next ones
    cannot reach. With ``smoothing`` 1 each validation counts on its own.
    """

    def __init__(self, start: float, smoothing: int = 1) -> None:
        self.recent: deque[float] = deque([start], maxlen=smoothing)
        self.best, self.stale = start, 0

    def update(self, score: float) -> int:
        """Count in a validation's score; the validations since the last improvement."""
        self.recent.append(score)
        smoothed = float(np.mean(self.recent))
        if smoothed > self.best + 1e-3:
            self.best, self.stale = smoothed, 0
        else:
            self.stale += 1
        return self.stale


class _Best:
    """The best validation PSNR so far, its step and weights, and the patience count.

    The weights kept are those of the best single validation: the validation set is fixed, so that
    score is exactly what those weights do on it, whereas a smoothed score mixes several weights.
    Patience counts on the smoothed score (``Patience``), afresh from the best weights' score at
    each restart.
    """

    def __init__(
        self, model: CNNT, validation: Sequence[Batch], device: torch.device, smoothing: int = 1
    ) -> None:
        self.model, self.validation, self.device = model, validation, device
        self.psnr = validation_psnr(model, validation, device)
        self.state, self.step = _copy_state(model), 0
        self.history: list[tuple[int, float, float]] = [(0, math.nan, self.psnr)]
        self.smoothing = smoothing
        self.patience = Patience(self.psnr, smoothing)

    @property
    def stale(self) -> int:
        return self.patience.stale

    def validate(self, step: int, loss: float) -> None:
        """Score the model now; keep its weights if they beat the best by more than 0.001 dB."""
        score = validation_psnr(self.model, self.validation, self.device)
        self.history.append((step, loss, score))
        if score > self.psnr + 1e-3:
            self.psnr, self.state, self.step = score, _copy_state(self.model), step
        self.patience.update(score)

    def restart(self) -> None:
        """A new cycle from the best weights: it has to beat their score, counted afresh."""
        self.patience = Patience(self.psnr, self.smoothing)

    def report(self) -> str:
        """The last validation, for a status line: ``loss 0.0123, val PSNR 31.20 dB (best ...)``."""
        _, loss, score = self.history[-1]
        shown = "" if math.isnan(loss) else f"loss {loss:.4f}, "
        return f"{shown}val PSNR {score:.2f} dB (best {self.psnr:.2f})"


def _train_step(
    model: CNNT, batch: Batch, loss_fn: LossWeights, optimiser: _Optimiser, label: str, step: int
) -> float:
    """One optimiser step on ``batch`` (float16 autocast on a GPU); the loss before it."""
    device = batch.inputs.device
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        pred = model(batch.inputs)
    loss = loss_fn(pred, batch.targets, batch.mask)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise TrainingError(
            f"{label}: the loss became {value} at step {step}; lower the learning rate",
            option="lr",
            value=value,
        )
    optimiser.step(loss)
    return value


def _fraction_done(step: int, elapsed: float, settings: LoopSettings) -> float:
    """How far the run is, 0 to 1, by whichever of its step count and time budget is further."""
    budget = None if settings.minutes is None else settings.minutes * 60
    return max(
        step / settings.max_steps if settings.max_steps else 0.0,
        elapsed / budget if budget else 0.0,
    )


def _expected_steps(step: int, elapsed: float, settings: LoopSettings) -> int | None:
    """The steps the run will take at its pace so far: its step count, or what its minutes allow."""
    done = _fraction_done(step, elapsed, settings)
    return max(step, round(step / done)) if done > 0 else settings.max_steps


def _lr_factor(step: int, done: float, settings: LoopSettings) -> float:
    """Linear warm-up over the first steps, then cosine decay to ``final_lr_fraction`` as ``done`` -> 1."""
    warm = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
    low = settings.final_lr_fraction
    return warm * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


def _copy_state(model: CNNT) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
