"""The viewer in a real browser: Debian's Chromium, headless, driven by Playwright, against the
viewer served by uvicorn over a real socket. List → instance → replay step → cancel, with the
timeline visible; screenshots are saved under the test's tmp dir (``--basetemp`` keeps them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import viewer_workflows as wf
from live_server import CHROMIUM, CHROMIUM_ARGS, serving
from playwright.sync_api import Browser, Page, expect, sync_playwright

from eddic import App
from eddic.web import create_app

pytestmark = pytest.mark.both_backends


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def site(app: App) -> Iterator[str]:
    with serving(create_app(app.storage.db_url)) as base:
        yield base


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert dialogs == [], f"a stored string ran as script: {dialogs}"
    assert errors == [], f"the page's script failed: {errors}"


def test_list_instance_replay_step_and_cancel(
    app: App, site: str, page: Page, tmp_path: Path
) -> None:
    app.start(wf.view_order, "order-1", instance_id="order-1")
    app.start(wf.view_failing, "order-2", instance_id="order-2")
    app.start(wf.view_order, wf.HOSTILE_ID, instance_id=wf.HOSTILE_ID)

    page.goto(site + "/")
    expect(page.locator("#instances table tbody tr")).to_have_count(3)
    expect(page.locator("#counts")).to_contain_text("waiting_for_event 2")
    page.screenshot(path=str(tmp_path / "1-list.png"), full_page=True)

    page.get_by_role("link", name="order-1", exact=True).click()
    expect(page.locator("h1")).to_have_text("order-1")
    timeline = page.locator("#timeline")
    expect(timeline).to_be_visible()
    expect(timeline.locator(".row")).to_have_count(3)
    expect(timeline.locator(".bar").first).to_be_visible()
    expect(page.locator("#now tr", has_text="payment.confirmed")).to_contain_text("event")
    page.screenshot(path=str(tmp_path / "2-instance.png"), full_page=True)

    page.get_by_role("link", name="replay step by step →").click()
    expect(page.locator("#step")).to_contain_text("step 3 of 3")
    page.locator("#prev-step").click()
    expect(page.locator("#step")).to_contain_text("seq 2 activity view_charge")
    expect(page.locator("#locals")).to_contain_text("reservation")
    expect(page.locator("#locals")).to_contain_text("R-order-1")
    page.screenshot(path=str(tmp_path / "3-replay.png"), full_page=True)

    page.get_by_role("link", name="order-1").first.click()
    page.get_by_placeholder("reason").fill("customer asked")
    page.get_by_role("button", name="cancel instance").click()
    expect(page.locator(".flash")).to_contain_text("cancel of order-1 recorded")
    app.run_due()
    page.reload()
    expect(page.locator("#summary")).to_contain_text("cancelled")
    page.screenshot(path=str(tmp_path / "4-cancelled.png"), full_page=True)
    assert app.get_instance("order-1")["status"] == "cancelled"


def test_a_hostile_id_is_shown_as_text_and_its_link_works(app: App, site: str, page: Page) -> None:
    app.start(wf.view_order, wf.HOSTILE_ID, instance_id=wf.HOSTILE_ID)
    page.goto(site + "/")
    link = page.locator("#instances td.id a")
    expect(link).to_contain_text("<script>alert('x')</script>")
    link.click()
    expect(page.locator("h1")).to_contain_text("<script>alert('x')</script>")
    expect(page.locator("#summary")).to_contain_text("waiting_for_event")


def test_live_refresh_shows_a_new_instance_without_a_reload(
    app: App, site: str, page: Page
) -> None:
    app.start(wf.view_order, "order-1", instance_id="order-1")
    page.goto(site + "/")
    expect(page.locator("#instances table tbody tr")).to_have_count(1)
    page.locator("#live").check()
    app.start(wf.view_order, "order-2", instance_id="order-2")
    expect(page.locator("#instances table tbody tr")).to_have_count(2, timeout=10_000)
    expect(page.locator("#live")).to_be_checked()
