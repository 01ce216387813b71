"""Neutral helpers every layer may import: hashing, versions, thread sizing and compute-once caching.

Nothing here knows about surveys, models or studies, so ``data``, ``measurement``, ``drivers``,
``economics``, ``initiatives`` and ``studies`` can all use it without importing each other (layers point
down only; ``tests/test_layers.py`` checks it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

_CHUNK = 1 << 20
T = TypeVar("T")


def canonical_json(data: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace, UTF-8 kept) used for hashing parameters."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for NumPy scalars, sets and tuples (everything else as text)."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def sha256_text(text: str) -> str:
    """sha256 hex digest of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def combine_hashes(entries: Mapping[str, str]) -> str:
    """One sha256 over named hashes, independent of the mapping's order."""
    digest = hashlib.sha256()
    for name in sorted(entries):
        digest.update(f"{name}\0{entries[name]}\n".encode())
    return digest.hexdigest()


def arrays_hash(arrays: Mapping[str, Any]) -> str:
    """One sha256 over named arrays (as float64 values), independent of the mapping's order."""
    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(f"{name}\0".encode())
        digest.update(np.ascontiguousarray(arrays[name], dtype="float64").tobytes())
    return digest.hexdigest()


def package_source_hash(package_dir: str | Path | None = None) -> str:
    """sha256 over every ``cxresearch/**/*.py`` file (relative path + content), in sorted order."""
    root = Path(package_dir) if package_dir else Path(__file__).resolve().parent
    files = {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    return combine_hashes(files)


def frame_hash(frame: Any) -> str:
    """SHA-256 of a pandas frame's values, index and column names (row order matters)."""
    import pandas as pd

    values = pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
    return sha256_text(values.hex() + canonical_json([str(c) for c in frame.columns]))


def library_versions(
    names: Iterable[str] = ("pymc", "nutpie", "pytensor", "numpy", "arviz", "lifelines"),
) -> dict[str, str | None]:
    """Installed versions of ``names`` (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def package_version() -> str:
    """The installed cxresearch version ("0+unknown" when run from a source tree that is not installed)."""
    try:
        return metadata.version("cxresearch")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def run_threads(default: int | None = None) -> int:
    """Threads this run may use (set by the runner so parallel runs share the cores), e.g. for
    ``nutpie.sample(..., cores=run_threads())``. Outside the runner: ``default`` or all cores."""
    value = os.environ.get("CXRESEARCH_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return default or os.cpu_count() or 1


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run BLAS / OpenMP on one thread inside the block: the same seed gives the same draws.

    A multi-threaded BLAS splits a dot product's sum across threads, so its last bits depend on how many
    threads the process has (the runner gives each run its share of the cores); Hamiltonian Monte Carlo
    amplifies those bits into different draws. Samplers run their chains on their own threads, so one BLAS
    thread per chain is also the fastest setting for the small matrix products of these models.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def compute_once(
    path: str | Path,
    compute: Callable[[], T],
    save: Callable[[T, Path], None],
    load: Callable[[Path], T],
) -> tuple[T, bool]:
    """``load(path)`` if it exists, else ``compute()`` and ``save`` it atomically; returns (value, reused).

    Runs under an exclusive file lock beside ``path`` (``filelock``), so parallel runs that need the same
    artefact compute it once and the others wait and load it. ``save`` writes to a partial file that is
    renamed into place, so a crash never leaves a half-written artefact under the final name.
    """
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_name(f".{path.name}.lock"))):
        if path.exists():
            return load(path), True
        value = compute()
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        save(value, partial)
        os.replace(partial, path)
        return value, False
