"""Headless Chromium (Debian's chromium + chromium-driver) through Selenium,
against the dashboard served by the standard library's server in a thread.

Where Chromium is missing the tests are skipped, except under
HOTMESH_REQUIRE_BROWSER=1 (set by .ci/run, which installs it): there a
missing browser fails the run instead of passing it unseen.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotmesh_sync import MemFlow
from hotmesh_sync.ui import Dashboard, make_server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("HOTMESH_SCREENSHOTS", ROOT / "build" / "screenshots"))


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if Path(name).exists() else None)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chrome() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = _binary("/usr/bin/chromium", "chromium", "chromium-browser")
    driver_path = _binary("/usr/bin/chromedriver", "chromedriver")
    if browser is None or driver_path is None:
        message = "Debian's chromium and chromium-driver are not installed"
        if os.environ.get("HOTMESH_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1360,1000", "--disable-gpu", "--lang=en-US"):
        options.add_argument(argument)
    # An explicit driver path: Selenium must not try to download one.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def served(memflow: MemFlow) -> Iterator[str]:
    """The dashboard of the test's app on a free loopback port; its base URL."""
    server = make_server(Dashboard(memflow), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def shoot(chrome: Any) -> Any:
    """Save a screenshot of the page as it is now, under a name."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        chrome.save_screenshot(str(path))
        return path

    return save
