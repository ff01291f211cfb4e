"""Getting a core ready for a run: property assignments, sequences from YAML, the built-in demo."""

from __future__ import annotations

from pathlib import Path

import useq
from pydantic import ValidationError
from pymmcore_plus import CMMCorePlus


class SetupError(ValueError):
    """A setting or sequence the user gave cannot be applied; the message says what to do."""


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``DEVICE.PROPERTY=VALUE`` -> (device, property, value)."""
    target, sep, value = text.partition("=")
    device, dot, prop = target.partition(".")
    if not (sep and dot and device and prop):
        raise SetupError(
            f"--set {text!r}: write DEVICE.PROPERTY=VALUE, e.g. Detector.LineAverage=4"
        )
    return device.strip(), prop.strip(), value.strip()


def apply_assignments(core: CMMCorePlus, assignments: list[str]) -> None:
    """Set each ``DEVICE.PROPERTY=VALUE``, refusing unknown devices, properties and invalid values."""
    devices = core.getLoadedDevices()
    for text in assignments:
        device, prop, value = parse_assignment(text)
        if device not in devices:
            raise SetupError(f"--set {text!r}: no device {device!r}; devices: {', '.join(devices)}")
        props = core.getDevicePropertyNames(device)
        if prop not in props:
            raise SetupError(
                f"--set {text!r}: {device} has no property {prop!r}; see `livedenoise devices`"
            )
        if core.isPropertyReadOnly(device, prop):
            raise SetupError(f"--set {text!r}: {device}.{prop} is read-only")
        try:
            core.setProperty(device, prop, value)
        except Exception as err:  # MMCore reports invalid values as its own exception types
            allowed = core.getAllowedPropertyValues(device, prop)
            limits = (
                f"allowed: {', '.join(allowed)}"
                if allowed
                else (
                    f"limits {core.getPropertyLowerLimit(device, prop)}.."
                    f"{core.getPropertyUpperLimit(device, prop)}"
                    if core.hasPropertyLimits(device, prop)
                    else str(err)
                )
            )
            raise SetupError(f"--set {text!r}: value refused ({limits})") from None


def load_sequence(path: str | Path) -> useq.MDASequence:
    """A useq MDA sequence from YAML or JSON, with the file named in any error."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: sequence file not found")
    try:
        return useq.MDASequence.from_file(path)
    except (ValidationError, ValueError, OSError) as err:
        raise SetupError(f"{path}: not a valid useq MDA sequence:\n{err}") from None


def demo_sequence() -> useq.MDASequence:
    """The built-in demo: a 2x2 tiled scan with overlap, two channels, a 3-slice z-stack, 2 timepoints."""
    return useq.MDASequence(
        axis_order="tpgcz",
        time_plan={"interval": 0, "loops": 2},
        grid_plan={"rows": 2, "columns": 2, "overlap": 10},
        channels=["FITC", "TRITC"],
        z_plan={"range": 2.0, "step": 1.0},
    )


DEMO_SETTINGS = [
    "Detector.FrameWidth=256",
    "Detector.FrameHeight=256",
    "Detector.LineAverage=2",
    "Detector.Zoom=2",
]
