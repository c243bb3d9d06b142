"""Tabular NAS-Bench-201 ground truth.

Reads the CSV format of `../shared/data/nb201-accuracies.csv` (`index, arch, <accuracy columns…>`): all
15,625 cells load in tens of milliseconds, where the official API file needs ~28 GB of memory.
"""
from __future__ import annotations

import csv
import functools
from pathlib import Path

from nasflow.errors import DataError, ParamsError


@functools.lru_cache(maxsize=8)
def _read(path: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = tuple(next(reader))
            rows = {row[1]: tuple(row) for row in reader if row}
    except FileNotFoundError:
        raise DataError(f"ground-truth table not found: {path}") from None
    except (StopIteration, IndexError, UnicodeDecodeError, csv.Error):
        raise DataError(f"ground-truth table is not a CSV with columns index, arch, …: {path}") from None
    if header[:2] != ("index", "arch"):
        raise DataError(f"ground-truth table {path}: first columns must be 'index, arch', got {', '.join(header[:2])}")
    return header, rows


def columns(path: str | Path) -> list[str]:
    """The accuracy columns a table offers."""
    return list(_read(str(path))[0][2:])


def load_table(path: str | Path, column: str) -> dict[str, float]:
    """{canonical arch string: value of `column`} for every cell of the table."""
    header, rows = _read(str(path))
    if column not in header[2:]:
        raise ParamsError(f"ground_truth.column: {column!r} is not a column of {path} (have: {', '.join(header[2:])})")
    j = header.index(column)
    try:
        return {arch: float(row[j]) for arch, row in rows.items()}
    except (ValueError, IndexError):
        raise DataError(f"ground-truth table {path}: non-numeric or missing value in column {column!r}") from None


def lookup(archs: list[str], path: str | Path, column: str) -> list[float]:
    """Look up each (canonical) arch; an arch missing from the table is an error naming it."""
    table = load_table(path, column)
    out = []
    for arch in archs:
        if arch not in table:
            raise DataError(f"arch {arch!r} is not in the ground-truth table {path}")
        out.append(table[arch])
    return out
