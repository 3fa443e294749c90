"""The sin→cos Seq2Seq pipeline: one module per DVC stage plus shared helpers."""
