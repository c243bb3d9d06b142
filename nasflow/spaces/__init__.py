"""Search spaces, by name. Each space is a module exposing the same small API:

`NAME`, `parse`, `format`, `canonical`, `validate`, `sample`, `mutate`, `enumerate_all` (where finite),
`build_network(arch, *, channels, depth, num_classes)`.

Register a new space by adding its module path to `_SPACES`; modules are imported on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from nasflow.errors import ParamsError

_SPACES: dict[str, str] = {
    "nb201": "nasflow.spaces.nb201",
    "darts": "nasflow.spaces.darts",
    "mobilenet": "nasflow.spaces.mobilenet",
}


def available_spaces() -> list[str]:
    """The names `get_space` accepts, sorted."""
    return sorted(_SPACES)


def get_space(name: str) -> ModuleType:
    """The module implementing search space `name`; `ParamsError` for an unknown name."""
    try:
        module_path = _SPACES[name]
    except (KeyError, TypeError):
        raise ParamsError(
            f"unknown search space {name!r} (known: {', '.join(available_spaces())})"
        ) from None
    return importlib.import_module(module_path)
