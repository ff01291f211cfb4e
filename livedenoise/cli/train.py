"""`livedenoise finetune`: adapt the shipped backbone to a new experiment in minutes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from livedenoise.cli.common import console, fail
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events, Progress
from livedenoise.imageio import known_formats
from livedenoise.model import ModelFileError, find_model, model_paths
from livedenoise.training import FinetuneReport, FinetuneSettings, finetune_folder

DEFAULT_BACKBONE = Path("backbone-small")


def finetune(
    data: Annotated[
        Path,
        typer.Argument(
            help="A folder with noisy/ and clean/ holding files of the same name: images, time series "
            f"or z-stacks in {known_formats()}; with --self-supervised, a folder of noisy recordings."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the model: NAME.safetensors + NAME.json.")
    ],
    backbone: Annotated[
        Path, typer.Option(help="The model to start from: NAME, NAME.safetensors or NAME.json.")
    ] = DEFAULT_BACKBONE,
    minutes: Annotated[float, typer.Option(min=0.05, help="Time budget for training.")] = 8.0,
    epochs: Annotated[
        float | None,
        typer.Option(min=0.01, help="Stop after this many passes over the training pixels."),
    ] = None,
    lr: Annotated[
        float,
        typer.Option(
            help="Learning rate (AdamW), above 0: after the minutes, the setting that matters most."
        ),
    ] = FinetuneSettings().lr,
    frames: Annotated[
        int, typer.Option(min=1, help="T: frames per training window (time series, z-stacks).")
    ] = 1,
    self_supervised: Annotated[
        bool,
        typer.Option(
            "--self-supervised",
            metavar="",
            help="No clean images: learn from odd/even repeated frames, or by masking pixels.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace a model already at --out.")
    ] = False,
) -> None:
    """Fine-tune a backbone on noisy/clean pairs (or noisy recordings alone) and save the new model.

    The bottom rows of every image are held out: they decide when to stop and show how raw, backbone and fine-tuned output compare on pixels the model never trained on.
    """
    weights = model_paths(find_model(backbone))[1]
    if not weights.is_file():
        raise fail(
            f"no backbone model at {backbone} ({weights} not found). Run "
            "`python scripts/train_backbone.py` from the project root, or pass --backbone MODEL."
        )
    budget = f" for up to {minutes:g} min" if minutes else ""
    intro = f"fine-tuning {out.stem}{budget} (Ctrl-C stops early and keeps the best weights so far)"
    try:
        settings = FinetuneSettings(minutes=minutes, epochs=epochs, lr=lr)
        settings = replace(settings, plan=replace(settings.plan, frames=(frames,)))
        with TrainingBar(console, f"fine-tuning {out.stem}", intro) as events:
            card, report = finetune_folder(
                data,
                out,
                backbone,
                settings,
                self_supervised=self_supervised,
                events=events,
                overwrite=overwrite,
            )
    except LivedenoiseError as err:
        raise fail(err) from None
    except ModelFileError as err:  # not (yet) a LivedenoiseError
        raise fail(str(err)) from None
    r = report.result
    console.print(_report_table(report))
    console.print(
        f"{report.mode}: {r.steps} steps in {r.seconds / 60:.1f} min (stopped: {r.stopped}); held "
        f"out: the bottom {settings.val_fraction:.0%} of rows of every image"
    )
    console.print(f"wrote {model_paths(out)[0]} ({card.lineage}, parent {card.parent})")
    if r.stopped == "interrupted":
        console.print(
            f"stopped by Ctrl-C after {r.steps} steps: the weights saved are the best so far "
            f"(step {r.best_step})"
        )
        raise typer.Exit(130)


class TrainingBar:
    """A rich progress bar drawn from a training run's events: its steps, the loss and validation
    PSNR of its status lines, and its warnings as lines above the bar. ``intro`` is printed as the
    first step begins (the data read and the starting weights scored).

    ``with TrainingBar(console, "fine-tuning exp1") as events: train(..., events=events)``
    """

    def __init__(self, console: Console, label: str, intro: str = "") -> None:
        self.intro = intro
        self.events = Events()
        self.bar = ProgressBar(
            TextColumn(label),
            BarColumn(),
            TextColumn("step {task.completed:.0f}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task: TaskID | None = None
        self.status = ""
        self.events.progress.connect(self._progress)
        self.events.status.connect(self._status)
        self.events.warning.connect(self._warning)

    def __enter__(self) -> Events:
        return self.events

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def _progress(self, done: Progress) -> None:
        if self.task is None:
            if self.intro:
                self.bar.console.print(self.intro, markup=False, highlight=False)
            self.bar.start()
            self.task = self.bar.add_task("", total=done.total, status=self.status)
        self.bar.update(self.task, completed=done.done, total=done.total, status=self.status)

    def _status(self, text: str) -> None:
        self.status = text
        if self.task is not None:
            self.bar.update(self.task, status=text)

    def _warning(self, text: str) -> None:
        self.bar.console.print(text, markup=False, highlight=False)


def _report_table(report: FinetuneReport) -> Table:
    if report.quality:
        table = Table(title="held-out quality against the clean images")
        for column in ("", "PSNR (dB)", "SSIM", "NRMSE"):
            table.add_column(column, justify="right")
        for who, q in report.quality.items():
            table.add_row(who, f"{q.psnr:.2f}", f"{q.ssim:.3f}", f"{q.nrmse:.3f}")
        return table
    table = Table(title="held-out PSNR against independent noisy targets")
    table.add_column("")
    table.add_column("PSNR (dB)", justify="right")
    table.add_row("backbone", f"{report.backbone_val_psnr:.2f}")
    table.add_row("fine-tuned", f"{report.result.best_psnr:.2f}")
    return table
