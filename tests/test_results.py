"""record_headline(): ordered headline KPIs in results.json, written atomically like record_result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxresearch import results as R


@pytest.fixture(autouse=True)
def fresh_results(monkeypatch, tmp_path):
    monkeypatch.setattr(R, "_RESULTS", {})
    target = tmp_path / "results.json"
    monkeypatch.setenv(R.RESULTS_ENV, str(target))
    return target


def test_headline_entries_keep_recording_order_and_land_in_results_json(fresh_results):
    assert R.record_headline("NPS", np.float64(20.5), "points", [np.float64(18.9), 22.1]) == 20.5
    R.record_result("nps.mean", 20.5)
    R.record_headline("P(NPS meets +20)", 73.0, "%")
    R.record_headline("Answers", np.int64(1471))
    on_disk = json.loads(fresh_results.read_text(encoding="utf-8"))
    assert on_disk["headline"] == [
        {"label": "NPS", "value": 20.5, "unit": "points", "interval": [18.9, 22.1]},
        {"label": "P(NPS meets +20)", "value": 73.0, "unit": "%", "interval": None},
        {"label": "Answers", "value": 1471, "unit": "", "interval": None},
    ]
    assert on_disk["nps"] == {"mean": 20.5}
    assert R.recorded_results() == on_disk


def test_recording_a_label_again_replaces_it_in_place(fresh_results):
    R.record_headline("NPS", 10.0, "points")
    R.record_headline("Answers", 100)
    R.record_headline("NPS", 12.0, "points", (11.0, 13.0))
    entries = json.loads(fresh_results.read_text(encoding="utf-8"))["headline"]
    assert [(e["label"], e["value"], e["interval"]) for e in entries] == [
        ("NPS", 12.0, [11.0, 13.0]),
        ("Answers", 100, None),
    ]


def test_nan_becomes_null_and_bad_input_names_the_label():
    R.record_headline("Hazard ratio", float("nan"), interval=[1.0, float("inf")])
    assert R.recorded_results()["headline"][0] == {
        "label": "Hazard ratio",
        "value": None,
        "unit": "",
        "interval": [1.0, None],
    }
    with pytest.raises(ValueError, match="label"):
        R.record_headline("  ", 1.0)
    with pytest.raises(ValueError, match="'CLV'.*interval"):
        R.record_headline("CLV", 1.0, interval=[1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"headline\[CLV\]"):
        R.record_headline("CLV", object())
