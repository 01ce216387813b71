"""Parameterised studies: params files, the runner (papermill, local processes or Dask), manifests,
HTML reports and the report index. ``cxresearch run`` lives in :mod:`cxresearch.studies.commands`.

Kept import-light: notebooks call :func:`run_threads` and the CLI imports the heavy modules lazily.
"""
from __future__ import annotations

import os

__all__ = ["run_threads"]


def run_threads(default: int | None = None) -> int:
    """Threads this run may use (set by the runner so parallel runs share the cores), e.g. for
    ``nutpie.sample(..., cores=run_threads())``. Outside the runner: ``default`` or all cores."""
    value = os.environ.get("CXRESEARCH_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return default or os.cpu_count() or 1
