"""The parts of `python -m pipeline.tune`: the search space, a trial, a DVC experiment."""
