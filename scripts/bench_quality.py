"""Denoising quality on real data the backbone never saw, against what microscopists would use instead.

    python scripts/bench_quality.py [--minutes 4] [--configs NAME ...] [--json out.json] [--quick]

Data (``--data``, default ../shared/data), the parts held out of the backbone's training (the default
configurations; ``scripts/train_backbone.py`` defines them, so both scripts hold out the same data):
- FMD test fields (``fmd_test``): per microscope/specimen configuration, 4 raw frames of one static
  field and the average of 50 frames as the clean reference; the three held out (``HELD_OUT``, one per
  modality) by default, any other by name;
- ``W2S_ch0``: W2S fields 71-80, channel 0 (widefield camera): per field one raw frame against the
  400-frame average, their central 256 x 256 px (as the training script scores them), the 10 fields as
  10 frames that are not repeats of one field (``W2S_ch1``, ``W2S_ch2``: the other channels);
- ``Hagen_actin-60x-noise1``: the held-out Hagen pair (widefield, low vs high SNR), its central
  512 x 512 px.
W2S and Hagen references are fitted affinely onto their raw frames first (as for training).

Protocol, per configuration: the LEFT half of each frame (columns 0 to width/2 - 1, all rows) is the
only part any method tunes or trains on (noisy frames, and the clean image where a method is
supervised); the RIGHT half is the test part. Each method's output on the right half is scored against
the clean right half with livedenoise.metrics.quality (PSNR and SSIM after an affine intensity fit, as
in the FMD benchmark), averaged over the frames (or once, for methods whose output is one image made
from all 4). Rows (those that need repeats of a static field only where the frames are: FMD; the
others show "-", and their "mean" column averages the configurations they ran on):

- raw: a single raw frame; raw mean of 4: the average of the 4 frames;
- Gaussian, BM3D: scipy's gaussian_filter and the bm3d package, their sigma tuned on a grid for the best
  PSNR on the left half (BM3D on its first frame, to keep tuning to about a CPU minute);
- CARE, N2V: CAREamics, CARE supervised on the left-half noisy/clean pairs, N2V on the noisy frames alone;
- livedenoise backbone: the shipped backbone alone; fine-tuned: supervised fine-tuning on the left-half
  pairs, on single frames and (repeats only) windows of 4 alike; self-supervised (repeats only):
  fine-tuning on the left-half noisy frames alone (odd/even frames); window 4: the fine-tuned model
  denoising each frame in the window of all 4;
- Gaussian / BM3D / livedenoise on mean of 4: the same filters, tuned on the left half of the 4-frame
  mean, and the fine-tuned model (window 1), applied to the 4-frame mean: what a window of 4 frames has
  to beat;
- backbone - Gaussian: the backbone's PSNR minus the tuned Gaussian's (dB), what a deep model adds
  before any fine-tuning.

Every trained method (CARE, N2V, livedenoise fine-tuned and self-supervised) gets the same CPU time,
``--minutes`` CPU-minutes of this process (all its threads) per configuration, on ``--threads`` torch
threads, so that other work on a shared machine does not shorten one method's training more than
another's. CARE and livedenoise end with their best validation weights (validation drawn from the left
half), N2V with its last (CAREamics's default: its validation loss is against noisy pixels). CAREamics
stops by a Lightning callback that reads the CPU time after every step, with an epoch cap and
early-stopping patience too large to end training first; livedenoise by its own budget on the same
clock (``clock="cpu"``; its early stopping may end sooner). Seeds are fixed. CAREamics
writes its checkpoints and logs to a temporary folder that is removed afterwards.

Set-up (the ``bench`` extra): CAREamics 0.3.5 caps torchvision at 0.26 (torch 2.11), and PyPI's
torchvision is built for CUDA torch, so next to a CPU torch install CAREamics without its
dependencies and without torchvision, e.g.

    pip install bm3d==4.0.3 "lightning<=2.6.6" "torchmetrics<1.9" "scikit-image<=0.26" microssim psutil
    pip install --no-deps careamics==0.3.5

(see ``import_careamics``). ``--quick`` runs one configuration with 0.2 minutes per trained method,
to smoke-test the script end to end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import bm3d
import numpy as np
import tifffile
import torch
from rich.console import Console
from rich.table import Table
from scipy.ndimage import gaussian_filter

from livedenoise.metrics import Quality, quality
from livedenoise.model import load_model
from livedenoise.training import (
    FinetuneSettings,
    ImagePair,
    denoise,
    finetune_noisy,
    finetune_pairs,
)


def _training_script() -> types.ModuleType:
    """scripts/train_backbone.py, which defines (and loads) the data held out of training."""
    spec = importlib.util.spec_from_file_location(
        "train_backbone", Path(__file__).with_name("train_backbone.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_backbone = _training_script()
HELD_OUT = train_backbone.HELD_OUT
W2S_CONFIG, HAGEN_CONFIG = "W2S_ch", f"Hagen_{train_backbone.HAGEN_HELD_OUT}"
DEFAULT_CONFIGS = (*HELD_OUT, f"{W2S_CONFIG}0", HAGEN_CONFIG)
DATA = train_backbone.DATA
HAGEN_CROP = 512  # px, central: a test half as large as an FMD field's
SEED = 1  # CAREamics accepts only positive seeds
QUICK_MINUTES = 0.2
GAUSSIAN_SIGMAS = np.geomspace(0.25, 8.0, 16)  # px
BM3D_FRACTIONS = np.geomspace(0.01, 0.4, 10)  # of the tuning image's intensity range
CARE_PATCH, CARE_BATCH = 64, 16  # CAREamics's usual 2D patch size; a batch a CPU step can afford

METHODS = (
    "raw",
    "raw mean of 4",
    "Gaussian",
    "BM3D",
    "CARE (CAREamics)",
    "N2V (CAREamics)",
    "livedenoise backbone",
    "livedenoise fine-tuned",
    "livedenoise self-supervised",
    "livedenoise window 4",
    "livedenoise on mean of 4",
    "Gaussian of mean of 4",
    "BM3D of mean of 4",
)
BACKBONE_GAIN = "backbone - Gaussian (dB)"

console = Console()
if not console.is_terminal:  # a log file: room for the table's columns
    console.width = 160


@dataclass(frozen=True)
class Field:
    """One configuration's frames, split into the tuning (left) and test (right) halves."""

    name: str
    noisy: np.ndarray  # [T, H, W] float32, 8-bit values
    clean: np.ndarray  # [T, H, W] float32: each frame's reference
    repeats: bool  # the frames are repeats of one static field (windows and means apply)

    @property
    def split(self) -> int:
        return self.noisy.shape[2] // 2

    @property
    def tune_noisy(self) -> np.ndarray:
        return self.noisy[:, :, : self.split]

    @property
    def tune_clean(self) -> np.ndarray:
        return self.clean[:, :, : self.split]

    @property
    def test_noisy(self) -> np.ndarray:
        return self.noisy[:, :, self.split :]

    @property
    def test_clean(self) -> np.ndarray:
        return self.clean[:, :, self.split :]


