"""Reading and writing the stages' artifacts: atomic writes, JSON, and per-arch result files checked key by key
(a corrupt or truncated input is one line naming the file and the key, never a traceback)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nasflow.errors import CheckpointError, one_line


def atomic_path(path: str | os.PathLike):
    """Context manager yielding a unique temporary path next to `path`; renamed into place only on success."""
    from nasflow.cache import atomic_path as _atomic_path

    return _atomic_path(path)


def plain(obj):
    """Only JSON types (e.g. for checkpoint metadata that torch.load(weights_only=True) must accept)."""
    return json.loads(json.dumps(obj, default=str))


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")


def read_json(path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing input file: {path}") from None
    except (ValueError, UnicodeDecodeError, RecursionError):  # json.JSONDecodeError is a ValueError
        raise CheckpointError(f"corrupt input file (not JSON): {path}") from None


# what a value of an artifact must be, by key; a key not listed may hold anything
_RESULT_KINDS = {"id": "int", "arch": "str", "seconds": "number", "elapsed": "number", "final_acc": "score",
                 "ground_truth": "score", "angle": "score", "supernet_acc": "score", "score": "score",
                 "angle_seconds": "number", "supernet_acc_seconds": "number", "search": "str", "method": "str"}
_TOP_KINDS = {"shard": "shard", "seconds": "number", "results": "list", "history": "list", "name": "str",
              "method": "str", "estimator": "str"}
_KIND_TEXT = {"int": "an integer", "number": "a number", "score": "a number or null", "str": "a string",
              "list": "a list", "shard": "a pair [i, n]"}


def _is(kind: str | None, v) -> bool:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    return {"int": isinstance(v, int) and not isinstance(v, bool), "number": number, "score": number or v is None,
            "str": isinstance(v, str), "list": isinstance(v, list),
            "shard": isinstance(v, list) and len(v) == 2 and all(type(x) is int for x in v)}.get(kind, True)


def _short(v) -> str:
    text = one_line(json.dumps(v, default=str))
    return text if len(text) <= 40 else text[:37] + "..."


def read_results(path, keys=(), *, top=(), rows: str | None = "results") -> dict:
    """An artifact (JSON object) whose `rows` list holds one object per arch, checked before anyone indexes it:
    the top-level keys `top` and, in every row, the keys `keys` exist with values of the right kind (ids unique).
    Anything else raises CheckpointError naming the file, the row and the key. rows=None: no list to check."""
    doc = read_json(path)
    again = "(rerun the stage that writes it)"
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found {type(doc).__name__} {again}")
    for key in (*top, *([rows] if rows else [])):
        if key not in doc:
            raise CheckpointError(f"{path}: no key {key!r} {again}")
        if not _is(_TOP_KINDS.get(key, "list" if key == rows else None), doc[key]):
            kind = _TOP_KINDS.get(key, "list")
            raise CheckpointError(f"{path}: {key!r} is {_short(doc[key])}, expected {_KIND_TEXT[kind]} {again}")
    item = "result" if rows == "results" else f"{rows} entry"
    seen = set()
    for i, row in enumerate(doc[rows] if rows else []):
        if not isinstance(row, dict):
            raise CheckpointError(f"{path}: {item} {i} is {_short(row)}, expected an object {again}")
        for key in keys:
            if key not in row:
                raise CheckpointError(f"{path}: {item} {i} has no key {key!r} {again}")
            if not _is(_RESULT_KINDS.get(key), row[key]):
                raise CheckpointError(f"{path}: {item} {i}: {key!r} is {_short(row[key])}, expected "
                                      f"{_KIND_TEXT[_RESULT_KINDS[key]]} {again}")
        if "id" in keys:
            if row["id"] in seen:
                raise CheckpointError(f"{path}: {item} {i} repeats id {row['id']} {again}")
            seen.add(row["id"])
    return doc
