"""ONNX export with dynamic batch, frames, height and width, and the model card as metadata.

The graph is the bare network (inputs already normalised, as livedenoise's engines feed it), or, with a
``Normalization``, the network between the card's per-window normalisation and its inverse
(``Normalised``), so any ONNX consumer gives and gets intensities in the input's units.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from livedenoise.model.cnnt import CNNT

if TYPE_CHECKING:
    from livedenoise.model.card import ModelCard, Normalization

INPUT_NAME = "frames"
OUTPUT_NAME = "denoised"
OPSET = 18
"""The engines' opset, and the lowest the torch exporter writes."""
OLDEST_IR_VERSION = 8
"""The ONNX file format the graph needs no newer than (no float8/int4 types, no local functions):
older onnxruntime, which refuses the exporter's IR version 10, loads it (1.15.0 checked)."""


def onnx_metadata(card: ModelCard, normalised: bool = False) -> dict[str, str]:
    """What a runtime needs beside the graph, as ONNX metadata (string) properties.

    Unless ``normalised`` (the graph holds the normalisation, ``normalization_in_graph`` "yes"), the
    graph takes ``(x - offset) / scale`` and its output maps back by the inverse: with
    ``normalization_method`` "fixed", offset and scale are ``normalization_offset`` and
    ``normalization_scale``; with "percentile", each window's ``normalization_percentiles`` (low, high,
    over all its frames, per channel) are offset and offset + scale. ``tile`` is the side (px) of the
    tiles the model denoises in ("" for whole frames).
    """
    return {
        "livedenoise.normalization_in_graph": "yes" if normalised else "no",
        "livedenoise.model": card.name,
        "livedenoise.weights_sha256": card.weights_sha256,
        "livedenoise.normalization_method": card.normalization.method,
        "livedenoise.normalization_percentiles": repr(list(card.normalization.percentiles)),
        "livedenoise.normalization_offset": repr(card.normalization.offset),
        "livedenoise.normalization_scale": repr(card.normalization.scale),
        "livedenoise.tile": "" if card.tile is None else str(card.tile),
        "livedenoise.channels": str(card.config.channels),
        "livedenoise.layout": "input and output [batch, frames, channels, height, width] float32",
    }


class Normalised(nn.Module):
    """The network between a card's normalisation and its inverse: frames in and out in raw units.

    Each window is mapped as livedenoise's engines map it (``Normalization.window_affine``), so the
    graph's output equals the engine's on a window it denoises whole (no tiling).
    """

    def __init__(self, net: CNNT, normalization: Normalization) -> None:
        super().__init__()
        self.net = net
        self.normalization = normalization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, scale = window_affine(x, self.normalization)
        return self.net((x - offset) / scale) * scale + offset


def window_affine(x: torch.Tensor, norm: Normalization) -> tuple[torch.Tensor, torch.Tensor]:
    """``Normalization.window_affine`` in torch ops that export to ONNX at any shape.

    The regular subsample keeps every ``step``-th row and column, ``step`` computed from the shape in
    float64 as numpy does; the others are set to +inf, so after sorting the kept values lead. The
    percentiles interpolate linearly between neighbouring ranks, as ``np.percentile`` does.
    """
    from livedenoise.model.card import PERCENTILE_SAMPLES  # card imports this module

    if norm.method == "fixed":
        return x.new_full((1, 1, 1, 1, 1), norm.offset), x.new_full((1, 1, 1, 1, 1), norm.scale)
    b, t, c, h, w = x.shape
    pixels = torch.tensor(t * h * w, dtype=torch.float64)
    step = torch.ceil(torch.sqrt(pixels / PERCENTILE_SAMPLES)).clamp(min=1).to(torch.int64)
    keep = (torch.arange(h) % step == 0)[:, None] & (torch.arange(w) % step == 0)[None, :]
    kept = keep.sum() * t
    values = torch.where(keep, x, torch.inf).transpose(1, 2).reshape(b, c, -1)
    ordered = torch.sort(values, dim=-1).values
    last = kept - 1
    ranks = torch.tensor(norm.percentiles, dtype=torch.float64) / 100 * last.to(torch.float64)
    below = torch.floor(ranks)
    fraction = (ranks - below).to(x.dtype)
    below = below.to(torch.int64)
    above = torch.minimum(below + 1, last)
    picked = ordered[..., torch.cat([below, above, torch.zeros_like(last)[None], last[None]])]
    low, high = (picked[..., :2] + (picked[..., 2:4] - picked[..., :2]) * fraction).unbind(-1)
    flat = ~(high > low)  # a window whose percentiles coincide: its min and max instead
    low = torch.where(flat, picked[..., 4], low)
    high = torch.where(flat, picked[..., 5], high)
    scale = torch.where(high > low, high - low, torch.ones_like(high))
    return low.reshape(b, 1, c, 1, 1), scale.reshape(b, 1, c, 1, 1)


