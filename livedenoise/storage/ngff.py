"""OME-NGFF 0.5 metadata for the images livedenoise writes (one resolution level each)."""

from __future__ import annotations

from collections.abc import Sequence

NGFF_VERSION = "0.5"

_AXIS_TYPES = {"t": ("time", "second"), "c": ("channel", None)}
_COLORS = ("00FF00", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def axes_metadata(axes: str) -> list[dict[str, str]]:
    """NGFF axes for a string such as ``"tczyx"``; spatial axes are in micrometres."""
    out = []
    for name in axes:
        kind, unit = _AXIS_TYPES.get(name, ("space", "micrometer"))
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
) -> dict:
    """The ``ome`` attributes of an image group whose single array is at ``0``.

    ``value_range`` seeds the viewer's contrast window (napari, Fiji) for each channel.
    """
    if len(scale) != len(axes):
        raise ValueError(f"scale {list(scale)} does not match axes {axes!r}")
    ome: dict = {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": axes_metadata(axes),
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [float(s) for s in scale]}
                        ],
                    }
                ],
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
