"""The Model Registry: each predictor a version; `evaluate` tags it, `pipeline.champion`
moves the `champion` alias users serve.
"""

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.errors import PipelineError
from pipeline.files import dvc_md5
from pipeline.params import Params

log = logging.getLogger(__name__)

CHAMPION = "champion"
# Versions are chosen on validation (lower is better); the test figure is reported beside
# it, never used to choose, so it stays an honest estimate of the champion's error.
RANKING_METRIC = "validation.free_run_mse"
REPORTED_METRIC = "test.free_run_mse"
# A training run's data (see `data_digest`): only models of the same data answer the same
# question, take the same inputs and score on the same validation stretch.
DATA_TAG = "pipeline.data"
PRUNED_TAG = "pipeline.pruned"  # a tuning trial stopped early: never a champion


def tag_version(name: str, version: str, metrics: Mapping[str, float]) -> None:
    """Tag a version with each split's free-running MSE (one request per tag: not all 36
    metrics)."""
    client = MlflowClient()
    for key, value in metrics.items():
        if key.endswith(".free_run_mse"):
            client.set_model_version_tag(name, version, key, str(value))


def _versions_by_run(client: MlflowClient, name: str) -> dict[str, ModelVersion]:
    """Return the registered model's versions by the id of the run that logged each."""
    if "'" in name:
        raise PipelineError(f"registered model name {name!r} must not contain a quote")
    return {version.run_id: version
            for version in client.search_model_versions(f"name = '{name}'")}


def data_digest(params: Params) -> str:
    """Return a digest of what decides a model's data (series settings, CSV hash, validation
    share); not the window length, which a study varies."""
    generate = params.generate
    if generate.source == "csv":
        what = {"csv": generate.csv.model_dump(), "md5": dvc_md5(Path(generate.csv.path))}
    else:
        what = generate.model_dump(exclude={"csv"})
    what["validation_fraction"] = params.window.validation_fraction
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def best_version(name: str, experiment_id: str,
                 data: str) -> tuple[ModelVersion, dict[str, float]]:
    """Return the unpruned version trained on `data` with the lowest validation MSE, and its
    run's metrics."""
    client = MlflowClient()
    versions = _versions_by_run(client, name)
    ranked = client.search_runs([experiment_id], f"metrics.`{RANKING_METRIC}` >= 0 and "
                                f"tags.`{DATA_TAG}` = '{data}'", max_results=50000,
                                order_by=[f"metrics.`{RANKING_METRIC}` ASC",
                                          "attributes.start_time DESC"])
    for run in ranked:
        if run.info.run_id in versions and run.data.tags.get(PRUNED_TAG) != "true":
            return versions[run.info.run_id], run.data.metrics
    raise PipelineError(f"no version of registered model {name!r} trained on the data "
                        f"params.yaml names has a {RANKING_METRIC} in this experiment, "
                        f"pruned trials aside; run `dvc repro` first")


def named_version(name: str, version: str) -> ModelVersion:
    """Return version `version` of `name`, or fail naming it."""
    try:
        return MlflowClient().get_model_version(name, version)
    except MlflowException as err:
        raise PipelineError(f"registered model {name!r} has no version {version!r}") from err


def crown(name: str, version: str) -> None:
    """Point the `champion` alias of `name` at `version`."""
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)
