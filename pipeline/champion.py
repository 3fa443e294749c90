"""Command: move the `champion` alias to the best model version, or to one you name.

    python -m pipeline.champion              # lowest validation.free_run_mse
    python -m pipeline.champion --version 3  # this version

The best is chosen among versions trained on params.yaml's data, pruned trials aside.
"""

import argparse
import logging

from mlflow.tracking import MlflowClient

from pipeline.cli import run_stage
from pipeline.errors import PipelineError
from pipeline.params import load_params
from pipeline.tracking import registry, store

log = logging.getLogger(__name__)


def parse_arguments() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.champion",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="crown this version instead of the best one")
    return parser.parse_args()


def main() -> None:
    """Crown the chosen version and say which it is (a read-only login fails in one line)."""
    with store.refusals():
        crown(parse_arguments())


def crown(arguments: argparse.Namespace) -> None:
    """Crown the version `arguments` name, or the best on validation."""
    params = load_params()
    name, experiment = params.tracking.registered_model, params.tracking.experiment
    store.connect()
    if arguments.version:
        chosen = registry.named_version(name, arguments.version)
        why = "as named"
    else:
        found = MlflowClient().get_experiment_by_name(experiment)
        if found is None:
            raise PipelineError(f"MLflow experiment {experiment!r} is not in the store "
                                f"{store.shown(store.tracking_uri())}; run `dvc repro` first")
        chosen, metrics = registry.best_version(name, found.experiment_id,
                                                registry.data_digest(params))
        why = (f"{registry.RANKING_METRIC} {metrics[registry.RANKING_METRIC]:.3g}, the lowest "
               f"in {experiment!r}; {registry.REPORTED_METRIC} "
               f"{metrics.get(registry.REPORTED_METRIC, float('nan')):.3g}")
    registry.crown(name, chosen.version)
    steps = MlflowClient().get_run(chosen.run_id).data.params.get("window.steps", "?")
    log.info("models:/%s@%s is version %s (run %s, %s); it takes windows of %s steps",
             name, registry.CHAMPION, chosen.version, chosen.run_id, why, steps)


if __name__ == "__main__":
    run_stage(main)
