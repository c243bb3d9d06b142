"""Search spaces, by name. Each space is a module exposing the same small API:

`NAME`, `parse`, `format`, `canonical`, `validate`, `sample`, `mutate`, `enumerate_all` (where finite).

Spaces hold no networks and never import nasflow.models: nasflow.registry pairs each space with the module
that builds its networks (`nasflow.registry.build_network(space, arch, ...)`) and is where a new space is
registered. `get_space` and `available_spaces` are the registry's, importable from here as before.
"""

from __future__ import annotations

from nasflow.registry import available_spaces, get_space

__all__ = ["available_spaces", "get_space"]
