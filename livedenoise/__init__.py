"""livedenoise: real-time CNNT denoising in the acquisition path of a Micro-Manager microscope."""

__version__ = "0.1.0"
