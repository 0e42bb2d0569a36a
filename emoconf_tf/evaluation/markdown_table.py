"""GitHub-flavoured markdown tables of DataFrames, their cells formatted as report.md shows them: `markdown_table`,
and `whole_as_int` for float columns that hold counts."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd


def _format_cell(value, floatfmt: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


_NUMBER_TEXT = re.compile(r"^(n/a|[-+]?[\d,.]+( ± [\d,.]+)?)$")


def _is_numeric_column(values: pd.Series) -> bool:
    """Numbers, and numbers rendered as text ("0.44 ± 0.03"), are right-aligned."""
    if pd.api.types.is_numeric_dtype(values):
        return True
    return bool(len(values)) and all(isinstance(v, str) and _NUMBER_TEXT.match(v) for v in values)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f", *, index: bool = True) -> str:
    """A GitHub-flavoured markdown table of `df`; no `tabulate` needed.

    Args:
        df: the table; tuple column names are joined with spaces.
        floatfmt: format of float cells, default `".3f"`.
        index: True (default) to show the index levels as leading columns.

    Returns:
        The table's lines, joined by newlines (no trailing one): a header, an alignment row (numbers, and numbers
        rendered as text such as `"0.44 ± 0.03"`, right-aligned), then one line per row. NaN and None show as
        `n/a`, integers with thousands separators, `|` in text escaped.

    Example:
    >>> print(markdown_table(pd.DataFrame({"a": [0.5, np.nan]}, index=pd.Index(["r1", "r2"], name="row"))))
    | row | a |
    | :--- | ---: |
    | r1 | 0.500 |
    | r2 | n/a |
    """
    frame = df.reset_index() if index else df
    header = [_format_cell(c if not isinstance(c, tuple) else " ".join(map(str, c)), floatfmt) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |"]
    align = ["---:" if _is_numeric_column(frame[c]) else ":---" for c in frame.columns]
    lines.append("| " + " | ".join(align) + " |")
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_format_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)


def whole_as_int(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose float columns holding only whole values (counts, sizes with one seed) are integers
    (pandas `Int64`, NaN kept as missing), so that `markdown_table` shows them without decimals."""
    df = df.copy()
    for column in df.columns:
        values = df[column]
        if pd.api.types.is_float_dtype(values) and values.notna().any():
            present = values.dropna()
            if (present == present.round()).all():
                df[column] = values.round().astype("Int64")
    return df
