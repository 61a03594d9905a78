"""The operator console in a real browser (Debian's headless Chromium through Selenium),
against the real app on a loopback port with the embedded default profiles: no Slack,
no Teams, only an operator account made as `switchboard admin create` makes it.

An agent signs in with the one-time password and chooses their own; a web chat visitor
(in another tab) asks a question and presses "Talk to a human"; the conversation appears
in the agent's inbox without a reload (server-sent events); the agent claims it and
replies; the visitor's page shows the reply without a reload; the visitor answers and
the agent's page shows it without a reload. An admin then signs in and the overview
counts the conversation. Another admin adds a declined question's answer from the
Knowledge gaps page and the visitor's next question is answered from it. The inbox,
conversation, overview, knowledge gaps and profiles screenshots go to docs/images/
(docs/admin.md shows them). A third admin adds a folder source with the Add a source form,
sees its Retry fail while the folder is away and succeed when it is back, and uploads a
product catalog; the visitor's questions are answered from both (the Knowledge page and the
form's screenshots).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from adapters.app import create_app
from bot.settings import DEFAULT_PROFILES
from tests.adapters.test_web import open_runtime
from tests.browser.test_web_chat import CHROMEDRIVER, CHROMIUM, ask, bubbles, browser, idle, until, viewport  # noqa: F401
from tests.fakes.server import serve

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
NEW_PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def console_site(tmp_path_factory, sample_index_path, embedder):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium and chromium-driver are not installed (scripts/install-test-services)")
    home = tmp_path_factory.mktemp("home")
    # the default profiles, with room for a first answer on a machine busy with other tests
    profiles = home / "profiles.toml"
    profiles.write_text(DEFAULT_PROFILES.read_text().replace("turn_deadline = 20 ", "turn_deadline = 120 "))
    runtime = open_runtime(home, sample_index_path, embedder, SWITCHBOARD_PROFILES=str(profiles))
    app = create_app(runtime)
    operators = app.state.console.operators
    email, password = "alice@example.com", operators.create("alice@example.com", "agent", "Alice")[1]
    admin = ("lea@example.com", operators.create("lea@example.com", "admin", "Léa")[1])
    editor = ("sam@example.com", operators.create("sam@example.com", "admin", "Sam")[1])
    librarian = ("kim@example.com", operators.create("kim@example.com", "admin", "Kim")[1])
    with serve(app) as url:
        yield url, email, password, admin, editor, librarian


def fill(driver, field: str, text: str) -> None:
    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(text)


def sign_in(driver, url: str, email: str, once: str) -> None:
    """The sign-in form with a one-time password, then the new password."""
    until(driver, lambda d: d.current_url.startswith(f"{url}/admin/login"))
    fill(driver, "email", email)
    fill(driver, "password", once)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    until(driver, lambda d: d.current_url == f"{url}/admin/password")
    fill(driver, "new", NEW_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()


def live_text(driver) -> str:
    """The page's live part as shown (read by script: the page may be navigating meanwhile)."""
    return driver.execute_script("return document.getElementById('live')?.innerText || ''")