@dataclass(frozen=True)
class Outcome:
    """A method's score on one test half, and how it got there (times, tuned values)."""

    quality: Quality
    details: dict[str, float | int | str]


def load_field(data: Path, name: str) -> Field:
    """A configuration by name: an FMD one, ``W2S_ch<c>`` or the held-out Hagen pair."""
    if name.startswith(W2S_CONFIG):
        channel = int(name.removeprefix(W2S_CONFIG))
        pair = train_backbone.w2s_pairs(data / "w2s")[1][channel]
        return Field(name, pair.noisy, pair.clean, repeats=False)
    if name == HAGEN_CONFIG:
        pair = train_backbone.hagen_pairs(data / "hagen")[2]
        crop = (slice(None), *train_backbone._central(pair.noisy.shape[1:], HAGEN_CROP))
        return Field(name, pair.noisy[crop], pair.clean[crop], repeats=False)
    fmd = data / "fmd_test"
    noisy_path, clean_path = fmd / "noisy" / f"{name}.tif", fmd / "clean" / f"{name}.tif"
    if not (noisy_path.is_file() and clean_path.is_file()):
        known = [*sorted(p.stem for p in (fmd / "noisy").glob("*.tif")), *DEFAULT_CONFIGS[3:]]
        raise SystemExit(f"{name}: not in {data} (configurations there: {', '.join(known)}).")
    noisy = tifffile.imread(noisy_path).astype(np.float32)
    clean = tifffile.imread(clean_path).astype(np.float32)
    if noisy.ndim != 3 or noisy.shape[1:] != clean.shape:
        raise SystemExit(
            f"{name}: expected noisy T x H x W and clean H x W; got {noisy.shape} and {clean.shape}."
        )
    return Field(name, noisy, np.broadcast_to(clean, noisy.shape), repeats=True)


