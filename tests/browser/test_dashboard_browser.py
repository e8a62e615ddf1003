"""The dashboard in a real browser: filter the list, read a waiting workflow's
entity, signal it from the page and watch it complete live, retry a failed
one once its cause is fixed; labels and keyboard use. Screenshots of each
page are saved (build/screenshots, or $HOTMESH_SCREENSHOTS)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dashboard_flows as flows
import pytest

pytest.importorskip("selenium")

from dashboard_flows import settle  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from hotmesh_sync import MemFlow  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def shop(memflow: MemFlow, run_worker: Any) -> Iterator[MemFlow]:
    flows.CARD["valid"] = False
    with run_worker(task_queue="shop", workflows=flows.WORKFLOWS):
        yield memflow
    flows.CARD["valid"] = False


def until(chrome: Any, condition: Callable[[Any], Any], timeout: float = 15) -> Any:
    # Live updates swap parts of the page: an element found a moment ago may be gone.
    return WebDriverWait(chrome, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def open_live(chrome: Any, url: str) -> None:
    """Open a page that updates itself and wait until its first look is done
    (on connecting, the page fetches itself once)."""
    chrome.get(url)
    until(chrome, lambda c: c.find_element(By.ID, "live-state").text == "live"
          and c.execute_script("return !!document.body.dataset.refreshed;"))


def row_ids(chrome: Any) -> list[str]:
    # Read in one script: a live update may swap the table between two reads.
    ids: list[str] = chrome.execute_script(
        "return [...document.querySelectorAll('#workflows tbody td:first-child a')]"
        ".map(a => a.textContent);")
    return ids


def text_of(chrome: Any, css: str) -> str:
    text: str = chrome.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)
    return text


def confirm(chrome: Any) -> None:
    """The confirmation page: press its Yes button."""
    until(chrome, ready.element_to_be_clickable((By.ID, "confirm"))).click()


def test_filter_the_list(chrome: Any, served: str, shop: MemFlow, shoot: Any) -> None:
    shop.workflow.start(flows.approval_flow, ["A-100"], task_queue="shop",
                        workflow_id="order-A-100", entity="order")
    shop.workflow.start(flows.approval_flow, ["A-101"], task_queue="shop",
                        workflow_id="order-A-101", entity="order")
    shop.workflow.start(flows.fan_out_flow, [["lamp", "desk", "chair"]], task_queue="shop",
                        workflow_id="basket-7", entity="basket")
    shop.workflow.start(flows.charge_flow, [25], task_queue="shop", workflow_id="charge-3",
                        entity="payment")
    settle(shop, "basket-7", "completed")
    settle(shop, "charge-3", "failed")
    settle(shop, "order-A-101", "waiting")
    open_live(chrome, served + "/")
    assert set(row_ids(chrome)) == {"order-A-100", "order-A-101", "basket-7", "charge-3"}
    shoot("workflows")
    # Filter by entity with the keyboard: type, then Enter submits the form.
    field = chrome.find_element(By.ID, "f-entity")
    field.send_keys("order", Keys.ENTER)
    until(chrome, lambda c: "entity=order" in c.current_url)
    assert sorted(row_ids(chrome)) == ["order-A-100", "order-A-101"]
    # The filter lives in the URL: the same view opens from a shared link.
    shared = chrome.current_url
    chrome.get(served + "/")
    chrome.get(shared)
    assert sorted(row_ids(chrome)) == ["order-A-100", "order-A-101"]
    # A status chip, then a search inside the entity documents.
    open_live(chrome, served + "/")
    chrome.find_element(By.CSS_SELECTOR, ".counts a .status-failed").click()
    until(chrome, lambda c: "status=failed" in c.current_url)
    assert row_ids(chrome) == ["charge-3"]
    chrome.get(served + "/")
    chrome.find_element(By.ID, "f-q").send_keys("total=130", Keys.ENTER)
    until(chrome, lambda c: "q=total" in c.current_url)
    assert row_ids(chrome) == ["basket-7"]
    shoot("workflows-filtered")


def test_open_a_waiting_workflow_and_see_its_entity(chrome: Any, served: str, shop: MemFlow,
                                                    shoot: Any) -> None:
    shop.workflow.start(flows.approval_flow, ["B-7"], task_queue="shop",
                        workflow_id="order-B-7", entity="order")
    settle(shop, "order-B-7", "waiting")
    open_live(chrome, served + "/")
    chrome.find_element(By.LINK_TEXT, "order-B-7").click()
    until(chrome, lambda c: "order-B-7" in c.current_url)
    open_live(chrome, chrome.current_url)
    tree = text_of(chrome, "#entity-tree")
    assert "awaiting approval" in tree and "gold" in tree and "lamp" in tree
    # The customer's name holds markup: it shows as text, no element is made.
    assert "<script>alert('x')</script>" in tree
    assert not chrome.find_elements(By.CSS_SELECTOR, "#entity-tree script")
    assert "waiting" in text_of(chrome, "h1 .status")
    assert "approve" in chrome.find_element(By.ID, "h-waiting").find_element(
        By.XPATH, "following-sibling::ul").text
    shoot("workflow-waiting")
    # Collapsing a branch of the tree works (a native <details>).
    customer = chrome.find_element(By.CSS_SELECTOR, 'details[data-path="/customer"]')
    assert customer.get_attribute("open") is not None
    customer.find_element(By.TAG_NAME, "summary").click()
    assert customer.get_attribute("open") is None


def test_signal_from_the_page_and_watch_it_complete(chrome: Any, served: str, shop: MemFlow,
                                                    shoot: Any) -> None:
    shop.workflow.start(flows.approval_flow, ["C-1"], task_queue="shop",
                        workflow_id="order-C-1", entity="order")
    settle(shop, "order-C-1", "waiting")
    open_live(chrome, served + "/workflow?id=order-C-1")
    assert chrome.find_element(By.ID, "signal-id").get_attribute("value") == "approve"
    chrome.find_element(By.ID, "signal-data").send_keys('{"by": "dana"}')
    chrome.find_element(By.ID, "send-signal").click()
    until(chrome, lambda c: "Send signal" in c.find_element(By.CSS_SELECTOR, ".question").text)
    shoot("confirm-signal")
    confirm(chrome)
    until(chrome, lambda c: "notice=signalled" in c.current_url)
    # Mark this page: a reload would lose the mark, a live update keeps it.
    chrome.execute_script("window.__stayed = true;")
    until(chrome, lambda c: "completed" in text_of(c, "h1 .status"))
    assert chrome.execute_script("return window.__stayed === true;")
    assert "approved" in text_of(chrome, "#entity-tree")
    assert "dana" in text_of(chrome, "#entity-tree")
    assert shop.workflow.get_handle("order-C-1").result(timeout=5)["approved_by"] == "dana"
    shoot("workflow-completed")


def test_retry_a_failed_workflow_once_the_cause_is_fixed(chrome: Any, served: str,
                                                         shop: MemFlow, shoot: Any) -> None:
    shop.workflow.start(flows.charge_flow, [40], task_queue="shop", workflow_id="charge-9",
                        entity="payment")
    settle(shop, "charge-9", "failed")
    open_live(chrome, served + "/failed")
    shoot("failed")
    chrome.find_element(By.LINK_TEXT, "charge-9").click()
    until(chrome, lambda c: "charge-9" in c.current_url)
    open_live(chrome, chrome.current_url)
    error = text_of(chrome, ".error-box")
    assert "597" in error and "card declined" in error and "expired in 2025" in error
    shoot("workflow-failed")
    flows.CARD["valid"] = True  # the cause is fixed
    chrome.find_element(By.ID, "retry").click()
    confirm(chrome)
    until(chrome, lambda c: "notice=retried" in c.current_url)
    until(chrome, lambda c: "completed" in text_of(c, "h1 .status"))
    assert shop.workflow.get_handle("charge-9").result(timeout=5) == {"charged": 40}
    assert "charged" in text_of(chrome, "#entity-tree")


def test_fields_are_labelled_and_tables_work_from_the_keyboard(
        chrome: Any, served: str, shop: MemFlow, shoot: Any) -> None:
    shop.workflow.start(flows.fan_out_flow, [["a", "bb"]], task_queue="shop",
                        workflow_id="basket-kb", entity="basket")
    settle(shop, "basket-kb", "completed")
    shop.schedules.create("nightly-report", cron="0 3 * * *", workflow_name="fan_out_flow",
                          args=[["x"]], task_queue="shop")
    unlabelled = """
        return [...document.querySelectorAll('input, select, textarea')]
          .filter(e => e.type !== 'hidden')
          .filter(e => !(e.id && document.querySelector('label[for="' + e.id + '"]'))
                       && !e.getAttribute('aria-label'))
          .map(e => e.name || e.outerHTML);"""
    for path in ("/", "/workflow?id=basket-kb", "/schedules", "/queues", "/workers",
                 "/failed"):
        chrome.get(served + path)
        assert chrome.execute_script(unlabelled) == [], path
    for path, name in (("/schedules", "schedules"), ("/queues", "queues"),
                       ("/workers", "workers"), ("/workflow?id=basket-kb", "workflow-fan-out")):
        chrome.get(served + path)
        shoot(name)
    # Tab from the top: the skip link comes first, and Tab reaches the table's
    # links; Enter on one opens its workflow.
    open_live(chrome, served + "/?entity=basket")
    body = chrome.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert chrome.switch_to.active_element.text == "Skip to content"
    for _ in range(40):
        chrome.switch_to.active_element.send_keys(Keys.TAB)
        if chrome.switch_to.active_element.text == "basket-kb":
            break
    else:
        pytest.fail("Tab never reached the table's link")
    chrome.switch_to.active_element.send_keys(Keys.ENTER)
    until(chrome, lambda c: "/workflow?id=basket-kb" in c.current_url)
    lanes = chrome.execute_script(
        "return [...document.querySelectorAll('table.timeline caption')].map(c => c.textContent);")
    assert lanes[:3] == ["main", "all@1 branch 0", "all@1 branch 1"]
