"""OME-NGFF 0.5 metadata for the images livedenoise writes (one resolution level each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NGFF_VERSION = "0.5"

_AXIS_TYPES = {"t": ("time", "second"), "c": ("channel", None)}
_COLORS = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def axes_metadata(axes: str, units: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """NGFF axes for a string such as ``"tczyx"``.

    ``units`` maps axis names to units and is taken as it is (an axis it leaves out has none); without
    it, time is in seconds and space in micrometres.
    """
    out = []
    for name in axes:
        kind, default = _AXIS_TYPES.get(name, ("space", "micrometer"))
        unit = default if units is None else units.get(name)
        axis = {"name": name, "type": kind}
        if unit:
            axis["unit"] = unit
        out.append(axis)
    return out


def image_attrs(
    name: str,
    axes: str,
    scale: Sequence[float],
    channel_names: Sequence[str] | None = None,
    value_range: tuple[float, float] = (0.0, 65535.0),
    units: Mapping[str, str] | None = None,
    translation: Sequence[float] | None = None,
) -> dict:
    """The ``ome`` attributes of an image group whose single array is at ``0``.

    ``scale`` is one step and ``translation`` (optional) the first pixel's position along each axis,
    in the axes' units. ``channel_names`` adds the ``omero`` channel list, whose contrast window
    (napari, Fiji) starts at ``value_range``; ``units`` as in ``axes_metadata``. Raises ValueError if
    ``scale`` or ``translation`` does not match ``axes``.
    """
    for what, values in (("scale", scale), ("translation", translation)):
        if values is not None and len(values) != len(axes):
            raise ValueError(f"{what} {list(values)} does not match axes {axes!r}")
    transforms: list[dict] = [{"type": "scale", "scale": [float(s) for s in scale]}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": [float(t) for t in translation]})
    ome: dict = {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": axes_metadata(axes, units),
                "datasets": [{"path": "0", "coordinateTransformations": transforms}],
            }
        ],
    }
    if channel_names:
        lo, hi = value_range
        ome["omero"] = {
            "channels": [
                {
                    "label": str(label),
                    "color": _COLORS[i % len(_COLORS)],
                    "active": True,
                    "window": {"start": lo, "end": hi, "min": lo, "max": hi},
                }
                for i, label in enumerate(channel_names)
            ],
        }
    return {"ome": ome}


def set_windows(ome: dict, windows: Mapping[int, tuple[float, float]]) -> None:
    """Set the ``omero`` contrast window (napari, Fiji) of each channel ``c`` of ``windows`` to its
    ``(low, high)``, in the ``ome`` attributes of an image; other channels keep theirs."""
    for c, channel in enumerate(ome.get("omero", {}).get("channels", [])):
        if c in windows:
            lo, hi = windows[c]
            channel["window"].update(start=lo, end=hi, min=lo, max=hi)


def json_object(value: object) -> Mapping[str, Any]:
    """A JSON object read from Zarr attributes; TypeError for anything else (a store not laid out as
    expected)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, found {type(value).__name__}")
    return value
