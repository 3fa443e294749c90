"""The sin→cos Seq2Seq pipeline: the five DVC stages in `pipeline.stages`, the core beside
them (docs/design.md maps it).
"""
