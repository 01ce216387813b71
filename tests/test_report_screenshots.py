"""The measurement report as a business reader first sees it: `cxresearch run` of params/measurement.yaml
(one pooled run on a small simulated dataset) opened in headless Chromium at 1300 x 1000. The headline
(NPS and its interval) must be visible on the first screen and the page must hold no Python traceback.
The screenshot is kept as test-artifacts/measurement_report.png for review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxresearch.data.simulator import simulate_dataset
from cxresearch.measurement.study import signed, span
from cxresearch.studies.runner import run_studies
from cxresearch.yamlio import dump_yaml, load_yaml

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]  # ~13-23 s: not slow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
WINDOW = (1300, 1000)


@pytest.fixture(scope="module")
def measurement_report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-shot")
    simulate_dataset(root / "data", customers=3000, seed=5, population_samples=20000)
    params = load_yaml(REPO / "params" / "measurement.yaml")
    params["notebook"] = str(REPO / "notebooks" / "measurement.ipynb")
    params["dataset"] = str(root / "data" / "dataset.yaml")
    params.pop("out", None)
    params["matrix"] = [{"segment": "all", "market": "all"}]  # one pooled run
    path = root / "measurement.yaml"
    path.write_text(dump_yaml(params), encoding="utf-8")
    summary = run_studies([path], out=root / "out", workers=1, progress=False, echo=lambda line: None)
    assert summary.exit_code == 0, [o["error"] for o in summary.failed]
    (outcome,) = summary.outcomes
    return Path(outcome["report"])


def test_headline_is_on_the_first_screen(browser, measurement_report):
    from selenium.webdriver.common.by import By

    results = json.loads((measurement_report.parent / "results.json").read_text(encoding="utf-8"))
    low, high = results["nps"]["interval"]
    headline = f"NPS {signed(results['nps']['mean'])}"
    interval_text = span(low, high)

    browser.set_window_size(*WINDOW)
    browser.get(measurement_report.as_uri())
    browser.execute_script("window.scrollTo(0, 0)")
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "measurement_report.png"))

    page_text = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in page_text
    assert "Traceback" not in browser.page_source
    # the innermost element whose text holds both the headline NPS and its interval
    matches = [
        e
        for e in browser.find_elements(By.XPATH, f"//*[contains(., '{headline}')]")
        if headline in e.text and interval_text in e.text
    ]
    assert matches, f"no element shows {headline!r} with {interval_text!r}"
    element = matches[-1]
    assert element.is_displayed()
    top = element.location["y"]
    assert top < WINDOW[1], f"headline at y={top}px, below the first {WINDOW[1]}px screen"
    visible = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight;", element
    )
    assert visible
