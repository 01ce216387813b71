"""The driver model the initiatives value scenarios with (issue 23): wider fixed-scale slope offsets for
segments and markets, a wave that shifts intercepts only, and the guard against a composite mediator without
direct paths. Checked on the model graph itself (prior draws), without sampling."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from cxresearch.drivers.model import build_model, prepare_data
from cxresearch.drivers.spec import DriverModelSpec, default_model_spec
from cxresearch.initiatives.fitted import check_scenario_spec, scenario_model_spec


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset

    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, 1500, 7, population_samples=1000)
    return load_dataset(out / "dataset.yaml")


def _prior_devs(data, spec, name: str, draws: int = 2000) -> tuple[np.ndarray, list[str]]:
    """Prior draws of ``recommend__<name>`` (group_level x touchpoint) and the group_level labels."""
    prep = prepare_data(data.survey, spec, data.spec)
    model, _ = build_model(prep)
    values = pm.draw(model[f"recommend__{name}"], draws=draws, random_seed=3)
    return np.asarray(values), list(model.coords["group_level"])


def test_scenario_spec_groups_by_wave_for_intercepts_only_when_there_are_several_waves(demo) -> None:
    spec = scenario_model_spec(demo.spec, demo.survey)
    assert spec.group_by == ["segment", "market", "wave"] and spec.intercept_only == ["wave"]
    assert spec.priors.slope_offset_sd == 0.3 and spec.priors.group_offset_sd == 0.1
    one_wave = demo.survey[demo.survey["wave"].astype(str) == "2"]
    spec1 = scenario_model_spec(demo.spec, one_wave, slope_offset_sd=None)
    assert spec1.group_by == ["segment", "market"] and spec1.intercept_only == []
    assert spec1.priors.slope_offset_sd is None
    # the rest is the drivers study's standard chain, direct paths included
    standard = default_model_spec(demo.spec)
    assert spec.paths == standard.paths and spec.constructs == standard.constructs


def test_intercept_only_wave_shifts_intercepts_not_touchpoint_terms(demo) -> None:
    spec = scenario_model_spec(demo.spec, demo.survey)
    for term in ("slope_dev", "penalty_dev", "reward_dev"):
        devs, levels = _prior_devs(demo, spec, term, draws=200)
        wave_rows = [i for i, lv in enumerate(levels) if lv.startswith("wave=")]
        segment_rows = [i for i, lv in enumerate(levels) if lv.startswith("segment=")]
        assert len(wave_rows) == 2 and segment_rows
        assert np.all(devs[:, wave_rows, :] == 0.0), term
        assert np.std(devs[:, segment_rows, :]) > 0.01, term
    prep = prepare_data(demo.survey, spec, demo.spec)
    model, layout = build_model(prep)
    eq = layout.equations["recommend"]
    assert "wave" in eq.intercept_dims and "wave" not in eq.learned_dims
    z = pm.draw(model["recommend__z_intercept"], draws=200, random_seed=1)
    dev_i = np.einsum("lk,sk->sl", eq.intercept_basis, z)
    wave_levels = [i for i, lv in enumerate(model.coords["group_level"]) if lv.startswith("wave=")]
    assert np.std(dev_i[:, wave_levels]) > 0.1  # the wave does shift the intercept


def test_slope_offset_sd_widens_slope_offsets_only(demo) -> None:
    """Prior sd of the segment slope deviations scales with slope_offset_sd; penalty / reward keep 0.1."""
    base = scenario_model_spec(demo.spec, demo.survey, slope_offset_sd=None)
    wide = scenario_model_spec(demo.spec, demo.survey, slope_offset_sd=0.3)
    for term, expected in (("slope_dev", 3.0), ("penalty_dev", 1.0), ("reward_dev", 1.0)):
        sd_base = np.std(_prior_devs(demo, base, term)[0])
        sd_wide = np.std(_prior_devs(demo, wide, term)[0])
        # 2,000 draws x (levels x touchpoints) values: the sd ratio is known to well within 5%
        assert sd_wide / sd_base == pytest.approx(expected, rel=0.05), term


def test_intercept_only_must_be_grouped_and_intercepts_must_vary(demo) -> None:
    spec = default_model_spec(demo.spec).model_dump()
    with pytest.raises(ValueError, match=r"intercept_only names columns that are not in group_by.*'wave'"):
        DriverModelSpec.model_validate({**spec, "intercept_only": ["wave"]})
    with pytest.raises(ValueError, match="must include 'intercept'"):
        DriverModelSpec.model_validate(
            {**spec, "group_by": ["segment", "wave"], "intercept_only": ["wave"], "varying": ["slope"]}
        )


def test_composite_mediator_without_direct_paths_is_refused(demo) -> None:
    spec = default_model_spec(demo.spec, direct=False)
    with pytest.raises(ValueError, match=r"'emotion' feeds 'recommend'.*add 'touchpoints -> recommend'"):
        check_scenario_spec(spec, demo.spec)
    check_scenario_spec(default_model_spec(demo.spec), demo.spec)  # the standard chain has them
    check_scenario_spec(default_model_spec(demo.spec, emotion_mode="latent", direct=False), demo.spec)
    with pytest.raises(ValueError, match="no touchpoint has a direct path"):
        check_scenario_spec(spec.model_dump(), demo.spec)  # a mapping, as the params give it
