"""Parameterised studies: params files, the runner (papermill, local processes or Dask), manifests,
HTML reports and the report index. ``cxresearch run`` lives in :mod:`cxresearch.studies.commands`.

Kept import-light: notebooks call :func:`run_threads` (from :mod:`cxresearch.runtime`) and the CLI imports
the heavy modules lazily.
"""

from __future__ import annotations

from cxresearch.runtime import run_threads

__all__ = ["run_threads"]
