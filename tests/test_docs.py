"""The documentation: the real `mkdocs build --strict` (Material theme, the parameter reference generated from the
params schema by docs/hooks/parameters.py), the front page's size, and every relative link of README.md and
docs/*.md."""

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "params.schema.yaml").read_text())
GENERATED = {"parameters.md"}  # written by the hook at build time, never kept on disk

pytest.importorskip("mkdocs")
pytest.importorskip("material")


def _build(root: Path, out: Path) -> subprocess.CompletedProcess:
    # not -q: a quiet build does not count warnings, so --strict would pass whatever they say
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(out)], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(out.parent)})


def _schema_keys(node: dict, prefix: str, out: list) -> None:
    """Every key path of the schema as the reference names it (`settings.<name>.epochs`, `a.scenarios[].b`)."""
    ref = node.get("$ref")
    if ref:
        node = SCHEMA["$defs"][ref.split("/")[-1]]
    for key, child in (node.get("properties") or {}).items():
        out.append(f"{prefix}{key}")
        _schema_keys(child, f"{prefix}{key}.", out)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "$ref" in extra:
        _schema_keys(extra, f"{prefix}<name>.", out)
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        _schema_keys(items, prefix.rstrip(".") + "[].", out)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    proc = _build(ROOT, out)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_strict_build_gives_every_page_and_the_nav(site):
    for page in ["index", "concepts", "data", "engines", "estimators", "predictors", "zero-cost", "studies",
                 "parameters", "outputs", "fidelity", "performance", "frontier", "budget-search", "development"]:
        assert (site / ("index.html" if page == "index" else f"{page}/index.html")).is_file(), page
    home = (site / "index.html").read_text()
    assert 'class="md-nav' in home  # the Material theme's navigation
    for title in ["Concepts", "Parameter reference", "Model-based predictors", "Zero-cost proxies",
                  "The frontier on CIFAR-10"]:
        assert title in home, title
    assert (site / "frontier_cifar10.png").is_file()  # the images stay in docs/ and are copied
    assert not (site / "hooks").exists()  # the hook is not published


def test_parameter_reference_lists_every_schema_key_with_its_description(site):
    text = html.unescape((site / "parameters" / "index.html").read_text())
    for key in SCHEMA["properties"]:
        assert f"<code>{key}</code>" in text, key
    keys: list = []
    _schema_keys(SCHEMA, "", keys)
    assert len(keys) > 150
    missing = [k for k in keys if f"<code>{k}</code>" not in text]
    assert not missing, missing
    # nested keys with their description, default and allowed values, straight from the schema
    assert "settings.<name>.augment_order" in keys and "bench_search.scenarios[].cost_model" in keys
    grad_reset = SCHEMA["properties"]["supernet"]["properties"]["grad_reset"]["description"]
    assert " ".join(grad_reset.split()) in text
    row = re.search(r"<code>zero_cost\.batch_size</code></td>(.*?)</tr>", text, re.S).group(1)
    assert "64" in row and "Abdelfattah" in row
    assert '"crop_then_resize"' in text


def test_strict_build_fails_on_a_broken_link(tmp_path):
    copy = tmp_path / "repo"
    for part in ["docs", "workflow/schemas"]:
        shutil.copytree(ROOT / part, copy / part)
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    with open(copy / "docs" / "data.md", "a") as f:
        f.write("\nSee [nowhere](no-such-page.md).\n")
    proc = _build(copy, tmp_path / "site")
    assert proc.returncode != 0
    assert "no-such-page.md" in proc.stdout + proc.stderr


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= 12_500, len(readme)
    text = readme.decode()
    for needed in ["make demo", "make test", "docs/frontier_cifar10.png", "configfile params/", "results/report.html"]:
        assert needed in text, needed


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(path: Path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # not inside code blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # nor code spans
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if not re.match(r"^[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#")[0]


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: p.name)
def test_every_relative_link_resolves(path):
    links = list(_relative_links(path))
    broken = [t for t in links if not (path.parent / t).exists() and Path(t).name not in GENERATED]
    assert not broken, f"{path.name}: {broken}"
    if path.name == "README.md":
        assert len(links) >= 10  # it is a page of links
