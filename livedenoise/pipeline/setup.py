"""Getting a core ready for a run: property assignments, sequences from YAML, the built-in demo."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import useq
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pymmcore_plus import CMMCorePlus, PropertyType

from livedenoise.acquisition.detector import BASE_PIXEL_UM
from livedenoise.errors import LivedenoiseError


class SetupError(LivedenoiseError, ValueError):
    """A setting or sequence the user gave cannot be applied; the message says what to do.

    A refused ``DEVICE.PROPERTY=VALUE`` setting names ``option="settings"`` (``open_microscope``'s
    parameter) and the setting as ``value``.
    """


def _refused(text: str, why: str) -> SetupError:
    return SetupError(f"setting {text!r}: {why}", option="settings", value=text)


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``DEVICE.PROPERTY=VALUE`` -> (device, property, value)."""
    target, sep, value = text.partition("=")
    device, dot, prop = target.partition(".")
    if not (sep and dot and device and prop):
        raise _refused(text, "write DEVICE.PROPERTY=VALUE, e.g. Detector.LineAverage=4")
    return device.strip(), prop.strip(), value.strip()


def apply_assignments(core: CMMCorePlus, assignments: list[str]) -> None:
    """Set each ``DEVICE.PROPERTY=VALUE``, refusing unknown devices, properties and invalid values."""
    devices = core.getLoadedDevices()
    for text in assignments:
        device, prop, value = parse_assignment(text)
        if device not in devices:
            raise _refused(text, f"no device {device!r}; devices: {', '.join(devices)}")
        props = core.getDevicePropertyNames(device)
        if prop not in props:
            raise _refused(
                text, f"{device} has no property {prop!r}; its properties: {', '.join(props)}"
            )
        if core.isPropertyReadOnly(device, prop):
            raise _refused(text, f"{device}.{prop} is read-only")
        kind = PropertyType(core.getPropertyType(device, prop))
        if kind in (PropertyType.Integer, PropertyType.Float) and not _is_number(value):
            raise _refused(text, f"{device}.{prop} takes a number, not {value!r}")
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
            raise _refused(text, f"value refused ({limits})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_sequence(path: str | Path) -> useq.MDASequence:
    """A useq MDA sequence from YAML or JSON, with the file named in any error.

    Keys that are not fields of the useq model they sit in are refused, at every level (useq would
    ignore them, and a misspelt plan key would silently acquire less than asked).
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
    if unknown := _unknown_keys(data, [useq.MDASequence]):
        raise SetupError(f"{path}: {unknown}")
    if zero := _zero_sized(data):
        raise SetupError(f"{path}: {zero} must be 1 or more")
    try:
        sequence = useq.MDASequence.model_validate(data)
    except (ValidationError, ValueError) as err:
        raise SetupError(f"{path}: not a valid useq MDA sequence:\n{err}") from None
    check_sequence(sequence, str(path))
    return sequence


def _models(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models a field accepts (through Optional, unions and tuples of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by every key that sets them: name and alias."""
    by_key = dict(model.model_fields)
    by_key.update({f.alias: f for f in model.model_fields.values() if f.alias})
    return by_key


def _unknown_keys(data: object, models: list[type[BaseModel]], where: str = "") -> str | None:
    """The first mapping in ``data`` with a key that none of ``models`` has, said with the keys allowed.

    A field that takes several kinds of plan (a grid from rows and columns, or from edges...) accepts
    a mapping that one kind fits; otherwise the kinds sharing the most keys name the allowed ones.
    """
    if isinstance(data, list):
        problems = (_unknown_keys(item, models, f"{where}[{i}]") for i, item in enumerate(data))
        return next((p for p in problems if p), None)
    if not isinstance(data, dict) or not models:
        return None
    found = None
    for fields in (f for f in map(_fields, models) if set(data) <= set(f)):
        problems = (
            _unknown_keys(value, _models(fields[key].annotation), _at(where, key))
            for key, value in data.items()
        )
        if (found := next((p for p in problems if p), None)) is None:
            return None
    if found is not None:
        return found
    shared = [len(set(data) & set(_fields(m))) for m in models]
    closest = [m for m, n in zip(models, shared, strict=True) if n == max(shared)]
    allowed = {key for m in closest for key in _fields(m)}
    unknown = ", ".join(_at(where, str(key)) for key in data if key not in allowed)
    known = sorted({name for m in closest for name in m.model_fields})
    return f"unknown key(s) {unknown}; {where or 'a sequence'} has {', '.join(known)}"


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


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


DEMO_FRAME = 256  # pixels, square
DEMO_ZOOM = 2
DEMO_SETTINGS = [
    f"Detector.FrameWidth={DEMO_FRAME}",
    f"Detector.FrameHeight={DEMO_FRAME}",
    "Detector.LineAverage=2",
    f"Detector.Zoom={DEMO_ZOOM}",
]


def demo_sequence() -> useq.MDASequence:
    """The built-in demo: a 2x2 tiled scan with overlap, two channels, a 3-slice z-stack, 2 timepoints.

    The grid carries the field of view at the demo's zoom and frame size: useq fixes tile positions
    the first time a sequence is iterated (the demo counts its frames first), so a field of view
    filled in later by the MDA runner would come too late and every tile would be the same field.
    """
    fov_um = DEMO_FRAME * BASE_PIXEL_UM / DEMO_ZOOM
    return useq.MDASequence(
        axis_order="tpgcz",
        time_plan={"interval": 0, "loops": 2},
        grid_plan={
            "rows": 2,
            "columns": 2,
            "overlap": 10,
            "fov_width": fov_um,
            "fov_height": fov_um,
        },
        channels=["FITC", "TRITC"],
        z_plan={"range": 2.0, "step": 1.0},
    )
