"""Licence and citation: CITATION.cff is valid CFF 1.2.0 (jsonschema against the format's own schema,
tests/data/cff-1.2.0.schema.json: the citation-file-format project's, CC-BY-4.0, copied from the cffconvert 2.0.0
wheel, whose pin of jsonschema<4 keeps the package itself out of this venv) and names the version the code reports;
the licence is Apache-2.0 everywhere it is stated; the changelog's first entry is the current version."""
import json
import re
from pathlib import Path

import jsonschema
import pytest
import tomllib
import yaml

import nasflow

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "cff-1.2.0.schema.json").read_text())


def _cff() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def _validate(doc: dict) -> None:
    jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(doc)


def test_citation_file_is_valid_cff_1_2():
    cff = _cff()
    _validate(cff)
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"


def test_the_schema_check_catches_a_broken_citation():
    cff = _cff()
    del cff["authors"]  # required by CFF
    with pytest.raises(jsonschema.ValidationError, match="authors"):
        _validate(cff)
    cff = _cff()
    cff["references"][0]["type"] = "paper"  # not a CFF reference type
    with pytest.raises(jsonschema.ValidationError):
        _validate(cff)


def test_citation_names_the_version_and_the_works_implemented():
    cff = _cff()
    assert cff["version"] == nasflow.__version__
    titles = " | ".join(r["title"] for r in cff["references"])
    for work in ("Rethinking Performance Estimation in Neural Architecture Search",  # BPE
                 "Neural Architecture Search with Random Labels",  # RLNAS
                 "Searching for A Robust Neural Architecture in Four GPU Hours",  # GDAS
                 "NAS-Bench-201", "Zero-Cost Proxies for Lightweight NAS",
                 "Speedy Performance Estimation for Neural Architecture Search"):  # SoTL
        assert work in titles


def test_licence_is_apache_2_everywhere():
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == _cff()["license"] == "Apache-2.0"
    assert project["dynamic"] == ["version"]  # no project URLs until the public address is settled


def test_changelog_starts_with_the_current_version():
    versions = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert versions[:2] == ["Unreleased", nasflow.__version__]
