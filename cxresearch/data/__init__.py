"""Dataset spec, loading (DuckDB -> canonical frames), recoding (DuckDB SQL), validation (pandera), NPS classes.

Modules: ``spec`` (the dataset.yaml model), ``rules`` (field rules, problems, errors), ``sources``
(opening tables in DuckDB), ``recode`` (the one recoding engine, SQL), ``validation`` (pandera checks),
``loading`` (canonical frames), ``check`` (``validate_dataset``, the ``cxresearch validate`` entry).

Names are imported lazily (PEP 562) so ``import cxresearch.data`` and the CLI start fast: pandas,
DuckDB and pandera load only when a function that needs them is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: fewer answers than this in a group (segment, market, segment x market) are too few to report a driver
#: model or a scorecard on: ``cxresearch validate`` warns, and the studies' ``min_answers`` default to it
MIN_ANSWERS = 30

_EXPORTS = {
    "load_dataset": "cxresearch.data.loading",
    "CXData": "cxresearch.data.loading",
    "explain_load": "cxresearch.data.loading",
    "load_spec": "cxresearch.data.spec",
    "DatasetSpec": "cxresearch.data.spec",
    "SpecError": "cxresearch.data.spec",
    "DataValidationError": "cxresearch.data.rules",
    "Problem": "cxresearch.data.rules",
    "FieldRule": "cxresearch.data.rules",
    "rules_for": "cxresearch.data.rules",
    "ValidationReport": "cxresearch.data.check",
    "validate_dataset": "cxresearch.data.check",
    "data_warnings": "cxresearch.data.check",
    "loading_line": "cxresearch.data.check",
    "distinct_values": "cxresearch.data.loading",
    "nps_class": "cxresearch.data.nps",
    "nps_score": "cxresearch.data.nps",
}

__all__ = sorted([*_EXPORTS, "MIN_ANSWERS"])

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from cxresearch.data.check import ValidationReport, data_warnings, loading_line, validate_dataset  # noqa: F401 (re-exported lazily)
    from cxresearch.data.loading import CXData, distinct_values, explain_load, load_dataset  # noqa: F401 (re-exported lazily)
    from cxresearch.data.nps import nps_class, nps_score  # noqa: F401 (re-exported lazily)
    from cxresearch.data.rules import DataValidationError, FieldRule, Problem, rules_for  # noqa: F401 (re-exported lazily)
    from cxresearch.data.spec import DatasetSpec, SpecError, load_spec  # noqa: F401 (re-exported lazily)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cxresearch.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
