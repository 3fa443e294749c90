"""The DVC stages, one module each, run as `python -m pipeline.stages.<name>`."""
