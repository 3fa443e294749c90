"""MLflow: where runs live, which run a stage writes into, and what a run records."""
