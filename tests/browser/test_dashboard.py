"""The dashboard in Chromium against a real web server (manage.py serve, as make run starts
it), notifier and two workers on PostgreSQL."""

import time

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect, sync_playwright

from orders import schedules
from orders.models import Order, Schedule, Status
from orders.services import place_order
from tests.conftest import ROOT, wait_for
from tests.ops.helpers import start_web
from tests.system.test_failover import FAST, alive, order_status, routing_key_owned_by

pytestmark = [pytest.mark.postgres, pytest.mark.system]

ARTIFACTS = ROOT / "test-artifacts"
expect.set_options(timeout=20_000)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


@pytest.fixture
def fast_password_hashing():
    """The servers here check passwords with Django's real hashers, so keep them."""


@pytest.fixture
def system(processes):
    """The web server, a notifier and shops S0 and S1; returns the dashboard's address."""
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pizza")
    base_url = start_web(processes, **FAST)
    processes.notifier("N1", **FAST)
    processes.worker("S0", concurrency=2, **FAST)
    # S1 waits a few seconds before it rejoins, long enough to be watched dead.
    processes.worker("S1", concurrency=2, PIZZAQ_REJOIN_DELAY="5", **FAST)
    wait_for(alive("S0", "S1"), timeout=30)
    return base_url


