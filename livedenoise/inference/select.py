"""Building an engine from a saved model and a backend name, and what ``auto`` picks and why.

Backends are found by name in ``livedenoise.backends.REGISTRY``; each validates its own options.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from livedenoise.backends import AUTO, REGISTRY, backend_names
from livedenoise.inference.base import Backend, BackendError, Engine, EngineRequest
from livedenoise.inference.cache import default_cache_dir
from livedenoise.model import load_model

log = logging.getLogger(__name__)

PROBE_SIZE = 128  # side of the window auto times each backend on


def backend_class(name: str) -> type[Backend]:
    """The registered class of the backend ``name``; BackendError for a name not registered or a
    backend whose module cannot be imported (its package missing)."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise BackendError(
            f"unknown backend {name!r}; choose one of {', '.join(backend_names())}.",
            option="backend",
            value=name,
        )
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module), attribute)
        except ImportError as err:
            raise BackendError(f"the {name} backend cannot be loaded: {err}.") from err
        assert isinstance(entry, type) and issubclass(entry, Backend), REGISTRY[name]
    return entry


def build_backend(name: str, request: EngineRequest, options: Mapping[str, Any]) -> Backend:
    """The backend ``name`` for ``request``, with ``options`` checked against its options model."""
    model = backend_class(name).Options
    try:
        checked = model.model_validate(dict(options))
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        if first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            problem = f"the {name} backend has no option {field!r} (its options: {known})"
        else:
            problem = f"the {name} backend's option {field}: {first['msg']}"
        raise BackendError(problem + ".", option=field, value=first.get("input")) from None
    return checked.build(request)


def load_engine(
    model: str | Path,
    backend: str = AUTO,
    *,
    window: int = 8,
    frame_size: tuple[int, int] = (512, 512),
    onnx: Path | None = None,
    cache_dir: Path | None = None,
    memory_budget: int | None = None,
    tta: bool = False,
    **options: Any,
) -> Engine:
    """An engine for a saved model (NAME, NAME.safetensors or NAME.json) on ``backend``.

    ``window`` and ``frame_size`` describe the live acquisition: TensorRT builds its profile for them and
    ``auto`` times backends on a window of that length. ``onnx`` is an existing export of this model
    (otherwise one is exported once into the cache); ``memory_budget`` (bytes) bounds a call's
    activations, beyond which frames are tiled. ``tta``: each window denoised in its 8
    orientations and averaged (``Engine.tta``; 8x the time, offline only). ``options`` are the
    backend's own (its ``Options``): ``precision`` (tensorrt, cuda: fp16, bf16, fp32), ``device`` (torch, onnxruntime; default CUDA
    when present; torch runs float32), ``compile`` (torch, cuda: ``torch.compile``), ``threads``
    (torch, onnxruntime), ``providers`` (onnxruntime), ``cuda_graphs`` (tensorrt, cuda); ``auto``
    gives each backend those it has.
    Raises ``ModelFileError`` for a broken model and ``BackendError`` for a backend that cannot run
    or an option it does not have.
    """
    net, card = load_model(model)
    request = EngineRequest(
        net,
        card,
        Path(cache_dir) if cache_dir else default_cache_dir(),
        window,
        frame_size,
        memory_budget,
        Path(onnx) if onnx else None,
    )
    if backend != AUTO:
        reason = f"{backend} was asked for"
        return Engine(build_backend(backend, request, options), card, reason, tta=tta)
    engine = _auto(request, options)  # timed on one orientation: tta multiplies every backend's
    engine.tta = tta
    log.info("auto picked %s", engine.describe())
    return engine


def _auto(request: EngineRequest, options: Mapping[str, Any]) -> Engine:
    """The first preferred backend that works (TensorRT, then the CUDA engine), else the fastest
    of the others that work here (ONNX Runtime or torch on the CPU).

    A preferred engine must also denoise one probe window; one that fails falls through to the next,
    and ``Engine.reason`` says why each earlier choice could not run. Each backend gets the options
    its model has; an option none has is refused.
    """
    notes: list[str] = []
    classes: dict[str, type[Backend]] = {}
    for name in REGISTRY:
        try:
            classes[name] = backend_class(name)
        except BackendError as err:
            notes.append(str(err).rstrip("."))
    known = {field for cls in classes.values() for field in cls.Options.model_fields}
    for option in options:
        if option not in known:
            raise BackendError(f"no backend has an option {option!r}.", option=option)

    def attempt(name: str) -> tuple[float, Engine] | None:
        own = {k: v for k, v in options.items() if k in classes[name].Options.model_fields}
        try:
            engine = Engine(build_backend(name, request, own), request.card)
            return _probe_seconds(engine, request), engine
        # torch's CUDA and torch.compile errors are RuntimeErrors
        except (BackendError, RuntimeError) as err:
            notes.append(str(err).rstrip("."))
            return None

    for name, cls in classes.items():
        if cls.preferred_because is not None and (made := attempt(name)):
            seconds, engine = made
            engine.reason = (
                f"{cls.preferred_because}: {seconds * 1e3:.0f} ms per {_probe_text(request)}"
            )
            engine.reason += "".join(f"; {note}" for note in notes)
            return engine
    timed = [
        made
        for name, cls in classes.items()
        if cls.preferred_because is None and (made := attempt(name))
    ]
    if not timed:
        raise BackendError("no backend can run here: " + "; ".join(notes))
    timed.sort(key=lambda pair: pair[0])
    best = timed[0][1]
    versus = ", ".join(f"{e.name} {s * 1e3:.0f} ms" for s, e in timed)
    best.reason = (
        f"fastest that works here: {versus} per {_probe_text(request)}; {'; '.join(notes)}"
    )
    return best


def _probe_text(request: EngineRequest) -> str:
    return f"window of {request.window} frames of {PROBE_SIZE}x{PROBE_SIZE} px"


def _probe_seconds(engine: Engine, request: EngineRequest, repeats: int = 1) -> float:
    """Best time of ``repeats`` calls on a window of the live length, after a warm-up call."""
    h, w = (min(PROBE_SIZE, n) for n in request.frame_size)
    window = np.random.default_rng(0).random((request.window, engine.channels, h, w))
    engine.denoise(window[None])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        engine.denoise(window[None])
        best = min(best, time.perf_counter() - start)
    return best
