"""Damaged inputs give one clear error naming the file; writes are all-or-nothing."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.files import atomic_path, read_arrays, read_json, read_table, write_arrays


@pytest.fixture
def arrays_file(tmp_path: Path) -> Path:
    path = tmp_path / "windows.npz"
    write_arrays({"a": np.arange(1000.0), "b": np.ones(3)}, path)
    return path


def test_arrays_round_trip_exactly(arrays_file: Path) -> None:
    arrays = read_arrays(arrays_file, ["a", "b"])
    np.testing.assert_array_equal(arrays["a"], np.arange(1000.0))


def test_truncated_array_file_is_named(arrays_file: Path) -> None:
    arrays_file.write_bytes(arrays_file.read_bytes()[:4000])
    with pytest.raises(InputError, match=r"windows.npz: damaged or not an .npz array file"):
        read_arrays(arrays_file, ["a"])


def test_corrupted_array_file_is_named(arrays_file: Path) -> None:
    data = bytearray(arrays_file.read_bytes())
    data[100:400] = bytes(300)
    arrays_file.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"windows.npz: damaged"):
        read_arrays(arrays_file, ["a", "b"])


def test_missing_array_is_named(arrays_file: Path) -> None:
    with pytest.raises(InputError, match=r"windows.npz: missing array\(s\) c"):
        read_arrays(arrays_file, ["a", "c"])


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(InputError, match=r"evil.npz: damaged"):
        read_arrays(path, ["a"])


@pytest.mark.parametrize(("content", "message"), [
    (b"x,input\n1.0,2.0\n", r"train.csv: missing column\(s\) target; found x, input"),
    (b"x,input,target\n1,two,3\n", r"train.csv: column 'input' has text, 'two', in data row 1"),
    (bytes(range(256)) * 4, r"train.csv: "),  # binary garbage
], ids=["missing-column", "text", "binary-garbage"])
def test_damaged_table_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_table(path, ["x", "input", "target"])


def test_broken_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"run_id": ', encoding="utf-8")
    with pytest.raises(InputError, match=r"run.json: not valid JSON"):
        read_json(path)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("killed mid-write")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
