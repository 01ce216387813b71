"""The outcome's kind and direction, and the words every table, plot and sentence uses for it.

A driver study reads impacts on one outcome construct. Its *kind* decides the unit a business reads:

- ``nps``: a 0-10 likelihood to recommend (ordered logistic); ``impact_nps`` in NPS points.
- ``binary``: a 0/1 answer or event (satisfied, would buy again, churned); ``impact_pp`` in percentage
  points of P(yes).
- ``ordinal``: any other ordered scale (CSAT 1-5, effort 1-7); ``impact_mean`` in points of the mean
  answer, and ``impact_top_box`` (share points in the top answer).
- ``gaussian``: a continuous score (an emotion composite, spend); ``impact_mean`` in standard deviations.

``higher_is_better`` (the model spec; false for churn or effort) flips what "better" means: drivers are
ranked, and "fix first" is picked, by the impact in the good direction. Sections that need a 0-10
recommend outcome (NPS classes, detractor root causes) are left out of other kinds with a line saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("nps", "binary", "ordinal", "gaussian")


def outcome_kind(prep: Any) -> str:
    """'nps' (0-10 ordered logistic), 'binary', 'ordinal' or 'gaussian' for the model's outcome."""
    outcome = prep.outcome
    like = prep.likelihood(outcome)
    if like == "ordered_logistic":
        values = prep.category_values[outcome]
        return "nps" if len(values) == 11 and np.allclose(values, np.arange(11)) else "ordinal"
    if like == "bernoulli":
        return "binary"
    return "gaussian"


@dataclass(frozen=True)
class OutcomeWords:
    """How reports speak of the outcome (see the module docstring)."""

    kind: str
    construct: str
    label: str
    higher_is_better: bool
    scale_text: str  # e.g. "0-10", "1-5", "0/1", "" for gaussian
    mediators: tuple[str, ...]  # constructs between the touchpoints and the outcome (e.g. emotion)

    @property
    def column(self) -> str:
        """The impact column of the impact tables and the results.json key."""
        return {"nps": "impact_nps", "binary": "impact_pp"}.get(self.kind, "impact_mean")

    @property
    def unit(self) -> str:
        return {
            "nps": "NPS points",
            "binary": f"percentage points of P({self.label})",
            "ordinal": f"points of the mean {self.label} ({self.scale_text})",
            "gaussian": f"standard deviations of {self.label}",
        }[self.kind]

    @property
    def unit_short(self) -> str:
        return {"nps": "NPS pts", "binary": "pp", "ordinal": "pts", "gaussian": "sd"}[self.kind]

    @property
    def decimals(self) -> int:
        return 2 if self.kind in ("ordinal", "gaussian") else 1

    @property
    def measure(self) -> str:
        """What moves: 'NPS', 'P(churned)', 'the mean satisfaction'."""
        return {"nps": "NPS", "binary": f"P({self.label})", "ordinal": f"the mean {self.label}"}.get(
            self.kind, self.label
        )

    @property
    def good(self) -> str:
        """The good direction in words: 'up' or 'down'."""
        return "up" if self.higher_is_better else "down"

    @property
    def title(self) -> str:
        return "What drives recommendation" if self.kind == "nps" else f"What drives {self.label}"

    def amount(self, value: float, signed: bool = True) -> str:
        return f"{value:+.{self.decimals}f}" if signed else f"{value:.{self.decimals}f}"

    def direction_note(self) -> str:
        """One line for outcomes where lower is better (empty otherwise)."""
        if self.higher_is_better:
            return ""
        return (
            f"Lower {self.label} is better here: a touchpoint helps when improving it brings {self.measure} "
            "**down**, and drivers are ranked by that benefit."
        )


def outcome_words(prep: Any) -> OutcomeWords:
    """The :class:`OutcomeWords` of a prepared model's outcome."""
    resolved = prep.resolved
    outcome = prep.outcome
    construct = resolved.constructs[outcome]
    kind = outcome_kind(prep)
    label = construct.label or ("recommend" if kind == "nps" else outcome.replace("_", " "))
    values = prep.category_values.get(outcome)
    if kind == "binary":
        scale_text = "0/1"
    elif values is not None and len(values):
        scale_text = f"{values[0]:g}-{values[-1]:g}"
    else:
        scale_text = ""
    touchpoints = set(resolved.touchpoints)
    mediators = tuple(
        n for n in resolved.order if n != outcome and n not in touchpoints and n in {p.target for p in resolved.paths}
    )
    return OutcomeWords(
        kind=kind,
        construct=outcome,
        label=label,
        higher_is_better=bool(resolved.spec.higher_is_better),
        scale_text=scale_text,
        mediators=mediators,
    )
