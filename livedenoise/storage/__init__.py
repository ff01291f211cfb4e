"""On-disk formats: OME-Zarr runs with raw and denoised images side by side."""

from livedenoise.storage.ngff import image_attrs
from livedenoise.storage.run_store import (
    FrameMismatch,
    OutputPathError,
    RunStore,
    StoredRun,
    StoreExists,
    check_new_store,
    open_run,
)

__all__ = [
    "FrameMismatch",
    "OutputPathError",
    "RunStore",
    "StoreExists",
    "StoredRun",
    "check_new_store",
    "image_attrs",
    "open_run",
]
