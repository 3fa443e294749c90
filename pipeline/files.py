"""The stages' files: .npz arrays, JSON, CSV tables, YAML. Writes are atomic (a killed stage
leaves no half file for DVC to record); a damaged read is an `InputError` naming the
file.
"""

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.csv
import yaml

from pipeline.data import input_columns
from pipeline.errors import InputError, ParamsError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path with `path`'s suffix; move it onto `path` if no error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so the final rename is atomic; same suffix, because Keras and
    # matplotlib pick the format from it.
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-",
                                    suffix=path.suffix)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def require(path: Path) -> Path:
    """Return `path` if it is a file, else fail saying how to create it."""
    if not path.is_file():
        raise InputError(f"{path}: missing; run `dvc repro` to create it")
    return path


def write_arrays(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Write named arrays as an uncompressed .npz (byte-stable for equal arrays)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, **arrays)


def read_arrays(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read the named arrays from an .npz file, never unpickling objects."""
    try:
        with np.load(require(path), allow_pickle=False) as archive:
            found = {name: archive[name] for name in names if name in archive.files}
    except InputError:
        raise
    except Exception as err:  # NumPy raises many kinds of error for a damaged file
        raise InputError(f"{path}: damaged or not an .npz array file ({err!r})") from err
    absent = [name for name in names if name not in found]
    if absent:
        raise InputError(f"{path}: missing array(s) {', '.join(absent)}")
    return found


def write_json(data: Mapping[str, Any], path: Path) -> None:
    """Write `data` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object."""
    try:
        data = json.loads(require(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: must hold a JSON object")
    return data


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write `table` as round-trip exact CSV with Arrow's writer (11× pandas' on 10^6 rows)."""
    with atomic_path(path) as tmp:
        pyarrow.csv.write_csv(pyarrow.Table.from_pandas(table, preserve_index=False), tmp)


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a numeric CSV table that must hold `columns`."""
    try:
        table = pd.read_csv(require(path))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        reason = " ".join(str(err).split())  # pandas' messages may span lines
        raise InputError(f"{path}: not a readable CSV table ({reason})") from err
    absent = [column for column in columns if column not in table.columns]
    if absent:
        raise InputError(f"{path}: missing column(s) {', '.join(absent)}; "
                         f"found {', '.join(map(str, table.columns))}")
    if table.empty:
        raise InputError(f"{path}: has no data rows")
    require_numbers(table, columns, path)
    return table


def require_numbers(table: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Fail naming the first text cell of `columns`: its column, data row and value."""
    for column in columns:
        if pd.api.types.is_numeric_dtype(table[column]):
            continue
        cells = table[column]
        text = cells.notna() & pd.to_numeric(cells, errors="coerce").isna()
        row = int(text.to_numpy().argmax())
        raise InputError(f"{path}: column {column!r} has text, {cells.iloc[row]!r}, in data "
                         f"row {row + 1}; every cell must be a number (or empty)")


def read_series(path: Path) -> pd.DataFrame:
    """Read a series table: x, its input column(s) (see pipeline.data), target."""
    table = read_table(path, ("x", "target"))
    inputs = input_columns(list(table.columns))
    if not inputs:
        raise InputError(f"{path}: missing column input (or input.<name> for each of several)")
    require_numbers(table, inputs, path)
    return table[["x", *inputs, "target"]]


def dvc_md5(path: Path) -> str:
    """Return the hash DVC 3 records for a file in dvc.lock: the MD5 of its bytes."""
    with require(path).open("rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading `1e-06` as a number, as YAML 1.2 and DVC do (PyYAML
    reads text)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def read_yaml(path: Path) -> Any:
    """Return a YAML file's content (safe YAML only), or fail in one line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ParamsError(f"{path}: cannot be read ({err.strerror})") from err
    try:
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}") from err
