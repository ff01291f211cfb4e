"""The napari plugin (npe2, ``napari.yaml``): opens run stores and livedenoise outputs, each tile at
its stage position, and records a simulated tiled run as sample data.

Installed with ``pip install livedenoise[napari]``; napari finds it by its ``napari.manifest`` entry
point. Its modules call the application layer only (``livedenoise.app``) and import napari nowhere
at import time, so the plugin loads as fast as napari asks for it.
"""