def test_an_agent_answers_a_web_chat_visitor_from_the_inbox(console_site, browser):
    url, email, password, admin, _, _ = console_site
    viewport(browser, 1100, 900)
    agent_tab = browser.current_window_handle
    browser.get(f"{url}/admin/inbox")  # no session: the sign-in form
    sign_in(browser, url, email, password)
    until(browser, lambda d: d.current_url == f"{url}/admin/inbox")
    until(browser, lambda d: d.execute_script("return document.body.dataset.live") == "on")
    assert "No conversation waits for a person." in live_text(browser)

    browser.switch_to.new_window("tab")
    customer_tab = browser.current_window_handle
    browser.get(url)
    until(browser, lambda d: "question to get started" in d.find_element(By.ID, "log").text)
    assert "30 days" in ask(browser, "How long do I have to return an item?")["text"]
    browser.find_element(By.ID, "human").click()
    until(browser, lambda d: idle(d) and len(bubbles(d)) == 3)
    assert "asked a member of our team" in bubbles(browser)[-1]["text"]
    # the page listens on GET /api/stream (server-sent events), not the 3 s poll
    until(browser, lambda d: d.execute_script("return document.body.dataset.live") == "sse")

    browser.switch_to.window(agent_tab)  # the inbox was not reloaded: the stream brought it
    link = until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#live a[href^='/admin/inbox/']"))[0]
    assert "Web visitor" in link.text and "waiting" in live_text(browser)
    IMAGES.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(IMAGES / "admin-inbox.png"))
    link.click()
    until(browser, lambda d: "How long do I have to return an item?" in live_text(d))
    browser.find_element(By.CSS_SELECTOR, "#live form[action$='/claim'] button").click()
    until(browser, lambda d: "claimed by Alice" in live_text(d))
    until(browser, lambda d: d.execute_script("return document.body.dataset.live") == "on")
    fill(browser, "reply", "Hello! Which item would you like to return?")
    browser.find_element(By.CSS_SELECTOR, "form.compose button").click()
    until(browser, lambda d: "Which item would you like to return?" in live_text(d))
    until(browser, lambda d: d.execute_script("return document.body.dataset.live") == "on")

    browser.switch_to.window(customer_tab)  # the visitor's page fetched it: no reload
    until(browser, lambda d: any(b["text"] == "Alice: Hello! Which item would you like to return?"
                                 for b in bubbles(d)))
    assert browser.execute_script("return document.body.dataset.live") == "sse"  # brought by the stream
    field = browser.find_element(By.ID, "input")
    field.send_keys("The blue lamp, order 1234\n")
    until(browser, lambda d: idle(d) and bubbles(d)[-1]["text"] == "The blue lamp, order 1234")

    browser.switch_to.window(agent_tab)
    until(browser, lambda d: "The blue lamp, order 1234" in live_text(d))
    refreshed = int(browser.execute_script("return document.getElementById('live').dataset.refreshed || 0"))
    assert refreshed >= 1  # it came through the stream, not a reload
    browser.save_screenshot(str(IMAGES / "admin-conversation.png"))
    viewport(browser, 390, 844, mobile=True)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390

    viewport(browser, 1100, 1400)  # an admin signs in: the overview counts this conversation
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    until(browser, lambda d: d.current_url.startswith(f"{url}/admin/login"))
    sign_in(browser, url, *admin)
    until(browser, lambda d: d.current_url == f"{url}/admin/overview")
    cards = browser.find_element(By.ID, "cards").text
    assert "1\nconversations" in cards and "100 %\nescalated to a person" in cards
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert any((c.get_attribute("aria-label") or "").startswith("By channel: web:") for c in charts)
    browser.save_screenshot(str(IMAGES / "admin-overview.png"))


def test_an_admin_adds_a_gaps_answer_and_the_next_question_is_answered_from_it(console_site, browser):
    url, _, _, _, editor, _ = console_site
    viewport(browser, 1100, 1000)
    browser.get(url)
    until(browser, lambda d: "question to get started" in d.find_element(By.ID, "log").text)
    assert "couldn't find" in ask(browser, "Do you have a loyalty program?")["text"]
    customer_tab = browser.current_window_handle

    browser.switch_to.new_window("tab")
    viewport(browser, 1100, 900)
    browser.get(f"{url}/admin/gaps")
    sign_in(browser, url, *editor)
    until(browser, lambda d: d.current_url == f"{url}/admin/overview")
    browser.get(f"{url}/admin/gaps")
    gap = until(browser, lambda d: [s for s in d.find_elements(By.CSS_SELECTOR, "section.gap")
                                    if "Do you have a loyalty program?" in s.text])[0]
    assert "1 open" in gap.text and "declined" in gap.text
    field = gap.find_element(By.CSS_SELECTOR, "textarea[name=answer]")
    field.send_keys("Yes: you earn 1 point per euro, and 100 points make a 5 euro voucher.")
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    browser.save_screenshot(str(IMAGES / "admin-gaps.png"))
    gap.find_element(By.CSS_SELECTOR, "form.suggestion button").click()
    until(browser, lambda d: d.current_url.endswith("/admin/gaps?notice=approved"))
    assert "Added to the Q&A form" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text

    browser.switch_to.window(customer_tab)
    assert "100 points make a 5 euro voucher" in ask(browser, "Do you have a loyalty program?")["text"]
    browser.switch_to.new_window("tab")
    browser.get(f"{url}/admin/gaps")
    assert "No unanswered question in this period." in browser.find_element(By.ID, "summary").text
    viewport(browser, 1100, 1000)
    browser.get(f"{url}/admin/profiles")  # the read-only profiles and channels page
    assert "May read" in browser.find_element(By.CSS_SELECTOR, "section[aria-label=support]").text
    browser.save_screenshot(str(IMAGES / "admin-profiles.png"))


