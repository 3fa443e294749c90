"""A run's params and metrics, through MLflow's public API."""

import logging
from collections.abc import Mapping
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

# A training run's wall seconds of building and fitting the model (this fit only, if it
# resumed): what a tuning study compares with its trials' whole time.
FIT_SECONDS = "fit_seconds"


def metric_by_step(run_id: str, key: str) -> dict[int, float]:
    """Return a metric of the run as step -> value, the first value logged at each step."""
    mlflow.flush_async_logging()
    history = sorted(MlflowClient().get_metric_history(run_id, key),
                     key=lambda metric: metric.timestamp, reverse=True)
    return {metric.step: metric.value for metric in history}


def log_params(values: Mapping[str, Any]) -> None:
    """Log params of the active run; a value changed since (a plot-only edit) is recorded as
    a tag."""
    texts = {key: str(list(value) if isinstance(value, tuple) else value)
             for key, value in values.items()}  # lists as params.yaml writes them
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({key: text for key, text in texts.items() if key not in logged})
    for key, text in texts.items():
        if key in logged and logged[key] != text:
            log.info("param %s was logged as %s; tagging its new value %s", key, logged[key],
                     text)
            mlflow.set_tag(key, text)
