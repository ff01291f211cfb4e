"""On-disk formats: OME-Zarr runs with raw and denoised images side by side."""

from livedenoise.storage.ngff import image_attrs
from livedenoise.storage.run_store import (
    FrameMismatch,
    OutputPathError,
    RunStore,
    StoreExists,
    check_new_store,
)
from livedenoise.storage.stored import (
    StoredRun,
    create_store_like,
    is_run_store,
    mark_complete,
    open_run,
)

__all__ = [
    "FrameMismatch",
    "OutputPathError",
    "RunStore",
    "StoreExists",
    "StoredRun",
    "check_new_store",
    "create_store_like",
    "image_attrs",
    "is_run_store",
    "mark_complete",
    "open_run",
]
