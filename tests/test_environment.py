"""pyproject.toml (the source for pip) and environment.yml (conda-forge) must name the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# conda-forge names that differ from the PyPI names
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}
NOT_PACKAGES = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pypi_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return {_name(r): r.replace(" ", "") for r in reqs}


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name = _name(dep)
            if name in NOT_PACKAGES:
                continue
            name = CONDA_TO_PYPI.get(name, name)
            out[name] = name + dep.strip()[len(_name(dep)):].replace(" ", "")
    return out


def test_same_packages_in_pyproject_and_environment_yml():
    pypi, conda = _pypi_requirements(), _conda_requirements()
    assert sorted(set(pypi) - set(conda)) == [], "in pyproject.toml but not environment.yml"
    assert sorted(set(conda) - set(pypi)) == [], "in environment.yml but not pyproject.toml"


def test_same_version_bounds():
    pypi, conda = _pypi_requirements(), _conda_requirements()
    mismatched = {name: (pypi[name], conda[name]) for name in pypi if pypi[name] != conda.get(name)}
    assert mismatched == {}


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip_block["pip"]
