"""Tabular NAS-Bench-201 ground truth: the table nasflow reads.

Two formats, told apart by the file name:
- `*.parquet`: the table `nasflow table build --from RELEASE --out FILE` writes from the official NATS-Bench /
  NAS-Bench-201 release (nasflow.bench_build; its columns are listed in bench_build.COLUMNS_DOC): final
  accuracies and losses per dataset, split, schedule and seed, per-epoch curves, recorded training times.
  Columnar, so a study reads only the columns it names (milliseconds), where the official API file needs
  ~28 GB of memory.
- `*.csv`: `index, arch, <value columns…>` (the layout of the development table; see docs/data.md).

Column names keep one meaning in both: `cifar10_test_acc_200ep`, `cifar10_valid_acc_200ep`, … (ALIASES).
"""
from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np

from nasflow.errors import DataError, ParamsError


def _is_parquet(path: str) -> bool:
    return path.endswith(".parquet")


def _stamp(path: str) -> tuple:
    """Identity of the file's contents for the caches below (a rebuilt table is read again)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"ground-truth table not found: {path}") from None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _read_csv(path: str, stamp: tuple) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
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


@functools.lru_cache(maxsize=8)
def _parquet_schema(path: str, stamp: tuple):
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
        raise DataError(f"ground-truth table {path} is not a readable Parquet file ({type(e).__name__})") from None
    if schema.names[:2] != ["index", "arch"]:
        raise DataError(f"ground-truth table {path}: first columns must be 'index, arch'")
    return schema


@functools.lru_cache(maxsize=64)
def _parquet_column(path: str, stamp: tuple, column: str):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["arch", column])
    except Exception as e:
        raise DataError(f"ground-truth table {path}: cannot read column {column!r} ({type(e).__name__})") from None
    return table.column("arch").to_pylist(), table.column(column)


def columns(path: str | Path) -> list[str]:
    """The value columns a table offers (curves included)."""
    path = str(path)
    if _is_parquet(path):
        return _parquet_schema(path, _stamp(path)).names[2:]
    return list(_read_csv(path, _stamp(path))[0][2:])


def _check_column(path: str, column: str) -> None:
    have = columns(path)
    if column not in have:
        shown = [c for c in have if "_curve_" not in c and "_s" not in c.rsplit("ep", 1)[-1]]
        raise ParamsError(f"column {column!r} is not a column of {path} (have: "
                          f"{', '.join(shown[:12])}{', …' if len(shown) > 12 else ''})")


def load_table(path: str | Path, column: str) -> dict[str, float]:
    """{canonical arch string: value of `column`} for every cell of the table."""
    path = str(path)
    _check_column(path, column)
    if _is_parquet(path):
        archs, values = _parquet_column(path, _stamp(path), column)
        if "list" in str(values.type):
            raise ParamsError(f"ground_truth.column: {column!r} of {path} is a per-epoch curve, not a number")
        return dict(zip(archs, values.to_numpy(zero_copy_only=False).astype(np.float64).tolist()))
    header, rows = _read_csv(path, _stamp(path))
    j = header.index(column)
    try:
        return {arch: float(row[j]) for arch, row in rows.items()}
    except (ValueError, IndexError):
        raise DataError(f"ground-truth table {path}: non-numeric or missing value in column {column!r}") from None


def load_curves(path: str | Path, column: str) -> dict[str, np.ndarray]:
    """{arch: per-epoch values} of a curve column (`…_curve_<s>ep`) of a built table; cells without one omitted."""
    path = str(path)
    if not _is_parquet(path):
        raise DataError(f"ground-truth table {path}: per-epoch curves need a table built from the official "
                        "release (nasflow table build --from RELEASE --out FILE.parquet)")
    _check_column(path, column)
    return _curves(path, _stamp(path), column)


@functools.lru_cache(maxsize=16)
def _curves(path: str, stamp: tuple, column: str) -> dict[str, np.ndarray]:
    """Converted once per file and column: every tabular estimator of a study reads the same few curves
    (callers only read the arrays)."""
    archs, values = _parquet_column(path, stamp, column)
    return {a: np.asarray(v, dtype=np.float64) for a, v in zip(archs, values.to_pylist()) if v is not None}


def has_column(path: str | Path, column: str) -> bool:
    return column in columns(path)


def lookup(archs: list[str], path: str | Path, column: str) -> list[float]:
    """Look up each (canonical) arch; an arch missing from the table is an error naming it."""
    table = load_table(path, column)
    out = []
    for arch in archs:
        if arch not in table:
            raise DataError(f"arch {arch!r} is not in the ground-truth table {path}")
        out.append(table[arch])
    return out
