"""Shared fixtures: the real public data in ../shared/data (skipped cleanly when absent)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


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
