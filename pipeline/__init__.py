"""The sin→cos Seq2Seq pipeline.

`pipeline.stages` holds the five DVC stages (thin: read → core → write); the core is
`params` (the validated params.yaml), `paths` (every file the stages touch), `files`
(atomic, checked file access), `data` (series and windows), `backend`, `model`,
`training` and `resume` (the Keras network, its training and its backups), `metrics`,
`figures` and `images` (the figures, and the one logged while training), and `store`,
`tracking`, `open_runs`, `logged`, `registry` (MLflow). Two commands are not stages:
`pipeline.champion` (crown a model version) and `pipeline.tune` (a tuning study over DVC
experiments, with `space` and `experiment`). Nothing runs at import.
"""
