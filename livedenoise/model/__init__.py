"""The CNNT model: configuration, network, saved-model format and ONNX export."""

from livedenoise.model.card import (
    ModelCard,
    ModelFileError,
    Normalization,
    check_model_output,
    find_model,
    load_card,
    load_model,
    model_paths,
    save_model,
    shipped_models,
)
from livedenoise.model.cnnt import CNNT, build_model
from livedenoise.model.config import PRESETS, CNNTConfig, ModelConfigError, preset
from livedenoise.model.onnx_export import export_onnx

__all__ = [
    "CNNT",
    "PRESETS",
    "CNNTConfig",
    "ModelCard",
    "ModelConfigError",
    "ModelFileError",
    "Normalization",
    "build_model",
    "check_model_output",
    "export_onnx",
    "find_model",
    "load_card",
    "load_model",
    "model_paths",
    "preset",
    "save_model",
    "shipped_models",
]