def export_onnx(
    model: CNNT,
    path: str | Path,
    opset: int = OPSET,
    metadata: Mapping[str, str] | None = None,
    normalization: Normalization | None = None,
    ir_version: int | None = None,
) -> Path:
    """Write ``model`` as ONNX; one graph serves every B, T >= 1, H and W.

    ``metadata`` (e.g. ``onnx_metadata(card)``) is stored as the model's metadata properties. With
    ``normalization`` the graph takes and gives raw intensities (``Normalised``); ``ir_version`` stamps
    an older file format than the exporter's (e.g. ``OLDEST_IR_VERSION``); an ``opset`` below ``OPSET``
    restamps the exported graph (``lower_opset``). The example used for
    tracing has T=2 and H, W that are not multiples of the U-net's stride, so the exporter cannot
    specialise the padding or the attention scale to a single shape.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    graph = model if normalization is None else Normalised(model, normalization)
    example = torch.rand(1, 2, model.cfg.channels, 37, 45)
    dims = {
        0: torch.export.Dim("batch", min=1),
        1: torch.export.Dim("frames", min=1),
        3: torch.export.Dim("height", min=1),
        4: torch.export.Dim("width", min=1),
    }
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)  # "torchvision is not installed": not about this graph
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not about this graph
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({k: v for k, v in dims.items()},),
            opset_version=max(opset, OPSET),
            verbose=False,
        )
    registry_log.setLevel(level)
    assert program is not None  # None is the legacy (dynamo=False) exporter's return
    for node in program.model.graph.all_nodes():
        # the exporter's per-node provenance (this machine's source paths, stack traces): half the file
        node.metadata_props.clear()
    program.model.metadata_props.update(metadata or {})
    if ir_version is not None:
        program.model.ir_version = ir_version
    program.save(str(path))
    if opset < OPSET:
        lower_opset(path, opset)
    return path


_NEW_IN_18 = {"Pad": {"axes"}, "Resize": {"antialias", "axes", "keep_aspect_ratio_policy"}}
"""What opset 18 added to the operators this network uses; a node that leaves them out (or at their
defaults) is the same operator at opset 17."""
_DEFAULTS_18 = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}


def lower_opset(path: Path, opset: int) -> None:
    """Restamp the ONNX graph at ``path`` with the older ``opset`` (17), exactly, or raise ValueError.

    onnxruntime before 1.14 (deepImageJ's ONNX engine) refuses opset 18, and onnx's own version
    converter has no 18 -> 17 adapter for Pad. No conversion is needed where every node means the same at
    ``opset``: an operator unchanged since then, or a Pad/Resize that uses nothing opset 18 added (its
    default attributes are dropped, as older runtimes reject unknown ones). Anything else raises.
    """
    import onnx  # here, as the exporter does: importing the model package stays light
    from onnx import defs, helper

    graph = onnx.load(str(path))
    (default,) = [o for o in graph.opset_import if o.domain in ("", "ai.onnx")]
    for node in graph.graph.node:
        if defs.get_schema(node.op_type, default.version).since_version <= opset:
            continue
        added = _NEW_IN_18.get(node.op_type) if opset == 17 and default.version == 18 else None
        if added is None:
            raise ValueError(
                f"{node.op_type} changed after opset {opset}; the graph cannot be lowered"
            )
        for attribute in list(node.attribute):
            value = helper.get_attribute_value(attribute)
            if attribute.name in added and _DEFAULTS_18.get(attribute.name) == value:
                node.attribute.remove(attribute)
            elif attribute.name in added:
                raise ValueError(f"{node.op_type} uses {attribute.name}, new in opset 18")
        if node.op_type == "Pad" and len(node.input) > 3 and node.input[3]:
            raise ValueError("Pad uses axes, new in opset 18")
    default.version = opset
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
