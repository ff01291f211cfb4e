"""The property that controls averaging, the values its device accepts, and the setting calibration picks.

Averaging n frames recorded at the fastest value is what the device records at n times that value: a
scanner's line average n (n passes per line), or a camera's exposure n times as long. So one "average"
is the fastest value, and n averages are ``n x`` that value; the chosen setting is the fastest value the
device accepts at or above the breaking point plus the margin, and never slower than the user's own
reference protocol (with no benefit, calibration falls back to that protocol). The reference protocol is
at most the averages the repeats measure: a reference protocol beyond them could not be scored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pymmcore_plus import CMMCorePlus, PropertyType

from livedenoise.calibration.errors import CalibrationError

_EPS = 1e-9
DEFAULT_REFERENCE_AVERAGES = 16  # the usual protocol when the user names none (line average 16)


@dataclass(frozen=True)
class Control:
    """A numeric property where a larger value means more averaging, and the values it accepts.

    ``device`` is None for an offline calibration, where the control is simply the frames averaged.
    """

    device: str | None
    name: str
    base: float  # the fastest value: the repeats are recorded here, and it counts as one average
    integer: bool
    allowed: tuple[float, ...] = ()  # a device's list of discrete values, ascending
    limits: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        return f"{self.device}.{self.name}" if self.device else self.name

    def value(self, averages: float) -> float:
        return self.base * averages

    def averages(self, value: float) -> float:
        return value / self.base

    def text(self, value: float) -> str:
        """The value as it is written to the device and into the profile."""
        return str(round(value)) if self.integer else f"{value:g}"

    def supports(self, value: float) -> bool:
        if self.allowed:
            return any(math.isclose(value, a, rel_tol=_EPS) for a in self.allowed)
        if self.integer and not math.isclose(value, round(value), abs_tol=_EPS):
            return False
        low, high = self.limits or (0.0, math.inf)
        return value > 0 and low - _EPS <= value <= high + _EPS

    def at_or_above(self, value: float) -> float | None:
        """The fastest supported value not below ``value``; None if the device cannot go that far."""
        if self.allowed:
            return next((a for a in self.allowed if a >= value * (1 - _EPS)), None)
        low, high = self.limits or (0.0, math.inf)
        value = max(value, low)
        if self.integer:
            value = math.ceil(value - _EPS)
        return value if value <= high + _EPS else None

    def describe(self) -> str:
        """What the device accepts, for messages."""
        if self.allowed:
            return "allowed values " + ", ".join(self.text(a) for a in self.allowed)
        if self.limits:
            return f"limits {self.text(self.limits[0])}..{self.text(self.limits[1])}"
        return "any positive value"

    @contextmanager
    def held(self, core: CMMCorePlus, value: float) -> Iterator[None]:
        """Set the property to ``value`` for the duration, then restore what it was."""
        assert self.device is not None
        before = core.getProperty(self.device, self.name)
        set_number(core, self.device, self.name, self.text(value))
        try:
            yield
        finally:
            core.setProperty(self.device, self.name, before)

    def frame_ms(self, core: CMMCorePlus, value: float) -> float:
        """The frame time the camera reports (its exposure) with the property at ``value``."""
        with self.held(core, value):
            return float(core.getExposure())


def set_number(core: CMMCorePlus, device: str, prop: str, text: str) -> None:
    """Set a numeric property as a number of its own type: some devices (Python ones, a camera's
    exposure) take no text for a number."""
    kind = PropertyType(core.getPropertyType(device, prop)).to_python()
    core.setProperty(device, prop, int(float(text)) if kind is int else float(text))


def frames_control() -> Control:
    """The control of an offline calibration: how many recorded frames are averaged."""
    return Control(None, "frames averaged", 1.0, integer=True, limits=(1.0, math.inf))


def find_property(core: CMMCorePlus, spec: str | None) -> tuple[str, str]:
    """``DEVICE.PROPERTY`` or ``PROPERTY`` (of the camera) -> (device, property), checked on the core.

    With no ``spec``: the camera's ``LineAverage`` where it has one (scanners), else its ``Exposure``.
    """
    camera = core.getCameraDevice()
    devices = list(core.getLoadedDevices())
    head, dot, tail = (spec or "").partition(".")
    if dot and head in devices:
        device, prop = head, tail
    elif spec:
        device, prop = camera, spec
    else:
        scanner = bool(camera) and core.hasProperty(camera, "LineAverage")
        device, prop = camera, "LineAverage" if scanner else "Exposure"
    if not device:
        raise CalibrationError(
            "no camera is set on the core",
            option="property",
            hint="name the property that sets averaging as DEVICE.PROPERTY",
        )
    if not core.hasProperty(device, prop):
        names = ", ".join(str(p) for p in core.getDevicePropertyNames(device))
        unknown = f" and no device {head!r} is loaded ({', '.join(devices)})" if dot else ""
        raise CalibrationError(
            f"device {device} has no property {prop!r}{unknown}",
            option="property",
            value=spec,
            hint=f"name the property that sets averaging or exposure as DEVICE.PROPERTY "
            f"({device} has: {names})",
        )
    return device, prop


def device_control(core: CMMCorePlus, spec: str | None = None) -> Control:
    """The averaging control ``spec`` names on ``core``, with the values its device accepts.

    The fastest value is the smallest positive allowed value or the lower limit; a property with no
    positive lower bound (a camera's exposure, whose limit is 0) is recorded at its current value.
    """
    device, prop = find_property(core, spec)
    label = f"{device}.{prop}"
    if core.isPropertyReadOnly(device, prop):
        raise CalibrationError(f"{label} is read-only; calibration must be able to set it.")
    kind = PropertyType(core.getPropertyType(device, prop)).to_python()
    try:
        allowed = sorted(float(a) for a in core.getAllowedPropertyValues(device, prop))
        current = float(core.getProperty(device, prop))
    except ValueError:
        kind = str
    if kind not in (int, float):
        raise CalibrationError(
            f"{label} is not numeric; calibration needs a property where a larger number means more "
            "averaging (a line average, or an exposure time)."
        )
    limits = None
    if core.hasPropertyLimits(device, prop):
        limits = (
            core.getPropertyLowerLimit(device, prop),
            core.getPropertyUpperLimit(device, prop),
        )
    positive = [a for a in allowed if a > 0]
    if positive:
        base = positive[0]
    elif limits and limits[0] > 0:
        base = limits[0]
    elif current > 0:
        base = current
    else:
        raise CalibrationError(f"{label} is {current:g}; set it to the fastest useful value first.")
    return Control(device, prop, base, integer=kind is int, allowed=tuple(positive), limits=limits)


def reference_value(control: Control, reference: float | None, most: int) -> float:
    """The user's reference protocol as a value of the control; None: ``DEFAULT_REFERENCE_AVERAGES``,
    or ``most`` if the repeats measure fewer.

    Raises ``CalibrationError`` when the device does not accept it, or when it is more averages than
    the ``most`` the repeats measure (half of them: the other half is the reference image).
    """
    if reference is None:
        value = control.value(min(DEFAULT_REFERENCE_AVERAGES, most))
    else:
        value = float(reference)
    if not control.supports(value) or value < control.base:
        raise CalibrationError(
            f"reference {control.label}={control.text(value)} is not a setting the device accepts "
            f"at or above the fastest {control.text(control.base)} ({control.describe()})",
            option="reference",
            value=reference,
        )
    if reference_averages(control, value) > most:
        raise CalibrationError(
            f"reference {control.label}={control.text(value)} is "
            f"{control.averages(value):g} averages, more than the {most} these repeats measure "
            f"(half of them are inputs, half the reference image)",
            option="reference",
            value=reference,
            hint=f"record at least {2 * reference_averages(control, value)} repeats, or give a "
            "shorter reference protocol",
        )
    return value


def reference_averages(control: Control, value: float) -> int:
    """The frames whose raw average stands for the reference protocol (rounded up: never flattering)."""
    return math.ceil(control.averages(value) - _EPS)


def choose_value(control: Control, averages: float, reference: float) -> float:
    """The fastest supported value giving at least ``averages``, but never slower than ``reference``."""
    value = control.at_or_above(control.value(averages))
    return reference if value is None or value > reference else value
