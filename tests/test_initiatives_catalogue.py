"""Initiative catalogue and effect distributions: parsing, validation messages, sampling against closed forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cxresearch.initiatives.catalogue import (
    CatalogueError,
    TouchpointInfo,
    check_catalogue,
    load_catalogue,
)
from cxresearch.initiatives.effects import EffectSpecError, effect_grid, parse_distribution
from cxresearch.studies.settings import SettingsError, check_study_settings
from cxresearch.yamlio import load_yaml

REPO = Path(__file__).resolve().parents[1]

TOUCHPOINTS = {
    "mobile_app": TouchpointInfo("mobile_app", 1, 5, channel="digital", need="usage"),
    "call_centre": TouchpointInfo("call_centre", 1, 5, channel="phone", need="service"),
    "nps_like": TouchpointInfo("nps_like", 0, 10, channel="survey"),
}


def _one(**overrides):
    base = {"name": "app", "touchpoints": ["mobile_app"], "effect": {"uplift": 0.3}, "cost": {"one_off": 100}}
    base.update(overrides)
    return base


# ------------------------------------------------------------------------------------------ effects
def test_distribution_forms_and_moments():
    rng = np.random.default_rng(1)
    n = 200_000
    # Monte-Carlo tolerances: 5 standard errors of a mean of n draws
    cases = [
        (0.3, 0.3, 0.0),
        ([0.2, 0.6], 0.4, (0.4 / np.sqrt(12))),
        ({"uniform": {"low": 0.2, "high": 0.6}}, 0.4, (0.4 / np.sqrt(12))),
        ({"triangular": [0.0, 0.6]}, 0.3, stats.triang(0.5, 0, 0.6).std()),
        ({"triangular": {"low": 0.0, "mode": 0.1, "high": 0.7}}, 0.8 / 3, stats.triang(1 / 7, 0, 0.7).std()),
        ({"normal": {"mean": 0.3, "sd": 0.1}}, 0.3, 0.1),
        ({"beta": {"a": 2, "b": 6}}, 0.25, stats.beta(2, 6).std()),
    ]
    for spec, mean, sd in cases:
        d = parse_distribution(spec)
        draws = d.sample(n, rng)
        assert abs(d.mean() - mean) < 1e-12
        assert abs(draws.mean() - mean) <= 5 * sd / np.sqrt(n) + 1e-12, spec
        if sd:
            assert abs(draws.std() - sd) < 0.01 * sd + 5 * sd / np.sqrt(n), spec


def test_beta_from_mean_and_sd_matches_the_moments():
    d = parse_distribution({"beta": {"mean": 0.4, "sd": 0.1}}, clip=(0, 1))
    a, b = d.p["a"], d.p["b"]
    assert stats.beta(a, b).mean() == pytest.approx(0.4)
    assert stats.beta(a, b).std() == pytest.approx(0.1)


def test_normal_share_is_clipped_and_its_mean_accounts_for_it():
    d = parse_distribution({"normal": {"mean": 0.95, "sd": 0.1}}, clip=(0, 1))
    draws = d.sample(100_000, np.random.default_rng(2))
    assert draws.max() <= 1.0
    # E[min(X, 1)] for X ~ N(0.95, 0.1): closed form mu - E[(X-1)+]
    z = (1 - 0.95) / 0.1
    expected = 0.95 - 0.1 * (stats.norm.pdf(z) - z * (1 - stats.norm.cdf(z)))
    assert d.mean() == pytest.approx(expected, abs=2e-4)
    assert draws.mean() == pytest.approx(expected, abs=5 * 0.1 / np.sqrt(100_000))


@pytest.mark.parametrize(
    "spec, message",
    [
        ([0.6, 0.2], "low 0.6 is above high 0.2"),
        ([0.1], "a range is [low, high]"),
        ({"normal": {"mean": 0.3}}, "missing key(s) ['sd']"),
        ({"normal": {"mean": 0.3, "sd": -1}}, "sd: must be >= 0"),
        ({"gamma": {"a": 1}}, "unknown distribution 'gamma'"),
        ({"beta": {"mean": 0.5, "sd": 0.6}}, "needs 0 < sd"),
        ("big", "give a number, a range"),
        ({"triangular": {"low": 0, "mode": 2, "high": 1}}, "mode: 2 is outside"),
    ],
)
def test_bad_distributions_name_the_key(spec, message):
    with pytest.raises(EffectSpecError) as err:
        parse_distribution(spec, where="catalogue[x].effect.uplift")
    assert message in str(err.value)
    assert str(err.value).startswith("catalogue[x].effect.uplift")


def test_effect_grid_spans_draws_and_includes_integers():
    d = parse_distribution([0.5, 2.5])
    draws = d.sample(1000, np.random.default_rng(3))
    grid = effect_grid(d, 5, draws, integers=True)
    assert grid[0] == draws.min() and grid[-1] == draws.max()
    assert {1.0, 2.0} <= set(grid.tolist())
    assert np.all(np.diff(grid) > 0)
    assert effect_grid(parse_distribution(0.7), 9).tolist() == [0.7]


# ------------------------------------------------------------------------------------------ catalogue
def test_catalogue_accepts_the_documented_forms():
    cat = load_catalogue(
        [
            _one(),
            _one(
                name="fcr",
                touchpoints="call_centre",
                effect={"remove_bad": {"beta": {"mean": 0.4, "sd": 0.1}}},
                cost={},
                scope={"segments": "all", "markets": ["ES", "NO"]},
                time_to_effect_months=3,
                ramp_months=2,
            ),
        ]
    )
    assert cat.names == ["app", "fcr"]
    fcr = cat["fcr"]
    assert fcr.touchpoints == ("call_centre",)
    assert fcr.scope.segments is None and fcr.scope.markets == ("ES", "NO")
    assert fcr.scope.includes("mass", "NO") and not fcr.scope.includes("mass", "PT")
    assert fcr.effect.kind == "remove_bad"
    assert fcr.cost.total(12) == 0 and cat["app"].cost.total(12) == 100
    # mapping form and {catalogue: [...]} form give the same catalogue
    assert load_catalogue({"app": {k: v for k, v in _one().items() if k != "name"}}).names == ["app"]
    assert load_catalogue({"catalogue": [_one()]}).names == ["app"]


def test_catalogue_errors_name_the_initiative_and_key_path():
    with pytest.raises(CatalogueError) as err:
        load_catalogue(
            [_one(), _one(name="fcr", effect={"uplift": [0.5, 0.1]}, costs={"one_off": 1})],
            where="params/initiatives.yaml: settings.catalogue",
        )
    text = str(err.value)
    assert "settings.catalogue[fcr].effect: uplift: range low 0.5 is above high 0.1" in text
    assert "settings.catalogue[fcr].costs: unknown key" in text
    with pytest.raises(CatalogueError, match=r"catalogue\[app\]\.effect: give exactly one of"):
        load_catalogue([_one(effect={"uplift": 0.2, "remove_bad": 0.3})])
    with pytest.raises(CatalogueError, match="names must be unique; repeated: \\['app'\\]"):
        load_catalogue([_one(), _one()])
    with pytest.raises(
        CatalogueError, match=r"catalogue\[app\]\.cost\.one_off: Input should be greater than or equal to 0"
    ):
        load_catalogue([_one(cost={"one_off": -5})])
    with pytest.raises(
        CatalogueError, match=r"catalogue\[app\]\.effect: remove_bad: range 0.5-1.5 must lie within 0-1"
    ):
        load_catalogue([_one(effect={"remove_bad": [0.5, 1.5]})])
    with pytest.raises(
        CatalogueError, match=r"catalogue\[bad name\]\.name: initiative name 'bad name' must be an identifier"
    ):
        load_catalogue([_one(), _one(name="bad name")])


def test_check_against_dataset_names_unknown_codes():
    cat = load_catalogue(
        [
            _one(touchpoints=["mobile"]),
            _one(name="b", scope={"markets": ["XX"]}),
            _one(name="c", scope={"channels": ["branch"]}),
            _one(name="d", effect={"remove_bad": 0.5, "becomes": 1}),
            _one(name="e", effect={"uplift": 7}),
        ]
    )
    with pytest.raises(CatalogueError) as err:
        check_catalogue(cat, TOUCHPOINTS, segments=["mass"], markets=["ES", "NO"])
    text = str(err.value)
    assert "catalogue[app].touchpoints: unknown touchpoint(s) ['mobile']" in text
    assert "catalogue[b].scope.markets: ['XX'] not in the data" in text
    assert "catalogue[c].scope.channels: touchpoint(s) ['mobile_app'] are on channel(s) ['digital']" in text
    assert "catalogue[d].effect.becomes: 1.0 must be above the bottom box (2)" in text
    assert "catalogue[e].effect.uplift: 7 points exceeds the width" in text


def test_bottom_box_default_by_scale():
    assert TOUCHPOINTS["mobile_app"].bottom_box_max == 2  # 1-2 on a 1-5 scale
    assert TOUCHPOINTS["nps_like"].bottom_box_max == 3  # 0-3 on a 0-10 scale: the drivers' bottom box (40%)
    wide = TouchpointInfo("online_payment", 1.0, 100.0)
    assert wide.bottom_box_max == 40  # 1-40 on 1-100, the answers the drivers' bottom-box penalty covers


def test_activation_is_the_monthly_average_of_a_delayed_linear_ramp():
    ini = load_catalogue([_one(time_to_effect_months=6, ramp_months=4)])["app"]
    months = np.arange(1, 13)
    # closed form: 0 for months 1-6, then the mean of (t - 6) / 4 over each month, then 1
    expected = [0] * 6 + [0.125, 0.375, 0.625, 0.875, 1, 1]
    assert np.allclose(ini.activation(months), expected)
    step = load_catalogue([_one(time_to_effect_months=2.5)])["app"]
    assert np.allclose(step.activation([1, 2, 3, 4]), [0, 0, 0.5, 1])


def test_params_file_catalogue_validates_and_matches_the_notebook():
    import json

    params = load_yaml(REPO / "params" / "initiatives.yaml")
    check_study_settings("initiatives", params["settings"], source="params/initiatives.yaml", prefix="settings.")
    cat = load_catalogue(params["settings"]["catalogue"])
    assert 5 <= len(cat) <= 6
    nb = json.loads((REPO / "notebooks" / "initiatives.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"
    param_cells = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(param_cells) == 1 and code[0] is param_cells[0]
    namespace: dict = {}
    source = param_cells[0]["source"]
    exec("".join(source) if isinstance(source, list) else source, namespace)  # noqa: S102 - our own notebook's literal parameters
    for key, value in params["settings"].items():
        assert key in namespace, f"setting {key} missing from the notebook parameters"
        assert type(namespace[key]) is type(value), key
    assert namespace["dataset"] == "../data/demo/dataset.yaml"
    assert load_catalogue(namespace["catalogue"]) == cat


def test_the_settings_model_reports_every_problem():
    with pytest.raises(SettingsError) as err:
        check_study_settings(
            "initiatives",
            {"budget": -1, "draws": 2.5, "catalogue": [{"name": "x"}]},
            source="p.yaml",
            prefix="settings.",
        )
    text = str(err.value)
    assert "p.yaml: settings.budget" in text and "(got -1)" in text
    assert "p.yaml: settings.draws" in text
    assert "settings.catalogue[x].touchpoints: Field required" in text


def test_stratified_effect_draws_have_the_distribution_and_an_exact_mean():
    """Latin hypercube draws: the KS distance to the distribution is at most that of one draw per slice
    (1 / n), the order carries no trend (rank correlation with the draw index within 4 / sqrt(n)), and
    the mean's spread over seeds is far below the independent draws' sd / sqrt(n) (a tenth allowed; for
    a smooth quantile function it is about sd / n)."""
    n = 1000
    for spec in ([0.2, 0.5], {"triangular": {"low": 0.1, "mode": 0.3, "high": 0.6}}, {"beta": {"a": 2, "b": 6}}):
        d = parse_distribution(spec)
        draws = d.stratified_sample(n, np.random.default_rng(3))
        frozen = d._frozen()
        assert stats.kstest(draws, frozen.cdf).statistic <= 1.0 / n + 1e-9, spec
        assert abs(stats.spearmanr(np.arange(n), draws).statistic) < 4 / np.sqrt(n), spec
        means = [d.stratified_sample(n, np.random.default_rng(s)).mean() for s in range(40)]
        assert np.std(means) < 0.1 * frozen.std() / np.sqrt(n), spec
    assert np.all(parse_distribution(0.3).stratified_sample(5, np.random.default_rng(0)) == 0.3)