def score(outputs: np.ndarray, clean: np.ndarray) -> Quality:
    """Quality of every output frame against its reference in ``clean``, averaged over the frames."""
    scores = [quality(frame, ref) for frame, ref in zip(outputs, clean, strict=True)]
    return Quality(*(float(np.mean(values)) for values in zip(*scores, strict=True)))


def tune(
    filter_: Callable[[np.ndarray, float], np.ndarray],
    frames: np.ndarray,
    clean: np.ndarray,
    grid: Sequence[float],
    label: str,
) -> float:
    """The grid value whose filtered ``frames`` have the best mean PSNR against ``clean``."""
    psnrs = [score(np.stack([filter_(f, value) for f in frames]), clean).psnr for value in grid]
    best = int(np.argmax(psnrs))
    if best in (0, len(grid) - 1):
        console.print(f"[yellow]  {label}: the best sigma is at the edge of the grid[/]")
    return float(grid[best])


def gaussian(frame: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(frame, sigma)


def bm3d_filter(frame: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(bm3d.bm3d(frame, sigma_psd=sigma), dtype=np.float32)


def intensity_range(image: np.ndarray) -> float:
    """The 0.1-99.9 percentile spread: the scale BM3D's noise sigma is tuned relative to."""
    low, high = np.percentile(image, [0.1, 99.9])
    return float(high - low) or 1.0


def tuned_filter(
    name: str,
    filter_: Callable[[np.ndarray, float], np.ndarray],
    grid: np.ndarray,
    tune_frames: np.ndarray,
    tune_clean: np.ndarray,
    test_frames: np.ndarray,
) -> tuple[np.ndarray, dict[str, float | int | str]]:
    """Tune ``filter_``'s sigma on the left half, then apply it to the test frames."""
    start = time.perf_counter()
    sigma = tune(filter_, tune_frames, tune_clean, grid, name)
    outputs = np.stack([filter_(f, sigma) for f in test_frames])
    return outputs, {"sigma": sigma, "seconds": time.perf_counter() - start}


@cache
def import_careamics() -> tuple[type, Callable[..., Any], Callable[..., Any]]:
    """CAREamics's ``CAREamist`` and its advanced CARE and N2V configuration factories.

    CAREamics 0.3.5 imports torchvision when it is imported, but uses it only in its LVAE models
    (``center_crop``) and its bioimage.io export, which CARE and N2V training and prediction never
    reach. No torchvision build fits a CPU torch 2.13 (PyPI's is built against CUDA torch, and
    CAREamics caps it at 0.26, made for torch 2.11), so where torchvision is not installed, empty
    stand-in modules let CAREamics import and are removed again at once. Lightning and torchmetrics
    are imported before them, so what they decide is available sees no torchvision.
    """
    stand_ins: dict[str, types.ModuleType] = {}
    if importlib.util.find_spec("torchvision") is None:
        import lightning.pytorch  # noqa: F401
        import torchmetrics  # noqa: F401

        names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
        stand_ins = {name: types.ModuleType(name) for name in names}
        stand_ins["torchvision"].__version__ = "not installed"
    sys.modules.update(stand_ins)
    try:
        from careamics import CAREamist
        from careamics.config import create_advanced_care_config, create_advanced_n2v_config
    finally:
        for name in stand_ins:
            del sys.modules[name]
    for logger in ("lightning.pytorch", "lightning.fabric", "careamics"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    return CAREamist, create_advanced_care_config, create_advanced_n2v_config


def cpu_budget_callback(minutes: float) -> Any:
    """A Lightning callback that ends training once this process has used ``minutes`` of CPU time."""
    from lightning.pytorch.callbacks import Callback

    class CpuBudget(Callback):  # type: ignore[misc]
        def on_train_start(self, trainer: Any, module: Any) -> None:
            self.end = time.process_time() + minutes * 60

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if time.process_time() >= self.end:
                trainer.should_stop = True

    return CpuBudget()


def careamics_method(
    field: Field, supervised: bool, minutes: float
) -> tuple[np.ndarray, dict[str, float | int | str]]:
    """CARE (supervised) or N2V trained for ``minutes`` on the left half, predicting the right half."""
    careamist, care_config, n2v_config = import_careamics()
    settings: dict[str, Any] = {
        "experiment_name": "bench_care" if supervised else "bench_n2v",
        "data_type": "array",
        "axes": "SYX",
        "patch_size": [CARE_PATCH, CARE_PATCH],
        "batch_size": CARE_BATCH,
        "num_epochs": 10**6,  # the time budget ends training
        "num_workers": 0,  # data loading in the training process, as livedenoise does
        "seed": SEED,
        "trainer_params": {"enable_model_summary": False},
    }
    if supervised:
        no_early_stop = {"monitor": "val_loss", "mode": "min", "patience": 10**6}
        config = care_config(**settings, early_stopping_params=no_early_stop)
    else:
        config = n2v_config(**settings)
    noisy = field.tune_noisy
    clean = field.tune_clean.copy() if supervised else None
    with tempfile.TemporaryDirectory(prefix="bench_quality_careamics_") as work_dir:
        model = careamist(
            config,
            work_dir=work_dir,
            enable_progress_bar=False,
            callbacks=[cpu_budget_callback(minutes)],
        )
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lightning's hints about loader workers and logging
            model.train(train_data=noisy, train_data_target=clean)
            seconds = time.process_time() - start
            steps = model.trainer.global_step
            predictions, _ = model.predict(field.test_noisy, axes="SYX", data_type="array")
    outputs = np.asarray(predictions[0], dtype=np.float32).reshape(field.test_noisy.shape)
    return outputs, {"train_seconds": seconds, "steps": steps}


def run_config(field: Field, minutes: float, backbone: Path) -> dict[str, Outcome]:
    """Every method that applies to the configuration, scored on its test half."""
    outcomes: dict[str, Outcome] = {}

    def record(
        method: str,
        outputs: np.ndarray,
        details: dict[str, float | int | str] | None = None,
        clean: np.ndarray = field.test_clean,
    ) -> None:
        q = score(outputs, clean)
        outcomes[method] = Outcome(q, details or {})
        extra = "".join(
            f", {k} {v:.3g}" if isinstance(v, float) else f", {k} {v}"
            for k, v in (details or {}).items()
        )
        console.print(f"  {method}: PSNR {q.psnr:.2f} dB, SSIM {q.ssim:.3f}{extra}")

    frames, tune_noisy, tune_clean = field.test_noisy, field.tune_noisy, field.tune_clean
    record("raw", frames)
    record(
        "Gaussian",
        *tuned_filter("Gaussian", gaussian, GAUSSIAN_SIGMAS, tune_noisy, tune_clean, frames),
    )
    bm3d_grid = BM3D_FRACTIONS * intensity_range(tune_noisy[0])
    record(
        "BM3D",
        *tuned_filter("BM3D", bm3d_filter, bm3d_grid, tune_noisy[:1], tune_clean[:1], frames),
    )
    record("CARE (CAREamics)", *careamics_method(field, True, minutes))
    record("N2V (CAREamics)", *careamics_method(field, False, minutes))

    model, card = load_model(backbone)
    record("livedenoise backbone", denoise(model, card.normalization, frames, window=1))

    # one fine-tuned model for single frames and windows of 4: trained and validated on both
    plan = replace(FinetuneSettings().plan, frames=(1, 4) if field.repeats else (1,))
    settings = FinetuneSettings(minutes=minutes, clock="cpu", seed=SEED, plan=plan)
    model, card = load_model(backbone)
    tuned_card, report = finetune_pairs(
        model,
        card,
        [ImagePair(field.name, tune_noisy, tune_clean)],
        f"bench-{field.name}",
        settings,
    )
    norm = tuned_card.normalization
    record("livedenoise fine-tuned", denoise(model, norm, frames, window=1), training(report))
    if field.repeats:
        record("livedenoise window 4", denoise(model, norm, frames, window=4))
        run_means(field, record, lambda mean: denoise(model, norm, mean, window=1))
        model, card = load_model(backbone)
        tuned_card, report = finetune_noisy(
            model, card, {field.name: tune_noisy}, f"bench-{field.name}-selfsup", settings
        )
        denoised = denoise(model, tuned_card.normalization, frames, window=1)
        record("livedenoise self-supervised", denoised, training(report))
    return outcomes


def training(report: Any) -> dict[str, float | int | str]:
    """What a fine-tuning report says about its training: seconds, steps, why it stopped."""
    result = report.result
    return {"train_seconds": result.seconds, "steps": result.steps, "stopped": result.stopped}


def run_means(
    field: Field,
    record: Callable[..., None],
    finetuned: Callable[[np.ndarray], np.ndarray],
) -> None:
    """The rows on the mean of the repeats: raw, Gaussian, BM3D and the fine-tuned model."""
    mean_tune, mean_test = field.tune_noisy.mean(0)[None], field.test_noisy.mean(0)[None]
    tune_clean, test_clean = field.tune_clean[:1], field.test_clean[:1]
    record("raw mean of 4", mean_test, clean=test_clean)
    record("livedenoise on mean of 4", finetuned(mean_test), clean=test_clean)
    gaussian_mean = tuned_filter(
        "Gaussian of mean", gaussian, GAUSSIAN_SIGMAS, mean_tune, tune_clean, mean_test
    )
    record("Gaussian of mean of 4", *gaussian_mean, clean=test_clean)
    mean_grid = BM3D_FRACTIONS * intensity_range(mean_tune[0])
    bm3d_mean = tuned_filter(
        "BM3D of mean", bm3d_filter, mean_grid, mean_tune, tune_clean, mean_test
    )
    record("BM3D of mean of 4", *bm3d_mean, clean=test_clean)


def mean_over(outcomes: Sequence[Outcome]) -> Quality:
    return Quality(*(float(np.mean(v)) for v in zip(*(o.quality for o in outcomes), strict=True)))


def summarise(
    results: dict[str, dict[str, Outcome]],
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    """Per method, the quality per configuration it ran on and their mean; and per configuration
    (and their mean) the backbone's PSNR minus the tuned Gaussian's."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for method in METHODS:
        ran = {name: outcomes[method] for name, outcomes in results.items() if method in outcomes}
        if ran:
            per_config = {name: o.quality._asdict() for name, o in ran.items()}
            summary[method] = {**per_config, "mean": mean_over(list(ran.values()))._asdict()}
    gains = {
        name: outcomes["livedenoise backbone"].quality.psnr - outcomes["Gaussian"].quality.psnr
        for name, outcomes in results.items()
    }
    return summary, {**gains, "mean": float(np.mean(list(gains.values())))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=list(DEFAULT_CONFIGS),
        help=f"configurations (default: {' '.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument(
        "--minutes", type=float, default=4.0, help="CPU-minutes of training per method"
    )
    parser.add_argument("--backbone", type=Path, default=Path("backbone-small"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke test: first configuration, {QUICK_MINUTES} min"
    )
    args = parser.parse_args()
    configs: list[str] = args.configs[:1] if args.quick else args.configs
    minutes: float = QUICK_MINUTES if args.quick else args.minutes

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # livedenoise's training follows it
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    command = shlex.join(["python", *sys.argv])
    split = "tune/train on the left half of each frame's columns, test on the right half"
    machine = (
        f"{platform.platform()}, {os.cpu_count()} CPUs, {args.threads} torch threads, "
        f"torch {torch.__version__}"
    )
    console.print(f"{command}\n{minutes:g} CPU-min per trained method; {split}; {machine}")

    fields = [load_field(args.data, name) for name in configs]
    results: dict[str, dict[str, Outcome]] = {}
    for i, field in enumerate(fields, 1):
        console.rule(f"{field.name} ({i}/{len(fields)}, {field.noisy.shape})")
        results[field.name] = run_config(field, minutes, args.backbone)

    summary, backbone_gain = summarise(results)
    table = Table(title="Denoising quality on the test halves: PSNR (dB) / SSIM")
    table.add_column("method")
    for name in [*configs, "mean"]:
        table.add_column(name, justify="right")
    for method, per_config in summary.items():
        cells = (per_config.get(name) for name in [*configs, "mean"])
        table.add_row(method, *(f"{q['psnr']:.2f} / {q['ssim']:.3f}" if q else "-" for q in cells))
    table.add_row(BACKBONE_GAIN, *(f"{backbone_gain[name]:+.2f}" for name in [*configs, "mean"]))
    table.caption = (
        f"{command}\n{minutes:g} CPU-min per trained method; {split}; mean: over the configurations a "
        f"method ran on\n{machine}"
    )
    console.print(table)

    if args.json:
        report = {
            "command": command,
            "minutes": minutes,
            "split": split,
            "machine": machine,
            "configs": configs,
            "quality": summary,
            "backbone_minus_gaussian_psnr": backbone_gain,
            "details": {
                name: {method: o.details for method, o in outcomes.items()}
                for name, outcomes in results.items()
            },
        }
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f"written: {args.json}")


if __name__ == "__main__":
    main()
