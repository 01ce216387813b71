"""cxresearch: Customer Experience research.

Bayesian driver models linking touchpoint experiences to emotion and behaviour, survival-based churn
and CLV economics, and parameterised study notebooks rendered as reports per segment and market.
"""

from __future__ import annotations

__version__ = "0.1.0"

from cxresearch.results import record_headline, record_result  # noqa: E402  (notebook helpers for results.json)

__all__ = ["__version__", "record_headline", "record_result"]
