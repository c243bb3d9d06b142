"""A workflow that lints clean: the real `snakemake --lint`, `snakefmt --check` and `ruff check`, and the one software
environment every rule names (workflow/envs/nasflow.yaml) in step with pyproject.toml."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PIPELINE = ["Snakefile", "params.yaml", "workflow", "stages", "nasflow"]
ENV_FILE = "../envs/nasflow.yaml"

# `snakemake --lint` findings accepted on purpose, (rule or snakefile, finding title): none today. A finding added
# here needs its one-line justification in docs/development.md ("Linting").
ALLOWED_LINTS: set = set()


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(path)


def _study(tmp_path: Path) -> Path:
    study = tmp_path / "study"
    for name in PIPELINE:
        src, dst = ROOT / name, study / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    return study


def _lint(study: Path) -> tuple[int, set]:
    """(exit status, {(where, finding title)}) of `snakemake --lint` on the default params.yaml."""
    r = subprocess.run([_tool("snakemake"), "--lint"], cwd=study, capture_output=True, text=True, timeout=120,
                       env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(study)})
    findings, where = set(), None
    for line in (r.stdout + r.stderr).splitlines():
        if m := re.match(r"Lints for (?:snakefile|rule) (\S+)", line):
            where = m.group(1)
        elif m := re.match(r"    \* (.+?):?$", line):
            findings.add((where, m.group(1)))
    return r.returncode, findings


def test_snakemake_lint_reports_nothing_beyond_the_allowlist(tmp_path):
    rc, findings = _lint(_study(tmp_path))
    assert findings <= ALLOWED_LINTS, sorted(findings - ALLOWED_LINTS)
    assert rc == 0 or findings


def test_snakemake_lint_catches_what_it_should(tmp_path):
    # the check above is only as good as its parsing: a rule reading the global params file in its shell command,
    # without a software environment, beside a helper function, gives the three findings the workflow used to have
    study = _study(tmp_path)
    with open(study / "workflow" / "rules" / "sample.smk", "a") as f:
        f.write('\n\ndef helper(w):\n    return []\n\n\nrule bad:\n    output:\n        "results/bad.txt",\n'
                '    log:\n        "results/logs/bad.log",\n    shell:\n        "cp {PARAMS} {output}"\n')
    rc, findings = _lint(study)
    titles = {t for _, t in findings}
    assert rc != 0
    assert "Mixed rules and functions in same snakefile." in titles
    assert "Specify a conda environment or container for each rule." in titles
    assert any(t.startswith("Shell command directly uses variable PARAMS") for t in titles), titles


def test_rule_files_are_snakefmt_formatted():
    r = subprocess.run([_tool("snakefmt"), "--check", "workflow/", "Snakefile"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_is_clean():
    r = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_pre_commit_runs_the_same_linters():
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    entries = {h["id"]: h["entry"] for h in hooks}
    assert entries["ruff"].startswith("ruff check") and entries["snakefmt"] == "snakefmt"


def test_every_rule_names_the_one_software_environment():
    rules = 0
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"(?m)^(?=(?:rule|checkpoint) \w+:)", text)[1:]:
            if "    shell:" in block:
                rules += 1
                assert f'    conda:\n        "{ENV_FILE}"' in block, f"{smk.name}: {block.splitlines()[0]}"
    assert rules >= 27
    assert (ROOT / "workflow" / "rules" / ENV_FILE).resolve() == ROOT / "workflow" / "envs" / "nasflow.yaml"


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_environment_pins_what_pyproject_pins():
    env = yaml.safe_load((ROOT / "workflow" / "envs" / "nasflow.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    in_env = {_name(r): r for r in pip}
    for req in project["dependencies"]:
        req = req.split("#")[0].strip()
        assert in_env.get(_name(req)) == req, f"workflow/envs/nasflow.yaml: {req} (pyproject) vs {in_env.get(_name(req))}"
    extras = project["optional-dependencies"]
    for req in extras["search"] + [r for r in extras["pipeline"] if _name(r) == "optuna"]:
        assert in_env.get(_name(req)) == req, req
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert tuple(map(int, python.split("=")[1].split("."))) >= (3, 10)
