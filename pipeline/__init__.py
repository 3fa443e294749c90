"""The sin→cos Seq2Seq pipeline.

`pipeline.stages` holds the five DVC stages (thin: read → core → write); the core is
`params` (the validated params.yaml), `paths` (every file the stages touch), `io` (atomic,
checked file access), `data` (series and windows), `model` (the Keras network and its
training) and `tracking` (the MLflow run). Nothing runs at import.
"""
