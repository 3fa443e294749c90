"""Reading and writing the stages' CSV tables (series, history, predictions).

Apart from pipeline.files so that modules which need no table, such as pipeline.tracking,
do not import pandas (about 0.3 s).
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.errors import InputError
from pipeline.files import atomic_path, missing


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write `table` as CSV, floats in full precision (round-trip exact)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a numeric CSV table that must hold `columns`."""
    if not path.is_file():
        raise missing(path)
    try:
        table = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"{path}: not a readable CSV table ({err})") from err
    absent = [column for column in columns if column not in table.columns]
    if absent:
        raise InputError(f"{path}: missing column(s) {', '.join(absent)}; "
                         f"found {', '.join(map(str, table.columns))}")
    numeric = table[list(columns)].select_dtypes("number").columns
    bad = [column for column in columns if column not in numeric]
    if bad or table.empty:
        raise InputError(f"{path}: column(s) {', '.join(bad) or 'all'} must be non-empty numbers")
    return table
