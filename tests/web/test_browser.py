"""The landing page in a real browser: Debian's headless Chromium driven through Debian's chromedriver
(no browser or driver downloads; Selenium Manager stays offline). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from probe_exporter.exporter import Exporter
from probe_exporter.settings import Settings
from probe_exporter.web.app import create_app
from tests.support.paths import REPO, require_file
from tests.web.conftest import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "tests" / "artifacts"
PHONE = (390, 844)  # a common phone viewport, in CSS pixels


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_file(CHROMIUM)
    require_file(CHROMEDRIVER)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="probe-exporter-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture()
def exporter_url(config_file: Path, tmp_path: Path) -> Iterator[str]:
    # A hardened deployment's headers: the page must still be styled under a strict CSP.
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers:\n    Content-Security-Policy: \"default-src 'self'\"\n"
                   "    X-Frame-Options: deny\n")
    app = create_app(Exporter(Settings(config_files=[str(config_file)], web_config_file=str(web))))
    with running_server(app) as port:
        yield f"http://127.0.0.1:{port}/"


def _full_page_screenshot(driver: object, path: Path) -> None:
    """The whole page, not just the viewport (Chromium's DevTools protocol; nothing is downloaded)."""
    import base64

    path.parent.mkdir(parents=True, exist_ok=True)
    layout = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})  # type: ignore[attr-defined]
    size = layout["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {  # type: ignore[attr-defined]
        "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def _click_to_new_page(driver: object, element: object, loaded: Callable[[Any], object]) -> None:
    """Click what loads a new page, and wait until a new page is there and `loaded` holds: mark this
    page first, or what it still shows would be read as the new one. Mid-navigation, the driver may raise."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.leftByClick = true")  # type: ignore[attr-defined]
    element.click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20, ignored_exceptions=[WebDriverException]).until(
        lambda d: not d.execute_script("return window.leftByClick === true") and loaded(d))


def _body_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def _run_from_form(driver: object, module: str, target: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "module")).select_by_value(module)  # type: ignore[attr-defined]
    field = driver.find_element(By.ID, "target")  # type: ignore[attr-defined]
    field.clear()
    field.send_keys(target)
    _click_to_new_page(driver, driver.find_element(By.ID, "run"),  # type: ignore[attr-defined]
                       lambda d: d.find_elements(By.ID, "probe-status"))


def test_landing_page_runs_probes_and_links_their_logs(browser: object, exporter_url: str,
                                                       plain_http_target: str) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.set_window_size(1280, 900)  # type: ignore[attr-defined]
    driver.get(exporter_url)  # type: ignore[attr-defined]
    assert driver.title == "Probe Exporter"  # type: ignore[attr-defined]
    modules = driver.find_element(By.ID, "modules").text  # type: ignore[attr-defined]
    assert "http_secret" in modules and "tcp_like" in modules and "modules.yml" in modules

    _run_from_form(driver, "http_2xx", plain_http_target)
    assert driver.find_element(By.ID, "probe-status").text == "Success"  # type: ignore[attr-defined]
    debug = driver.find_element(By.ID, "probe-debug").text  # type: ignore[attr-defined]
    assert "Logs for the probe:" in debug and "probe_success 1" in debug

    _run_from_form(driver, "http_secret", plain_http_target + "/status/503")
    assert driver.find_element(By.ID, "probe-status").text == "Failure"  # type: ignore[attr-defined]
    history = driver.find_element(By.ID, "history").text  # type: ignore[attr-defined]
    assert "Failure" in history and "Success" in history and "/status/503" in history
    assert "hunter2" not in driver.page_source  # type: ignore[attr-defined]
    _full_page_screenshot(driver, ARTIFACTS / "landing_desktop.png")

    # The newest history row's log link opens that probe's debug text.
    _click_to_new_page(driver, driver.find_element(By.CSS_SELECTOR, "#history tbody tr a"),  # type: ignore[attr-defined]
                       lambda d: _body_text(d).startswith("Logs for the probe:"))
    body = _body_text(driver)
    assert "/status/503" in body and "probe_success 0" in body

    driver.get(exporter_url)  # type: ignore[attr-defined]
    _click_to_new_page(driver, driver.find_element(By.LINK_TEXT, "Metrics"),  # type: ignore[attr-defined]
                       lambda d: "# HELP" in _body_text(d))
    assert "probe_exporter_probes_total" in _body_text(driver)


def test_landing_page_fits_a_phone(browser: object, exporter_url: str, plain_http_target: str) -> None:
    driver = browser
    # A phone, not a narrow desktop window: mobile mode honours <meta name="viewport"> as a phone does.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # type: ignore[attr-defined]
        "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True})
    try:
        driver.get(exporter_url)  # type: ignore[attr-defined]
        _run_from_form(driver, "http_2xx", plain_http_target + "/a/rather/long/path/that/should/wrap/on/a/phone")
        assert driver.execute_script("return window.innerWidth") == PHONE[0]  # type: ignore[attr-defined]
        width = driver.execute_script("return document.documentElement.clientWidth")  # type: ignore[attr-defined]
        # The page itself never scrolls sideways: tables turn into cards, long targets wrap.
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width  # type: ignore[attr-defined]
        size = driver.execute_script(  # type: ignore[attr-defined]
            "return parseFloat(getComputedStyle(document.getElementById('target')).fontSize)")
        assert size >= 16  # our stylesheet applied (Chromium's default is 13.33px): no zoom-on-focus on phones
        _full_page_screenshot(driver, ARTIFACTS / "landing_phone.png")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]
