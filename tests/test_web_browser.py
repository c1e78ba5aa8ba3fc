"""The pages in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): the report
from file:// and the served app show no console error and ask nothing of any host but
127.0.0.1; a file is made by ticking conversations, by mouse and by keyboard; a change without
the token is refused; every page reads at 1280 and 390 pixels wide. Screenshots of each
page go to test-artifacts/screenshots/."""

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from test_web import Served, demo, names  # noqa: F401 (fixtures)

import generate
from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / "test-artifacts" / "screenshots"
WIDTHS = (1280, 390)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM}: apt-get install chromium (.ci/run does)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose console errors, failed requests and requests to other hosts are kept."""

    def __init__(self, browser, width: int):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.elsewhere: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)

    def _route(self, route):
        url = urlsplit(route.request.url)
        if url.scheme in ("file", "data") or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.elsewhere.append(route.request.url)
            route.abort()

    def visit(self, url: str, shot: str | None = None) -> None:
        response = self.page.goto(url)
        assert response is None or response.status == 200, (url, response.status)
        self.page.wait_for_load_state("networkidle")
        fits = self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{url} overflows {self.page.viewport_size['width']} px"
        if shot:
            SHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SHOTS / f"{shot}-{self.page.viewport_size['width']}.png"), full_page=True)

    def clean(self) -> None:
        assert self.errors == [] and self.elsewhere == []
        self.page.close()


@pytest.fixture
def served(demo):
    server = Served()
    yield server
    assert server.stop() == ""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_report_from_file_reads_at_each_width_with_no_errors_and_no_network(browser, demo, tmp_path, width):
    demo("report", "-o", tmp_path / "site", "--max-tokens", "200")
    file_id = demo.json("show", "demo-file")["id"]
    member = demo.json("show", "demo-file")["conversation_ids"][0]
    w = Watched(browser, width)
    site = (tmp_path / "site").as_uri()
    w.visit(f"{site}/index.html", "report-index")
    # Sorted and filtered by its script.
    w.page.get_by_role("button", name="Conversations").click()
    assert w.page.locator("#files th[aria-sort=ascending]").count() == 1
    w.page.fill("input[data-filter]", "no-such-file")
    assert w.page.locator("#files tbody tr:not([hidden])").count() == 0
    w.visit(f"{site}/files/{file_id}.html", "report-file")
    assert w.page.locator("svg.chart").count() == 10
    assert w.page.get_by_text("What --max-tokens 200 loses").count() == 1
    w.visit(f"{site}/conversations/{member}.html", "report-conversation")
    assert w.page.locator(".msg.system").count() == 1
    w.clean()
    if width == 1280:  # the README's picture of a file page
        shutil.copy(SHOTS / "report-file-1280.png", SHOTS / "file-page.png")


@pytest.mark.parametrize("width", WIDTHS)
def test_served_pages_read_at_each_width_with_no_errors_and_no_network(browser, served, width):
    w = Watched(browser, width)
    for path, shot in [
        ("/", "served-index"),
        ("/files/demo-file", "served-file"),
        ("/conversations", "served-conversations"),
        (f"/conversations/{generate.conversation_uuid(1)}", "served-conversation"),
    ]:
        w.visit(served.base + path, shot)
    w.clean()


def test_three_conversations_ticked_make_a_training_file(browser, served, demo):
    w = Watched(browser, 1280)
    w.visit(served.base + "/conversations?status=completed")
    boxes = w.page.locator("#conversations tbody input[type=checkbox]")
    ticked = [boxes.nth(i).get_attribute("value") for i in range(3)]
    for i in range(3):
        boxes.nth(i).check()
    w.page.fill("#new-name", "picked-three")
    w.page.get_by_role("button", name="Create training file").click()
    w.page.wait_for_load_state("networkidle")
    assert w.page.get_by_role("status").inner_text().startswith("Created picked-three: version 1 with 3 conversations")
    w.page.screenshot(path=str(SHOTS / "served-created-1280.png"))
    w.clean()
    made = next(f for f in demo.json("list") if f["name"] == "picked-three")
    assert made["conversation_count"] == 3
    assert sorted(demo.json("show", "picked-three")["conversation_ids"]) == sorted(ticked)


def test_a_post_without_the_token_is_refused_and_changes_nothing(browser, served, demo):
    before = demo.json("list", "--status", "all")
    w = Watched(browser, 1280)
    w.visit(served.base + "/conversations")
    status = w.page.evaluate(
        """async (id) => {
            const body = new URLSearchParams({name: "forged", id: id});
            const response = await fetch("/files", {method: "POST", body: body});
            return response.status;
        }""",
        generate.conversation_uuid(1),
    )
    assert status == 403
    w.page.close()  # the refused fetch is a console error, as it should be
    assert demo.json("list", "--status", "all") == before


def test_usable_by_keyboard_alone(browser, served, demo):
    w = Watched(browser, 1280)
    w.visit(served.base + "/conversations?status=completed")
    keys = w.page.keyboard

    def tab_to(selector: str, back: bool = False) -> None:
        for _ in range(200):
            keys.press("Shift+Tab" if back else "Tab")
            if w.page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#conversations tbody input[type=checkbox]")
    keys.press("Space")
    first = w.page.locator("#conversations tbody input[type=checkbox]").first
    assert first.is_checked()
    chosen = first.get_attribute("value")
    tab_to("#new-name", back=True)
    keys.type("by-keyboard")
    keys.press("Enter")
    w.page.wait_for_load_state("networkidle")
    assert "Created by-keyboard" in w.page.get_by_role("status").inner_text()
    w.clean()
    assert demo.json("show", "by-keyboard")["conversation_ids"] == [chosen]
    assert "by-keyboard" in names(demo)
