"""Shared fixtures: the real public data in ../shared/data (skipped cleanly when absent); the longest test files
run first."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: seconds per test file in one full run (``--durations=0``, both workers' time summed; files under 5 s left out)
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first. ``make test`` hands whole files to two workers in collection order
    (``--dist loadfile --no-loadscope-reorder``); started last, one long file keeps one worker busy while the
    other idles (xdist's own order, by number of tests, put the two longest files near the end). Order within a
    file is kept; files not in durations.json follow in their usual order."""
    seconds = json.loads(DURATIONS.read_text(encoding="utf-8")) if DURATIONS.is_file() else {}
    rank = {path: -s for path, s in seconds.items()}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), 0))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (CI has it; a user's clone may not)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (selenium) with every network host unresolvable: reports must work offline.
    Skipped when chromium / chromedriver are not installed; tests set their own window size."""
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium / chromedriver not installed at /usr/bin")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cx-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ):  # offline: any CDN fetch would fail
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except Exception as exc:  # noqa: BLE001 - a broken browser install is an environment problem
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"chromium could not start: {exc}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
