"""Getting a core ready for a run: property assignments, sequences from YAML, the built-in demo."""

from __future__ import annotations

import json
from pathlib import Path

import useq
import yaml
from pydantic import ValidationError
from pymmcore_plus import CMMCorePlus, PropertyType


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
        kind = PropertyType(core.getPropertyType(device, prop))
        if kind in (PropertyType.Integer, PropertyType.Float) and not _is_number(value):
            raise SetupError(f"--set {text!r}: {device}.{prop} takes a number, not {value!r}")
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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_sequence(path: str | Path) -> useq.MDASequence:
    """A useq MDA sequence from YAML or JSON, with the file named in any error.

    Keys that are not ``MDASequence`` fields are refused (useq would ignore them, and a misspelt
    plan would silently acquire less than asked).
    """
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: sequence file not found")
    try:
        data = (
            yaml.safe_load(path.read_text())
            if path.suffix != ".json"
            else json.loads(path.read_text())
        )
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise SetupError(f"{path}: not valid YAML/JSON ({_first_line(err)})") from None
    if not isinstance(data, dict):
        raise SetupError(
            f"{path}: a sequence is a mapping of plans, e.g. 'time_plan: {{loops: 3}}'"
        )
    if unknown := sorted(set(data) - set(useq.MDASequence.model_fields)):
        known = ", ".join(sorted(useq.MDASequence.model_fields))
        raise SetupError(f"{path}: unknown key(s) {', '.join(unknown)}; a sequence has {known}")
    if zero := _zero_sized(data):
        raise SetupError(f"{path}: {zero} must be 1 or more")
    try:
        sequence = useq.MDASequence.model_validate(data)
    except (ValidationError, ValueError) as err:
        raise SetupError(f"{path}: not a valid useq MDA sequence:\n{err}") from None
    check_sequence(sequence, str(path))
    return sequence


def _zero_sized(data: object, where: str = "") -> str | None:
    """The first plan size below 1 (useq reads a grid of 0 rows as a single position)."""
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{where}.{key}" if where else str(key)
            if key in ("rows", "columns") and isinstance(value, int) and value < 1:
                return name
            if found := _zero_sized(value, name):
                return found
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if found := _zero_sized(item, f"{where}[{i}]"):
                return found
    return None


def _first_line(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    if mark is not None:  # YAML: say where
        return f"{getattr(err, 'problem', None) or err}, line {mark.line + 1}, column {mark.column + 1}"
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _plans(sequence: useq.MDASequence) -> list[useq.MDASequence]:
    """The sequence and its stage positions' sub-sequences."""
    return [sequence, *(p.sequence for p in sequence.stage_positions if p.sequence is not None)]


def check_sequence(sequence: useq.MDASequence, name: str = "the sequence") -> None:
    """Refuse a sequence that acquires nothing (useq accepts one with no plans)."""
    if next(iter(sequence.model_copy(deep=True)), None) is None:
        raise SetupError(
            f"{name}: the sequence has no events; give a time_plan, z_plan, channels, "
            "stage_positions or grid_plan"
        )


def check_presets(core: CMMCorePlus, sequence: useq.MDASequence) -> None:
    """Refuse channels whose preset this microscope does not have, before anything is acquired."""
    for plan in _plans(sequence):
        for channel in plan.channels:
            group = channel.group
            if group not in core.getAvailableConfigGroups():
                raise SetupError(
                    f"channel {channel.config!r}: this microscope has no config group {group!r} "
                    f"(groups: {', '.join(core.getAvailableConfigGroups())})"
                )
            if channel.config not in core.getAvailableConfigs(group):
                raise SetupError(
                    f"channel {channel.config!r}: no such preset in group {group!r} (presets: "
                    f"{', '.join(core.getAvailableConfigs(group))})"
                )


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
