"""The inference backends by name: the one registry ``load_engine`` dispatches through.

Each entry names its class as ``"module:Class"``, imported only when that backend is built: choice
lists (the command line's backend option, the viewer's menu) need the names alone, and loading torch,
ONNX Runtime or TensorRT for them would cost every command seconds before it can even report a
mistyped option.

Adding a backend: one module with a ``livedenoise.inference.base.Backend`` subclass (its ``name``,
``run``, ``describe``) and its ``Options`` model (a ``BackendOptions`` whose ``build`` makes it),
plus one line in ``REGISTRY``. ``auto`` is not a backend but the choice among them
(``livedenoise.inference.select``), so it is no entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livedenoise.inference.base import Backend

AUTO = "auto"

REGISTRY: dict[str, str | type[Backend]] = {
    "tensorrt": "livedenoise.inference.tensorrt_engine:TensorRTBackend",
    "cuda": "livedenoise.inference.cuda_engine:CudaBackend",
    "onnxruntime": "livedenoise.inference.onnx_engine:OnnxRuntimeBackend",
    "torch": "livedenoise.inference.torch_engine:TorchBackend",
}
"""Backend name -> its class, or where to import it from; ``auto`` tries the preferred ones in
this order."""


def register_backend(name: str, backend: str | type[Backend]) -> None:
    """Make ``backend`` (a class, or ``"module:Class"``) buildable as ``name`` from now on."""
    REGISTRY[name] = backend


def backend_names() -> tuple[str, ...]:
    """What a user may ask for: ``auto`` and every registered backend."""
    return (AUTO, *REGISTRY)
