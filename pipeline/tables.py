"""Reading and writing the stages' CSV tables (series, history, predictions).

Tables are read into plain NumPy columns with the csv module: the stages that only read
them (window, plot) then do not import pandas, about 0.3 s of each one's second or so.
The stages that build tables use pandas and hand their DataFrames to `write_table`.
"""

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import InputError
from pipeline.files import atomic_path, missing

if TYPE_CHECKING:  # the writers' callers import pandas; this module needs none of it
    import pandas as pd

Table = dict[str, np.ndarray]  # column name -> values, every column the same length


def write_table(table: "pd.DataFrame", path: Path) -> None:
    """Write `table` as CSV, floats in full precision (round-trip exact)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _rows(path: Path) -> list[list[str]]:
    """Return the CSV file's rows, header first, or fail naming the file."""
    if not path.is_file():
        raise missing(path)
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: not a readable CSV table ({err})") from err
    if any(len(row) != len(rows[0]) for row in rows):
        raise InputError(f"{path}: not a readable CSV table (rows of different lengths)")
    return rows


def _numbers(values: list[str]) -> np.ndarray | None:
    """Return `values` as float64, or None if any is not a number (or there are none)."""
    try:
        numbers = np.array(values, dtype=np.float64)
    except ValueError:
        return None
    return numbers if len(numbers) else None


def read_table(path: Path, columns: Sequence[str], text: Sequence[str] = ()) -> Table:
    """Read a CSV table; return its numeric `columns` (float64) and `text` columns (str)."""
    rows = _rows(path)
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    absent = [column for column in (*columns, *text) if column not in header]
    if absent:
        raise InputError(f"{path}: missing column(s) {', '.join(absent)}; "
                         f"found {', '.join(header)}")
    values = {column: [row[header.index(column)] for row in body]
              for column in (*columns, *text)}
    table = {column: _numbers(values[column]) for column in columns}
    bad = [column for column, numbers in table.items() if numbers is None]
    if bad:
        raise InputError(f"{path}: column(s) {', '.join(bad)} must be non-empty numbers")
    return {**table, **{column: np.array(values[column], dtype=str) for column in text}}
