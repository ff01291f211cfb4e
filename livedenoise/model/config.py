"""The CNNT configuration: every size of the network is a validated field; presets are named configs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from livedenoise.errors import LivedenoiseError


class ModelConfigError(LivedenoiseError, ValueError):
    """A network size that does not exist or does not fit together (a preset's name, a channel count)."""


class CNNTConfig(BaseModel):
    """Sizes of a CNNT U-net (Rehman et al., Sci Rep 2024)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: int = Field(1, ge=1, description="image channels C of the input and output")
    unshuffle: Literal[1, 2] = Field(
        1,
        description="space-to-depth factor of the stem: 2 runs the U-net at half resolution on 2x2 "
        "pixel blocks (FFDNet, Zhang et al., IEEE TIP 2018), so a CPU computes wider convs on 4x fewer pixels",
    )
    stem_channels: int = Field(32, ge=1, description="width the pre-conv lifts the image to")
    block_channels: tuple[int, int, int] = Field(
        (32, 64, 128), description="channels of the full, 1/2 and 1/4 resolution levels"
    )
    cells_per_block: int = Field(4, ge=1, description="CNNT cells after each block's projection")
    heads: int = Field(8, ge=1, description="attention heads (channel groups)")
    mixer_ratio: int = Field(4, ge=1, description="hidden width of the conv mixer, times C")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm: Literal["instance"] = "instance"

    @model_validator(mode="after")
    def _heads_divide_channels(self) -> CNNTConfig:
        for c in self.block_channels:
            if c < 1 or c % self.heads:
                raise ValueError(
                    f"block channel count {c} must be a positive multiple of heads={self.heads}"
                )
        return self

    @property
    def stride(self) -> int:
        """The grid, in pixels, a frame is padded to: two U-net halvings after the stem's blocks."""
        return 4 * self.unshuffle


PRESETS: dict[str, CNNTConfig] = {
    # The paper's sizes: 32-wide stem, channels doubling per level, 4 cells, 8 heads.
    "paper": CNNTConfig(),
    # Same architecture cut to what a 2-core CPU can run live: narrow, one cell per level.
    "small": CNNTConfig(
        stem_channels=8, block_channels=(8, 16, 32), cells_per_block=1, heads=4, mixer_ratio=2
    ),
    # small's FLOPs spent at half resolution on 2x2 pixel blocks, twice as wide: 4x the weights and,
    # in ONNX Runtime on a 2-core CPU, 0.6x small's time per frame (scripts/bench_model.py).
    "fast": CNNTConfig(
        unshuffle=2,
        stem_channels=16,
        block_channels=(16, 32, 64),
        cells_per_block=1,
        heads=4,
        mixer_ratio=2,
    ),
}


def preset(name: str, **overrides: object) -> CNNTConfig:
    """A preset config, optionally with some fields changed (validated again); ModelConfigError
    for an unknown name (``option="preset"``) or a changed field the network cannot take."""
    if name not in PRESETS:
        raise ModelConfigError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}",
            option="preset",
            value=name,
        )
    try:
        return CNNTConfig.model_validate({**PRESETS[name].model_dump(), **overrides})
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(map(str, first["loc"])) or None
        raise ModelConfigError(
            f"{field or 'preset ' + name}: {first['msg']}", option=field, value=first.get("input")
        ) from None
