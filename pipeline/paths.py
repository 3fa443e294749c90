"""Every path the pipeline reads or writes, relative to the project root DVC runs in.
`STAGES` says what each stage reads and writes; tests check dvc.yaml against it.
"""

from dataclasses import dataclass
from pathlib import Path

PARAMS_FILE = Path("params.yaml")
DATA = Path("data")

SERIES_DIR = DATA / "series"
TRAIN_SERIES = SERIES_DIR / "train.csv"  # columns x, input, target
TEST_SERIES = SERIES_DIR / "test.csv"

WINDOWS = DATA / "windows" / "windows.npz"  # arrays "<split>.<column>", see pipeline.windows

MODEL_DIR = DATA / "model"
MODEL = MODEL_DIR / "model.keras"  # teacher-forced: [encoder_in, decoder_in] -> target
PREDICTOR = MODEL_DIR / "predictor.keras"  # free-running: encoder_in -> predicted target
HISTORY = MODEL_DIR / "history.csv"  # epoch, loss, val_loss
RUN = MODEL_DIR / "run.json"  # the MLflow run that evaluate and plot add to

METRICS_DIR = DATA / "metrics"
METRICS = METRICS_DIR / "metrics.json"
PREDICTIONS = METRICS_DIR / "predictions.csv"  # one row per step of a few chosen windows

PLOTS_DIR = DATA / "plots"
SERIES_PLOT = PLOTS_DIR / "series.png"
LOSS_PLOT = PLOTS_DIR / "loss.png"
PREDICTIONS_PLOT = PLOTS_DIR / "predictions.png"

# The default MLflow store, under the repository root (see pipeline.tracking.store).
TRACKING_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
# Runs a stage holds open, so the next one can close those of a killed stage.
OPEN_RUNS_DIR = Path(".dvc", "tmp", "pipeline-open-runs")
# The tuning study (pipeline.tune): its search space, its default storage, trials' logs.
TUNE_FILE = Path("tune.yaml")
STUDY_DB = Path("tune.db")
TUNE_LOGS_DIR = Path(".dvc", "tmp", "pipeline-tune-logs")
# A trial's request to stop training (pipeline.tuning.trial), one file per experiment.
STOP_REQUESTS_DIR = Path(".dvc", "tmp", "pipeline-tune-stop")
# Backups of a training in progress, one folder per experiment and inputs (pipeline.resume).
BACKUPS_DIR = Path(".dvc", "tmp", "pipeline-train-backups")


@dataclass(frozen=True)
class StageIO:
    """What a stage reads (files, params sections or dotted keys) and writes."""

    reads: tuple[Path, ...]
    params: tuple[str, ...]
    writes: tuple[Path, ...]
    # Files named by a param (dvc.yaml lists them as `${key}`, templated from params.yaml).
    reads_named_by: tuple[str, ...] = ()


STAGES: dict[str, StageIO] = {
    # generate checks a CSV of the user's against the windows and the plotted start
    # windows, so it reads `window` and `plot.start_points` too.
    "generate": StageIO(reads=(), params=("generate", "window", "plot.start_points"),
                        writes=(TRAIN_SERIES, TEST_SERIES), reads_named_by=("generate.csv.path",)),
    "window": StageIO(reads=(TRAIN_SERIES, TEST_SERIES), params=("window",), writes=(WINDOWS,)),
    # train logs every section that shaped the model, so it must rerun when any changes.
    # train hashes the series files for the datasets it records.
    "train": StageIO(
        reads=(TRAIN_SERIES, TEST_SERIES, WINDOWS),
        params=("generate", "window", "model", "train", "tracking"),
        writes=(MODEL, PREDICTOR, HISTORY, RUN),
    ),
    # evaluate puts the windows plot draws into predictions.csv.
    "evaluate": StageIO(
        reads=(WINDOWS, MODEL, PREDICTOR, RUN), params=("evaluate", "plot.start_points"),
        writes=(METRICS, PREDICTIONS),
    ),
    "plot": StageIO(
        reads=(TRAIN_SERIES, HISTORY, PREDICTIONS, RUN),
        params=("plot",),
        writes=(SERIES_PLOT, LOSS_PLOT, PREDICTIONS_PLOT),
    ),
}
