"""Measurement study on simulator data: shared fixture helpers, and 'not applicable is never a low score'.

Other ``test_measurement_*`` modules import :func:`simulated` and :func:`within` from here. The simulated
dataset is written once per test session (a folder under pytest's base temp) and loaded through the real
loader, so the study is tested on exactly what a notebook sees.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import binom, norm

from cxresearch.data import load_dataset
from cxresearch.data.simulator import simulate_dataset
from cxresearch.measurement import touchpoint_scorecard

SIM_CUSTOMERS = 20_000  # the demo size: about 10,000 answers per wave
SIM_SEED = 20261122
SIM_POPULATION_SAMPLES = 200_000  # Monte-Carlo truth; its standard errors are in truth.json and used below


def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulated demo-size dataset (written once per session), loaded, with its truth."""
    folder = tmp_path_factory.getbasetemp() / "measurement_sim"
    if not (folder / "truth.json").is_file():
        simulate_dataset(folder, customers=SIM_CUSTOMERS, seed=SIM_SEED, population_samples=SIM_POPULATION_SAMPLES)
    data = load_dataset(folder / "dataset.yaml")
    return {"folder": folder, "data": data, "truth": json.loads((folder / "truth.json").read_text())}


def family_z(checks: int, family_error: float = 0.01) -> float:
    """Two-sided z for ``checks`` simultaneous comparisons with a family-wise false-alarm rate (Bonferroni)."""
    return float(norm.ppf(1.0 - family_error / (2.0 * checks)))


def within(estimate: float, truth: float, sd: float, truth_se: float, z: float) -> bool:
    """|estimate - truth| <= z * sqrt(posterior sd^2 + Monte-Carlo se of the truth^2)."""
    return abs(estimate - truth) <= z * math.hypot(sd, truth_se)


def min_coverage(checks: int, level: float = 0.9, family_error: float = 0.01) -> float:
    """Fewest intervals (as a share) that may miss by chance: the ``family_error`` quantile of
    Binomial(checks, level) / checks (independence assumed; correlated checks only widen the spread)."""
    return float(binom.ppf(family_error, checks, level)) / checks


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return simulated(tmp_path_factory)


def test_not_applicable_codes_never_count_as_low_scores_on_simulator_data(sim: dict) -> None:
    raw = pq.read_table(sim["folder"] / "survey.parquet").to_pandas()
    data = sim["data"]
    card = touchpoint_scorecard(data.survey, data.spec, draws=200, seed=1).set_index("touchpoint")
    for key, tp in data.spec.survey.touchpoints.items():
        column = raw[tp.column]
        real = column[column.between(tp.scale.min, tp.scale.max)]  # 0 / 99 / blank are not answers
        assert card.loc[key, "n_answers"] == len(real), key
        assert math.isclose(card.loc[key, "observed_bottom_box"], float((real <= 2).mean()), abs_tol=1e-12), key
        assert math.isclose(card.loc[key, "observed_mean"], float(real.mean()), abs_tol=1e-12), key
        # had the codes been scored as the lowest answer, the bottom box would be visibly larger
        scored = column.where(column.between(tp.scale.min, tp.scale.max), tp.scale.min)
        assert (scored <= 2).mean() > card.loc[key, "observed_bottom_box"] + 0.02, key


def test_raw_not_applicable_codes_left_in_a_frame_are_masked_not_scored(sim: dict) -> None:
    """If a frame still carries the export codes (0, 99), the declared codes become missing."""
    raw = pq.read_table(sim["folder"] / "survey.parquet").to_pandas()
    data = sim["data"]
    frame = data.survey.copy()
    for key in ("onboarding", "call_centre"):
        frame[key] = raw[data.spec.survey.touchpoints[key].column].astype("float64").to_numpy()
    assert (frame["onboarding"] == 0).any() and (frame["call_centre"] == 99).any()
    dirty = touchpoint_scorecard(frame, data.spec, touchpoints=["onboarding", "call_centre"], draws=200, seed=1)
    clean = touchpoint_scorecard(data.survey, data.spec, touchpoints=["onboarding", "call_centre"], draws=200, seed=1)
    cols = ["n_answers", "observed_mean", "observed_bottom_box", "observed_top_box"]
    pd.testing.assert_frame_equal(dirty[cols], clean[cols])


def test_values_outside_the_scale_raise_naming_the_column(sim: dict) -> None:
    data = sim["data"]
    frame = data.survey.head(50).copy()
    frame.loc[frame.index[3], "website"] = 7.0  # not declared as not applicable
    with pytest.raises(ValueError, match=r"'website'.*\[7\.0\].*outside the scale 1-5"):
        touchpoint_scorecard(frame, data.spec, draws=50, seed=1)


def test_simulated_truth_keys_used_by_the_measurement_tests(sim: dict) -> None:
    population = sim["truth"]["population"]
    for key in (
        "shares_by_wave",
        "shares_by_segment_wave",
        "shares_by_market_wave",
        "mean_rating_by_wave",
        "top_box_by_wave",
        "se",
    ):
        assert key in population, key
    assert set(population["shares_by_wave"]) == {"1", "2"}
    assert np.isclose(sum(population["shares_by_wave"]["1"][k] for k in ("detractor", "passive", "promoter")), 1.0)


def test_family_helpers() -> None:
    assert family_z(1, 0.1) == pytest.approx(1.6449, abs=1e-4)
    assert min_coverage(20) == pytest.approx(0.7)  # P(fewer than 14 of 20 covered) < 1%
    assert within(1.0, 1.2, 0.1, 0.0, 2.1) and not within(1.0, 1.3, 0.1, 0.0, 2.1)
