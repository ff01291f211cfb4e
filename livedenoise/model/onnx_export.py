"""ONNX export with dynamic batch, frames, height and width, and the model card as metadata."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from livedenoise.model.cnnt import CNNT

if TYPE_CHECKING:
    from livedenoise.model.card import ModelCard

INPUT_NAME = "frames"
OUTPUT_NAME = "denoised"
OPSET = 18


def onnx_metadata(card: ModelCard) -> dict[str, str]:
    """What a runtime needs beside the graph, as ONNX metadata (string) properties.

    The graph takes ``(x - offset) / scale`` and its output maps back by the inverse: with
    ``normalization_method`` "fixed", offset and scale are ``normalization_offset`` and
    ``normalization_scale``; with "percentile", each window's ``normalization_percentiles`` (low, high,
    over all its frames, per channel) are offset and offset + scale. ``tile`` is the side (px) of the
    tiles the model denoises in ("" for whole frames).
    """
    return {
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


def export_onnx(
    model: CNNT,
    path: str | Path,
    opset: int = OPSET,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` as ONNX; one graph serves every B, T >= 1, H and W.

    ``metadata`` (e.g. ``onnx_metadata(card)``) is stored as the model's metadata properties. The
    example used for tracing has T=2 and H, W that are not multiples of the U-net's stride, so the
    exporter cannot specialise the padding or the attention scale to a single shape.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
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
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({k: v for k, v in dims.items()},),
            opset_version=opset,
            verbose=False,
        )
    registry_log.setLevel(level)
    program.model.metadata_props.update(metadata or {})
    program.save(str(path))
    return path


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (model weights, ONNX graphs): the identity that caches are keyed by."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
