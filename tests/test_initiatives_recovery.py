"""Recovery of initiative values over repeated simulated data sets (issue 23), CI-sized.

The full benchmark is ``benchmarks/initiatives_recovery.py`` (20+ replications at 20,000 customers with the
study's samplers): per initiative the median ratio fitted / true benefit in 0.9-1.1, coverage, and the plan
chosen from fitted values against the true best plan. Here:

- fast tests of its pieces with known inputs (order-statistic interval of the median, the per-initiative
  comparison and the paired check, aggregation, the failure list), including a deliberately broken model
  (the truth with its emotion -> recommend slope ``gamma`` halved) that the same check must reject, both
  with synthetic numbers and end to end through the engines;
- one slow test: 2 replications at 8,000 customers with reduced samplers, checking the *pooled* ratio
  (sum of fitted benefits / sum of true benefits over the six initiatives) and the fits' convergence; the
  plan values are printed, not checked, at this size. The per-initiative medians and the plans need
  R >= 20 (docs/notes/issue-23/REPORT.md, "Recovery test sizing"): they are the benchmark's job.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import initiatives_recovery as rec  # noqa: E402

# --------------------------------------------------------------------------------------- CI-sized settings
#: replications, customers and samplers of the slow test (about 65 s each on 2 quiet cores; 3 replications in 2 worker
#: processes took 323 s beside the other pytest worker)
CI_SEEDS = [301, 302]
CI_CUSTOMERS = 8_000
CI_FIT = {"driver_draws": 300, "driver_tune": 300, "survival_draws": 300, "survival_tune": 300}
CI_ENGINE_DRAWS = 100
#: no plan check at CI size: at 8,000 customers and reduced samplers the plan ratio of one replication is too
#: noisy for 4 replications to tell a good model from a bad one (the same seeds gave 1.00, 1.00, 0.87, 0.94 and,
#: after the survival model's sampler changed from 2 to 4 chains, 0.85, 1.00, 0.87, 0.94). The issue's "most
#: replications" is the benchmark's check at 20,000 customers (benchmarks/RESULTS.md); the plan ratios are
#: printed here, and the broken-model tests above check that a biased chain loses plan value
CI_PLAN_SHARE = 0.0
#: convergence checked at CI size (2 x 300 draws cannot reach the strict gate's ESS >= 400 and R-hat <= 1.01
#: reliably; the benchmark applies the strict gate): no divergences and R-hat at most this
CI_RHAT_MAX = 1.05


def ci_failures(summary: dict) -> list[str]:
    """What the slow test asserts, as a list of failures: the pooled ratio's median in 0.9-1.1 and a plan
    share for every replication (no threshold at CI size, see :data:`CI_PLAN_SHARE`; the strict gate is not
    applied at CI size; see :func:`convergence_failures`)."""
    return rec.check_recovery(
        summary,
        per_initiative=False,
        coverage_band=None,
        plan_share_min=CI_PLAN_SHARE,
        require_gates=False,
        min_used=len(CI_SEEDS),
    )


def convergence_failures(records: list[dict], rhat_max: float = CI_RHAT_MAX) -> list[str]:
    """Fits with divergences or R-hat above ``rhat_max``, named with the strict gate's reasons."""
    out = []
    for r in records:
        for fit, d in (r.get("diagnostics") or {}).items():
            bad = (d.get("divergences") or 0) > 0 or d.get("rhat_max") is None or d["rhat_max"] > rhat_max
            if bad:
                out.append(f"seed {r['seed']} {fit}: {'; '.join(d.get('reasons') or []) or d}")
    return out


# ------------------------------------------------------------------------------------- synthetic records
def _initiative(ratio: float, pit: float = 0.5, covered: bool = True, true: float = 10_000.0) -> dict:
    return {
        "fitted_benefit": ratio * true,
        "true_benefit": true,
        "ratio": ratio,
        "covered": covered,
        "paired_pit": pit,
        "paired_covered": 0.05 <= pit <= 0.95,
        "nps_ratio": ratio,
    }


