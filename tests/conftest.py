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


#: The heaviest test files, heaviest first (seconds of one worker in a CI-like run, `make test --durations`):
#: they start first, so the two workers' last files are short ones and both finish together (longest job
#: first). Without it, pytest-xdist's default orders files by their number of tests, which put these (few tests,
#: minutes each) last: one worker ran the 4-minute recovery test while the other had nothing left to do.
HEAVY_FIRST = (
    "test_initiatives_recovery.py",  # 234
    "test_drivers_mixed_scales.py",  # 160
    "test_drivers_evaluate.py",  # 150
    "test_drivers_skytrax.py",  # 135
    "test_initiatives_notebook.py",  # 130
    "test_drivers_outcomes.py",  # 115
    "test_drivers_recovery.py",  # 105
    "test_economics_real.py",  # 100
    "test_initiatives_fitted.py",  # 90
    "test_init.py",  # 80
    "test_drivers_ecsi.py",  # 75
    "test_drivers_jax.py",  # 60
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the heaviest files first (see :data:`HEAVY_FIRST`), then files with slow tests, then the rest; the
    order of tests within a file is kept. `make test` turns off xdist's own reordering to keep this order."""
    rank = {name: k for k, name in enumerate(HEAVY_FIRST)}
    slow_files = {item.path.name for item in items if item.get_closest_marker("slow")}

    def file_rank(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        if name in rank:
            return (0, rank[name])
        return (1, 0) if name in slow_files else (2, 0)

    items.sort(key=file_rank)  # stable: collection order within each rank
