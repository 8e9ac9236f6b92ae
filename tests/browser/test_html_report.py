"""The HTML report in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): from a file, as `mia report -o` writes it, and over HTTP through the real report_http
handler on a loopback server. Nothing but the page is requested, nothing is logged to the console
(a Content-Security-Policy violation would be), the timeline and tables work, and markup in the
attacker-controlled fields stays text. Screenshots go to out/ for a person to look at; with
MIA_DOCS_SCREENSHOT=1 the README's one is also written to docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from mia import cli
from shared.reports import html
from shared.storage import Storage, tables
from tests.functions.helpers import registered_functions
from tests.helpers import ROOT, SAMPLE, SAMPLE_FROM, SAMPLE_TO
from tests.html_cases import HOSTILE, HOSTILE_SUBJECT, MAILBOX, page_of, story

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = (
    "run `make setup` (as root it installs Debian's chromium and chromium-driver), or "
    "`sudo apt-get install chromium chromium-driver`"
)
OUT = ROOT / "out"
DOCS_SCREENSHOT = ROOT / "docs" / "html-report.png"
# Records what the page must never do; the browser adds it before any of the page's own script.
RECORDER = """
window.__violations = [];
window.__dialogs = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
["alert", "confirm", "prompt"].forEach(function (name) {
  window[name] = function (message) { window.__dialogs.push(name + ":" + message); };
});
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.is_file():
            pytest.fail(f"{binary} is missing: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        "--disable-extensions", "--disable-default-apps", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path: Selenium Manager never looks for (or downloads) a driver.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
    driver.get("about:blank")  # away from the start page, whose own requests are not the report's
    try:
        yield driver
    finally:
        driver.quit()


Handler = Callable[[func.HttpRequest], func.HttpResponse]


def _serving(report_http: Handler) -> type[BaseHTTPRequestHandler]:
    class ReportServer(BaseHTTPRequestHandler):
        """GET /api/reports/{mailbox}?... answered by the real report_http handler."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            mailbox = unquote(url.path.removeprefix("/api/reports/"))
            response = report_http(
                func.HttpRequest(
                    method="GET",
                    url=f"http://127.0.0.1{self.path}",
                    route_params={"mailbox": mailbox},
                    params=dict(parse_qsl(url.query)),
                    headers=dict(self.headers.items()),
                    body=b"",
                )
            )
            body = response.get_body()
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() != "content-type":
                    self.send_header(name, value)
            self.send_header("Content-Type", f"{response.mimetype}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ReportServer


@pytest.fixture
def report_server(function_env: Storage) -> Iterator[str]:
    """A loopback HTTP server in front of report_http, with the story's events stored in Azurite."""
    tables.store_events(function_env, story())
    handler = registered_functions()["report_http"].get_user_function()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _serving(handler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Loaded:
    driver: webdriver.Chrome
    url: str

    def script(self, source: str) -> Any:
        return self.driver.execute_script(source)

    def css(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def rows_shown(self, table: str) -> list[WebElement]:
        return [row for row in self.css(f"#{table}-table tbody tr") if row.is_displayed()]


def browser_log(driver: webdriver.Chrome, kind: str) -> list[dict[str, Any]]:
    """The `kind` log ("browser": the console; "performance": DevTools events) since last read."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def load(driver: webdriver.Chrome, url: str) -> Loaded:
    browser_log(driver, "performance")  # what earlier pages requested is not this page's
    browser_log(driver, "browser")
    driver.get(url)
    return Loaded(driver, url)


def requested(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in browser_log(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_self_contained(page: Loaded, *, loading: bool = True) -> None:
    """Only the page itself was requested (nothing since, once it is in use); no console
    message, no policy violation, no dialog."""
    console = browser_log(page.driver, "browser")
    assert requested(page.driver) == ([page.url] if loading else [])
    assert console == []
    assert page.script("return window.__violations") == []
    assert page.script("return window.__dialogs") == []


def assert_markup_stays_text(page: Loaded) -> None:
    assert page.script("return document.scripts.length") == 1
    assert page.css("iframe, img, table.data td *") == [], "a data cell holds text only"
    with_handlers = page.script(
        "return Array.from(document.querySelectorAll('*')).filter(function (e) {"
        " return Array.from(e.attributes).some(function (a) { return a.name.indexOf('on') === 0; });"
        " }).map(function (e) { return e.tagName; });"
    )
    assert with_handlers == []
    shown = page.script("return document.body.textContent")
    for value in HOSTILE:
        assert value in shown, f"{value!r} is shown as text"
    subjects = [cell.text for cell in page.css("#exposure-table tbody td")]
    assert HOSTILE_SUBJECT in subjects


def assert_timeline(page: Loaded, sessions: int) -> None:
    lanes = page.css("#timeline g.lane")
    assert len(lanes) == sessions
    assert len(page.css("#timeline g.lane.usual")) == 3, "the owner's three office days"
    [blind] = page.css("#timeline rect.blind")
    assert blind.size["width"] > 50
    assert blind.value_of_css_property("fill") == "rgb(242, 169, 0)", "the inline style applies"
    assert blind.size["height"] >= len(lanes) * html.LANE_HEIGHT, "shaded across every lane"


def assert_filter_and_sort(page: Loaded) -> None:
    every = len(page.rows_shown("exposure"))
    [box] = page.css("#exposure-table-filter")
    box.send_keys("payroll")
    narrowed = page.rows_shown("exposure")
    assert 0 < len(narrowed) < every
    assert all("payroll" in row.text.lower() for row in narrowed)
    assert page.css("#exposure-table-count")[0].text == f"{len(narrowed)} of {every} rows shown"
    box.clear()
    box.send_keys(" ")  # an input event with nothing to match: every row again
    assert len(page.rows_shown("exposure")) == every
    header = page.css("#sessions-table thead th")[0]
    header.find_element(By.TAG_NAME, "button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    ids = [row.find_elements(By.TAG_NAME, "td")[0].text for row in page.rows_shown("sessions")]
    assert ids == sorted(ids, key=str.lower)


def screenshot(page: Loaded, name: str, most: int = 2400) -> Path:
    """The top of the page (at most `most` pixels high) as out/`name`."""
    page.script("window.scrollTo(0, 0)")
    height = int(page.script("return document.documentElement.scrollHeight"))
    page.driver.set_window_size(1400, min(height, most))
    OUT.mkdir(exist_ok=True)
    target = OUT / name
    assert page.driver.save_screenshot(str(target))
    page.driver.set_window_size(1400, 1000)
    assert target.stat().st_size > 10_000
    return target


def test_the_page_from_a_file_requests_nothing_and_keeps_markup_as_text(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    path = tmp_path / "alice.html"
    path.write_text(page_of(story()), encoding="utf-8")

    page = load(browser, path.as_uri())

    assert_self_contained(page)
    assert_timeline(page, sessions=4)
    assert_markup_stays_text(page)
    assert_filter_and_sort(page)
    assert_self_contained(page, loading=False)
    screenshot(page, "html-report-hostile.png")


def test_the_page_over_the_report_endpoint_requests_nothing_and_keeps_markup_as_text(
    browser: webdriver.Chrome, report_server: str
) -> None:
    url = f"{report_server}/api/reports/{MAILBOX}?format=html&from=2026-11-16&to=2026-11-20"

    page = load(browser, url)

    assert_self_contained(page)
    assert browser.title == f"Mailbox access report: {MAILBOX}"
    assert_timeline(page, sessions=4)
    assert_markup_stays_text(page)
    assert_filter_and_sort(page)
    assert_self_contained(page, loading=False)
    screenshot(page, "html-report-http.png")


def test_the_sample_export_as_mia_report_writes_it(browser: webdriver.Chrome, tmp_path: Path) -> None:
    path = tmp_path / "alice@contoso.com-exposure.html"
    args = ["report", MAILBOX, "--input", str(SAMPLE), "--from", SAMPLE_FROM, "--to", SAMPLE_TO]
    sessions = tmp_path / "sessions.json"
    assert cli.main([*args, "--format", "html", "-o", str(path)]) == 0
    assert cli.main([*args, "--view", "sessions", "--format", "json", "-o", str(sessions)]) == 0

    page = load(browser, path.as_uri())

    assert_self_contained(page)
    assert len(page.css("#timeline g.lane")) == len(json.loads(sessions.read_text(encoding="utf-8")))
    assert page.css("#timeline path.sync"), "the sample's Sync of the Inbox is marked"
    shot = screenshot(page, "html-report-sample.png", most=1250)
    if os.environ.get("MIA_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_SCREENSHOT)