def test_an_admin_adds_a_source_and_uploads_a_catalog_then_both_are_answered(console_site, browser, tmp_path):
    url, _, _, _, _, librarian = console_site
    folder = tmp_path / "care"
    folder.mkdir()
    (folder / "care.md").write_text("# Lamp care\n\nDust brass lamp bases with a dry microfibre cloth only.\n")
    catalog = tmp_path / "offers.csv"
    catalog.write_text("id,name,price,currency,stock,description\n"
                       "ZX900,Comet Pendant Lamp,349.00,EUR,3,Copper pendant lamp with a 45 cm dome.\n")
    viewport(browser, 1100, 1000)
    browser.get(f"{url}/admin/knowledge")
    sign_in(browser, url, *librarian)
    until(browser, lambda d: d.current_url == f"{url}/admin/overview")
    browser.get(f"{url}/admin/knowledge")
    browser.find_element(By.LINK_TEXT, "Add a source").click()
    until(browser, lambda d: d.current_url == f"{url}/admin/knowledge/add")
    fill(browser, "name", "care")
    fill(browser, "folder.path", str(folder))
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    browser.save_screenshot(str(IMAGES / "admin-add-source.png"))
    browser.find_element(By.CSS_SELECTOR, "form.qa button[type=submit]").click()
    until(browser, lambda d: d.current_url.endswith("/admin/knowledge?notice=added"))

    def care_done(driver):  # the status once the first sync has ended, reloading the page to see it
        driver.refresh()
        rows = driver.execute_script("return [...document.querySelectorAll('tr')].map(r => r.innerText)")
        row = [r for r in rows if r.startswith("care")]
        return row and ("success" in row[0] or "failed" in row[0]) and row[0]
    assert "success" in until(browser, care_done)
    # the folder goes away: Retry fails with the reason; it comes back: Retry succeeds
    away = tmp_path / "moved"
    folder.rename(away)
    retry = "document.querySelector('form[action=\"/admin/knowledge/care/retry\"] button').click()"
    browser.execute_script(retry)
    until(browser, lambda d: "notice=retrying" in d.current_url)
    assert "failed" in until(browser, care_done) and "no such file or folder" in browser.page_source
    away.rename(folder)
    browser.execute_script(retry)
    until(browser, lambda d: "notice=retrying" in d.current_url)
    assert "success" in until(browser, care_done)
    browser.find_element(By.LINK_TEXT, "Upload the product catalog").click()
    browser.find_element(By.ID, "catalog").send_keys(str(catalog))
    browser.find_element(By.CSS_SELECTOR, "form.qa button[type=submit]").click()
    until(browser, lambda d: "notice=catalog" in d.current_url)
    assert "Catalog indexed. 1 product." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    browser.save_screenshot(str(IMAGES / "admin-knowledge.png"))

    browser.switch_to.new_window("tab")
    browser.get(url)
    until(browser, lambda d: "question to get started" in d.find_element(By.ID, "log").text)
    assert "microfibre" in ask(browser, "How do I clean a brass lamp base?")["text"]
    assert "349.00" in ask(browser, "How much is the Comet Pendant Lamp?")["text"]
