"""`generate.source: csv`: the user's own series, checked, and the whole pipeline on it."""

import json
import os
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import (
    ROOT,
    free_port,
    listening,
    post,
    run,
    tabled_test_windows,
    with_overrides,
    write_params,
)

from pipeline.errors import InputError
from pipeline.files import dvc_md5
from pipeline.paths import RUN, TEST_SERIES, TRAIN_SERIES, WINDOWS
from pipeline.stages import generate
from pipeline.windows import Windows

OWN = Path("data", "own", "series.csv")


def own_params(tiny_params: dict[str, Any], test_rows: int = 20, **csv: Any) -> dict[str, Any]:
    """Return tiny params reading OWN: columns time, u, y; the last `test_rows` held out;
    `csv` overrides generate.csv keys."""
    return with_overrides(tiny_params, {"generate": {"source": "csv", "csv": {
        "path": str(OWN), "x": "time", "input": "u", "target": "y", "test_rows": test_rows,
        "missing": "error", **csv}}})


def own_series(rows: int = 60) -> pd.DataFrame:
    """Return a damped oscillation: u drives, y answers a quarter period later."""
    time = np.arange(rows) * 0.25
    decay = np.exp(-0.02 * time)
    return pd.DataFrame({"time": time, "u": decay * np.sin(time), "y": decay * np.cos(time)})


def write_csv(folder: Path, text: str) -> None:
    """Write `text` as the user's CSV under `folder`."""
    (folder / OWN).parent.mkdir(parents=True, exist_ok=True)
    (folder / OWN).write_text(text, encoding="utf-8")


def test_a_csv_becomes_training_and_test_series(tmp_path: Path, tiny_params: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params))
    series = own_series().assign(unused="a")  # extra columns are ignored
    write_csv(tmp_path, series.to_csv(index=False))
    generate.main()
    train, test = pd.read_csv(TRAIN_SERIES), pd.read_csv(TEST_SERIES)
    assert list(train.columns) == ["x", "input", "target"]
    expected = series[["time", "u", "y"]].to_numpy()
    np.testing.assert_array_equal(train.to_numpy(), expected[:40])
    np.testing.assert_array_equal(test.to_numpy(), expected[40:])


GOOD = own_series().to_csv(index=False)
BAD = [
    ("time,u\n0,1\n", "missing column(s) y; found time, u"),
    (GOOD.replace("\n0.25,", "\n0.25x,", 1), "column 'time' has text, '0.25x', in data row 2; "
                                             "every cell must be a number"),
    (own_series().assign(u=lambda table: table["u"].where(table.index != 2)).to_csv(index=False),
     "column 'u' has an empty or NaN value in data row 3; set generate.csv.missing to drop "
     "or interpolate"),
    ("time,u,y\n0,1,2\n1,2\n" + "2,3,4\n" * 3, "column 'y' has an empty or NaN value in "
                                                "data row 2"),
    (own_series().assign(y=lambda table: table["y"].where(table.index != 4, np.inf)
                         ).to_csv(index=False), "column 'y' has an infinite value in data row 5"),
    (GOOD.replace("\n0.75,", "\n0.1,", 1), "column 'time' (x) must increase from row to row; "
                                          "data row 4 does not"),
    (own_series(25).to_csv(index=False), "25 rows leave 5 for training after "
                                         "generate.csv.test_rows = 20: too few rows for one "
                                         "8-step window"),
    ("time,u,y\n", "has no data rows"),
    ("time,u,y\n0,1,2\n1,2,3,4\n", "not a readable CSV table (Error tokenizing data"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_csv_is_named_with_its_problem(tmp_path: Path, tiny_params: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch, text: str,
                                             message: str) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params))
    write_csv(tmp_path, text)
    with pytest.raises(InputError) as caught:
        generate.main()
    assert str(caught.value).startswith(f"{OWN}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_too_few_test_rows_and_a_missing_file_are_named(
        tmp_path: Path, tiny_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, own_params(tiny_params, test_rows=8))
    with pytest.raises(InputError, match=r"no such file \(generate\.csv\.path\)"):
        generate.main()
    write_csv(tmp_path, GOOD)
    with pytest.raises(InputError, match=r"last 8 rows .* too few rows for one 8-step test"):
        generate.main()


