"""Initiatives: catalogue, value with uncertainty, budget-constrained roadmap, difference-in-differences.

- :mod:`~cxresearch.initiatives.catalogue`: the initiative catalogue (pydantic; errors name key paths).
- :mod:`~cxresearch.initiatives.effects`: uncertain effect sizes (point, range, distribution).
- :mod:`~cxresearch.initiatives.value`: the driver / value model protocols and the end-to-end simulation.
- :mod:`~cxresearch.initiatives.truth`: reference models from the simulator's truth.json.
- :mod:`~cxresearch.initiatives.roadmap`: ranking, exact selection under a budget, ordered plan.
- :mod:`~cxresearch.initiatives.did`: Bayesian difference-in-differences (rating, NPS, churn).
- :mod:`~cxresearch.initiatives.report` / :mod:`~cxresearch.initiatives.study`: what the notebook shows.

Submodules are imported on use (PyMC loads only for difference-in-differences).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Catalogue": "catalogue",
    "Initiative": "catalogue",
    "CatalogueError": "catalogue",
    "load_catalogue": "catalogue",
    "check_catalogue": "catalogue",
    "TouchpointInfo": "catalogue",
    "touchpoint_info_from_spec": "catalogue",
    "parse_distribution": "effects",
    "EffectDistribution": "effects",
    "DriverScenarioModel": "value",
    "ValueModel": "value",
    "ClvDraws": "value",
    "ClvDrawsValueModel": "value",
    "InitiativeEngine": "value",
    "ValueResult": "value",
    "TrueDriverModel": "truth",
    "TrueValueModel": "truth",
    "rank_initiatives": "roadmap",
    "select_under_budget": "roadmap",
    "build_roadmap": "roadmap",
    "Roadmap": "roadmap",
    "did_rating": "did",
    "did_nps": "did",
    "did_churn": "did",
    "DidResult": "did",
    "plan_headline_markdown": "report",
    "record_initiative_results": "report",
    "run_study": "study",
    "choose_models": "study",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f"cxresearch.initiatives.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cxresearch.initiatives' has no attribute {name!r}")
