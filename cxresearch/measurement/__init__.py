"""Measurement study: relational NPS with honest uncertainty, touchpoint scorecards and the journey map,
competitor benchmark, fair league tables of units, and KPI tracking across survey waves.

Functions take canonical frames (``CXData.survey`` / ``CXData.benchmark``) and the dataset spec, never
file paths. PyMC is imported only by the functions that fit hierarchical models.
"""

from cxresearch.measurement.benchmark import (
    benchmark_position,
    brand_summary,
    strengths_and_weaknesses,
    verdict,
)
from cxresearch.measurement.kpi import nps_tracking, target_probability, touchpoint_tracking
from cxresearch.measurement.league import LeagueTable, league_table, rankable_units
from cxresearch.measurement.nps import (
    SharePosterior,
    class_counts,
    compare_groups,
    dirichlet_shares,
    hierarchical_shares,
    nps_posterior,
    pairwise_differences,
    select_wave,
    wave_change,
)
from cxresearch.measurement.posterior import summarise
from cxresearch.measurement.touchpoints import (
    journey_map,
    rating_draws,
    touchpoint_ratings,
    touchpoint_scorecard,
    touchpoint_wave_change,
)

__all__ = [
    "LeagueTable",
    "SharePosterior",
    "benchmark_position",
    "brand_summary",
    "class_counts",
    "compare_groups",
    "dirichlet_shares",
    "hierarchical_shares",
    "journey_map",
    "league_table",
    "nps_posterior",
    "nps_tracking",
    "pairwise_differences",
    "rankable_units",
    "rating_draws",
    "select_wave",
    "strengths_and_weaknesses",
    "summarise",
    "target_probability",
    "touchpoint_ratings",
    "touchpoint_scorecard",
    "touchpoint_tracking",
    "touchpoint_wave_change",
    "verdict",
    "wave_change",
]
