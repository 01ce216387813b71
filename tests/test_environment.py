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
            out[name] = name + dep.strip()[len(_name(dep)) :].replace(" ", "")
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


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level names of every non-stdlib, non-cxresearch import in the package (AST, any depth) -> files."""
    import ast
    import sys

    found: dict[str, set[str]] = {}
    for path in (ROOT / "cxresearch").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "cxresearch" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_every_imported_package_is_declared():
    """What the package imports is a declared runtime dependency or optional extra (no package that only works by
    accident); an extra is imported only where a setting asks for it (jax: ``backend: jax``)."""
    from importlib.metadata import packages_distributions

    declared = set(_runtime_requirements()) | set(_optional_extras())
    providers = packages_distributions()
    undeclared = {}
    for module, files in _third_party_imports().items():
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & declared:
            undeclared[module] = sorted(files)
    assert undeclared == {}, f"imported but not declared in pyproject.toml [project.dependencies]: {undeclared}"


def test_every_declared_runtime_package_is_used():
    """A runtime dependency nothing imports is dead weight (kept: ones used only as a kernel, server or engine)."""
    from importlib.metadata import packages_distributions

    used_dists = set()
    providers = packages_distributions()
    for module in _third_party_imports():
        used_dists |= {d.lower().replace("_", "-") for d in providers.get(module, [])}
    # used without an import statement: the `cxresearch` Jupyter kernel the runner starts, and JupyterLab (`make lab`)
    not_imported = {"ipykernel", "jupyterlab"}
    unused = sorted(set(_runtime_requirements()) - used_dists - not_imported)
    assert unused == [], f"declared in pyproject.toml but never imported by cxresearch: {unused}"


def _optional_extras() -> dict[str, str]:
    """The user-facing extras of pyproject.toml (``pip install 'cxresearch[jax]'``), not the test tools."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {_name(r): r for group, reqs in extras.items() if group != "dev" for r in reqs}


def _runtime_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r): r for r in project["dependencies"]}
