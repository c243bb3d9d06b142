"""The search spaces, by name: each pairs its space module with its network module.

    space module    nasflow.spaces.<x>: encodings, parse/format/validate, sample, mutate, ...; no torch, and it
                    never imports nasflow.models (models import their space, not the other way round)
    network module  nasflow.models.<x>: `build_network(arch, *, channels, depth, num_classes, ...)` builds the
                    fixed-arch network that proxy training, retraining and zero-cost scoring run

Adding a space is a new pair of modules plus one line in `_SPACES`. Both modules are imported on first use,
so asking for a space's encodings never loads torch. The module paths are plain strings here, which is how
`nasflow.cache.code_fingerprint` sees that code calling `build_network` depends on every network module.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from nasflow.errors import ParamsError


class SpaceModules(NamedTuple):
    space: str  # module path of the space (encodings)
    network: str  # module path of its network builder


_SPACES: dict[str, SpaceModules] = {
    "nb201": SpaceModules("nasflow.spaces.nb201", "nasflow.models.nb201"),
    "darts": SpaceModules("nasflow.spaces.darts", "nasflow.models.darts"),
    "mobilenet": SpaceModules("nasflow.spaces.mobilenet", "nasflow.models.mobilenet"),
}


def available_spaces() -> list[str]:
    """The names `get_space` accepts, sorted."""
    return sorted(_SPACES)


def _modules(space: str | ModuleType) -> SpaceModules:
    """The registry entry of a space name or space module; `ParamsError` for one not registered."""
    name = space if isinstance(space, str) else getattr(space, "NAME", space)
    try:
        return _SPACES[name]
    except (KeyError, TypeError):
        raise ParamsError(
            f"unknown search space {name!r} (known: {', '.join(available_spaces())})"
        ) from None


def get_space(name: str) -> ModuleType:
    """The module implementing search space `name`; `ParamsError` for an unknown name."""
    return importlib.import_module(_modules(name).space)


def network_module(space: str | ModuleType) -> ModuleType:
    """The module that builds the networks of `space` (a name or a space module)."""
    return importlib.import_module(_modules(space).network)


def network_builder(space: str | ModuleType) -> Callable[..., Any]:
    """`build_network(arch, *, channels, depth, num_classes, ...)` of `space`; its signature tells which extra
    keywords the space's networks take (darts: `auxiliary`; mobilenet: `width`, `input_size`)."""
    return network_module(space).build_network


def build_network(space: str | ModuleType, arch, **kwargs):
    """The fixed-arch network (a torch module) for `arch` of `space` (a name or a space module); keywords as
    `network_builder(space)` takes them, usually `channels`, `depth` and `num_classes`."""
    return network_builder(space)(arch, **kwargs)
