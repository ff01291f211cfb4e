"""How large a window fits in memory: the bound that makes CPU backends tile instead of swapping."""

from __future__ import annotations

import math
import os

from livedenoise.model import CNNTConfig
from livedenoise.model.cnnt import SIZE_MULTIPLE


def bytes_per_pixel(cfg: CNNTConfig, bytes_per_value: int = 4) -> int:
    """Estimated peak activation bytes per pixel of one frame.

    Counted in maps of the full-resolution width: the mixer's hidden and GELU maps, the cell input, its
    norm, q, k, v, the attention output and the encoder skip, with the allocator's slack. Fitted to the
    peak resident memory of torch eager on the CPU, measured for one frame at 256-512 px: 23-26 maps for
    `small` (this gives 24), 27-32 for `paper` (this gives 32).
    """
    width = max(cfg.block_channels[0], cfg.stem_channels)
    return bytes_per_value * width * (4 * cfg.mixer_ratio + 16)


def available_memory() -> int:
    """Memory the OS can still give this process (Linux ``MemAvailable``), else a quarter of RAM."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def max_side(cfg: CNNTConfig, frames: int, budget: int, bytes_per_value: int = 4) -> int:
    """The largest square frame side (a multiple of the U-net stride) whose window fits ``budget``."""
    pixels = budget / (frames * bytes_per_pixel(cfg, bytes_per_value))
    side = int(math.sqrt(max(pixels, 0)))
    return max(SIZE_MULTIPLE * 16, side - side % SIZE_MULTIPLE)
