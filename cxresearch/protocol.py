"""One fitted-model surface for every Bayesian and survival model in cxresearch.

Modelled on lifelines' fitters (one small, uniform surface; one ``level`` everywhere) and pymc-marketing's
``ModelBuilder`` (models configured by data: ``model_config`` / ``sampler_config``; save / load that
refuses a different model). Every fitted model offers:

- ``summary(level=0.9) -> DataFrame``: one row per reported quantity, columns ``mean, sd, low, high``
  (equal-tailed interval, or the model's own confidence interval for frequentist fits), the level in
  ``frame.attrs["level"]``;
- ``predict(new_data, kind=...) -> xarray.DataArray`` with named dims (``sample`` first for posterior
  predictions; ``respondent`` or ``customer`` for rows);
- ``diagnostics() -> cxresearch.diagnostics.Diagnostics`` (the one gate);
- ``plot_*(ax=None) -> Axes``;
- ``save(path)`` / ``Class.load(path, ...)``: a folder with ``meta.json`` (model type, model config,
  sampler config, data hash, cxresearch version) and the model's state; ``load`` raises
  :class:`DifferentModelError` when the stored model type or config differs from what the caller expects.
"""

from __future__ import annotations

import json
import math
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from cxresearch.runtime import canonical_json, json_default, package_version

#: The interval level used when none is given (90%, equal-tailed), everywhere in the package.
DEFAULT_LEVEL = 0.9
#: Summary columns, in this order, for every model.
SUMMARY_COLUMNS = ("mean", "sd", "low", "high")
META_NAME = "meta.json"
SAVE_FORMAT = 1

M = TypeVar("M", bound="FittedModel")


class DifferentModelError(ValueError):
    """A saved fit was made with another model type, model config or data than the one asked for."""


def check_level(level: float) -> float:
    """An interval level strictly between 0 and 1 (as float), else a ValueError naming it."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"interval level must lie strictly between 0 and 1, got {level!r}")
    return float(level)


def interval(draws: np.ndarray, level: float = DEFAULT_LEVEL, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed posterior interval of ``draws`` along ``axis``: (low, high)."""
    tail = (1.0 - check_level(level)) / 2.0
    low, high = np.quantile(np.asarray(draws, dtype=float), [tail, 1.0 - tail], axis=axis)
    return low, high


def summary_frame(
    draws: Mapping[str, np.ndarray], level: float = DEFAULT_LEVEL, index_name: str = "quantity"
) -> pd.DataFrame:
    """The standard summary of named 1-D draw arrays: ``mean, sd, low, high``, level in ``attrs``."""
    level = check_level(level)
    rows = {}
    for name, values in draws.items():
        values = np.asarray(values, dtype=float).ravel()
        low, high = interval(values, level)
        rows[name] = {
            "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if values.size > 1 else math.nan,
            "low": float(low),
            "high": float(high),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(SUMMARY_COLUMNS))
    frame.index.name = index_name
    frame.attrs["level"] = level
    return frame


def standard_summary(frame: pd.DataFrame, level: float) -> pd.DataFrame:
    """Check a model's summary frame has the standard columns and stamp the level into ``attrs``."""
    missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"summary is missing the standard column(s) {missing}; has {list(frame.columns)}")
    frame.attrs["level"] = check_level(level)
    return frame


def _config_json(config: Mapping[str, Any] | None) -> Any:
    return json.loads(json.dumps(dict(config or {}), default=json_default, sort_keys=True))


