"""The sin→cos Seq2Seq pipeline: one module per DVC stage plus shared helpers.

Two process-wide settings are made here, because they must precede the first TensorFlow
import and every stage imports this package first:
- TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is silenced unless
  the user set TF_CPP_MIN_LOG_LEVEL.
- Keras imports scikit-learn whenever it is installed, for estimator wrappers this project
  never uses; MLflow installs it, and the import costs about 2 s in every stage that
  imports Keras. Blocking it makes Keras skip the wrappers; it stays importable in any
  process that imported it before this package.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.modules.setdefault("sklearn", None)
