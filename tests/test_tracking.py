"""MLflow tracking on a real SQLite store: where runs live, how they end, what they hold."""

import os
import shutil
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

import mlflow
import pytest
from conftest import ROOT, run, wait_until
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.errors import InputError, PipelineError
from pipeline.tracking import run_data, runs, store
from pipeline.tracking.run_record import RunRecord


def client() -> MlflowClient:
    return MlflowClient(store.tracking_uri())


def new_run(experiment: str) -> AbstractContextManager[mlflow.ActiveRun]:
    """Open the run `train` chooses with no backup: a new one."""
    return runs.opened(runs.choose("train", experiment))


def record(run_id: str) -> None:
    """Write a run.json naming `run_id` as the run that trained the model."""
    RunRecord(run_id, "0", "runs:/m", "runs:/p", "model", "1").write()


def results_run(run_id: str) -> AbstractContextManager[mlflow.ActiveRun]:
    """Open the run `evaluate` chooses when run.json names `run_id`."""
    record(run_id)
    return runs.opened(runs.choose("evaluate", "exp"))


def test_default_store_is_under_dvc_root_wherever_the_stage_runs(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = root / ".dvc" / "tmp" / "exps" / "copy"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)  # where `dvc exp run --temp` runs a stage
    assert store.tracking_uri() == f"sqlite:///{root / 'mlflow.db'}"
    assert store.artifact_location(store.tracking_uri()) == (root / "mlartifacts").as_uri()


