"""The inference backends' names, importable without loading any backend.

Choice lists (the command line's ``--backend``, the viewer's menu) need the names only; loading torch,
ONNX Runtime or TensorRT for them would cost every command seconds before it can even report a
mistyped option. ``livedenoise.inference.load_engine`` builds them.
"""

BACKENDS = ("auto", "tensorrt", "cuda", "onnxruntime", "torch")
