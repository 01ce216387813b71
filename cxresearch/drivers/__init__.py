"""Bayesian driver models: touchpoint experience -> emotion -> behaviour, with effects a business reads.

Declare the path model (:class:`DriverModelSpec`), fit it (:func:`fit_driver_model`: nutpie NUTS, or the
labelled approximate ADVI mode, checked by the one gate of :mod:`cxresearch.diagnostics`; a
:class:`DriverFit` is a :class:`cxresearch.protocol.FittedModel`; :func:`predict` for any survey rows), and
summarise it (:func:`summarize_drivers`: impacts on NPS, ranking, importance-performance, Kano classes, root
causes of detractors, group differences), record results.json keys (:func:`record_driver_results`) and write the
first screen (:func:`fix_first_markdown`). Heavy imports (PyMC, nutpie) happen inside these modules, not here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DriverModelSpec": "cxresearch.drivers.spec",
    "ConstructSpec": "cxresearch.drivers.spec",
    "PathSpec": "cxresearch.drivers.spec",
    "ModelSpecError": "cxresearch.drivers.spec",
    "default_model_spec": "cxresearch.drivers.spec",
    "resolve_model_spec": "cxresearch.drivers.spec",
    "parse_model_spec": "cxresearch.drivers.spec",
    "prepare_data": "cxresearch.drivers.model",
    "build_model": "cxresearch.drivers.model",
    "fit_driver_model": "cxresearch.drivers.fit",
    "DriverFit": "cxresearch.drivers.fit",
    "shared_fit": "cxresearch.drivers.store",
    "save_fit": "cxresearch.drivers.store",
    "load_fit": "cxresearch.drivers.store",
    "predict": "cxresearch.drivers.predict",
    "summarize_drivers": "cxresearch.drivers.summary",
    "DriverSummary": "cxresearch.drivers.summary",
    "record_driver_results": "cxresearch.drivers.summary",
    "results_dict": "cxresearch.drivers.summary",
    "fix_first_markdown": "cxresearch.drivers.summary",
    "ecsi_comparison": "cxresearch.drivers.reference",
    "ordered_logistic_logp": "cxresearch.drivers.likelihoods",
    "ordered_logistic_logp_terms": "cxresearch.drivers.likelihoods",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from cxresearch.drivers.fit import DriverFit, fit_driver_model  # noqa: F401 (re-exported lazily)
    from cxresearch.drivers.likelihoods import ordered_logistic_logp, ordered_logistic_logp_terms  # noqa: F401 (re-exported lazily)
    from cxresearch.drivers.model import build_model, prepare_data  # noqa: F401 (re-exported lazily)
    from cxresearch.drivers.predict import predict  # noqa: F401 (re-exported lazily)
    from cxresearch.drivers.reference import ecsi_comparison  # noqa: F401 (re-exported lazily)
    from cxresearch.drivers.spec import (
        ConstructSpec,  # noqa: F401 (re-exported lazily)
        DriverModelSpec,  # noqa: F401 (re-exported lazily)
        ModelSpecError,  # noqa: F401 (re-exported lazily)
        PathSpec,  # noqa: F401 (re-exported lazily)
        default_model_spec,  # noqa: F401 (re-exported lazily)
        parse_model_spec,  # noqa: F401 (re-exported lazily)
        resolve_model_spec,  # noqa: F401 (re-exported lazily)
    )
    from cxresearch.drivers.summary import (
        DriverSummary,  # noqa: F401 (re-exported lazily)
        fix_first_markdown,  # noqa: F401 (re-exported lazily)
        record_driver_results,  # noqa: F401 (re-exported lazily)
        results_dict,  # noqa: F401 (re-exported lazily)
        summarize_drivers,  # noqa: F401 (re-exported lazily)
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cxresearch.drivers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
