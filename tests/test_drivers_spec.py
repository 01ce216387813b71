"""The path-model declaration (params vocabulary) and the data preparation it drives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cxresearch.drivers.model import prepare_data
from cxresearch.drivers.spec import (
    DriverModelSpec,
    ModelSpecError,
    default_model_spec,
    parse_model_spec,
    resolve_model_spec,
)
from cxresearch.yamlio import load_yaml

REPO_PARAMS = __import__("pathlib").Path(__file__).resolve().parents[1] / "params" / "drivers.yaml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small simulated dataset (the real simulator) loaded through the canonical loader."""
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, 1500, 11, population_samples=1000)
    return load_dataset(out / "dataset.yaml")


def test_params_file_model_resolves_against_the_dataset(demo):
    raw = load_yaml(REPO_PARAMS)["settings"]["model"]
    resolved = resolve_model_spec(raw, demo.spec, list(demo.survey.columns))
    assert resolved.touchpoints == list(demo.spec.survey.touchpoints)
    assert resolved.outcome == "recommend"
    assert resolved.order.index("emotion") < resolved.order.index("recommend")
    n_tp = len(resolved.touchpoints)
    assert len(resolved.paths) == 2 * n_tp + 1  # touchpoints -> emotion, -> recommend, emotion -> recommend
    assert resolved.constructs["branch_visit"].scale.points == 5
    assert resolved.constructs["recommend"].scale.points == 11
    assert resolved.constructs["emotion"].scale.points == 7


def test_explicit_touchpoint_constructs_in_the_field_vocabulary(demo):
    spec = {
        "constructs": {
            "experience_app": {"items": ["mobile_app"], "kind": "touchpoint"},
            "experience_web": {"items": ["website"], "kind": "touchpoint"},
            "emotion": {"items": ["emo_happy", "emo_trust"], "mode": "latent", "item_likelihood": "ordered_logistic"},
            "recommend": {"items": ["recommend"], "likelihood": "ordered_logistic"},
        },
        "paths": ["touchpoints -> emotion", "emotion -> recommend", "experience_app -> recommend"],
    }
    resolved = resolve_model_spec(spec, demo.spec, list(demo.survey.columns))
    assert resolved.touchpoints == ["experience_app", "experience_web"]
    assert resolved.sources("recommend") == ["emotion", "experience_app"]
    assert resolved.constructs["experience_app"].scale.max == 5  # filled from the dataset spec


@pytest.mark.parametrize(
    "paths,message",
    [
        (["touchpoints -> emotion", "emotion -> nowhere"], "unknown target 'nowhere'"),
        (["touchpoints -> emotion", "emotion -> recommend", "recommend -> emotion"], "cycle"),
        (["emotion -> branch_visit", "emotion -> recommend"], "exogenous"),
        (["touchpoints -> emotion", "emotion -> recommend", "emotion -> recommend"], "declared twice"),
        (["touchpoints emotion"], "source -> target"),
    ],
)
def test_bad_paths_are_named(demo, paths, message):
    spec = {
        "touchpoints": "all",
        "paths": paths,
        "constructs": {
            "emotion": {"items": ["emo_happy"]},
            "recommend": {"items": ["recommend"], "likelihood": "ordered_logistic"},
        },
    }
    with pytest.raises(ModelSpecError, match=message):
        resolve_model_spec(spec, demo.spec, list(demo.survey.columns))


def test_unknown_keys_and_bad_constructs_are_rejected():
    with pytest.raises(ModelSpecError, match="constructs.emotion.modee"):
        parse_model_spec({"constructs": {"emotion": {"items": ["a"], "modee": "latent"}}, "paths": ["a -> b"]})
    with pytest.raises(ModelSpecError, match="single observed item"):
        parse_model_spec(
            {"constructs": {"emotion": {"items": ["a", "b"], "likelihood": "ordered_logistic"}}, "paths": []}
        )
    with pytest.raises(ModelSpecError, match="exactly one item"):
        parse_model_spec({"constructs": {"tp": {"items": ["a", "b"], "kind": "touchpoint"}}, "paths": []})


def test_missing_columns_are_listed(demo):
    spec = {
        "touchpoints": ["mobile_app"],
        "paths": ["touchpoints -> recommend"],
        "constructs": {"recommend": {"items": ["recomend"], "likelihood": "ordered_logistic"}},
        "group_by": ["segmnt"],
    }
    with pytest.raises(ModelSpecError, match=r"group_by: segmnt.*recommend: recomend"):
        resolve_model_spec(spec, demo.spec, list(demo.survey.columns))


