"""On-disk formats: OME-Zarr runs with raw and denoised images side by side."""

from livedenoise.storage.ngff import image_attrs
from livedenoise.storage.run_store import RunStore, StoredRun, open_run

__all__ = ["RunStore", "StoredRun", "image_attrs", "open_run"]
