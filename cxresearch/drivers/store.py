"""Save, load and share driver fits: one hierarchical fit for every run of a study.

A driver model with segment and market partial pooling is one model of *all* the answers: fitting it
separately for each segment would throw away the pooling and cost one fit per run. :func:`shared_fit`
fits it once and stores the posterior (ArviZ netCDF) in a cache folder under a key made of everything the
fit depends on (the survey rows used, the model, the sampler settings and seed, the cxresearch source
and the PyMC / nutpie versions). The runs of a study that run in parallel take a file lock on the key, so
the first one fits and the others wait and load it; a change to any input gives a new key, never a stale
fit. Each run then reports on its own segment or market rows of the shared posterior.

``save_fit`` / ``load_fit`` are the plain save and load, through the fitted-model protocol
(:meth:`cxresearch.protocol.FittedModel.save` / :meth:`~cxresearch.protocol.FittedModel.load`): a folder with
``meta.json`` (model config, sampler config, data hash, version), the posterior (ArviZ netCDF) and the rows
fitted; loading refuses another model config or other rows (:class:`cxresearch.protocol.DifferentModelError`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cxresearch.drivers.fit import DriverFit, model_config_of, resolve_model
from cxresearch.drivers.spec import DriverModelSpec
from cxresearch.runtime import (
    canonical_json,
    compute_once,
    frame_hash,
    library_versions,
    package_source_hash,
    sha256_text,
)

_FORMAT = 2


def _versions() -> dict[str, str | None]:
    return library_versions(("pymc", "nutpie", "pytensor", "numpy"))


def fit_key(
    frame: pd.DataFrame,
    model: DriverModelSpec | Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    dataset_spec: Any = None,
) -> str:
    """The cache key of a fit: survey rows, model, sampler settings, seed, package source and versions."""
    spec = resolve_model(model, dataset_spec)
    parts = {
        "format": _FORMAT,
        "rows": frame_hash(frame),
        "model": spec.model_dump(mode="json"),
        "settings": dict(sorted(settings.items())),
        "source": package_source_hash(),
        "versions": _versions(),
        "dataset_spec": dataset_spec.model_dump(mode="json") if hasattr(dataset_spec, "model_dump") else None,
    }
    return sha256_text(canonical_json(parts))[:20]


def save_fit(fit: DriverFit, path: str | Path, frame: pd.DataFrame | None = None) -> Path:
    """Write the fit to the folder ``path`` (:meth:`DriverFit.save`, written atomically).

    ``frame``: the survey rows the fit used; their hash must be the fit's data hash (load refuses other rows).
    """
    if frame is not None and fit.data_hash is not None and frame_hash(frame) != fit.data_hash:
        raise ValueError(f"save_fit: the survey rows given are not the ones this fit was made from ({path})")
    return fit.save(path)


def load_fit(
    path: str | Path,
    frame: pd.DataFrame,
    model: DriverModelSpec | Mapping[str, Any] | None = None,
    dataset_spec: Any = None,
) -> DriverFit:
    """Load a fit saved by :func:`save_fit` for the same survey rows and model; a different model config or
    other rows raise :class:`cxresearch.protocol.DifferentModelError`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved driver fit at {path}")
    return DriverFit.load(
        path, model_config=model_config_of(resolve_model(model, dataset_spec)), data_hash=frame_hash(frame)
    )


def shared_fit(
    frame: pd.DataFrame,
    model: DriverModelSpec | Mapping[str, Any] | None,
    cache_dir: str | Path,
    *,
    dataset_spec: Any = None,
    fitter: Callable[..., DriverFit] | None = None,
    **settings: Any,
) -> tuple[DriverFit, dict[str, Any]]:
    """Fit the driver model to ``frame`` once per cache key and share it; returns (fit, provenance).

    ``settings`` are :func:`cxresearch.drivers.fit_driver_model`'s keyword arguments (method, draws,
    tune, chains, seed...). Provenance: ``key``, ``path``, ``reused`` (loaded from an earlier run) and
    ``waited_s`` (seconds until the fit was ready: another run's fit, or this one's).
    """
    from cxresearch.drivers.fit import fit_driver_model

    fitter = fitter or fit_driver_model
    # the chains of the shared fit run on every core: the study's other runs wait for it (cores do not
    # change the draws, so they are not part of the key)
    settings.setdefault("cores", min(int(settings.get("chains", 2)), os.cpu_count() or 1))
    key = fit_key(frame, model, {k: v for k, v in settings.items() if k != "cores"}, dataset_spec)
    path = Path(cache_dir) / f"drivers-{key}"
    started = time.perf_counter()

    def save(fit: DriverFit, target: Path) -> None:  # compute_once's save returns nothing (save_fit: the path)
        save_fit(fit, target, frame)

    result, reused = compute_once(
        path,
        lambda: fitter(frame, model, dataset_spec=dataset_spec, **settings),
        save,
        lambda source: load_fit(source, frame, model, dataset_spec),
    )
    return result, {
        "key": key,
        "path": str(path),
        "reused": reused,
        "waited_s": round(time.perf_counter() - started, 1),
    }


def shared_result(
    cache_dir: str | Path,
    name: str,
    key_parts: Mapping[str, Any],
    compute: Callable[[], Any],
    save: Callable[[Any, Path], None],
    load: Callable[[Path], Any],
) -> tuple[Any, bool]:
    """Compute-once for any other study artefact (e.g. the ECSI reference check): (value, reused)."""
    key = sha256_text(
        canonical_json({"parts": dict(key_parts), "source": package_source_hash(), "versions": _versions()})
    )[:20]
    return compute_once(Path(cache_dir) / f"{name}-{key}", compute, save, load)