@pytest.fixture
def page(system, monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own database
    # reads are still plain synchronous calls, so tell Django they are safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(20_000)
        wait_for(lambda: _reachable(page, system), timeout=30, interval=0.3, message="the web server")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pizza")
        page.click("input[type=submit]")
        expect(page.locator("#connection")).to_have_text("live")
        page.evaluate("window.neverReloaded = true")
        yield page
        browser.close()


def _reachable(page, base_url) -> bool:
    try:
        return page.goto(base_url + "/").ok
    except Exception:
        return False


def shoot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_order_placed_with_the_form_goes_queued_running_done_without_a_reload(page):
    page.fill("#f-payload", '{"seconds": 2}')
    page.fill("#f-delay", "1.5")
    page.click("text=Place order")
    expect(page.locator("#place-ok")).to_contain_text("placed")
    order = Order.objects.get()
    row = page.locator(f'#orders tr[data-order="{order.pk}"] .order-status')

    expect(row).to_have_text("queued")
    shoot(page, "order-queued")
    expect(row).to_have_text("running")
    shoot(page, "order-running")
    expect(row).to_have_text("done")
    shoot(page, "order-done")
    assert page.evaluate("window.neverReloaded") is True


def test_bad_form_input_shows_an_inline_error_and_places_nothing(page):
    for field, value, message in [("#f-payload", "{not json", "payload is not valid JSON"),
                                  ("#f-priority", "500", "priority must be between -100 and 100")]:
        page.fill("#f-payload", '{"seconds": 1}')
        page.fill("#f-priority", "0")
        page.fill(field, value)
        page.click("text=Place order")
        expect(page.locator("#place-error")).to_contain_text(message)
        expect(page.locator(f"{field}[aria-invalid=true]")).to_have_count(1)
    page.select_option("#f-kind", "flaky")
    page.evaluate("document.querySelector('#f-kind').add(new Option('pineapple', 'pineapple', true, true))")
    page.fill("#f-priority", "0")
    page.click("text=Place order")
    expect(page.locator("#place-error")).to_contain_text("unknown kind 'pineapple'")
    shoot(page, "form-error")
    assert Order.objects.count() == 0


def test_force_failing_a_shop_moves_its_orders_recolours_the_ring_says_so_and_the_shop_reopens(page):
    moved = place_order("bake", {"seconds": 30}, routing_key=routing_key_owned_by("S1"))
    wait_for(lambda: order_status(moved) == (Status.RUNNING, "S1", 1), message="S1 baking")
    expect(page.locator('#ring circle[data-owner="S1"]').first).to_be_attached()
    shoot(page, "before-force-fail")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click('#workers tr[data-worker="S1"] button')

    expect(page.locator('#workers tr[data-worker="S1"] .status')).to_have_text("dead")
    expect(page.locator('#ring circle[data-owner="S1"]')).to_have_count(0)
    expect(page.locator("#ring-legend")).to_contain_text("S0: 1024 buckets")
    event = page.locator("#events li.event-force_failed").first
    expect(event).to_contain_text("S1 force-failed by admin")
    expect(event).to_contain_text("1 running orders requeued")
    expect(event).to_contain_text("orders moved (S0:")
    shoot(page, "after-force-fail")

    # The same process reopens by itself as a new incarnation and takes buckets back.
    s1 = page.locator('#workers tr[data-worker="S1"]')
    expect(s1.locator(".status")).to_have_text("alive")
    expect(s1.locator(".incarnation")).to_have_text("2")
    expect(page.locator('#ring circle[data-owner="S1"]').first).to_be_attached()
    expect(page.locator("#events li.event-joined").first).to_contain_text("S1 joined (incarnation 2")
    shoot(page, "after-reopening")

    wait_for(lambda: order_status(moved) == (Status.RUNNING, "S0", 2), message="S0 to take the order over")
    page.goto(f"{page.url.rstrip('/')}/orders/{moved.pk}")
    history = page.locator("#history tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("S1")
    expect(history.nth(0)).to_contain_text("requeued")
    expect(history.nth(1)).to_contain_text("S0")
    expect(history.nth(1)).to_contain_text("running")
    shoot(page, "moved-order-page")


def test_pausing_a_queue_from_its_panel_holds_its_orders_until_resume(page):
    page.fill("#f-queue", "emails")
    page.fill("#f-payload", '{"seconds": 3}')
    queue = page.locator('#queues tr[data-queue="emails"]')
    page.click("text=Place order")
    expect(queue.locator("td").nth(1)).to_have_text("1")  # running

    queue.locator("button", has_text="Pause").click()
    expect(queue.locator(".queue-state")).to_contain_text("paused")
    page.fill("#f-payload", '{"seconds": 0}')
    page.click("text=Place order")
    wait_for(lambda: Order.objects.filter(queue="emails", status=Status.DONE).count() == 1, message="the running one")
    time.sleep(1)
    assert Order.objects.filter(queue="emails", status=Status.QUEUED).count() == 1, "the paused queue holds it"
    expect(queue.locator("td").nth(0)).to_have_text("1")
    expect(page.locator("#events li.event-action").first).to_contain_text("admin: queue emails paused")
    shoot(page, "queue-paused")

    queue.locator("button", has_text="Resume").click()
    expect(queue.locator(".queue-state")).to_contain_text("open")
    wait_for(lambda: Order.objects.filter(queue="emails", status=Status.DONE).count() == 2, message="the held order")


def test_a_running_bake_shows_its_progress_live_and_cancelling_it_from_its_page_ends_it_cancelled(page):
    order = place_order("bake", {"seconds": 30})
    expect(page.locator(f'#orders tr[data-order="{order.pk}"] .order-progress progress')).to_be_visible()
    page.goto(f"{page.url.rstrip('/')}/orders/{order.pk}")
    expect(page.locator("#order-status")).to_have_text("running")
    expect(page.locator("#order-progress-note")).to_contain_text("in the oven")
    seen = page.locator("#order-progress-bar").evaluate("bar => bar.value")
    page.wait_for_function("seen => document.getElementById('order-progress-bar').value > seen", arg=seen)
    shoot(page, "order-progress")

    page.click("text=Cancel order")

    expect(page.locator("#order-cancel-note")).to_contain_text("cancelled while running")
    expect(page.locator("#order-status")).to_have_text("cancelled")
    expect(page.locator("#order-cancel")).to_be_hidden()
    expect(page.locator("#order-progress")).to_be_hidden()
    shoot(page, "order-cancelled")
    assert Order.objects.get(pk=order.pk).status == Status.CANCELLED


def test_a_schedule_shows_its_slots_firing_live_and_is_disabled_and_fired_from_its_row(page):
    schedules.save_definition(Schedule(name="tick", every=1, kind="noop", payload={"from": "tick"}))
    row = page.locator('#schedules tr[data-schedule="tick"]')
    expect(row).to_contain_text("every 1 s")
    expect(row.locator(".schedule-last a")).to_be_visible()  # the notifier placed a slot

    row.locator("button", has_text="Disable").click()
    expect(row.locator(".schedule-next")).to_have_text("disabled")
    placed = wait_for(lambda: _settled_count("tick"), message="the slots to stop")
    row.locator("button", has_text="Fire now").click()

    expect(page.locator("#events li.event-action").first).to_contain_text("admin: schedule tick fired now")
    shoot(page, "schedule-fired")
    assert Order.objects.filter(payload__from="tick").count() == placed + 1


def _settled_count(name: str) -> int | None:
    """How many orders the schedule placed, once that number holds for two seconds."""
    before = Order.objects.filter(payload__from=name).count()
    time.sleep(2)
    return before if Order.objects.filter(payload__from=name).count() == before else None
