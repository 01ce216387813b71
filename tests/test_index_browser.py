"""The report index in a real browser: headless Chromium loads index.html over file:// with every
network host unresolvable (offline), follows each row's link, checks the report's header shows that
row's segment and market, and saves a screenshot to test-artifacts/index.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cxresearch.studies.commands import run_command

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


import study_fixtures as F  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    spec, _ = F.make_dataset(root / "data", ["mass", "Zürich <b>Øst</b> & co", "../../etc"], ["NO"], n_per_cell=10)
    nps = F.write_params(
        root / "nps.yaml",
        F.params_text("nps", "nps.ipynb", spec, "{segment: each, market: all}", title="NPS by segment"),
    )
    raises = F.write_params(
        root / "raises.yaml", F.params_text("raises", "raises.ipynb", spec, "{segment: all, market: each}")
    )
    flagged = F.write_params(
        root / "flagged.yaml",
        F.params_text("flagged", "nps.ipynb", spec, "{segment: [mass]}", settings={"diagnostics_pass": "false"}),
    )
    out = root / "out"
    result = CliRunner().invoke(
        run_command, [str(nps), str(raises), str(flagged), "--out", str(out), "--workers", "2", "--no-progress"]
    )
    assert result.exit_code == 1, result.output  # the raising study fails, on purpose
    return out


def test_every_index_row_links_to_a_report_that_loads(browser, reports):
    from selenium.webdriver.common.by import By

    index_url = (reports / "index.html").as_uri()
    browser.get(index_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr.run")
    expected = [
        (
            r.get_attribute("data-study"),
            r.get_attribute("data-segment"),
            r.get_attribute("data-market"),
            r.get_attribute("data-status"),
            r.find_element(By.CSS_SELECTOR, "a.report-link").get_attribute("href"),
        )
        for r in rows
    ]
    assert len(expected) == 5
    flags = {r.get_attribute("data-study"): r.find_elements(By.CSS_SELECTOR, ".flag") for r in rows}
    assert [f.text for f in flags["flagged"]] == ["model did not pass its diagnostics"]
    assert flags["nps"] == [] and flags["raises"] == []
    assert {e[1] for e in expected if e[0] == "nps"} == {"mass", "Zürich <b>Øst</b> & co", "../../etc"}
    assert [e[3] for e in expected if e[0] == "raises"] == ["failed"]
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "index.png"))
    assert (ARTIFACTS / "index.png").stat().st_size > 10_000

    external = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith('file:') && !n.startsWith('data:'))"
    )
    assert external == []
    for study, segment, market, status, href in expected:
        assert href.startswith(reports.as_uri() + "/")  # relative links resolve inside out
        browser.get(href)
        header = browser.find_element(By.ID, "cx-run-header")
        assert header.find_element(By.CSS_SELECTOR, '[data-field="study"]').text == study
        assert header.find_element(By.CSS_SELECTOR, '[data-field="segment"]').text == segment
        assert header.find_element(By.CSS_SELECTOR, '[data-field="market"]').text == market
        assert header.find_element(By.CSS_SELECTOR, '[data-field="status"]').text == status
        banners = browser.find_elements(By.ID, "cx-failure-banner")
        assert (len(banners) == 1 and banners[0].is_displayed()) == (status == "failed")
        diagnostics = browser.find_elements(By.ID, "cx-diagnostics-banner")
        assert (len(diagnostics) == 1 and diagnostics[0].is_displayed()) == (study == "flagged")
        assert (
            browser.execute_script(
                "return performance.getEntriesByType('resource').filter(e => /^https?:/.test(e.name)).length"
            )
            == 0
        )
        assert browser.find_elements(By.CSS_SELECTOR, "script[src]") == []
        if study in ("nps", "flagged"):
            images = browser.find_elements(By.CSS_SELECTOR, "img")
            assert all(img.get_attribute("src").startswith("data:image/png") for img in images)
