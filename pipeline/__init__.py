"""The sin→cos Seq2Seq pipeline.

`pipeline.stages` holds the five DVC stages (thin: read → core → write); the core is
`params` (the validated params.yaml), `paths` (every file the stages touch), `files`
(atomic, checked file access), `data` (series and windows), `backend`, `model`,
`training` and `resume` (the Keras network, its training and its backups), `metrics`,
and `store`, `tracking`, `open_runs`, `logged`, `registry` (MLflow). `pipeline.champion`
is the one command that is not a stage. Nothing runs at import.
"""
