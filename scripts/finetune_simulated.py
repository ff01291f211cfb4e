"""Fine-tune the shipped backbone on pairs recorded through the simulated microscope.

    python scripts/finetune_simulated.py [--fields 24] [--minutes 8] [--out livedenoise/weights/sim-confocal-small]

This is the product's own calibration step (fine-tuning to the experiment at hand) done for the embedded simulated microscope:
record noisy/clean pairs of a few fields (line average 1-16 against 4 x 64), fine-tune the backbone on them,
save the child model with its lineage. The demo and the simulator-based calibration use the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from livedenoise.cli.train import TrainingBar
from livedenoise.model import load_model, save_model
from livedenoise.training import FinetuneSettings, finetune_pairs, microscope_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, default=Path("backbone-small"))
    parser.add_argument("--fields", type=int, default=24)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--lr", type=float, default=FinetuneSettings().lr)
    parser.add_argument(
        "--line-averages",
        default="1,2,3,4,6,8,12,16",
        help="noisy inputs at these line averages: the calibration ladder's range, so the model "
        "learns to keep detail that a few averages already show",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="fields differ from the backbone's (seed 0)"
    )
    parser.add_argument("--out", type=Path, default=Path("livedenoise/weights/sim-confocal-small"))
    args = parser.parse_args()
    console = Console()
    with console.status(f"recording {args.fields} pairs on the simulated microscope"):
        averages = [int(n) for n in args.line_averages.split(",")]
        pairs = microscope_pairs(args.fields, seed=args.seed, line_averages=averages)
    model, parent = load_model(args.backbone)
    trained_on = [
        f"simulated microscope: {args.fields} fields 256x256 (seed {args.seed}), line average "
        f"{args.line_averages} vs 4 x 64 (scripts/finetune_simulated.py)"
    ]
    with TrainingBar(console, f"fine-tuning {args.out.stem}") as events:
        card, report = finetune_pairs(
            model,
            parent,
            pairs,
            args.out.stem,
            FinetuneSettings(minutes=args.minutes, lr=args.lr),
            trained_on,
            events,
        )
    card = save_model(model, card, args.out)
    table = Table(title=f"{card.lineage}: held-out rows of the pairs")
    for col in ("", "PSNR dB", "SSIM"):
        table.add_column(col, justify="right")
    for name, q in report.quality.items():
        table.add_row(name, f"{q.psnr:.2f}", f"{q.ssim:.3f}")
    console.print(table)
    console.print(f"wrote {args.out}.safetensors (parent {card.parent})")


if __name__ == "__main__":
    main()
