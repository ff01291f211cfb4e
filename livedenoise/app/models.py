"""Saved models: what a model menu offers, and exporting one for an inference backend (the work
behind ``livedenoise export``)."""

from __future__ import annotations

from pathlib import Path

from livedenoise.inference import load_engine
from livedenoise.inference.tensorrt_engine import TensorRTBackend
from livedenoise.model import export_onnx, load_model, model_paths, shipped_models
from livedenoise.model.onnx_export import onnx_metadata


def model_choices(folder: Path = Path("engines")) -> list[str]:
    """What a model menu offers: the shipped models by name, then the user's own in ``folder``
    (``engines/NAME``, a card beside its weights), each as ``find_model`` takes it."""
    own = [card.with_suffix("") for card in sorted(folder.glob("*.json"))]
    return [*shipped_models(), *(str(m) for m in own if m.with_suffix(".safetensors").is_file())]


def export_to_onnx(model: str | Path, out: Path | None = None) -> Path:
    """One ONNX graph with dynamic batch, frames, height and width; returns where it was written.

    The file's metadata properties carry the model's normalisation and tile size (``onnx_metadata``),
    which a runtime outside livedenoise applies around the graph. ``out`` defaults to the model's
    name with ``.onnx`` in the working folder (beside a model file given by path). Raises
    ``ModelFileError`` for a missing or broken model.
    """
    net, card = load_model(model)
    target = out or model_paths(Path(model))[0].with_suffix(".onnx")
    export_onnx(net, target, metadata=onnx_metadata(card))
    return target


def build_tensorrt(
    model: str | Path, frame_size: tuple[int, int], window: int, precision: str
) -> tuple[str, Path]:
    """Build (or find in the engine cache) a TensorRT engine for this GPU and acquisition shape.

    Returns the engine's description and its file. Raises ``ModelFileError`` and ``BackendError``
    (no NVIDIA GPU, TensorRT missing, a failed build) with what to do.
    """
    engine = load_engine(
        model, "tensorrt", window=window, frame_size=frame_size, precision=precision
    )
    assert isinstance(engine.backend, TensorRTBackend)  # what the name "tensorrt" builds
    return engine.describe(), engine.backend.path
