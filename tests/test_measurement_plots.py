"""Every measurement figure renders with the cxresearch theme, with readable labels and no overlapping text
(bounding boxes of all drawn texts are compared pairwise after rendering)."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from cxresearch.data.spec import Scale, Touchpoint  # noqa: E402
from cxresearch.measurement import (  # noqa: E402
    benchmark_position,
    brand_summary,
    journey_map,
    league_table,
    nps_posterior,
    nps_tracking,
    plots,  # noqa: E402
    touchpoint_scorecard,
    touchpoint_wave_change,
)
from cxresearch.reports import set_theme  # noqa: E402

TPS = {
    key: Touchpoint(column=f"tp_{key}", label=label, stage=stage, channel=channel, scale=Scale(min=1, max=5))
    for key, label, stage, channel in (
        ("onboarding", "Account opening", "onboarding", "branch"),
        ("branch_visit", "Branch visit", "service", "branch"),
        ("call_centre", "Call centre", "service", "phone"),
        ("mobile_app", "Mobile app", "usage", "digital"),
        ("statements", "Statements and fees", "billing", "billing"),
        ("complaint_handling", "Complaint handling", "recovery", "phone"),
    )
}


@pytest.fixture(scope="module")
def survey() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:05d}" for i in range(n)], dtype="string"),
            "segment": pd.array(rng.choice(["mass", "affluent", "private"], n, p=[0.6, 0.3, 0.1]), dtype="string"),
            "market": pd.array(rng.choice(["ES", "PT", "MX", "NO"], n), dtype="string"),
            "wave": pd.array(rng.choice(["1", "2"], n), dtype="string"),
            "recommend": pd.array(
                rng.choice(11, n, p=np.linspace(1, 3, 11) / np.linspace(1, 3, 11).sum()), dtype="Int64"
            ),
        }
    )
    frame["unit"] = (frame["market"] + "-" + pd.Series(rng.integers(1, 16, n)).map("{:03d}".format)).astype("string")
    for key in TPS:
        values = rng.integers(1, 6, n).astype(float)
        values[rng.random(n) < 0.3] = np.nan
        frame[key] = values
    return frame


def _visible_texts(fig: plt.Figure) -> list[Text]:
    fig.canvas.draw()
    tick_ids, keep = set(), []
    for ax in fig.axes:
        for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(limits)
            for tick in axis.get_major_ticks():
                for label in (tick.label1, tick.label2):
                    tick_ids.add(id(label))
                    if (
                        label.get_visible()
                        and label.get_text().strip()
                        and tick.get_visible()
                        and lo - 1e-9 <= tick.get_loc() <= hi + 1e-9
                    ):
                        keep.append(label)
    for text in fig.findobj(Text):
        if id(text) not in tick_ids and text.get_visible() and text.get_text().strip():
            keep.append(text)
    return keep


def assert_readable(fig: plt.Figure) -> None:
    """No two drawn texts overlap (more than 1 square pixel) and no text is smaller than 7.5 pt."""
    texts = _visible_texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    overlaps = []
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if width > 1 and height > 1 and width * height > 1:
            overlaps.append((a, b))
    assert not overlaps, overlaps[:5]
    small = [t.get_text() for t in texts if t.get_fontsize() < 7.5]
    assert not small, small[:5]
    plt.close(fig)


@pytest.fixture(autouse=True)
def _theme() -> None:
    set_theme()
    yield
    plt.close("all")


def test_nps_figures(survey: pd.DataFrame) -> None:
    for dim in ("segment", "market"):
        summary = nps_posterior(survey, by=dim, pooling=True, draws=1000, seed=1).table()
        assert_readable(plots.plot_nps_intervals(summary, title=f"NPS by {dim}", overall=10.0))
        assert_readable(plots.plot_nps_shares(summary, title=f"Shares by {dim}"))
    tracking = nps_tracking(survey, target_nps=15.0, draws=1000, seed=1)
    assert_readable(plots.plot_kpi_trend(tracking, target=15.0))


def test_touchpoint_figures(survey: pd.DataFrame) -> None:
    card = touchpoint_scorecard(survey, TPS, draws=1000, seed=1)
    assert_readable(plots.plot_scorecard(card))
    by_segment = touchpoint_scorecard(survey, TPS, by="segment", draws=500, seed=1)
    table = journey_map(by_segment, TPS, by="segment")
    assert table.shape == (len(TPS), 3)
    assert_readable(plots.plot_journey_map(table))
    changes = touchpoint_wave_change(survey, TPS, draws=1000, seed=1)
    assert_readable(plots.plot_touchpoint_changes(changes, metric="mean"))
    assert_readable(plots.plot_touchpoint_changes(changes, metric="top_box"))


def test_benchmark_figures() -> None:
    rng = np.random.default_rng(2)
    rows = []
    for brand, shift in (("OurBank", 0.0), ("NovaBank", 0.5), ("SolCredit", -0.8), ("FjordBank", 0.1)):
        for _ in range(300):
            rows.append(
                {
                    "brand": brand,
                    "is_own": brand == "OurBank",
                    "recommend": float(np.clip(round(rng.normal(7.5 + shift, 2)), 0, 10)),
                    "price": float(np.clip(round(rng.normal(6.5 - shift, 1.3)), 1, 10)),
                    "service": float(np.clip(round(rng.normal(7.0 + shift, 1.3)), 1, 10)),
                }
            )
    bench = pd.DataFrame(rows).astype({"brand": "string"})
    from cxresearch.data.spec import DatasetSpec

    spec = DatasetSpec.model_validate(
        {
            "name": "plots",
            "tables": {"survey": {"path": "s.csv"}, "benchmark": {"path": "b.csv"}},
            "survey": {
                "id": "id",
                "segment": "seg",
                "market": "mkt",
                "outcome": {"column": "nps"},
                "touchpoints": {"app": {"column": "tp_app", "scale": [1, 5]}},
            },
            "benchmark": {
                "brand": "brand",
                "own_brand": "OurBank",
                "recommend": "recommend",
                "attributes": {"price": "price", "service": "service"},
                "scale": [1, 10],
            },
        }
    )
    position = benchmark_position(bench, spec, draws=1000, seed=1)
    assert_readable(plots.plot_benchmark(position))
    assert_readable(plots.plot_brand_positions(brand_summary(bench, spec, draws=1000, seed=1)))


def test_league_figure(survey: pd.DataFrame) -> None:
    league = league_table(survey, draws=1000, seed=1, within="market")
    assert_readable(plots.plot_league(league, max_units=40))
    assert_readable(plots.plot_league(league, max_units=20))  # truncated: top and bottom, with a gap row


def test_overlap_check_catches_overlapping_text() -> None:
    fig, ax = plt.subplots()
    ax.text(0.5, 0.5, "first label")
    ax.text(0.5, 0.5, "second label")
    with pytest.raises(AssertionError):
        assert_readable(fig)


def test_single_wave_trend_prints_no_warning_into_the_report() -> None:
    """One wave gives one-element Series; passed to matplotlib as a list of Series they raised pandas'
    FutureWarning ("Calling float on a single element Series"), printed in a red box in every single-wave report."""
    import warnings

    from cxresearch.measurement.plots import plot_kpi_trend

    tracking = pd.DataFrame(
        {"wave": ["1"], "n": [187], "mean": [12.0], "low": [4.0], "high": [19.5], "p_meets_target": [0.03]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_kpi_trend(tracking, target=20.0)
    assert fig.axes[0].get_ylim()[1] > 20.0