def test_single_item_latent_construct_is_measured_without_error(demo):
    spec = {
        "touchpoints": ["mobile_app"],
        "paths": ["touchpoints -> happy", "happy -> recommend"],
        "constructs": {
            "happy": {"items": ["emo_happy"], "mode": "latent"},
            "recommend": {"items": ["recommend"], "likelihood": "ordered_logistic"},
        },
    }
    resolved = resolve_model_spec(spec, demo.spec, list(demo.survey.columns))
    assert resolved.constructs["happy"].mode == "composite"


def test_not_applicable_touchpoints_keep_the_respondent(demo):
    survey = demo.survey
    prep = prepare_data(survey, default_model_spec(demo.spec), demo.spec)
    assert prep.n == survey["recommend"].notna().sum() == len(survey)  # nobody dropped for a missing touchpoint
    for t, tp in enumerate(prep.touchpoints):
        rating = survey[tp].to_numpy()
        used = ~np.isnan(rating)
        assert ((prep.states[:, t] > 0) == used).all()
        np.testing.assert_array_equal(prep.states[used, t], rating[used].astype(int))  # 1-5 scale -> state = rating
    # centred rating in half ranges where used, 0 where not: (s - 3) / 2 on a 1-5 scale
    np.testing.assert_allclose(prep.features["slope"][0, 1:6], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(prep.features["penalty"][0], [0, 1, 1, 0, 0, 0])
    np.testing.assert_allclose(prep.features["reward"][0], [0, 0, 0, 0, 0, 1])
    assert prep.group_dims == ["segment", "market"]
    assert prep.n_cells == 12
    # composite emotion: standardised weighted mean of the item z-scores
    assert abs(prep.scores["emotion"].mean()) < 1e-9 and abs(prep.scores["emotion"].std() - 1) < 1e-9


def test_rows_without_an_outcome_are_dropped_and_counted(demo):
    survey = demo.survey.copy()
    survey.loc[survey.index[:5], "recommend"] = pd.NA
    prep = prepare_data(survey, default_model_spec(demo.spec), demo.spec)
    assert prep.n == len(survey) - 5
    assert prep.dropped_rows == {"recommend: no answer": 5}


def test_ratings_off_the_scale_name_the_column(demo):
    survey = demo.survey.copy()
    survey.loc[survey.index[0], "website"] = 3.5
    with pytest.raises(ValueError, match=r"website.*whole points.*3\.5"):
        prepare_data(survey, default_model_spec(demo.spec), demo.spec)


def test_rare_touchpoints_are_left_out_and_reported(demo):
    survey = demo.survey.copy()
    survey["tech_support"] = np.where(np.arange(len(survey)) < 5, 3.0, np.nan)
    prep = prepare_data(survey, default_model_spec(demo.spec), demo.spec)
    assert "tech_support" not in prep.touchpoints
    assert "5 users" in prep.dropped_touchpoints["tech_support"]


def test_group_dimension_with_one_level_is_skipped(demo):
    survey = demo.survey[demo.survey.segment == "mass"]
    prep = prepare_data(survey, default_model_spec(demo.spec), demo.spec)
    assert prep.group_dims == ["market"]


def test_default_spec_is_yaml_friendly(demo):
    spec = default_model_spec(demo.spec, emotion_mode="latent")
    again = DriverModelSpec.model_validate(spec.model_dump(exclude_defaults=True))
    assert again == spec
    assert [str(p) for p in spec.paths] == [
        "touchpoints -> emotion",
        "emotion -> recommend",
        "touchpoints -> recommend",
    ]


def test_low_rank_auto_uses_the_diagonal_mass_matrix_for_latent_constructs(demo):
    """``low_rank="auto"``: low-rank for touchpoint terms, diagonal with per-respondent latent scores or
    beyond LOW_RANK_MAX_DIM parameters (nutpie's low-rank warm-up grows with parameters x window^2)."""
    from cxresearch.drivers.fit import LOW_RANK_MAX_DIM, choose_low_rank

    composite = prepare_data(demo.survey, default_model_spec(demo.spec), demo.spec)
    latent = prepare_data(demo.survey, default_model_spec(demo.spec, emotion_mode="latent"), demo.spec)
    assert choose_low_rank("auto", composite, 300) is True
    assert choose_low_rank("auto", composite, LOW_RANK_MAX_DIM + 1) is False
    assert choose_low_rank("auto", latent, 300) is False and choose_low_rank(None, latent, 300) is False
    assert choose_low_rank(True, latent, 300) is True and choose_low_rank(False, composite, 10) is False
    with pytest.raises(ValueError, match="'sometimes'"):
        choose_low_rank("sometimes", composite, 10)


def _sparse_groups_survey(n: int = 360, seed: int = 0) -> pd.DataFrame:
    """Ratings 1-5 on two touchpoints, recommend 0-10, a segment of 3 levels (120 answers each) and a branch of
    90 levels with 4 answers each (most real branch / airline groupings look like this)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "app": rng.integers(1, 6, n).astype(float),
            "call": rng.integers(1, 6, n).astype(float),
            "recommend": rng.integers(0, 11, n).astype(float),
            "segment": np.repeat(["a", "b", "c"], n // 3),
            "branch": [f"b{i:02d}" for i in np.tile(np.arange(90), n // 90)],
        }
    )


SPARSE_MODEL = {
    "constructs": {
        "app": {"items": ["app"], "kind": "touchpoint", "scale": [1, 5]},
        "call": {"items": ["call"], "kind": "touchpoint", "scale": [1, 5]},
        "recommend": {"items": ["recommend"], "likelihood": "ordered_logistic", "scale": [0, 10]},
    },
    "paths": ["touchpoints -> recommend"],
    "group_by": ["segment", "branch"],
}


def test_a_grouping_with_too_few_answers_per_level_shifts_intercepts_only():
    """90 branches with 4 answers each cannot inform branch-specific driver strengths: the branch levels shift
    the intercept alone (no learned sd, no slope deviations, no group differences), the 3 segments with 120
    answers each keep theirs, and the report says why in words."""
    import pymc as pm

    from cxresearch.drivers.model import build_model
    from cxresearch.drivers.study import model_description, shared_slopes_text

    survey = _sparse_groups_survey()
    prep = prepare_data(survey, SPARSE_MODEL)
    assert prep.shared_slopes == {"branch": 4.0}
    assert prep.intercept_only == ["branch"] and prep.slope_groupings == ["segment"]
    text = shared_slopes_text(prep)
    assert "**branch** (90 levels, a median of 4 answers per level)" in text and "at least 5" in text
    described = model_description(SimpleNamespace(prep=prep))
    assert "Slopes and intercepts vary by segment (partial pooling)" in described
    assert "Intercepts alone vary by branch (too few answers per level for its own slopes)" in described
    model, layout = build_model(prep)
    names = {v.name for v in model.free_RVs}
    assert "recommend__sd_slope" not in names  # the branch sd would have been the only learned one
    z = model["recommend__z_slope"]
    assert z.eval().shape[0] == 2  # the segment's 2 free values only, not 2 + 89
    dev = pm.draw(model["recommend__slope_dev"], random_seed=1)
    levels = model.coords["group_level"]
    branch_rows = [i for i, name in enumerate(levels) if name.startswith("branch=")]
    segment_rows = [i for i, name in enumerate(levels) if name.startswith("segment=")]
    assert np.all(dev[branch_rows] == 0) and np.all(dev[segment_rows] != 0)
    # the key of a compiled model follows: another threshold is another graph
    wide = prepare_data(survey, {**SPARSE_MODEL, "group_slopes_min_answers": 4})
    assert wide.shared_slopes == {} and wide.structure_key() != prep.structure_key()
    assert prepare_data(survey, {**SPARSE_MODEL, "group_slopes_min_answers": 0}).shared_slopes == {}
    assert shared_slopes_text(wide) is None
    # a grouping of few levels keeps its (regularised, fixed-scale) slopes however few its answers
    few = survey.iloc[:12].assign(segment=["a", "b", "c"] * 4)
    assert "segment" not in prepare_data(few, {**SPARSE_MODEL, "group_by": ["segment"]}).shared_slopes


def test_no_grouping_with_slopes_gives_empty_difference_tables_with_their_columns():
    """Only a sparse grouping (90 branches, 4 answers each): no group differences are estimated, and the tables
    say so with their columns (a plot or a filter on them must not fail); the model sentence names the branch."""
    from cxresearch.drivers import effects as fx
    from cxresearch.drivers.study import model_description
    from driver_fakes import fake_fit, known_draws

    prep = prepare_data(_sparse_groups_survey(), {**SPARSE_MODEL, "group_by": ["branch"]})
    assert prep.group_dims == ["branch"] and prep.slope_groupings == []
    layout, post = known_draws(prep, 20)
    p = fx.posterior(fake_fit(prep, post, layout))
    groups, pairs = fx.group_differences(p), fx.pairwise_group_differences(p)
    assert groups.empty and {"dimension", "level", "touchpoint", "p_positive"} <= set(groups.columns)
    assert pairs.empty and {"dimension", "level_a", "level_b", "p_positive"} <= set(pairs.columns)
    described = model_description(SimpleNamespace(prep=prep))
    assert "Intercepts alone vary by branch (too few answers" in described and "Slopes and" not in described
    only_intercepts = prepare_data(_sparse_groups_survey(), {**SPARSE_MODEL, "varying": ["intercept"]})
    assert "Intercepts alone vary by segment and branch" in model_description(SimpleNamespace(prep=only_intercepts))
