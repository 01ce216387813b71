"""The study index shows each run's record_headline entries (formatted, escaped) and falls back to the
first recorded numbers when a notebook recorded none."""

from __future__ import annotations

import json
from pathlib import Path

from cxresearch.studies.index import format_headline, headline_entries, index_html, write_index


def _run_folder(out: Path, study: str, segment: str, results: dict) -> None:
    run = out / study / f"{segment}--all"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(
        json.dumps({"study": study, "segment": segment, "market": "all", "status": "succeeded", "duration_s": 3.0}),
        encoding="utf-8",
    )
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")


HEADLINE_RESULTS = {
    "n": 1471,
    "nps": {"mean": 20.53, "level": 0.9, "target": 20.0},
    "headline": [
        {"label": "NPS", "value": 20.53, "unit": "points", "interval": [18.94, 22.06]},
        {"label": "P(NPS meets +20)", "value": 73.4, "unit": "%", "interval": None},
        {"label": "Answers", "value": 1471, "unit": "", "interval": None},
        {"label": "CLV <promoter> & co", "value": 1234.5, "unit": "", "interval": [1000.2, 1500.0]},
    ],
}


def test_format_headline_cases():
    assert format_headline(HEADLINE_RESULTS["headline"][0]) == "+20.5 points (+18.9 to +22.1)"
    assert format_headline({"label": "p", "value": 73.4, "unit": "%"}) == "73%"
    assert format_headline({"label": "n", "value": 1471}) == "1,471"
    assert format_headline({"label": "HR", "value": 2.314, "interval": [1.8, 2.9]}) == "2.31 (1.80 to 2.90)"
    assert format_headline({"label": "CLV", "value": 1234.5, "unit": "EUR"}) == "1,234 EUR"
    assert format_headline({"label": "x", "value": None}) == ""


def test_index_shows_headline_labels_and_values(tmp_path):
    out = tmp_path / "out"
    _run_folder(out, "measurement", "mass", HEADLINE_RESULTS)
    page = write_index(out).read_text(encoding="utf-8")
    assert '<span class="kpi-label">NPS</span> +20.5 points (+18.9 to +22.1)' in page
    assert '<span class="kpi-label">P(NPS meets +20)</span> 73%' in page
    assert '<span class="kpi-label">Answers</span> 1,471' in page
    assert page.index(">NPS<") < page.index(">P(NPS meets +20)<") < page.index(">Answers<")
    # the settings recorded first (nps.level, nps.target) are no longer shown as KPIs
    assert "<code>nps.level</code>" not in page and "<code>nps.target</code>" not in page


def test_labels_and_values_are_escaped():
    entries = headline_entries(HEADLINE_RESULTS)
    assert entries[3] == ("CLV <promoter> & co", "1,234 (1,000 to 1,500)")
    from cxresearch.studies.index import IndexRow

    row = IndexRow(study="s", segment="all", market="all", folder="s/all--all", status="succeeded", headline=entries)
    page = index_html([row])
    assert "CLV &lt;promoter&gt; &amp; co" in page
    assert "<promoter>" not in page


def test_without_headline_the_index_falls_back_to_the_first_numbers(tmp_path):
    out = tmp_path / "out"
    legacy = {"n": 420, "nps": {"mean": 31.25, "low": 27.0}, "diagnostics": {"passed": True, "rhat": 1.0}}
    _run_folder(out, "measurement", "mass", legacy)
    page = write_index(out).read_text(encoding="utf-8")
    assert "<li><code>n</code> 420</li>" in page
    assert "<li><code>nps.mean</code> 31.25</li>" in page
    assert "<li><code>nps.low</code> 27.00</li>" in page
    assert "kpi-label" not in page.split("</style>")[1]
    assert headline_entries(legacy) == [] and headline_entries({"headline": []}) == []
