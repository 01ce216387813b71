"""Theme effects on P(bad outcome): recovered from a known logistic truth, with the ratings beside them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from cxresearch.data.spec import Scale
from cxresearch.verbatims.effects import fit_theme_effects, outcome_target, rating_design

TRUE_LOG_ODDS = {"fraud": 1.2, "chatter": 0.0, "praise": -0.8}
PREVALENCE = {"fraud": 0.15, "chatter": 0.2, "praise": 0.12}


def simulated(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Answers with a 1-5 rating (bad experiences hurt more than its slope says), three themes of known effect,
    segment and market intercepts; the bad outcome drawn from that logistic model (writing a comment changes
    nothing by itself). Returns survey, presence and each theme's true average effect (points) on the answers
    that have it."""
    rng = np.random.default_rng(seed)
    rating = rng.integers(1, 6, n).astype(float)
    rating[rng.random(n) < 0.1] = np.nan  # not rated
    commented = rng.random(n) < 0.7
    presence = pd.DataFrame({t: commented & (rng.random(n) < p) for t, p in PREVALENCE.items()})
    presence["rare"] = commented & (np.arange(n) < 12)
    segment = rng.choice(["mass", "affluent"], n)
    market = rng.choice(list("ABCDEF"), n)
    r = np.nan_to_num(rating, nan=3.0)
    eta = -0.6 - 0.9 * (r - 3) / 2 + 1.0 * (r <= 2) - 0.5 * (r == 5)
    eta += (
        np.where(segment == "mass", 0.2, -0.2)
        + pd.Series(market).map(dict(zip("ABCDEF", np.linspace(-0.4, 0.4, 6)))).to_numpy()
    )
    theme_part = sum(TRUE_LOG_ODDS[t] * presence[t].to_numpy() for t in TRUE_LOG_ODDS)
    y = rng.random(n) < expit(eta + theme_part)
    truth = {}
    for t, b in TRUE_LOG_ODDS.items():
        has = presence[t].to_numpy()
        full = eta[has] + theme_part[has]
        truth[t] = 100 * float(np.mean(expit(full) - expit(full - b)))
    survey = pd.DataFrame(
        {"segment": segment, "market": market, "branch": rating, "recommend": np.where(y, 3, 9).astype(float)}
    )
    return survey, presence, truth


@pytest.fixture(scope="module")
def fitted():
    survey, presence, truth = simulated(6000, seed=11)
    target = outcome_target(survey, SimpleNamespace(kind="recommend"))
    ratings, left_out = rating_design(survey, {"branch": Scale(min=1, max=5)})
    assert left_out == []
    effects = fit_theme_effects(survey, presence, target, ratings=ratings, min_comments=20, level=0.99, seed=2)
    return effects, truth, presence


@pytest.mark.slow
def test_effects_recover_the_true_average_effects(fitted) -> None:
    effects, truth, _ = fitted
    assert effects.diagnostics.passed, effects.diagnostics.reasons
    table = effects.table.set_index("theme")
    for theme, true in truth.items():
        row = table.loc[theme]
        assert row["effect_low"] <= true <= row["effect_high"], (theme, true, row.to_dict())
    # 99% intervals, 6,000 answers: the planted effects are told apart from zero and from each other
    assert table.loc["fraud", "verdict"] == "raises" and table.loc["praise", "verdict"] == "lowers"
    assert table.loc["chatter", "verdict"] == "no evidence"
    assert effects.table["theme"].iloc[0] == "fraud"  # the largest impact first


