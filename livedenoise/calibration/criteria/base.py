"""What every calibration criterion is: a pydantic model with a ``kind`` and four answers.

A criterion says what the denoised quality at n averages must reach (``meets``), says it in words
for the verdict (``target``, ``shortfall``) and the report (``description``), and gives the line a
plot judges the denoised curve against (``guide``). ``breaking.py`` adds what every criterion shares
(the residual check, the gain over the raw average, below the reference protocol).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from livedenoise.calibration.analysis import Measurement, Rung
from livedenoise.calibration.residual import STRUCTURE_LIMIT

Metric = Literal["psnr", "ssim"]


class Tolerance(BaseModel):
    """How far below its target (the raw reference protocol, or the denoised plateau) the denoised
    quality may fall, and how much of the sample's structure the model may change (``residual.py``)."""

    psnr_db: float = Field(0.5, gt=0)
    ssim: float = Field(0.01, gt=0)
    structure: float = Field(STRUCTURE_LIMIT, gt=0)


class Guide(NamedTuple):
    """What a plot shows the denoised curve being judged against: one point (a fixed target, drawn
    with its 95% interval and a level line) or a curve over the ladder (drawn dashed)."""

    label: str
    averages: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]


class Criterion(BaseModel, ABC):
    """What the denoised quality at n averages must reach. A subclass declares
    ``kind: Literal["its-name"] = "its-name"`` (the discriminator) and any parameters as fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    description: ClassVar[
        str
    ]  # the rule in one clause, for the report ("the denoised result at n must ...")
    help: ClassVar[str]  # the rule as a choice, for option help ("the fewest averages whose ...")
    shortfall: ClassVar[
        str
    ]  # why no rung qualifies when the quality falls short below the reference

    @abstractmethod
    def meets(self, rungs: Sequence[Rung], tolerance: Tolerance) -> np.ndarray:
        """Whether the denoised quality reaches the target at each rung (booleans, one per rung)."""

    @abstractmethod
    def target(
        self, rung: Rung, rungs: Sequence[Rung], tolerance: Tolerance, reference_averages: float
    ) -> str:
        """What the denoised result does from ``rung`` (the breaking point) up, with the evidence:
        it completes "from n averages up the denoised result ..."."""

    @abstractmethod
    def guide(self, measurement: Measurement, metric: Metric) -> Guide:
        """The target of ``metric`` over ``measurement``'s ladder, for a plot."""


def averages_text(n: float) -> str:
    """``1 average``, ``4 averages``: for verdicts."""
    return f"{n:g} average" + ("" if n == 1 else "s")
