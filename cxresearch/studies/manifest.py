"""Run manifests: what went into a run (hashes, versions, parameters) and what came out (status).

``manifest.json`` in every run folder records the parameters (canonical JSON and its sha256), the
notebook sha256, the cxresearch version, git commit and dirty flag, core package versions, sha256 of
the dataset spec and of each table's source file(s), the seed, start / end / duration, status and an
error summary. The *inputs fingerprint* (notebook, parameters, package source, data) decides whether a
rerun can skip a run that already succeeded.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from cxresearch.runtime import canonical_json, combine_hashes, sha256_file, sha256_text

MANIFEST_NAME = "manifest.json"
RESULTS_NAME = "results.json"
REPORT_NAME = "report.html"
MANIFEST_SCHEMA = 1

#: Libraries whose versions can change a study's numbers or its report.
CORE_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "duckdb",
    "pandera",
    "pydantic",
    "pymc",
    "pytensor",
    "arviz",
    "nutpie",
    "lifelines",
    "matplotlib",
    "seaborn",
    "papermill",
    "nbclient",
    "nbconvert",
    "nbformat",
    "ipykernel",
    "jupyter_client",
    "dask",
    "distributed",
)

_DATA_SUFFIXES = {".csv", ".parquet", ".pq", ".tsv", ".txt", ".duckdb", ".db"}


def _source_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _DATA_SUFFIXES
        )
    return []


def data_hashes(dataset: str | Path) -> dict[str, Any]:
    """sha256 of the dataset spec and of each table's source file(s); folders list each file.

    Returns ``{"spec": {"path", "sha256"}, "name", "as_of", "tables": {name: {"source", "sha256",
    "files": {relative path: sha256}}}}``.
    """
    from cxresearch.data.spec import load_spec

    dataset = Path(dataset).resolve()
    spec = load_spec(dataset)
    tables: dict[str, Any] = {}
    for name, source in spec.tables.items():
        if source.path is None and source.database is None and source.query is not None:
            # a query over files (read_csv('../x.csv')): the query text and every file it reads
            from cxresearch.data.sources import resolve_query_paths

            _, read = resolve_query_paths(source.query, spec.base_dir)
            hashes = {"(query)": sha256_text(source.query), **{str(p.resolve()): sha256_file(p) for p in read}}
            tables[name] = {"source": "query", "sha256": combine_hashes(hashes), "files": hashes}
            continue
        where = source.path if source.path is not None else source.database
        if where is None:
            raise ValueError(f"{dataset}: tables.{name}: neither path nor database is set")
        location = spec.resolve(where).resolve()
        files = _source_files(location)
        if not files:
            raise FileNotFoundError(f"{dataset}: tables.{name}: no data file at {location}")
        hashes = {(p.relative_to(location).as_posix() if location.is_dir() else p.name): sha256_file(p) for p in files}
        tables[name] = {"source": str(location), "sha256": combine_hashes(hashes), "files": hashes}
    return {
        "spec": {"path": str(dataset), "sha256": sha256_file(dataset)},
        "name": spec.name,
        "as_of": spec.as_of.isoformat() if spec.as_of else None,
        "tables": tables,
    }


@lru_cache(maxsize=8)
def git_info(where: str | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git checkout holding the cxresearch package, or None outside git."""
    folder = Path(where) if where else Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20, check=True
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=normal").strip())
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def package_versions(names: tuple[str, ...] = CORE_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the core libraries (None where not installed), plus Python's."""
    import platform

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def inputs_fingerprint(
    *, notebook_sha256: str, parameters_sha256: str, package_sha256: str, data: Mapping[str, Any], title: str | None
) -> str:
    """The hash a rerun compares: notebook, parameters, package source, data (spec + tables) and the
    report title. Package *versions* are recorded but not part of it (a lock file change is a
    source change in practice, and reinstalling the same versions must not force reruns)."""
    payload = {
        "notebook": notebook_sha256,
        "parameters": parameters_sha256,
        "package": package_sha256,
        "data": {"spec": data["spec"]["sha256"], "tables": {k: v["sha256"] for k, v in data["tables"].items()}},
        "title": title,
    }
    return sha256_text(canonical_json(payload))


def read_manifest(run_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of a run folder, or None when absent or unreadable."""
    path = Path(run_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def can_skip(run_dir: str | Path, fingerprint: str) -> bool:
    """True when the run folder holds a succeeded run with the same inputs and all its outputs."""
    manifest = read_manifest(run_dir)
    if not manifest or manifest.get("status") != "succeeded" or manifest.get("inputs_fingerprint") != fingerprint:
        return False
    outputs = manifest.get("outputs") or {}
    names = [outputs.get("notebook"), outputs.get("report"), outputs.get("results")]
    return all(name and (Path(run_dir) / name).is_file() for name in names)
