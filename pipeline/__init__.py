"""The sin→cos Seq2Seq pipeline: `pipeline.stages` holds the five DVC stages; the core
modules are mapped in docs/design.md. Nothing runs at import.
"""
