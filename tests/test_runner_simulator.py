"""The study runner on SIMULATOR data: a 2 x 2 matrix (segments mass, affluent x markets ES, NO) of the
real measurement notebook, run with 2 parallel workers. Each run's NPS must equal the NPS computed
directly from that cell's survey rows, its manifest must carry the data hashes, and the index must list
the 4 runs."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cxresearch.data import load_dataset
from cxresearch.data.nps import nps_class
from cxresearch.data.simulator import simulate_dataset
from cxresearch.measurement.posterior import wave_order
from cxresearch.studies.runner import run_studies
from cxresearch.yamlio import dump_yaml, load_yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
SEGMENTS, MARKETS = ["mass", "affluent"], ["ES", "NO"]
DRAWS = 2000


def measurement_params(tmp: Path, dataset: Path, matrix: list[dict], **settings: object) -> Path:
    """params/measurement.yaml copied to ``tmp``, pointing at ``dataset`` with its own matrix."""
    params = load_yaml(REPO / "params" / "measurement.yaml")
    params["notebook"] = str(REPO / "notebooks" / "measurement.ipynb")
    params["dataset"] = str(dataset)
    params.pop("out", None)
    params["matrix"] = matrix
    params["settings"] = {**params.get("settings", {}), **settings}
    path = tmp / "measurement.yaml"
    path.write_text(dump_yaml(params), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner-sim")
    simulate_dataset(root / "data", customers=3000, seed=11, population_samples=20000)
    params = measurement_params(
        root, root / "data" / "dataset.yaml", [{"segment": SEGMENTS, "market": MARKETS}], draws=DRAWS
    )
    out = root / "out"
    summary = run_studies([params], out=out, workers=2, progress=False, echo=lambda line: None)
    return root, out, summary


def _nps_posterior_mean_and_sd(recommend: np.ndarray) -> tuple[float, float, float]:
    """Raw NPS, and the closed-form mean and sd of the NPS under the Dirichlet(counts + 1) posterior."""
    classes = nps_class(recommend)
    counts = np.array([np.sum(classes == c) for c in ("detractor", "passive", "promoter")], dtype=float)
    n = counts.sum()
    raw = 100.0 * (counts[2] - counts[0]) / n
    alpha = counts + 1.0
    total = alpha.sum()
    mean = 100.0 * (alpha[2] - alpha[0]) / total
    var_diff = (alpha[2] * (total - alpha[2]) + alpha[0] * (total - alpha[0]) + 2 * alpha[2] * alpha[0]) / (
        total**2 * (total + 1)
    )
    return raw, mean, 100.0 * math.sqrt(var_diff)


def test_four_runs_succeed_and_match_the_raw_nps(matrix_run):
    root, out, summary = matrix_run
    assert summary.exit_code == 0, [o["error"] for o in summary.failed]
    done = {(o["segment"], o["market"]): o for o in summary.outcomes}
    assert set(done) == {(s, m) for s in SEGMENTS for m in MARKETS}
    assert all(o["status"] == "succeeded" for o in done.values())
    for (segment, market), outcome in done.items():
        run_dir = out / outcome["folder"]
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        survey = load_dataset(root / "data" / "dataset.yaml", segment=segment, market=market).survey
        wave = results["nps"]["wave"]
        assert wave == wave_order(survey["wave"].unique())[-1]  # headline_wave: latest
        rows = survey[survey["wave"] == wave]
        recommend = rows["recommend"].dropna().to_numpy(dtype=int)
        assert results["n"] == len(recommend) > 30
        raw, closed_form_mean, posterior_sd = _nps_posterior_mean_and_sd(recommend)
        # The notebook reports the mean of DRAWS Monte-Carlo draws from the flat-Dirichlet posterior.
        # Its expectation is 100 (c_P - c_D) / (n + 3) (closed form), which differs from the raw NPS
        # 100 (c_P - c_D) / n by -3 NPS / n = O(1/n) (at most 300/n points). Monte-Carlo error of the mean:
        # posterior sd / sqrt(DRAWS); 5 of those bound a false failure at ~6e-7.
        mc_tolerance = 5 * posterior_sd / math.sqrt(DRAWS)
        assert results["nps"]["mean"] == pytest.approx(closed_form_mean, abs=mc_tolerance), (segment, market)
        assert abs(results["nps"]["mean"] - raw) <= abs(raw - closed_form_mean) + mc_tolerance, (segment, market)
        low, high = results["nps"]["interval"]
        assert low < raw < high
        # a run for one segment / market says its NPS is that group's own ("NPS (this segment and market alone)")
        assert [h["label"] for h in results["headline"]][0].startswith("NPS")
        # one set of draws: the headline quotes exactly the KPI table's row of the headline wave
        tracked = results["kpi"]["by_wave"][wave]
        assert (results["nps"]["mean"], results["nps"]["interval"]) == (tracked["mean"], tracked["interval"])
        assert results["nps"]["p_meets_target"] == tracked["p_meets_target"]


def test_manifests_carry_the_data_hashes(matrix_run):
    root, out, summary = matrix_run
    survey_file = root / "data" / "survey.parquet"
    expected = hashlib.sha256(survey_file.read_bytes()).hexdigest()
    for outcome in summary.outcomes:
        manifest = json.loads((out / outcome["folder"] / "manifest.json").read_text(encoding="utf-8"))
        tables = manifest["data"]["tables"]
        assert {"survey", "customers", "benchmark"} <= set(tables)
        assert tables["survey"]["files"] == {"survey.parquet": expected}
        assert all(len(t["sha256"]) == 64 for t in tables.values())
        assert len(manifest["data"]["spec"]["sha256"]) == 64


def test_index_lists_the_four_runs(matrix_run):
    _, out, summary = matrix_run
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count('<tr class="run') == 4
    for segment in SEGMENTS:
        for market in MARKETS:
            assert f'data-segment="{segment}" data-market="{market}" data-status="succeeded"' in page
    # each run is one segment in one market: its NPS is that group's own, and the index label says so
    assert page.count('<span class="kpi-label">NPS (this segment and market alone)</span>') == 4
