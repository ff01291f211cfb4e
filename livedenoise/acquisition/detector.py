"""The scanning detector: a point-scanning confocal seen by Micro-Manager as a camera.

A frame is scanned line by line: each line takes one line period (half of it when scanning in both
directions) and is repeated `LineAverage` times, then the scanner flies back. That time is really
spent (scaled by `TimeScale`) and reported as the camera's exposure. Each pixel collects photons for
its dwell time, in proportion to the local fluorophore density, the laser power and the dwell, then
goes through the detector chain of `noise.py`. The light also bleaches what it scans.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice

from livedenoise.acquisition.dose import DoseMap
from livedenoise.acquisition.noise import DetectorModel, average_passes
from livedenoise.acquisition.rig import RigMember, choices, whole
from livedenoise.acquisition.sample import FLUOROPHORES, Sample

BASE_PIXEL_UM = 0.2  # pixel size at zoom 1
ZOOMS = (1, 2, 4)
_FILL = 0.8  # fraction of a line during which pixels are recorded (the rest is turnaround)
_PHOTON_RATE = 2.5  # detected photons per us per mW from unit fluorophore density


@lru_cache(maxsize=4)
def _sample(seed: int) -> Sample:
    """One world per seed, shared by every detector using it (its render cache included)."""
    return Sample(seed)


class ScanningDetector(RigMember, CameraDevice):
    """Point-scanning detector (PMT) of a simulated laser-scanning confocal microscope."""

    ROLE = "detector"

    def __init__(self) -> None:
        super().__init__()
        s = self.setting
        s("LineAverage", 1, kind=whole, limits=(1, 64))
        s("LinePeriod_us", 125.0, limits=(50, 10_000))
        s("Bidirectional", "Off", kind=str, allowed=choices("Off", "On"))
        s("Flyback_ms", 1.0, limits=(0, 100))
        s("LaserPower_mW", 5.0, limits=(0, 50))
        s("Gain", 20.0, limits=(0.1, 200))  # mean ADU per detected photon
        s("ExcessNoiseFactor", 1.3, limits=(1, 3))
        s("Offset", 100.0, limits=(0, 1000))
        s("ReadNoise_ADU", 3.0, limits=(0, 100))
        s("BitDepth", 12, kind=whole, allowed=choices(8, 12, 16))
        s("FrameWidth", 512, kind=whole, limits=(16, 2048), effect=self._drop_roi)
        s("FrameHeight", 512, kind=whole, limits=(16, 2048), effect=self._drop_roi)
        s("Zoom", 1, kind=whole, allowed=choices(*ZOOMS))
        s("Seed", 0, kind=whole, limits=(0, 2**31 - 1), effect=self._mount)
        s("TimeScale", 1.0, limits=(0, 10))
        s("Photobleaching", "On", kind=str, allowed=choices("Off", "On"))
        s("BleachHalfDose_uJ_per_um2", 20.0, limits=(0.01, 1e6))
        s("DriftX_um_per_s", 0.0, limits=(-10, 10))
        s("DriftY_um_per_s", 0.0, limits=(-10, 10))
        # Fault injection, as on a real rig whose PMT trips: after this many frames every scan
        # raises (0 = never). Lets a user rehearse what a failing device does to a run.
        s("FailAfterFrames", 0, kind=whole, limits=(0, 2**31 - 1))
        self.register_property(
            "PixelDwell_us", getter=ScanningDetector.rounded_dwell_us, property_type=float
        )
        self._roi: tuple[int, int, int, int] | None = None
        self._mount(0)

    # ---- Micro-Manager camera API ----------------------------------------------------------

    def get_exposure(self) -> float:
        """The frame time in ms: what a scanner's 'exposure' is."""
        return self.frame_ms()

    def set_exposure(self, exposure: float) -> None:
        """Choose the line average whose frame time is nearest to `exposure` ms."""
        per_pass = self.frame_ms(passes=1) - self.value("Flyback_ms")
        passes = round((exposure - self.value("Flyback_ms")) / per_pass)
        self.set_property_value("LineAverage", min(max(passes, 1), 64))
        self.core.events.propertyChanged.emit(
            self.get_label(), "LineAverage", str(self.value("LineAverage"))
        )

    def shape(self) -> tuple[int, int]:
        _, _, w, h = self.get_roi()
        return h, w

    def dtype(self) -> DTypeLike:
        return np.uint8 if self.value("BitDepth") == 8 else np.uint16

    def get_roi(self) -> tuple[int, int, int, int]:
        return self._roi or (0, 0, self.value("FrameWidth"), self.value("FrameHeight"))

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        """Scan only part of the frame (fewer lines: a shorter frame time)."""
        full_w, full_h = self.value("FrameWidth"), self.value("FrameHeight")
        if x < 0 or y < 0 or width < 1 or height < 1 or x + width > full_w or y + height > full_h:
            raise ValueError(f"ROI {x, y, width, height} does not fit the {full_w}x{full_h} frame")
        self._roi = (x, y, width, height)

    def clear_roi(self) -> None:
        self._roi = None

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping]:
        """Scan frames back to back, each taking its frame time (times TimeScale) of wall time."""
        due = time.perf_counter()
        for _ in range(n) if n is not None else itertools.count():
            start = max(due, time.perf_counter())
            frame, meta = self.scan()
            due = start + meta["FrameTime_ms"] / 1000 * self.value("TimeScale")
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            get_buffer(frame.shape, frame.dtype)[:] = frame
            yield meta

    # ---- the physics --------------------------------------------------------------------

    def line_us(self) -> float:
        """Time per recorded line: a bidirectional scan records on the way back too."""
        return self.value("LinePeriod_us") / (2 if self.value("Bidirectional") == "On" else 1)

    def dwell_us(self) -> float:
        """Time the beam spends on one pixel in one pass."""
        return self.line_us() * _FILL / self.value("FrameWidth")

    def rounded_dwell_us(self) -> float:
        """``dwell_us`` as the PixelDwell_us property shows it (to the picosecond)."""
        return round(self.dwell_us(), 6)

    def frame_ms(self, passes: int | None = None) -> float:
        """Lines x line average x line time, plus the flyback."""
        passes = self.value("LineAverage") if passes is None else passes
        lines = self.get_roi()[3]
        return lines * passes * self.line_us() / 1000 + self.value("Flyback_ms")

    def scan(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Record one frame at the current stage position, focus and laser line."""
        v = self.value
        self._scans += 1
        if 0 < v("FailAfterFrames") < self._scans:
            raise RuntimeError(
                "detector fault: the PMT stopped responding (simulated by FailAfterFrames)"
            )
        passes, power, pixel = v("LineAverage"), v("LaserPower_mW"), BASE_PIXEL_UM / v("Zoom")
        frame_ms, dwell = self.frame_ms(), self.dwell_us()
        x, y, z, channel, lit = self._optics()
        # the sample drifts under the stage; the field's centre in sample coordinates:
        rx, ry, w, h = self.get_roi()
        full_w, full_h = v("FrameWidth"), v("FrameHeight")
        cx = x - v("DriftX_um_per_s") * self._clock_s + (rx + (w - full_w) / 2) * pixel
        cy = y - v("DriftY_um_per_s") * self._clock_s + (ry + (h - full_h) / 2) * pixel
        photons = np.zeros((h, w), np.float32)
        if lit and power > 0:
            density = self._world.render(channel, cx, cy, pixel, (h, w), z)
            doses = self._doses[channel]
            if v("Photobleaching") == "On":
                xs = cx + (np.arange(w) - (w - 1) / 2) * pixel
                ys = cy + (np.arange(h) - (h - 1) / 2) * pixel
                density = density * 0.5 ** (doses.at(xs, ys) / v("BleachHalfDose_uJ_per_um2"))
            photons = density * (_PHOTON_RATE * power * dwell)
            dose = power * dwell * passes * 1e-3 / pixel**2  # mW x us = 1e-3 uJ, per pixel area
            half_w, half_h = w * pixel / 2, h * pixel / 2
            doses.add(cx - half_w, cy - half_h, cx + half_w, cy + half_h, dose)
        det = DetectorModel(
            gain=v("Gain"),
            excess_noise=v("ExcessNoiseFactor"),
            read_noise=v("ReadNoise_ADU"),
            offset=v("Offset"),
            bit_depth=v("BitDepth"),
        )
        frame = average_passes(photons, passes, det, self._rng)
        meta = {
            "FrameTime_ms": frame_ms,
            "LineAverage": passes,
            "PixelDwell_us": dwell,
            "SampleTime_s": self._clock_s,
        }
        self._clock_s += frame_ms / 1000
        return frame, meta

    def _optics(self) -> tuple[float, float, float, int, bool]:
        """Stage x, y, focus z, laser line and whether light reaches the sample."""
        xy, focus, laser, shutter = (self.peer(r) for r in ("xy", "z", "laser", "shutter"))
        x, y = xy.physical_position() if xy else (0.0, 0.0)
        z = focus.physical_position() if focus else 0.0
        channel = laser.get_state() % len(FLUOROPHORES) if laser else 0
        return x, y, z, channel, shutter.get_open() if shutter else True

    def _mount(self, seed: int) -> None:
        """Put a fresh sample of this seed on the stage: new world, no dose, clock and noise reset."""
        self._world = _sample(seed)
        self._doses = [DoseMap() for _ in FLUOROPHORES]
        self._rng = np.random.default_rng(seed)
        self._clock_s = 0.0
        self._scans = 0

    def _drop_roi(self, _: int) -> None:
        self._roi = None