def test_effects_do_not_depend_on_how_the_answers_are_chunked(fitted, monkeypatch) -> None:
    """The average marginal effects are summed over chunks of answers (memory stays flat on large surveys): a
    chunk of 700 answers gives the one-chunk result."""
    import cxresearch.verbatims.effects as effects_module

    effects, _, _ = fitted
    whole = effects.table.set_index("theme")
    monkeypatch.setattr(effects_module, "ROWS_PER_CHUNK", 700)
    again = effects_module._effects_table(
        effects.idata,
        effects.design,
        effects.observed,
        [t for t in whole.index if whole.loc[t, "verdict"] not in ("too few comments", "in every answer")],
        {"rare": "too few comments"},
        whole["comments"],
        effects.level,
        1000,
        2,
    ).set_index("theme")
    for column in ("effect", "effect_low", "effect_high", "impact"):
        assert np.allclose(again.loc[whole.index, column], whole[column], equal_nan=True, rtol=1e-10), column


def test_a_theme_with_too_few_comments_is_not_estimated(fitted) -> None:
    effects, _, _ = fitted
    rare = effects.table.set_index("theme").loc["rare"]
    assert rare["verdict"] == "too few comments" and np.isnan(rare["effect"])
    assert any("Too few comments" in note and "rare" in note for note in effects.notes)
    assert effects.adjusted_for == ["branch"]


def test_the_bad_outcome_comes_from_the_spec_labels_not_the_data() -> None:
    churn = SimpleNamespace(kind="binary", labels={"No": 0, "Yes": 1}, label=None, column="churned")
    survey = pd.DataFrame({"outcome": [1, 1, 1, 1]})  # a filtered run where every customer churned
    assert outcome_target(survey, churn).label == "churned = No"  # the lowest *declared* code, not the data's
    assert outcome_target(survey, churn).values.tolist() == [0.0] * 4
    yes = outcome_target(pd.DataFrame({"outcome": [0, 1, np.nan]}), churn, bad="yes")
    assert yes.label == "churned = Yes" and yes.values.tolist()[:2] == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"bad_outcome: 'maybe' is not a label of the outcome 'churned'"):
        outcome_target(survey, churn, bad="maybe")
    with pytest.raises(ValueError, match="detractor"):
        outcome_target(pd.DataFrame({"recommend": [3]}), SimpleNamespace(kind="recommend"), bad="promoter")


def test_short_scales_get_box_flags_only() -> None:
    rng = np.random.default_rng(0)
    survey = pd.DataFrame({"three": rng.integers(1, 4, 60), "two": rng.integers(0, 2, 60)})
    design, _ = rating_design(survey, {"three": Scale(min=1, max=3), "two": Scale(min=0, max=1)})
    assert list(design.columns) == ["three:bottom", "three:top", "two:bottom"]
    assert np.linalg.matrix_rank(design.to_numpy()) == design.shape[1]  # no column repeats the others


def test_targets_and_rating_terms() -> None:
    survey = pd.DataFrame({"recommend": [0, 6, 7, 10, np.nan], "outcome": [0, 1, 1, np.nan, 0]})
    detractor = outcome_target(survey, SimpleNamespace(kind="recommend"))
    assert detractor.label == "detractor"
    assert detractor.values.tolist()[:4] == [1.0, 1.0, 0.0, 0.0] and np.isnan(detractor.values.iloc[4])
    binary = outcome_target(
        survey, SimpleNamespace(kind="binary", labels={"no": 0, "yes": 1}, label="recommended", column="rec")
    )
    assert binary.label == "recommended = no"
    assert binary.values.tolist()[:3] == [1.0, 0.0, 0.0]
    ratings = pd.DataFrame({"web": [1, 2, 3, 80, 100, np.nan] * 10, "few": [np.nan] * 59 + [3]})
    design, left_out = rating_design(ratings, {"web": Scale(min=1, max=100), "few": Scale(min=1, max=5)})
    assert left_out == ["few"]
    # 1-100: the bottom box is the lowest 40 points, the top box the highest 20
    assert design["web:bottom"].tolist()[:6] == [1, 1, 1, 0, 0, 0]
    assert design["web:top"].tolist()[:6] == [0, 0, 0, 0, 1, 0]
    assert design["web:position"].iloc[4] == pytest.approx(0.5) and design["web:not_rated"].iloc[5] == 1
