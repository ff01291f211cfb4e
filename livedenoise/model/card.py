"""Saved models: safetensors weights plus a JSON model card, loaded without executing anything."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from livedenoise.errors import LivedenoiseError
from livedenoise.hashing import file_sha256
from livedenoise.model.cnnt import CNNT, build_model
from livedenoise.model.config import CNNTConfig
from livedenoise.paths import input_refusal, unwritable_folder

CARD_FORMAT = "livedenoise-model/1"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
"""The models installed with the package: found by bare name from any working folder."""


class ModelFileError(LivedenoiseError, ValueError):
    """A model file is missing, corrupt or does not fit its card, or a model cannot be saved where
    asked; the message names the file."""


PERCENTILE_SAMPLES = 1 << 16
"""Pixels per window and channel that the percentiles are taken over (a regular subsample beyond)."""


class Normalization(BaseModel):
    """How raw intensities map to the model's units: ``(x - offset) / scale``, and back.

    ``method="percentile"`` (what training writes): offset and scale come from each window itself, its
    ``percentiles`` (low, high) over all frames of the window, per channel. An image scaled by a and
    offset by b then gives the same output scaled and offset alike, so 8-, 12- and 16-bit data, any gain
    and any camera offset land in the same range (the percentile normalisation of CARE, Weigert et al.,
    Nat Methods 2018, taken of the noisy input because that is all inference has). The map is inverted
    with the same numbers, so the denoised frame is in the input's units.

    ``method="fixed"``: the card's ``offset`` and ``scale`` for every frame (hand-made and older models).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["fixed", "percentile"] = "fixed"
    offset: float = 0.0
    scale: float = Field(1.0, gt=0)
    percentiles: tuple[float, float] = (1.0, 99.5)

    @model_validator(mode="after")
    def _ordered(self) -> Normalization:
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles {self.percentiles} must satisfy 0 <= low < high <= 100")
        return self

    def window_affine(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) for ``[B, T, C, H, W]`` windows, shaped ``[B, 1, C, 1, 1]`` (float32).

        Percentiles of a flat window (all values within the range) fall back to its min and max, and a
        uniform window gets scale 1. A window holding NaN gets NaN, which the engine reports.
        """
        b, t, c, h, w = windows.shape
        if self.method == "fixed":
            shape = (1, 1, 1, 1, 1)
            return np.full(shape, self.offset, np.float32), np.full(shape, self.scale, np.float32)
        step = max(1, math.ceil(math.sqrt(t * h * w / PERCENTILE_SAMPLES)))
        sample = windows[..., ::step, ::step].swapaxes(1, 2).reshape(b, c, -1)
        low, high = np.percentile(sample, self.percentiles, axis=-1)
        flat = ~(high > low)
        if flat.any():
            low = np.where(flat, sample.min(axis=-1), low)
            high = np.where(flat, sample.max(axis=-1), high)
        scale = np.where(high > low, high - low, 1.0)
        shape = (b, 1, c, 1, 1)
        return low.reshape(shape).astype(np.float32), scale.reshape(shape).astype(np.float32)

    def fitted(self, window: np.ndarray) -> Normalization:
        """The fixed map this normalisation uses for one single-channel ``[T, H, W]`` window."""
        if self.method == "fixed":
            return self
        offset, scale = self.window_affine(np.asarray(window)[None, :, None])
        return Normalization(offset=float(offset.item()), scale=float(scale.item()))

    def forward(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self._offset()) / self.scale).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float32) * self.scale + self._offset()).astype(np.float32)

    def _offset(self) -> float:
        if self.method != "fixed":
            raise ValueError("a percentile normalisation is taken per window: use fitted(window)")
        return self.offset


class ModelCard(BaseModel):
    """What a model is, what it was trained on, where it came from, and the hash of its weights."""

    model_config = ConfigDict(extra="forbid")

    format: str = CARD_FORMAT
    name: str
    config: CNNTConfig
    normalization: Normalization = Normalization()
    trained_on: list[str] = Field(default_factory=list)
    parent: str | None = Field(
        None, description="name and weights hash of the model fine-tuned from"
    )
    tile: int | None = Field(
        None,
        ge=8,
        description="side (px) of the tiles the model was trained to denoise; instance-norm "
        "statistics are taken per tile, so inference tiles the same way (None: whole frames)",
    )
    weights_sha256: str = ""
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    metrics: dict[str, float] = Field(default_factory=dict)
    notes: str = ""

    @property
    def lineage(self) -> str:
        """How a child model names this one as its parent."""
        return f"{self.name}@{self.weights_sha256[:12]}"


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """The (weights, card) pair for a model given as its stem, its .safetensors or its .json."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def shipped_models() -> list[str]:
    """Names of the models installed with the package (``backbone-small``, ...)."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def find_model(path: str | Path) -> Path:
    """The stem of the model ``path`` names, for loading.

    A file at ``path`` (relative to the working folder) wins; otherwise a bare name such as
    ``backbone-small`` means the shipped model, so the defaults work from any folder. Anything else
    comes back unchanged, and loading it fails naming what the user typed.
    """
    weights, card = model_paths(path)
    stem = weights.with_suffix("")
    if weights.is_file() or card.is_file():
        return stem
    if stem.parent == Path() and stem.name in shipped_models():
        return SHIPPED_DIR / stem.name
    return stem


def check_model_output(
    path: str | Path, inputs: Iterable[tuple[str, Path]] = (), overwrite: bool = False
) -> None:
    """Refuse a place a model cannot be saved to, before the work that makes it (training).

    Raises ``ModelFileError`` for a shipped model's name (the new model would silently stand in for
    the shipped one wherever the bare name is used there), when its folder cannot be created or
    written, when its files would
    replace or lie inside one of ``inputs`` (``(role, path)``: the training data, the backbone), or
    when a model is there already and ``overwrite`` is not given. Its ``option`` is ``"out"`` (the
    place the caller chose) or ``"overwrite"``.
    """
    files = model_paths(path)
    if (name := files[0].stem).lower() in {shipped.lower() for shipped in shipped_models()}:
        raise ModelFileError(  # lower case too: some file systems do not tell case apart
            f"{name} is a shipped model's name: a model saved as {name} would be loaded instead of "
            "the shipped one in its folder",
            hint="choose another name",
            option="out",
            path=files[0],
        )
    if unwritable := unwritable_folder(files[0]):
        raise ModelFileError(
            f"cannot save a model in {unwritable[0]} ({unwritable[1]})",
            hint="choose another place",
            option="out",
            path=unwritable[0],
        )
    inputs = list(inputs)
    for file in files:
        if refused := input_refusal(file, inputs, "output"):
            raise ModelFileError(refused, option="out", path=file)
    if not overwrite and (found := [file for file in files if file.exists()]):
        raise ModelFileError(
            f"{found[0]} exists",
            hint="replace that model (overwrite) or choose another name",
            option="overwrite",
            path=found[0],
        )


def save_model(model: CNNT, card: ModelCard, path: str | Path) -> ModelCard:
    """Write weights and card; the card's hash is that of the weights' bytes.

    The card is read back as ``load_card`` reads it before anything is written, so a card the loader
    would refuse (a metric that is not a number) is never written: ModelFileError. Both files are
    readable as any file the user writes (the umask decides; safetensors' own writer makes weights
    owner-only, which another user of a shared microscope PC cannot load).
    """
    weights, card_path = model_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save(state, metadata={"format": CARD_FORMAT})
    digest = hashlib.sha256(data).hexdigest()
    card = card.model_copy(update={"config": model.cfg, "weights_sha256": digest})
    text = card.model_dump_json(indent=2) + "\n"
    try:
        _parse_card(text, card_path)
    except ModelFileError as err:
        raise ModelFileError(f"model not saved, it could not be loaded again: {err}") from None
    weights.parent.mkdir(parents=True, exist_ok=True)
    _write(weights, data)
    _write(card_path, text.encode())
    return card


def _write(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a new file beside it, renamed into place: a reader never sees
    half a file, and the file gets the permissions ``open`` gives (the umask's)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)  # a leftover would keep its own permissions
    try:
        with open(partial, "xb") as f:
            f.write(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_card(path: str | Path) -> ModelCard:
    """The card of the model ``path`` names (see ``find_model``)."""
    _, card_path = model_paths(find_model(path))
    if not card_path.is_file():
        raise ModelFileError(
            f"{card_path}: model card not found. A model is NAME.safetensors with NAME.json beside it "
            f"(create one with `livedenoise new`), or a shipped model: {', '.join(shipped_models())}."
        )
    return _parse_card(card_path.read_bytes(), card_path)


def _parse_card(text: str | bytes, card_path: Path) -> ModelCard:
    """The card in ``text`` (read from ``card_path``), checked; ModelFileError naming the file."""
    try:
        return ModelCard.model_validate(json.loads(text))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{card_path}: model card is not valid JSON ({err}).") from None
    except ValidationError as err:
        raise ModelFileError(f"{card_path}: model card has wrong fields:\n{err}") from None


def load_model(path: str | Path) -> tuple[CNNT, ModelCard]:
    """Load a model in eval mode, checking the weights' hash, keys and shapes against its card."""
    path = find_model(path)
    weights, _ = model_paths(path)
    card = load_card(path)
    if not weights.is_file():
        raise ModelFileError(
            f"{weights}: weights file not found (its card {weights.stem}.json is)."
        )
    digest = file_sha256(weights)
    if digest != card.weights_sha256:
        raise ModelFileError(
            f"{weights}: weights are corrupt or were replaced (sha256 {digest[:12]}..., card says "
            f"{card.weights_sha256[:12]}...). Copy the model again or re-export it."
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ModelFileError(f"{weights}: not a readable safetensors file ({err}).") from None
    model = build_model(card.config, seed=None)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        wrong = sorted(set(expected.items()) ^ set(found.items()))[:4]
        raise ModelFileError(
            f"{weights}: weights do not fit the architecture in its card (first differences: {wrong})."
        )
    model.load_state_dict(state)
    return model.eval(), card