def test_a_bad_csv_stops_the_stage_with_one_line_and_loses_nothing(
        tmp_path: Path, tiny_params: dict[str, Any]) -> None:
    write_params(tmp_path, own_params(tiny_params))
    write_csv(tmp_path, GOOD)
    command = [sys.executable, "-m", "pipeline.stages.generate"]
    run(command, tmp_path)
    before = {path: (tmp_path / path).read_bytes() for path in (TRAIN_SERIES, TEST_SERIES)}
    write_csv(tmp_path, GOOD.replace("\n0.75,", "\n0.1,", 1))
    done = run(command, tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert line.endswith(f"error: {OWN}: column 'time' (x) must increase from row to row; "
                         f"data row 4 does not")
    assert {path: (tmp_path / path).read_bytes() for path in before} == before


def in_hundreds_with_a_gap(rows: int = 60) -> pd.DataFrame:
    """Return a series in the hundreds with two inputs (u, v) and an empty u in data row 6."""
    time = np.arange(rows) * 0.5
    table = pd.DataFrame({"time": time, "u": 300 + 100 * np.sin(time),
                          "v": 20 * np.cos(time / 2), "y": 300 + 100 * np.sin(time + 1)})
    return table.assign(u=table["u"].where(table.index != 5))


@pytest.mark.slow
def test_the_pipeline_runs_on_a_csv_tracked_with_dvc_add(repo: Path,
                                                        tiny_params: dict[str, Any]) -> None:
    # Two input columns in the user's units, a gap filled by interpolation, scaling on.
    dvc = [sys.executable, "-m", "dvc"]
    write_csv(repo, in_hundreds_with_a_gap().to_csv(index=False))
    run([*dvc, "add", str(OWN)], repo)
    write_params(repo, own_params(tiny_params, input=["u", "v"], missing="interpolate"))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "own series"], repo)
    done = run([*dvc, "repro"], repo)
    output = done.stdout
    # No Python warning in the stages' log (free-running training once left Keras'
    # "Skipping variable loading for optimizer" in evaluate's).
    assert "Warning: " not in done.stdout + done.stderr
    assert all(f"Running stage '{stage}'" in output
               for stage in ("generate", "window", "train", "evaluate", "plot"))
    assert len(pd.read_csv(repo / TEST_SERIES)) == 20
    metrics = pd.read_json(repo / "data" / "metrics" / "metrics.json")
    assert np.isfinite(metrics.loc[["free_run_mse", "skill_vs_mean"]]).all(axis=None)
    check_served_in_the_users_units(repo)

    # An edit of the file, recorded with `dvc add`, reruns the pipeline from generate, and
    # the new run's datasets carry the new series' hashes.
    first = training_digest(repo)
    write_csv(repo, in_hundreds_with_a_gap().assign(y=lambda table: table["y"] * 0.5
                                                    ).to_csv(index=False))
    run([*dvc, "add", str(OWN)], repo)
    assert "generate" in run([*dvc, "status"], repo).stdout
    output = run([*dvc, "repro"], repo).stdout
    assert "Running stage 'generate'" in output and "Running stage 'train'" in output
    assert pd.read_csv(repo / TRAIN_SERIES)["target"].max() == pytest.approx(200, rel=1e-3)
    assert training_digest(repo) not in {first, None}


def training_digest(repo: Path) -> str | None:
    """Return the digest of the latest run's training dataset: the series file's DVC hash."""
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    tracked = mlflow.get_run(json.loads((repo / RUN).read_text())["run_id"])
    digests = [item.dataset.digest for item in tracked.inputs.dataset_inputs
               if any(tag.value == "training" for tag in item.tags)]
    assert digests == [dvc_md5(repo / TRAIN_SERIES)]
    return digests[0]


def check_served_in_the_users_units(repo: Path) -> None:
    """The logged predictor takes (batch, steps, 2) windows and answers in the CSV's units,
    as evaluate's predictions; the run records how gaps were handled."""
    record = json.loads((repo / RUN).read_text())
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    info = mlflow.models.get_model_info(record["predictor_uri"])
    (spec,) = info.signature.inputs.inputs
    assert spec.shape == (-1, 8, 2)
    windows, expected = tabled_test_windows(repo)
    assert windows.shape[2] == 2
    predicted = mlflow.pyfunc.load_model(record["predictor_uri"]).predict(windows)
    np.testing.assert_allclose(np.asarray(predicted), expected, rtol=1e-5, atol=1e-3)
    assert 100 < np.median(expected) < 500  # the target's units, not standardised ones
    run_params = mlflow.get_run(record["run_id"]).data.params
    assert run_params["generate.csv.missing"] == "interpolate"
    assert run_params["generate.csv.input"] == "['u', 'v']"


def readme_commands(heading: str) -> list[str]:
    """Return the commands of README's first bash block under `heading`, each whole."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def load_series(rows: int = 600) -> pd.DataFrame:
    """Return an hourly load (hundreds) driven by temperature, with humidity, and gaps."""
    time = np.arange(rows, dtype=float)
    temperature = 15 + 8 * np.sin(2 * np.pi * time / 24)
    table = pd.DataFrame({"time": time, "temperature": temperature,
                          "humidity": 60 + 10 * np.cos(2 * np.pi * time / 24),
                          "load": 300 + 6 * temperature + np.sin(time / 5)})
    return table.assign(humidity=table["humidity"].where(table.index != 40),
                        load=table["load"].where(table.index != 77))


@pytest.mark.slow
def test_your_series_from_csv_to_served_champion_as_readme_says(
        repo: Path, tmp_path: Path) -> None:
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "repro"], repo)  # an earlier sin→cos model in the same store and registry
    (repo / "data" / "mine.csv").write_text(load_series().to_csv(index=False), "utf-8")
    for command in readme_commands("## Your own series"):
        run(["bash", "-c", command], repo)
    study = optuna.load_study(study_name="quick", storage=f"sqlite:///{repo / 'tune.db'}")
    assert any(trial.state.name == "COMPLETE" for trial in study.trials)
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    # Crowned among the models of the user's series: not the sin→cos model, whose
    # validation MSE (in [-1, 1] units) is far lower than any model of the load's.
    crowned = client.get_run(client.get_model_version_by_alias("sin-cos-seq2seq",
                                                               "champion").run_id)
    assert (crowned.data.params["generate.source"],
            crowned.data.params["generate.csv.path"]) == ("csv", "data/mine.csv")
    # Served, the champion takes the user's windows: 8 steps of (temperature, humidity),
    # and answers in the load's units.
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m",
               "models:/sin-cos-seq2seq@champion", "--env-manager", "local", "-h",
               "127.0.0.1", "-p", str(port)]
    window = Windows.read(repo / WINDOWS).test.input[:8]  # (steps, 2)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    with listening(command, f"http://127.0.0.1:{port}/ping", "mlflow models serve",
                   cwd=tmp_path, env=env, timeout=120):
        answer = post(f"http://127.0.0.1:{port}/invocations", {"inputs": [window.tolist()]})
    predicted = np.asarray(answer["predictions"])
    assert predicted.shape == (1, 8, 1)
    assert np.all((predicted > 200) & (predicted < 500))
