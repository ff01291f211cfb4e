"""Soak test: live mode on the simulated microscope for a long time, printing memory every minute.

    python scripts/soak.py --minutes 60            # 512x512, line average 4, real-time scanning

Memory must stay flat: statistics and per-frame records are fixed-size (the store keeps every frame's
timings on disk). Prints one row per minute (resident memory, frames acquired, denoised, skipped, lost,
store size) and, at the end, the growth of resident memory after the first five minutes.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from livedenoise.app import Acquisition, RunRequest, open_microscope
from livedenoise.pipeline.live import Policy


def rss_mib() -> float:
    """Resident memory of this process (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--size", type=int, default=512, help="frame width and height (px)")
    parser.add_argument("--line-average", type=int, default=4)
    parser.add_argument("--model", default="sim-confocal-small")
    parser.add_argument("--backend", default="onnxruntime")
    args = parser.parse_args()
    console = Console(width=120)
    settings = [
        f"Detector.FrameWidth={args.size}",
        f"Detector.FrameHeight={args.size}",
        f"Detector.LineAverage={args.line_average}",
        "Detector.TimeScale=1",
        "Detector.Photobleaching=Off",
    ]
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    out = folder / "soak.ome.zarr"
    request = RunRequest(model=args.model, backend=args.backend, policy=Policy.live, out=out)
    acquisition = Acquisition(open_microscope(None, settings), request)
    table = Table(
        title=f"soak: live mode, {args.size}x{args.size}, line average {args.line_average}"
    )
    for column in ("minute", "RSS MiB", "acquired", "denoised", "skipped", "lost", "store MiB"):
        table.add_column(column, justify="right")
    rows: list[tuple[float, float]] = []
    try:
        acquisition.start_live()
        start = time.monotonic()
        minute = 0
        while minute < args.minutes:
            minute += 1
            time.sleep(max(0.0, start + 60 * minute - time.monotonic()))
            assert acquisition.pipeline is not None
            s = acquisition.pipeline.stats.summary()
            rss = rss_mib()
            rows.append((minute, rss))
            row = (minute, rss, s.acquired, s.denoised, s.skipped, s.dropped, folder_mib(out))
            console.print(" ".join(f"{v:.0f}" if isinstance(v, float) else str(v) for v in row))
            table.add_row(*(f"{v:.0f}" if isinstance(v, float) else str(v) for v in row))
        summary = acquisition.stop()
    finally:
        acquisition.close()
        shutil.rmtree(folder, ignore_errors=True)
    console.print(table)
    settled = [rss for minute, rss in rows if minute >= 5] or [rss for _, rss in rows]
    growth = (settled[-1] - settled[0]) / settled[0]
    console.print(
        f"RSS after 5 min {settled[0]:.0f} MiB, at the end {settled[-1]:.0f} MiB: growth "
        f"{growth:+.1%}; run ended {summary.ended if summary else 'without a summary'}, "
        f"error: {summary.error if summary else acquisition.last_error}"
    )


if __name__ == "__main__":
    main()
