"""nasflow.registry: each space pairs with its network module, and spaces never import networks."""
from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nasflow import registry
from nasflow.counting import count_params
from nasflow.errors import ParamsError
from nasflow.models.darts import NetworkCIFAR
from nasflow.models.mobilenet import MobileNetwork
from nasflow.models.nb201 import TinyNetwork
from nasflow.spaces import available_spaces, get_space

ROOT = Path(__file__).resolve().parents[1]
SPACE_FILES = sorted((ROOT / "nasflow" / "spaces").glob("*.py"))


def test_spaces_import_no_network_module():
    # a fresh interpreter: this process has imported the models already
    modules = [f"nasflow.spaces.{p.stem}" for p in SPACE_FILES if p.stem != "__init__"]
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(run.stdout)
    assert set(modules) <= set(loaded)  # they did load
    assert [m for m in loaded if m.startswith("nasflow.models")] == []
    assert "torch" not in loaded


@pytest.mark.parametrize("path", SPACE_FILES, ids=lambda p: p.name)
def test_space_sources_name_no_network_module(path):
    # the import check above misses imports inside functions; read every import statement of the source
    named = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            named += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            named.append(node.module or "")
    assert named and not [m for m in named if m.startswith("nasflow.models")]


def test_the_registry_pairs_every_space_with_its_network():
    assert available_spaces() == ["darts", "mobilenet", "nb201"]
    nb201, darts, mobilenet = get_space("nb201"), get_space("darts"), get_space("mobilenet")
    assert [registry.network_module(s).__name__ for s in ("nb201", darts, mobilenet)] == \
        ["nasflow.models.nb201", "nasflow.models.darts", "nasflow.models.mobilenet"]
    arch = nb201.sample(1, seed=0)[0]
    by_name = registry.build_network("nb201", arch, channels=4, depth=1, num_classes=10)
    by_module = registry.build_network(nb201, arch, channels=4, depth=1, num_classes=10)
    assert isinstance(by_name, TinyNetwork) and by_name.arch == nb201.canonical(arch)
    assert count_params(by_name) == count_params(by_module) == count_params(TinyNetwork(arch, C=4, N=1))
    net = registry.build_network(darts, darts.DARTS_V2, channels=4, depth=3, num_classes=10, auxiliary=False)
    assert isinstance(net, NetworkCIFAR) and (net.C, net.layers, net.auxiliary_head) == (4, 3, None)
    net = registry.build_network("mobilenet", mobilenet.sample(1, seed=0)[0], channels=10, num_classes=10)
    assert isinstance(net, MobileNetwork) and net.width == 0.25  # channels = stem width 10 = 40 x 0.25
    assert "auxiliary" in inspect.signature(registry.network_builder("darts")).parameters


def test_an_unknown_space_is_a_one_line_params_error():
    with pytest.raises(ParamsError, match=r"^unknown search space 'resnet' \(known: darts, mobilenet, nb201\)$"):
        registry.build_network("resnet", "x", channels=4)
    with pytest.raises(ParamsError, match="unknown search space"):
        registry.network_module(json)  # a module that is no space
