"""The sin→cos Seq2Seq pipeline: one module per DVC stage plus shared helpers.

One process-wide setting is made here, because it must precede the first Keras import
and every stage imports this package first: Keras imports scikit-learn whenever it is
installed, for estimator wrappers this project never uses; MLflow installs it, and the
import costs about 2 s in every stage that imports Keras. Blocking it makes Keras skip
the wrappers; it stays importable in any process that imported it before this package.
"""

import sys

sys.modules.setdefault("sklearn", None)