class FittedModel(ABC):
    """Base of every fitted model: configuration, the standard surface, and save / load.

    Subclasses set :attr:`model_type`, fill :attr:`model_config`, :attr:`sampler_config` and
    :attr:`data_hash` when fitted, and implement ``summary``, ``predict``, ``diagnostics``,
    ``_save_state(folder)`` and ``_load_state(folder, meta)``.
    """

    model_type: ClassVar[str] = "model"
    model_config: dict[str, Any]
    sampler_config: dict[str, Any]
    data_hash: str | None

    @abstractmethod
    def summary(self, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
        """One row per reported quantity: ``mean, sd, low, high``; ``attrs['level']``."""

    @abstractmethod
    def predict(self, new_data: Any, kind: str = "default") -> Any:
        """Predictions for new rows as an ``xarray.DataArray`` with named dims.

        ``kind`` names what to predict; each model lists its own kinds and defaults to its natural one (driver
        model: "probability"; survival models: "survival"; share models: "shares") and refuses any other,
        naming the ones it has."""

    @abstractmethod
    def diagnostics(self) -> Any:
        """The one gate's verdict (:class:`cxresearch.diagnostics.Diagnostics`)."""

    # --- save / load ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """What ``save`` writes to ``meta.json``."""
        return {
            "format": SAVE_FORMAT,
            "model_type": self.model_type,
            "model_config": _config_json(getattr(self, "model_config", {})),
            "sampler_config": _config_json(getattr(self, "sampler_config", {})),
            "data_hash": getattr(self, "data_hash", None),
            "cxresearch_version": package_version(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the fit to the folder ``path`` (replaced atomically): ``meta.json`` plus the model's state."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        (partial / META_NAME).write_text(json.dumps(self.meta(), indent=2, default=json_default))
        self._save_state(partial)
        if path.exists():
            shutil.rmtree(path)
        partial.rename(path)
        return path

    @classmethod
    def read_meta(cls, path: str | Path) -> dict[str, Any]:
        """The ``meta.json`` of a saved fit, after checking it is one of this class's fits."""
        path = Path(path)
        meta_file = path / META_NAME
        if not meta_file.is_file():
            raise FileNotFoundError(f"{path}: not a saved cxresearch fit (no {META_NAME})")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != SAVE_FORMAT:
            raise DifferentModelError(
                f"{path}: saved with format {meta.get('format')!r}, this version reads {SAVE_FORMAT}"
            )
        if meta.get("model_type") != cls.model_type:
            raise DifferentModelError(f"{path}: holds a {meta.get('model_type')!r} fit, not a {cls.model_type!r}")
        return meta

    @classmethod
    def load(
        cls: type[M], path: str | Path, model_config: Mapping[str, Any] | None = None, data_hash: str | None = None
    ) -> M:
        """Load a fit saved by :meth:`save`; refuse it (:class:`DifferentModelError`) when ``model_config``
        or ``data_hash`` is given and differs from what was stored."""
        path = Path(path)
        meta = cls.read_meta(path)
        if model_config is not None and canonical_json(_config_json(model_config)) != canonical_json(
            meta["model_config"]
        ):
            changed = sorted(
                k
                for k in set(meta["model_config"]) | set(_config_json(model_config))
                if meta["model_config"].get(k) != _config_json(model_config).get(k)
            )
            raise DifferentModelError(f"{path}: saved with a different model config (differs in {changed}); refit")
        if data_hash is not None and data_hash != meta.get("data_hash"):
            raise DifferentModelError(
                f"{path}: fitted to other data (hash {meta.get('data_hash')!s:.12} != {data_hash:.12}); refit"
            )
        return cls._load_state(path, meta)

    @abstractmethod
    def _save_state(self, folder: Path) -> None:
        """Write what the model needs besides ``meta.json`` into ``folder``."""

    @classmethod
    @abstractmethod
    def _load_state(cls: type[M], folder: Path, meta: Mapping[str, Any]) -> M:
        """Rebuild the fitted model from ``folder`` and its ``meta``."""


def save_idata(idata: Any, folder: Path, name: str = "posterior.nc") -> None:
    """Write an ArviZ InferenceData into a save folder."""
    idata.to_netcdf(str(folder / name))


def load_idata(folder: Path, name: str = "posterior.nc") -> Any:
    """Read (fully into memory) an InferenceData written by :func:`save_idata`."""
    import arviz as az

    idata = az.from_netcdf(str(folder / name))
    idata.load()
    return idata


__all__ = [
    "DEFAULT_LEVEL",
    "SUMMARY_COLUMNS",
    "DifferentModelError",
    "FittedModel",
    "check_level",
    "interval",
    "load_idata",
    "save_idata",
    "standard_summary",
    "summary_frame",
]