def test_tracking_uri_env_overrides_and_servers_choose_their_artifacts(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert store.tracking_uri() == "http://127.0.0.1:5000"
    assert store.artifact_location(store.tracking_uri()) is None


def test_a_run_ends_finished_with_real_times_in_an_experiment_with_an_absolute_root(
        root: Path) -> None:
    before = time.time() * 1000
    with new_run("exp") as opened:
        mlflow.log_metrics({"loss": 0.5}, step=3)
    finished = client().get_run(opened.info.run_id)
    after = time.time() * 1000
    assert finished.info.status == "FINISHED"
    assert before <= finished.info.start_time <= finished.info.end_time <= after
    (metric,) = client().get_metric_history(opened.info.run_id, "loss")
    assert metric.step == 3 and before <= metric.timestamp <= after
    experiment = client().get_experiment_by_name("exp")
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    assert finished.data.tags["git.dirty"] in {"true", "false", "unknown"}
    with new_run("exp") as second:
        assert second.info.experiment_id == experiment.experiment_id


def test_a_training_run_records_the_machines_cpu_and_memory_over_time(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow samples every 10 s by default; a second here, so a short test sees samples.
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    with new_run("exp") as opened:
        wait_until(lambda: "system/cpu_utilization_percentage" in client().get_run(
            opened.info.run_id).data.metrics, 30, "a CPU sample in the RUNNING run")
    metrics = client().get_run(opened.info.run_id).data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(
        metrics)
    assert metrics["system/system_memory_usage_megabytes"] > 0


def test_a_resumed_run_ends_finished_again_with_a_later_end_time(root: Path) -> None:
    with new_run("exp") as opened:
        pass
    first_end = client().get_run(opened.info.run_id).info.end_time
    time.sleep(0.01)
    with results_run(opened.info.run_id):
        assert client().get_run(opened.info.run_id).info.status == "RUNNING"
    resumed = client().get_run(opened.info.run_id).info
    assert resumed.status == "FINISHED" and resumed.end_time > first_end


def test_changed_param_on_a_resumed_run_is_tagged_not_lost(root: Path) -> None:
    with new_run("exp") as opened:
        run_data.log_params({"plot.dpi": 100, "plot.start_points": (0, 24)})
    with results_run(opened.info.run_id):
        run_data.log_params({"plot.dpi": 50, "plot.start_points": (0, 24)})
    data = client().get_run(opened.info.run_id).data
    assert data.params == {"plot.dpi": "100", "plot.start_points": "[0, 24]"}
    assert data.tags["plot.dpi"] == "50"
    assert "plot.start_points" not in data.tags


def test_resuming_a_run_the_store_does_not_have_names_run_and_store(root: Path) -> None:
    with new_run("exp"):
        pass
    with (pytest.raises(InputError, match=r"run 0123abcd is not in the store sqlite:///"),
          results_run("0123abcd")):
        pass


@pytest.mark.parametrize(("error", "status"), [(ZeroDivisionError, "FAILED"),
                                               (KeyboardInterrupt, "KILLED")])
def test_an_error_ends_the_run_and_is_not_masked(root: Path, error: type, status: str) -> None:
    with pytest.raises(error), new_run("exp") as opened:
        raise error
    assert client().get_run(opened.info.run_id).info.status == status
    assert mlflow.active_run() is None


def test_a_deleted_experiment_is_an_error_naming_it(root: Path) -> None:
    with new_run("gone") as opened:
        pass
    client().delete_experiment(opened.info.experiment_id)
    with pytest.raises(PipelineError, match=r"MLflow experiment 'gone' is deleted"), \
            new_run("gone"):
        pass


# A stage that opens a run, says so, and then waits or dies without ending it.
STAGE = """
import os, signal, sys, time
from pipeline.tracking import runs
with runs.opened(runs.choose("train", "exp")) as run:
    print(run.info.run_id, flush=True)
    if sys.argv[1] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if sys.argv[1] == "wait":
        time.sleep(120)
"""


def stage_run(root: Path, how: str) -> tuple[str, subprocess.Popen]:
    """Start a stage process in `root`; return its run id once the run is open."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", STAGE, how], cwd=root, env=env,
                               stdout=subprocess.PIPE, text=True)
    return process.stdout.readline().strip(), process


def test_next_run_closes_a_killed_stages_run_but_not_a_live_one_or_a_foreign_one(
        root: Path) -> None:
    killed, dead = stage_run(root, "die")
    dead.wait(timeout=60)
    assert client().get_run(killed).info.status == "RUNNING"
    alive, living = stage_run(root, "wait")  # the next stage
    try:
        # A RUNNING run this working copy never held (another machine's, on a server).
        foreign = client().create_run(client().get_experiment_by_name("exp").experiment_id)
        with new_run("exp"):
            pass
        assert client().get_run(killed).info.status == "KILLED"
        assert client().get_run(alive).info.status == "RUNNING"
        assert client().get_run(foreign.info.run_id).info.status == "RUNNING"
        # Left: the live stage's record and its lock; the killed one's and ours are gone.
        held = root / paths.OPEN_RUNS_DIR
        assert {path.name for path in held.iterdir()} == {f"{alive}.json", f"{alive}.lock"}
    finally:
        living.kill()
        living.wait()


def test_deleting_the_store_and_running_again_just_works(root: Path) -> None:
    # Stages are processes: a new one sees the new store (MLflow caches it per process).
    first, process = stage_run(root, "end")
    assert process.wait(timeout=60) == 0
    (root / "mlflow.db").unlink()
    shutil.rmtree(root / "mlartifacts", ignore_errors=True)
    second, process = stage_run(root, "end")
    assert process.wait(timeout=60) == 0
    (only,) = client().search_runs([client().get_experiment_by_name("exp").experiment_id])
    assert only.info.run_id == second != first
    assert only.info.status == "FINISHED"


def test_a_stage_command_leaves_no_process_behind(root: Path) -> None:
    code = ("from pipeline.tracking import runs\n"
            "with runs.opened(runs.choose('train', 'exp')): pass\n")
    run([sys.executable, "-c", code], root, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_until(lambda: not [p for p in Path("/proc").glob("[0-9]*/cwd")
                            if _cwd(p) == root and int(p.parent.name) != os.getpid()],
               10, "every process started in the store's folder has exited")


def _cwd(link: Path) -> Path | None:
    try:
        return link.readlink()
    except OSError:
        return None


RACER = """
import os, sys, time
from pipeline.tracking import runs
print("ready", flush=True)  # MLflow imported
while not os.path.exists(sys.argv[1]):  # both start together, once both are ready
    time.sleep(0.001)
with runs.opened(runs.choose("train", "exp")) as run:
    print(run.info.run_id)
"""


def test_stages_starting_together_on_a_new_store_both_land_in_one_experiment(
        root: Path) -> None:
    # Queued experiments start together: they would race to create the schema and the
    # experiment ("table already exists", "database is locked") without the store's lock.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    go = root / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(go)], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    assert [racer.stdout.readline() for racer in racers] == ["ready\n"] * 2
    go.touch()
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], outputs
    run_ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    (experiment,) = [e for e in client().search_experiments() if e.name == "exp"]
    found = client().search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in found} == run_ids and len(run_ids) == 2
    assert {r.info.status for r in found} == {"FINISHED"}


def test_train_resumes_its_backups_run_only_while_the_store_has_it(root: Path) -> None:
    with new_run("exp") as opened:
        pass
    resumed = runs.choose("train", "exp", backup=(opened.info.run_id, 0))
    assert (resumed.kind, resumed.run_id, resumed.resumes) == ("resumed", opened.info.run_id, 1)
    with runs.opened(resumed):
        pass
    assert client().get_run(opened.info.run_id).data.tags[runs.RESUMES_TAG] == "1"
    gone = runs.choose("train", "exp", backup=("0123abcd", 3))
    assert (gone.kind, gone.run_id, gone.resumes) == ("new", None, 0)


def test_an_experiment_reusing_anothers_model_gets_its_own_run_once(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "trained-here")
    with new_run("exp") as training:
        mlflow.log_metric("loss", 0.5, step=0)
        mlflow.log_metric("test.free_run_mse", 0.25)
    record(training.info.run_id)
    assert runs.choose("evaluate", "exp").run_id == training.info.run_id  # its own model
    monkeypatch.setenv("DVC_EXP_NAME", "plot-edit")
    first = runs.choose("evaluate", "exp")
    assert (first.kind, first.run_id, first.model_run) == (
        "experiment", None, training.info.run_id)
    with runs.opened(first, {"plot.dpi": 50}) as own:
        pass
    held = client().get_run(own.info.run_id)
    assert held.info.run_name == "plot-edit" and held.data.params == {"plot.dpi": "50"}
    assert held.data.tags[runs.MODEL_RUN_TAG] == training.info.run_id
    assert held.data.metrics == {"loss": 0.5, "test.free_run_mse": 0.25}
    assert runs.choose("plot", "exp").run_id == own.info.run_id  # its later stages find it