def _record(seed: int, ratios: dict[str, float], plan_ratio: float = 1.0, status: str = "ok", **extra) -> dict:
    initiatives = {name: _initiative(r) for name, r in ratios.items()}
    fb = sum(x["fitted_benefit"] for x in initiatives.values())
    tb = sum(x["true_benefit"] for x in initiatives.values())
    return {
        "seed": seed,
        "status": status,
        "initiatives": initiatives,
        "pooled_ratio": fb / tb,
        "plan": {"plan_value_ratio": plan_ratio, "same_plan": plan_ratio == 1.0},
        "timings": {"fit": 10.0 + seed % 3, "total": 20.0},
        "gate_failed": ["driver"] if status == "gate_failed" else [],
        **extra,
    }


def _synthetic(scale: float, sd: float, reps: int = 4, seed: int = 0) -> list[dict]:
    """Replications whose ratios scatter around ``scale`` with the measured per-replication sd."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    return [_record(k, {n: float(scale + sd * rng.standard_normal()) for n in names}) for k in range(reps)]


# ------------------------------------------------------------------------------------------ fast tests
def test_median_interval_uses_order_statistics():
    s = rec.median_interval(list(range(1, 11)))  # n = 10: [x(2), x(9)] covers 1 - 2 * 11/1024
    assert s["median"] == 5.5 and (s["low"], s["high"]) == (2.0, 9.0)
    assert s["level"] == pytest.approx(1 - 2 * 11 / 1024)
    small = rec.median_interval([0.9, 1.2, 1.0, 1.1])  # n = 4: the range covers only 87.5%
    assert (small["low"], small["high"], small["median"]) == (0.9, 1.2, 1.05)
    assert small["level"] == pytest.approx(0.875)
    assert rec.median_interval([None, float("nan")])["median"] is None
    assert rec.median_interval([2.0])["median"] == 2.0


def test_compare_initiative_with_known_draws():
    true = np.linspace(100.0, 200.0, 101)  # effect-size spread only
    cost = 120.0
    exact = rec.compare_initiative(true, true, true - cost, true - cost, true / 10, true / 10)
    assert exact["ratio"] == 1.0 and exact["paired_pit"] == 0.5 and exact["paired_covered"]
    assert exact["covered"] and exact["nps_ratio"] == 1.0 and exact["draw_ratio_q50"] == 1.0
    high = rec.compare_initiative(1.1 * true, true, 1.1 * true - cost, true - cost)
    assert high["ratio"] == pytest.approx(1.1) and high["draw_ratio_q05"] == pytest.approx(1.1)
    # 10% too high at every draw: the paired check sees it, the wide effect-size interval does not
    assert high["paired_pit"] == 1.0 and not high["paired_covered"] and high["covered"]
    # a fitted posterior that straddles the truth draw by draw (fitted/true = 0.9 or 1.1 alternately)
    wobble = true * np.where(np.arange(101) % 2 == 0, 1.1, 0.9)
    mixed = rec.compare_initiative(wobble, true, wobble - cost, true - cost)
    assert 0.4 < mixed["paired_pit"] < 0.6 and mixed["paired_covered"]
    assert mixed["fitted_net_low"] == pytest.approx(np.quantile(wobble - cost, 0.05))


def test_paired_pit_counts_ties_as_half_and_ignores_the_effect_scale():
    assert rec.paired_pit(np.array([0.0, 2.0, 1.0]), np.array([0.0, 1.0, 2.0])) == pytest.approx(0.5)
    effect = np.array([0.01, 0.2, 0.5, 0.9])
    assert rec.paired_pit(1.2 * effect, effect) == 1.0 == rec.paired_pit(1.2 * effect * 1000, effect * 1000)


def test_aggregate_reports_gate_failures_and_errors_apart():
    records = [
        _record(1, {"a": 1.0, "b": 0.9}, plan_ratio=1.0),
        _record(2, {"a": 1.1, "b": 1.0}, plan_ratio=0.97),
        _record(3, {"a": 1.05, "b": 1.2}, plan_ratio=0.90),
        _record(4, {"a": 0.3, "b": 0.3}, status="gate_failed"),
        {"seed": 5, "status": "error", "error": "ValueError: boom", "timings": {"total": 1.0}},
    ]
    s = rec.aggregate(records)
    assert s["used"] == 3 and s["seeds_used"] == [1, 2, 3]
    assert s["gate_failed"] == [{"seed": 4, "fits": ["driver"], "pooled_ratio": pytest.approx(0.3)}]
    assert s["errors"] == [{"seed": 5, "error": "ValueError: boom"}]
    assert s["initiatives"]["a"]["ratio"]["median"] == 1.05
    assert s["initiatives"]["b"]["ratio"]["median"] == 1.0
    assert s["pooled_ratio"]["median"] == pytest.approx(1.05)  # (0.95, 1.05, 1.125)
    assert s["plan"]["share_at_least"] == pytest.approx(2 / 3) and s["plan"]["ratio_min"] == 0.90
    assert s["coverage"] == 1.0 and s["paired_coverage"] == 1.0
    assert s["timings"]["total"]["n"] == 5
    failures = rec.check_recovery(s)
    assert any("seed 4" in f and "gate" in f for f in failures) and any("seed 5" in f for f in failures)
    assert rec.aggregate(records, include_gate_failed=True)["used"] == 4
    markdown = rec.markdown_report(s, records, {"customers": 100, "fit_settings": {}})
    assert "| **pooled** | 1.050 [0.950, 1.125]" in markdown and "seed 4: gate failed" in markdown
    assert len(rec.long_rows(records)) == 2 * 4


def test_check_recovery_accepts_recovery_and_rejects_a_broken_model():
    """The CI assertion passes replications like those measured (ratios around 1, sd 0.08 per replication)
    and fails those of a model with half the true emotion -> recommend slope (ratios about 0.63, measured
    end to end below; plans worth 0.78 of the best)."""
    good = rec.aggregate(_synthetic(1.0, 0.08))
    assert ci_failures(good) == [] and rec.check_recovery(good, coverage_band=None) == []
    broken = rec.aggregate([{**r, "plan": {"plan_value_ratio": 0.78}} for r in _synthetic(0.63, 0.08, seed=1)])
    assert any("pooled ratio" in f for f in ci_failures(broken))
    # the benchmark's plan check ("most replications") rejects it too
    assert any("plan" in f for f in rec.check_recovery(broken, coverage_band=None, per_initiative=False))
    # a 15% bias is caught as well, the band's edge at 10% is not
    assert ci_failures(rec.aggregate(_synthetic(0.85, 0.02))) and not ci_failures(rec.aggregate(_synthetic(0.93, 0.02)))


def test_settings_uplifts_and_costs():
    defaults = rec.fit_setting_defaults()
    assert {"driver_draws", "driver_wave", "survival_draws"} <= set(defaults)
    sets = rec.parse_sets(["driver_draws=300", "driver_wave=1"], defaults)
    assert sets == {"driver_draws": 300, "driver_wave": "1"}
    with pytest.raises(ValueError, match="not a fit setting"):
        rec.parse_sets(["no_such_key=1"], defaults)
    params = rec.study_params()
    assert params["budget"] > 0 and len(params["catalogue"]) >= 2 and set(params["fit"]) <= set(defaults)
    items = [
        {"name": "u", "touchpoints": ["mobile_app"], "effect": {"uplift": {"triangular": {"low": 0.1, "high": 0.6}}}},
        {"name": "r", "touchpoints": ["mobile_app"], "effect": {"uplift": [0.0, 0.3]}},
        {"name": "b", "touchpoints": ["statements"], "effect": {"remove_bad": [0.2, 0.5]}},
    ]
    scaled = rec.rescale_uplifts(items, {"mobile_app": 10.0, "statements": 4.0})
    assert scaled[0]["effect"]["uplift"] == {"triangular": {"low": 0.25, "high": 1.5}}
    assert scaled[1]["effect"]["uplift"] == [0.0, 0.75] and scaled[2] == items[2]
    costs, budget = rec.scale_costs([{"name": "x", "cost": {"one_off": 100, "recurring_monthly": 10}}], 1000, 0.4)
    assert costs[0]["cost"] == {"one_off": 40.0, "recurring_monthly": 4.0} and budget == 400.0
    assert rec.scales_option("default") == {} and rec.scales_option("mixed")["mobile_app"] == (0, 10)


def test_truth_recovers_itself_and_a_halved_gamma_fails_end_to_end():
    """Through simulate -> engines -> plan with the models supplied: the truth as the 'fitted' model gives
    ratio 1 exactly and the true plan; the truth with gamma halved is rejected by the CI check."""
    from cxresearch.initiatives.study import Models
    from cxresearch.initiatives.truth import TrueDriverModel, TrueValueModel

    def truth(data, folder, config):
        return Models(TrueDriverModel(folder / "truth.json"), TrueValueModel(folder / "truth.json"), "truth")

    def halved_gamma(data, folder, config):
        t = json.loads((folder / "truth.json").read_text())
        t["drivers"]["recommend"]["gamma"] /= 2
        return Models(TrueDriverModel(t), TrueValueModel(folder / "truth.json"), "gamma / 2")

    config = rec.RecoveryConfig(customers=2_000, engine_draws=40, population_samples=2_000)
    exact = rec.replicate(11, config, models_factory=truth)
    assert exact["status"] == "ok", exact.get("traceback")
    assert exact["pooled_ratio"] == pytest.approx(1.0) and exact["plan"]["plan_value_ratio"] == 1.0
    assert all(x["same_effect_draws"] and x["paired_pit"] == 0.5 for x in exact["initiatives"].values())
    broken = rec.replicate(11, config, models_factory=halved_gamma)
    assert broken["status"] == "ok", broken.get("traceback")
    assert broken["pooled_ratio"] < 0.75
    assert all(x["paired_pit"] < 0.05 for x in broken["initiatives"].values())
    assert any("pooled ratio" in f for f in ci_failures(rec.aggregate([broken] * 4)))
    assert ci_failures(rec.aggregate([exact] * 4)) == []


# ------------------------------------------------------------------------------------------- slow test
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_fitted_initiative_values_recover_the_truth_over_replications():
    """2 simulated data sets (8,000 customers, default scales, the demo's planted action plan), the
    package's default fit settings with reduced samplers (driver and survival 2 x 300 draws after 300 warm-up;
    engine 100 draws), one after the other in the test's process (the second reuses the first's compiled models;
    worker processes would each import and compile again, and pytest's other worker keeps the second core busy).

    Asserted: no replication raised; every fit converged (no divergences, R-hat <= 1.05; the strict gate's
    R-hat <= 1.01 and ESS >= 400 need the benchmark's draws, and fail here); the median (of 2: the mean) over
    replications of the pooled ratio fitted / true benefit lies in 0.9-1.1 (the plans are reported, not
    checked, at this size: :data:`CI_PLAN_SHARE`).

    Tolerance: at this size the pooled ratio's per-replication sd is about 0.08 (6 seeds measured: 1.033,
    1.016, 0.964, 0.971, 0.811, 1.022; the low one has all six initiatives at 0.80-0.86, i.e. the shared value
    link, the detractor hazard ratio estimated from about 4,000 wave-1 answers). The mean of 2 then has an sd
    of about 0.057, as the median of 3 had (0.054: the median of 3 keeps about 74% of the mean's efficiency),
    so an unbiased model sits about 1.8 sd inside the band; the seeds are fixed, so the test is deterministic
    for given libraries (seeds 301 and 302 gave 0.957 and 0.970). A 15% bias fails with probability about
    0.8 and a 20% one almost surely; a 5% one rarely: the per-initiative 0.9-1.1 claim needs the benchmark
    (R >= 20, 20,000 customers). A broken model (gamma halved) gives about 0.63 and plans worth about 0.78 of
    the best, and fails (fast tests above).
    """
    config = rec.RecoveryConfig(customers=CI_CUSTOMERS, fit_settings=dict(CI_FIT), engine_draws=CI_ENGINE_DRAWS)
    started = time.perf_counter()
    records = rec.run_replications(CI_SEEDS, config, workers=1)
    wall = time.perf_counter() - started
    summary = rec.aggregate(records, include_gate_failed=True)
    lines = [rec._progress_line(r) for r in records] + [f"wall {wall:.0f} s"]
    report = "\n".join(lines)
    print(report)
    assert not summary["errors"], report
    assert convergence_failures(records) == [], report
    assert ci_failures(summary) == [], report
    assert all(r["initiatives"][n]["same_effect_draws"] for r in records for n in r["initiatives"]), report


def test_merge_joins_runs_of_one_config_and_refuses_others(tmp_path, capsys):
    """Runs done in batches (seeds 101-112, then 113-120) are summarised as one; another config or a seed in two
    files is refused with the file and the keys that differ."""
    config = rec.RecoveryConfig(customers=1_000)
    first, second, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    rec.write_outputs([first], None, config, [_record(1, {"a": 0.8}), _record(2, {"a": 0.9})])
    rec.write_outputs([second], None, config, [_record(3, {"a": 1.0}), _record(4, {"a": 1.3})])
    rec.write_outputs([other], None, rec.RecoveryConfig(customers=2_000), [_record(5, {"a": 1.0})])
    merged = tmp_path / "merged.json"
    assert rec.main(["--merge", str(second), "--merge", str(first), "--out", str(merged)]) == 0
    payload = json.loads(merged.read_text())
    assert [r["seed"] for r in payload["records"]] == [1, 2, 3, 4]
    assert payload["summary"]["initiatives"]["a"]["ratio"]["median"] == pytest.approx(0.95)
    assert "| **pooled** |" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"c\.json was run with other settings than .*a\.json: \['customers'\]"):
        rec.merge_results([first, other])
    with pytest.raises(ValueError, match=r"seeds \[1, 2\] are in more than one results file"):
        rec.merge_results([first, first])


def test_coverage_target_reads_the_paired_check():
    """Calibration is checked where it can fail both ways: the true benefit at the same effect draw inside the
    fitted 90% interval in 80-97% of cases. Coverage of the true mean net value (above 90% for a calibrated
    model, since both sides share the effect-size draws) is only held to the lower edge."""

    def records(pits, covered=True):
        out = []
        for k, pit in enumerate(pits):
            r = _record(k, {"a": 1.0})
            r["initiatives"]["a"].update(paired_pit=pit, paired_covered=0.05 <= pit <= 0.95, covered=covered)
            out.append(r)
        return out

    calibrated = rec.aggregate(records(np.linspace(0.02, 0.98, 20)))  # 18 of 20 inside: 90%
    assert calibrated["paired_coverage"] == pytest.approx(0.9) and calibrated["coverage"] == 1.0
    assert rec.check_recovery(calibrated) == []
    too_wide = rec.check_recovery(rec.aggregate(records([0.5] * 20)))
    assert any(f.startswith("paired coverage") and "1.0 outside" in f for f in too_wide)
    too_narrow = rec.check_recovery(rec.aggregate(records([0.01, 0.99] * 10, covered=False)))
    assert any(f.startswith("paired coverage") for f in too_narrow)
    assert any(f.startswith("coverage of the true mean net value 0.0 below") for f in too_narrow)
