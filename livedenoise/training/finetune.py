"""Fine-tuning a backbone to a new experiment in minutes, on 5-10 pairs or on noisy recordings alone.

The bottom band of rows of every image is held out: it validates (early stopping) and is where the
report compares raw, backbone and fine-tuned output. A band of every image, rather than whole images,
keeps all of the few pairs in training and still measures on pixels the model never trained on.
The new model's card keeps its parent's per-window percentile normalisation (any other becomes the one
training writes, ``TRAINED_NORMALIZATION``) and names its parent.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from livedenoise.events import Events, events_or_new
from livedenoise.metrics import Quality
from livedenoise.model import (
    CNNT,
    ModelCard,
    Normalization,
    check_model_output,
    find_model,
    load_model,
    model_paths,
    save_model,
)
from livedenoise.training.batches import TILE, Batch, Batches, BatchPlan, PairSource, Source
from livedenoise.training.evaluate import denoise, mean_quality
from livedenoise.training.loop import LoopSettings, SettingsError, TrainResult, train
from livedenoise.training.losses import LossWeights
from livedenoise.training.noise_law import ResampledSource
from livedenoise.training.normalize import TRAINED_NORMALIZATION
from livedenoise.training.pairs import (
    ImagePair,
    PairsError,
    load_noisy,
    load_pairs,
    usable_pairs,
)
from livedenoise.training.selfsup import mask_batch, masked, odd_even_pairs

MIN_ROWS = 32  # the smallest held-out band, and the least left to train on


@dataclass(frozen=True)
class FinetuneSettings:
    """How long and how to fine-tune; ``minutes`` and ``epochs`` both bound a run.

    L1 leads the loss because fine-tuned models are judged by PSNR; a little SSIM keeps fine structure.
    On the confocal pairs, SSIM-led, L1-led and MSE-only fine-tuning ended within 0.2 dB of each other;
    the learning rate and running long enough mattered more (patience spans 300 steps). lr 1e-3 (a
    third of the backbone's 3e-3) beat 1e-4 on every image tried with 2-3 CPU minutes: +0.15 and +0.41
    dB on two confocal pairs (left half trained, right half scored), +0.12 to +0.32 dB on the three FMD
    configurations of ``scripts/bench_quality.py``; at 1e-4 the held-out score rises too slowly and early
    stopping can end the run before it improves.

    Early stopping is smoothed and restarts (``LoopSettings``): patience counts on the mean of the last
    ``smoothing`` validations, and when it runs out with budget left the run goes on from the best
    weights at ``restart_lr`` times the learning rate, up to ``restarts`` times, while restarts keep
    improving. The starting weights are the first best, so a run that never improves returns them.
    """

    minutes: float | None = 8.0
    clock: Literal["wall", "cpu"] = "wall"  # what the minutes count (see LoopSettings)
    epochs: float | None = None  # one epoch draws as many pixels as the training part holds
    lr: float = 1e-3
    loss: LossWeights = field(default_factory=lambda: LossWeights(ssim=0.1, l1=1.0, mse=0.0))
    plan: BatchPlan = field(default_factory=lambda: BatchPlan(gain=(0.8, 1.25), shift=0.02))
    resampled: float = 0.5  # share of batches with fresh noise at the pairs' law (noise_law.py)
    val_fraction: float = 0.15
    eval_every: int = 25
    patience: int = 12
    smoothing: int = 3
    restarts: int = 2
    restart_lr: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise SettingsError(
                f"lr {self.lr:g}: a learning rate must be above 0",
                option="lr",
                value=self.lr,
                hint=f"the default is {FinetuneSettings.lr:g}",
            )


@dataclass(frozen=True)
class FinetuneReport:
    """What fine-tuning achieved on the held-out band."""

    mode: str
    result: TrainResult
    quality: dict[str, Quality] = field(default_factory=dict)  # raw/backbone/fine-tuned vs clean

    @property
    def backbone_val_psnr(self) -> float:
        """Validation PSNR of the starting weights (against noisy targets when self-supervised)."""
        return self.result.history[0][2]


def split_rows(
    pairs: Sequence[ImagePair], fraction: float
) -> tuple[list[ImagePair], list[ImagePair]]:
    """(training, held-out) parts of every pair: the held-out part is the bottom band of rows."""
    train_part, held_out = [], []
    for p in pairs:
        h = p.noisy.shape[1]
        rows = max(MIN_ROWS, round(fraction * h))
        if h - rows < MIN_ROWS:
            raise PairsError(
                f"{p.name}: {h} rows are too few to hold out {rows} for validation and still train; "
                f"images need at least {2 * MIN_ROWS} rows.",
                value=h,
            )
        cut = h - rows
        train_part.append(ImagePair(p.name, p.noisy[:, :cut], p.clean[:, :cut]))
        held_out.append(ImagePair(p.name, p.noisy[:, cut:], p.clean[:, cut:]))
    return train_part, held_out


def finetune_pairs(
    model: CNNT,
    parent: ModelCard,
    pairs: Sequence[ImagePair],
    name: str,
    settings: FinetuneSettings = FinetuneSettings(),
    trained_on: Sequence[str] = (),
    events: Events | None = None,
) -> tuple[ModelCard, FinetuneReport]:
    """Fine-tune ``model`` (in place) on noisy/clean pairs; the card is ready for ``save_model``.

    Blank pairs are skipped, with a ``warning`` on ``events`` (``usable_pairs``); the training
    loop's progress and status go there too (``train``)."""
    events = events_or_new(events)
    pairs = usable_pairs(pairs, events)
    norm = child_normalization(parent)
    train_part, held_out = split_rows(pairs, settings.val_fraction)
    backbone = copy.deepcopy(model)
    recorded = PairSource(train_part, norm)
    resampled = ResampledSource.of(train_part, norm) if settings.resampled > 0 else None
    sources: list[tuple[Source, float]] = (
        [(recorded, 1.0)]
        if resampled is None
        else [(recorded, 1.0 - settings.resampled), (resampled, settings.resampled)]
    )
    result = _train(model, sources, train_part, held_out, norm, settings, False, name, events)
    window = max(settings.plan.frames)
    report = FinetuneReport(
        "supervised",
        result,
        {
            "raw": mean_quality((p.noisy, p.clean) for p in held_out),
            "backbone": mean_quality(
                (denoise(backbone, norm, p.noisy, window), p.clean) for p in held_out
            ),
            "fine-tuned": mean_quality(
                (denoise(model, norm, p.noisy, window), p.clean) for p in held_out
            ),
        },
    )
    metrics = {
        f"heldout_{metric}_{who.replace('-', '')}": getattr(q, metric)
        for who, q in report.quality.items()
        for metric in ("psnr", "ssim")
    }
    return _card(parent, name, norm, trained_on, report, metrics, settings), report


def finetune_noisy(
    model: CNNT,
    parent: ModelCard,
    stacks: Mapping[str, np.ndarray],
    name: str,
    settings: FinetuneSettings = FinetuneSettings(),
    trained_on: Sequence[str] = (),
    events: Events | None = None,
) -> tuple[ModelCard, FinetuneReport]:
    """Self-supervised fine-tuning: odd/even frames when every recording has 2+ frames, else masking.

    The training loop's progress and status go to ``events`` (``train``)."""
    norm = child_normalization(parent)
    if all(frames.shape[0] >= 2 for frames in stacks.values()):
        mode, pairs, mask = "self-supervised: odd/even frames", odd_even_pairs(stacks), False
    else:
        mode, mask = "self-supervised: masking (Noise2Self)", True
        pairs = [ImagePair(n, frames, frames) for n, frames in stacks.items()]
    # against noisy targets only MSE has the clean signal as its optimum
    settings = replace(settings, loss=LossWeights(ssim=0.0, l1=0.0, mse=1.0))
    train_part, held_out = split_rows(pairs, settings.val_fraction)
    sources: list[tuple[Source, float]] = [(PairSource(train_part, norm), 1.0)]
    result = _train(model, sources, train_part, held_out, norm, settings, mask, name, events)
    report = FinetuneReport(mode, result)
    metrics = {
        "heldout_selfsup_psnr_backbone": report.backbone_val_psnr,
        "heldout_selfsup_psnr_finetuned": result.best_psnr,
    }
    return _card(parent, name, norm, trained_on, report, metrics, settings), report


def finetune_folder(
    folder: str | Path,
    out: str | Path,
    backbone: str | Path,
    settings: FinetuneSettings = FinetuneSettings(),
    self_supervised: bool = False,
    events: Events | None = None,
    overwrite: bool = False,
) -> tuple[ModelCard, FinetuneReport]:
    """Load the backbone and a folder (pairs, or noisy recordings), fine-tune, save as ``out``.

    ``out`` is checked first, so training never ends in a model that cannot be saved, and never
    replaces the data, the backbone or (without ``overwrite``) another model; Ctrl-C ends training
    early and the best weights so far are saved (``report.result.stopped`` says so). ``events``
    gets a warning for skipped blank pairs and the training loop's progress and status.
    """
    events = events_or_new(events)
    folder, out = Path(folder), Path(out)
    inputs = [("training data", folder)]
    inputs += [("backbone", path) for path in model_paths(find_model(backbone))]
    check_model_output(out, inputs, overwrite)
    model, parent = load_model(backbone)
    if self_supervised:
        stacks = load_noisy(folder)
        trained_on = [str(folder / n) for n in stacks]
        card, report = finetune_noisy(model, parent, stacks, out.stem, settings, trained_on, events)
    else:
        pairs = usable_pairs(load_pairs(folder), events)
        trained_on = [f"{folder}/{{noisy,clean}}/{p.name}" for p in pairs]
        card, report = finetune_pairs(model, parent, pairs, out.stem, settings, trained_on, events)
    return save_model(model, card, out), report


def child_normalization(parent: ModelCard) -> Normalization:
    """A fine-tuned model's normalisation: its parent's when taken per window, else the trained one."""
    if parent.normalization.method == "percentile":
        return parent.normalization
    return TRAINED_NORMALIZATION


def _train(
    model: CNNT,
    sources: Sequence[tuple[Source, float]],
    train_part: Sequence[ImagePair],
    held_out: Sequence[ImagePair],
    norm: Normalization,
    settings: FinetuneSettings,
    mask: bool,
    label: str,
    events: Events | None,
) -> TrainResult:
    """Run the loop on batches from ``sources`` (of the training part), validating on the held-out band."""
    batches = Batches(sources, settings.plan)
    validation = []
    # in tiles, as the model will be used; single frames and the longest window both count, so
    # training for windows cannot buy its gain with worse single frames
    for p, window in itertools.product(held_out, sorted({1, max(settings.plan.frames)})):
        n, h, w = p.noisy.shape
        for s in range(0, n - window + 1, window):
            fitted = norm.fitted(p.noisy[s : s + window])
            x, y = fitted.forward(p.noisy[s : s + window]), fitted.forward(p.clean[s : s + window])
            for r, c in itertools.product(_starts(h), _starts(w)):
                crop = np.s_[:, r : r + TILE, c : c + TILE]
                validation.append(
                    Batch(*(torch.from_numpy(a[crop])[None, :, None] for a in (x, y)))
                )
    if mask:  # fixed hidden pixels, so validations compare like with like
        rng = np.random.default_rng(settings.seed)
        validation = [mask_batch(b, rng) for b in validation]
    max_steps = None
    if settings.epochs is not None:
        pixels = sum(p.noisy.size for p in train_part)
        max_steps = max(1, math.ceil(settings.epochs * pixels / settings.plan.pixels))
    loop = LoopSettings(
        lr=settings.lr,
        minutes=settings.minutes,
        clock=settings.clock,
        max_steps=max_steps,
        eval_every=settings.eval_every,
        patience=settings.patience,
        smoothing=settings.smoothing,
        restarts=settings.restarts,
        restart_lr=settings.restart_lr,
        seed=settings.seed,
    )
    draw = masked(batches) if mask else batches
    return train(model, draw, validation, settings.loss, loop, f"fine-tuning {label}", events)


def _starts(size: int) -> list[int]:
    """Origins of ``TILE`` crops covering ``size`` pixels; the last one ends on the border."""
    last = max(size - TILE, 0)
    return sorted({*range(0, last + 1, TILE), last})


def _card(
    parent: ModelCard,
    name: str,
    norm: Normalization,
    trained_on: Sequence[str],
    report: FinetuneReport,
    metrics: dict[str, float],
    settings: FinetuneSettings,
) -> ModelCard:
    r = report.result
    notes = (
        f"Fine-tuned from {parent.lineage} ({report.mode}) for {r.steps} steps in "
        f"{r.seconds / 60:.1f} min (stopped: {r.stopped}; warm restarts at steps "
        f"{r.restart_steps or 'none'}; best weights at step {r.best_step}); "
        f"lr {settings.lr:g}, loss {settings.loss}. Held out for validation and these metrics: the "
        f"bottom {settings.val_fraction:.0%} of rows of every image. Trained on patches "
        f"{settings.plan.patch_sizes}: process frames in {TILE} px tiles."
    )
    metrics = {**metrics, "finetune_minutes": r.seconds / 60, "finetune_steps": float(r.steps)}
    # a held-out band of one value scores no finite PSNR; a card with one would not load again
    metrics = {key: value for key, value in metrics.items() if math.isfinite(value)}
    return ModelCard(
        name=name,
        config=parent.config,
        normalization=norm,
        trained_on=list(trained_on),
        parent=parent.lineage,
        tile=parent.tile,
        metrics=metrics,
        notes=notes,
    )
