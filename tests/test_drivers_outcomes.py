"""Driver studies on outcomes other than 0-10 recommend, and groups too small for estimates.

A churn survey with a known truth: only the call centre moves churn (higher = worse), five touchpoints on
1-5, a third grouping (travel type) and a covariate (tenure, which lowers churn) declared in the dataset
spec, and one market with a single answer. The drivers notebook runs on it through the real runner (papermill,
HTML), and the rendered report must speak of churn, never of NPS, recommendation or detractors; the churn
ranking must put the call centre first; the one-answer market must say "too few answers" and show no driver
numbers. Fits are reproducible whatever the number of threads.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import study_fixtures as F
from cxresearch.studies.commands import run_command

REPO = Path(__file__).resolve().parents[1]
TOUCHPOINTS = ["app", "web", "call_centre", "branch", "billing"]
CHURN_MODEL = (
    "{touchpoints: all, constructs: {churned: {items: [outcome], likelihood: bernoulli, label: churned}}, "
    "paths: [touchpoints -> churned], group_by: [segment, market, travel], controls: [tenure], "
    "higher_is_better: false}"
)


def churn_survey(folder: Path, n: int = 2400, seed: int = 4) -> Path:
    """Survey rows where only the call centre moves churn: logit P(churn) = -1 - 1.2 x (rating - 3); a
    market 'IS' with one answer. Returns the dataset spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "segment": rng.choice(["mass", "affluent", "private"], n, p=[0.6, 0.3, 0.1]),
            "market": rng.choice(["ES", "PT", "MX"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    for tp in TOUCHPOINTS:
        rating = rng.integers(1, 6, n).astype(float)
        rating[rng.random(n) < 0.15] = 0  # 0 = not applicable
        frame[f"tp_{tp}"] = rating
    frame["travel_type"] = rng.choice(["Business", "Leisure"], n)  # a third grouping (survey.groups)
    frame["tenure_months"] = rng.uniform(1, 120, n).round(1)  # a covariate (survey.covariates)
    call = frame["tp_call_centre"].replace(0, 3.0)
    logit = -1.0 - 1.2 * (call - 3) - 0.8 * (frame["tenure_months"] - 60) / 35  # loyal customers churn less
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.loc[n - 1, "market"] = "IS"  # one answer
    frame.to_parquet(folder / "survey.parquet", index=False)
    touchpoints = "\n".join(
        f"    {tp}: {{column: tp_{tp}, label: {tp.replace('_', ' ').title()}, scale: [1, 5], not_applicable: [0]}}"
        for tp in TOUCHPOINTS
    )
    spec = folder / "dataset.yaml"
    spec.write_text(
        "version: 1\nname: churn-test\nas_of: 2026-10-31\ntables:\n  survey: {path: survey.parquet}\n"
        "survey:\n  table: survey\n  id: customer_id\n  segment: segment\n  market: market\n"
        "  groups: {travel: travel_type}\n  covariates: {tenure: tenure_months}\n"
        f"  touchpoints:\n{touchpoints}\n"
        '  outcome: {kind: binary, column: churned, labels: {"1": 1, "0": 0}}\n',
        encoding="utf-8",
    )
    return spec


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("churn")
    spec = churn_survey(root / "data")
    settings = {
        "draws": 500,
        "tune": 500,
        "max_draws": 400,
        "validation_draws": 500,  # the held-out fit at the run's draws (its default, 1,000, doubles its cost)
        "reference_check": "false",
        "fit_cache": "../_fits",
        "model": CHURN_MODEL,
    }
    params = F.write_params(
        root / "params" / "drivers.yaml",
        F.params_text(
            "drivers",
            str(REPO / "notebooks" / "drivers.ipynb"),
            spec,
            "[{segment: all, market: ES}, {segment: all, market: IS}]",  # a large market and the one-answer one
            settings,
            execution_timeout=900,
            title="What drives churn",
        ),
    )
    out = root / "out"
    result = CliRunner().invoke(run_command, [str(params), "--out", str(out), "--no-progress"], catch_exceptions=False)
    return {"out": out / "drivers", "result": result}


def _results(run: dict, market: str) -> dict:
    return json.loads((run["out"] / f"all--{market}" / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_churn_report_speaks_of_churn_and_ranks_the_true_driver_first(churn_run):
    assert churn_run["result"].exit_code == 0, churn_run["result"].output
    results = _results(churn_run, "ES")
    assert results["outcome"]["kind"] == "binary" and results["outcome"]["higher_is_better"] is False
    assert results["diagnostics"]["passed"], results["diagnostics"]["reasons"]
    assert results["top3"][0] == "call_centre"
    # the covariate is a control (standardised): longer tenure, less churn; travel is a third grouping
    assert results["paths"]["tenure__churned"]["interval"][1] < 0
    call = results["touchpoints"]["call_centre"]
    # a better call centre lowers P(churned), in percentage points, clearly
    assert call["impact_pp"]["interval"][1] < 0 and call["p_good_direction"] > 0.99
    for tp in ("app", "web", "branch", "billing"):  # no effect in the truth: intervals cover 0
        low, high = results["touchpoints"][tp]["impact_pp"]["interval"]
        assert low < 0.5 and high > -0.5, tp
    page = (churn_run["out"] / "all--ES" / "report.html").read_text()
    assert "P(churned)" in page and "percentage points" in page
    text = re.sub(r"data:[^\"')\s]+", "", page)  # embedded images are base64, not words
    words = r"\bNPS\b|\brecommend\w*|\bdetractor\w*|\bpromoter\w*"
    found = sorted({m.lower() for m in re.findall(words, text, flags=re.I)})
    assert not found, f"NPS wording in a churn report: {found}"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_market_with_one_answer_says_too_few_answers_and_shows_no_numbers(churn_run):
    results = _results(churn_run, "IS")
    assert "too_few_answers" in results and "n=1" in results["too_few_answers"]
    assert "touchpoints" not in results and "top3" not in results
    page = (churn_run["out"] / "all--IS" / "report.html").read_text()
    assert "Too few answers for driver estimates" in page
    assert "Fix first" not in page and "P(top 3)" not in page


def _draws_digest(fit) -> str:
    post = fit.idata.posterior
    digest = hashlib.sha256()
    for name in sorted(post.data_vars):
        digest.update(np.ascontiguousarray(post[name].values).tobytes())
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_same_seed_gives_identical_draws_at_one_and_two_threads(tmp_path):
    """The runner gives each run its share of the cores (BLAS threads, sampler cores); the draws must not
    depend on it. At demo size a multi-threaded BLAS sums the composite scores' matrix-vector products in
    another order, and NUTS amplifies the last bits: measured, without ``runtime.one_blas_thread`` the two
    digests below differ; with it they are equal."""
    from threadpoolctl import threadpool_limits

    from cxresearch.data import load_dataset
    from cxresearch.data.simulator import simulate_dataset
    from cxresearch.drivers.fit import fit_driver_model

    simulate_dataset(tmp_path / "data", 20_000, 9, population_samples=1000)
    data = load_dataset(tmp_path / "data" / "dataset.yaml")
    digests = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_driver_model(data, None, draws=100, tune=100, chains=2, cores=threads, seed=5, escalate=False)
        digests.append(_draws_digest(fit))
    assert digests[0] == digests[1]
