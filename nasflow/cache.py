"""What makes a cached result trustworthy: a fingerprint of the code that made it, one writer per result, and
writes that are never seen half-done.

- `code_fingerprint(*modules)`: a hash of the source of every nasflow module the given modules import,
  directly or not (imports inside functions count, and so do module paths named in strings, as the space
  registry imports its spaces), plus the torch and numpy versions. An uncommitted edit changes it; an edit
  of a module the code does not import (the report, say) does not. Cached per-arch results, training
  checkpoints, supernet weights and finished searches store it and are reused only when it matches.
- `key_lock(path)`: an exclusive `flock` on a lock file, so two jobs that need the same arch train it once
  (the second waits, then reads the first one's result). The kernel drops the lock when its process dies,
  so a killed job never leaves a result claimed. Lock files stay behind (they are empty and harmless).
- `atomic_path(path)`: a unique temporary name beside `path` (mkstemp), renamed into place only on success,
  with the permissions a plain `open()` would give (mkstemp's 0600 would hide results from colleagues).
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.util
import os
import re
import tempfile
from pathlib import Path

import filelock

_PACKAGES = ("nasflow", "stages")  # the project's own code; everything else is pinned by its version
_MODULE_NAME = re.compile(r"^(nasflow|stages)(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@functools.lru_cache(maxsize=None)
def _source_file(module: str) -> Path | None:
    """The .py file of a project module, or None when `module` is not one (a name inside a module)."""
    if module.split(".")[0] not in _PACKAGES:
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _imports(module: str, path: Path) -> set[str]:
    """Project modules named by `module`'s source: import statements anywhere, and dotted module strings."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            found.add(node.value)
    # importing a.b.c runs a/__init__.py and a/b/__init__.py too
    parents = {".".join(name.split(".")[:k]) for name in found for k in range(1, name.count(".") + 1)}
    return {name for name in found | parents if _source_file(name) is not None}


@functools.lru_cache(maxsize=None)
def module_closure(*modules: str) -> tuple[str, ...]:
    """The project modules that `modules` depend on (themselves included), sorted."""
    seen: set[str] = set()
    todo = [m for m in modules]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _source_file(name)
        if path is None:
            raise ValueError(f"code_fingerprint: {name!r} is not a module of {' or '.join(_PACKAGES)}")
        seen.add(name)
        todo.extend(_imports(name, path) - seen)
    return tuple(sorted(seen))


@functools.lru_cache(maxsize=None)
def code_fingerprint(*modules: str) -> str:
    """16 hex digits naming the source of `modules` and of every project module they import, plus the torch
    and numpy versions (a new torch can change kernels, hence results)."""
    import numpy
    import torch

    h = hashlib.sha256()
    for name in module_closure(*modules):
        h.update(name.encode() + b"\0" + _source_file(name).read_bytes() + b"\0")
    h.update(f"torch {torch.__version__} numpy {numpy.__version__}".encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ locks

@contextlib.contextmanager
def key_lock(path: str | os.PathLike, *, blocking: bool = True):
    """Hold an exclusive lock on `path` (created if needed); yields True, or False when `blocking` is off and
    another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, timeout=-1 if blocking else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------- atomic writes

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class atomic_path:
    """`with atomic_path(p) as tmp:` write `tmp`; it becomes `p` only when the block ends without an error.

    The temporary name is unique (mkstemp), so concurrent writers never share one; the final file gets the
    usual umask-respecting permissions (e.g. 0644), not mkstemp's 0600."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, _tb):
        if exc_type is None:
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.filename is None:  # e.g. a full disk mid-write: say which file
                exc.filename = str(self.path)
        return False


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def torch_save_atomic(obj, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
