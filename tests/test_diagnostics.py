"""The one diagnostics gate (cxresearch.diagnostics): each criterion fails exactly when it should, on draws whose
properties are known by construction, and the verdicts read the same in every form (object, dict, banner)."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest

from cxresearch.diagnostics import (
    GATE,
    Diagnostics,
    as_dict,
    check_approximate,
    check_mcmc,
    combine,
    describe,
    exact,
    pareto_k,
)


def _idata(posterior: dict, diverging: np.ndarray | None = None, energy: np.ndarray | None = None):
    chains, draws = next(iter(posterior.values())).shape[:2]
    stats = {"diverging": np.zeros((chains, draws), bool) if diverging is None else diverging}
    if energy is not None:
        stats["energy"] = energy
    return az.from_dict(posterior=posterior, sample_stats=stats)


def _ar1(rng: np.random.Generator, chains: int, draws: int, rho: float) -> np.ndarray:
    """Stationary AR(1) chains: ESS per draw is (1 - rho) / (1 + rho) (about 1/19 for rho = 0.9)."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.normal(size=chains)
    noise = rng.normal(scale=math.sqrt(1 - rho**2), size=(chains, draws))
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return x


def test_independent_draws_pass_with_every_figure():
    rng = np.random.default_rng(1)
    d = check_mcmc(
        _idata({"a": rng.normal(size=(2, 1000)), "b": rng.normal(size=(2, 1000, 3))}, energy=rng.normal(size=(2, 1000)))
    )
    assert d.passed and d.verdict == "passed" and d.reasons == ()
    assert d.rhat_max < 1.01 and d.ess_bulk_min > 1500 and d.divergences == 0 and d.bfmi_min > 1
    assert d.chains == 2 and d.draws == 2000


def test_chains_that_disagree_fail_on_rhat_and_name_the_parameter():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2, 1000))
    a[1] += 1.0  # the second chain sits one sd away
    d = check_mcmc(_idata({"a": a, "ok": rng.normal(size=(2, 1000))}))
    assert not d.passed and d.rhat_max > 1.1
    assert any(r.startswith("R-hat") and "on a:" in r for r in d.reasons)
    assert d.worst["rhat"] == "a"


def test_autocorrelated_chains_fail_on_ess_with_the_draws_needed():
    """AR(1) with rho 0.9: 2 x 2000 draws have an ESS near 4000 / 19 = 210, below the gate's 400."""
    rng = np.random.default_rng(3)
    d = check_mcmc(_idata({"slow": _ar1(rng, 2, 2000, 0.9)}))
    assert 120 < d.ess_bulk_min < 330
    assert not d.passed and any("bulk ESS" in r and "run more draws" in r for r in d.reasons)
    needed = int(next(r for r in d.reasons if "bulk ESS" in r).split("about ")[1].split(" ")[0])
    assert needed >= 4000 * GATE["ess_bulk_min"] / d.ess_bulk_min  # enough draws to reach the gate


def test_divergences_fail_only_above_the_share():
    rng = np.random.default_rng(4)
    post = {"a": rng.normal(size=(2, 2000))}
    at_limit = np.zeros((2, 2000), bool)
    at_limit[0, :4] = True  # 4 of 4000 = 0.1%: allowed
    assert check_mcmc(_idata(post, diverging=at_limit)).passed
    above = at_limit.copy()
    above[1, :1] = True  # 5 of 4000
    d = check_mcmc(_idata(post, diverging=above))
    assert not d.passed and d.divergences == 5 and "divergent" in d.reasons[0]


def test_low_bfmi_fails():
    """E-BFMI = E[(dE)^2] / Var(E): a slowly wandering energy (AR(1), rho 0.95) gives about 0.05."""
    rng = np.random.default_rng(5)
    d = check_mcmc(_idata({"a": rng.normal(size=(2, 2000))}, energy=_ar1(rng, 2, 2000, 0.95)))
    assert d.bfmi_min < GATE["bfmi_min"] and not d.passed and "E-BFMI" in d.reasons[0]


def test_one_chain_cannot_pass():
    rng = np.random.default_rng(6)
    d = check_mcmc(_idata({"a": rng.normal(size=(1, 4000))}))
    assert not d.passed and "2 chains" in d.reasons[0]


def test_pareto_k_matches_a_known_tail():
    """Importance ratios with a Pareto(alpha) tail have shape k = 1 / alpha (PSIS, Vehtari et al. 2024)."""
    rng = np.random.default_rng(7)
    light = np.log(rng.pareto(5.0, 20000) + 1)  # k = 0.2
    heavy = np.log(rng.pareto(1.0, 20000) + 1)  # k = 1.0
    assert pareto_k(light) == pytest.approx(0.2, abs=0.12)
    assert pareto_k(heavy) == pytest.approx(1.0, abs=0.15)
    assert check_approximate("advi", pareto_k(light)).verdict == "approximate"
    failed = check_approximate("advi", pareto_k(heavy))
    assert not failed.passed and failed.approximate and "run NUTS" in failed.reasons[0]
    assert not check_approximate("advi", pareto_k(light), converged=False).passed
    assert math.isnan(pareto_k(np.zeros(5)))  # too few draws to estimate a tail


def test_round_trip_combine_and_describe():
    rng = np.random.default_rng(8)
    good = check_mcmc(_idata({"a": rng.normal(size=(2, 1000))}))
    bad = check_mcmc(_idata({"a": _ar1(rng, 2, 500, 0.95)}))
    assert Diagnostics.from_dict(as_dict(good)) == Diagnostics.from_dict(as_dict(Diagnostics.from_dict(as_dict(good))))
    assert dict(good)["passed"] is True and good["rhat_max"] == good.rhat_max
    both = combine({"driver": good, "value": as_dict(bad), "scorecard": exact()})
    assert (
        not both.passed and both.ess_bulk_min == bad.ess_bulk_min and both.rhat_max == max(good.rhat_max, bad.rhat_max)
    )
    assert all(r.startswith("value: ") for r in both.reasons) and set(both.parts) == {"driver", "value", "scorecard"}
    assert "R-hat max" in describe(good) and "nothing sampled" in describe(exact())
    assert as_dict(None) is None and as_dict(good)["gate"] == dict(GATE)


def test_a_fit_that_only_diverged_is_rerun_with_smaller_steps_and_the_same_draws() -> None:
    from cxresearch.diagnostics import escalated_settings

    rng = np.random.default_rng(3)
    diverging = np.zeros((2, 2000), bool)
    diverging[0, :5] = True  # 0.125% of the draws: over the 0.1% limit
    mixed = check_mcmc(_idata({"x": rng.normal(size=(2, 2000))}, diverging=diverging))
    assert not mixed.passed and mixed.divergences == 5 and mixed.rhat_max <= GATE["rhat_max"]
    assert escalated_settings(mixed, 2000, 700, 0.8) == (2000, 700, 0.95)
    # chains that disagree as well: twice the draws and a longer warm-up, besides the smaller steps
    apart = rng.normal(size=(2, 2000)) + np.array([[0.0], [0.5]])
    stuck = check_mcmc(_idata({"x": apart}, diverging=diverging))
    assert stuck.rhat_max > GATE["rhat_max"]
    assert escalated_settings(stuck, 2000, 700, 0.8) == (4000, 1400, 0.95)
    # no divergences, too few effective draws: more draws, target_accept 0.9
    slow = check_mcmc(_idata({"x": np.cumsum(rng.normal(size=(2, 2000)), axis=1) * 0.01}))
    assert not slow.passed and not slow.divergences
    assert escalated_settings(slow, 1000, 300, 0.8) == (2000, 1000, 0.9)
