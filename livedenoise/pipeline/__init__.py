"""The live pipeline: frames from a core through the ring buffer and the engine to the store and sinks."""
