"""The web chat in a real browser: Debian's headless Chromium driven through its
chromedriver (Selenium), against the real app on a loopback port over a copy of the
sample index, its handoffs going to a recording agents' desk. A visitor asks, follows up,
asks for a human, sees what the agent writes without reloading, and reloads: every bubble
comes back in order with its sources and the button they pressed; "Load earlier" brings
back what is past the newest page; a 25,000-character paste is named as too long and
never sent cut; the page fits a 390 px phone. The desktop
screenshot is the README's (docs/images/web-chat.png).

Nothing downloads a browser: scripts/install-test-services installs the Debian packages.
Without them these tests are skipped on a developer's machine and fail in CI.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

import httpx

from adapters.app import create_app
from adapters.web import PAGE
from bot.settings import DEFAULT_PROFILES
from tests.adapters.test_web import HANDOFF, open_runtime
from tests.bot.test_handoff import Desk
from tests.fakes.server import serve

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import JavascriptException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "web-chat.png"
WAIT = 120  # seconds: an answer on a busy 2-core machine, the first one loading the embedder
# The machine's network is closed: nothing in the background may try to reach it.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")
QUESTION, FOLLOW_UP = "How long do I have to return an item?", "And from Belgium?"

# The page as the visitor sees it: each bubble's role, text, source links and notes.
BUBBLES = """
return [...document.querySelectorAll('#log > .msg:not(.typing):not(.streaming)')].map((m) => ({
  role: m.classList.contains('user') ? 'user' : 'bot',
  text: (m.querySelector('.answer') || m.querySelector('.bubble')).innerText.trim(),
  sources: [...m.querySelectorAll('.sources a')].map((a) => a.href),
  note: m.querySelector('.handoff-note')?.innerText || '',
  chosen: [...m.querySelectorAll('.tools .chosen')].map((b) => b.getAttribute('aria-label')),
}));
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, sample_index_path, embedder):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: scripts/install-test-services installs them")
        pytest.skip("chromium and chromium-driver are not installed (scripts/install-test-services)")
    home = tmp_path_factory.mktemp("home")
    (home / "profiles.toml").write_text(DEFAULT_PROFILES.read_text() + HANDOFF)
    runtime = open_runtime(home, sample_index_path, embedder, SWITCHBOARD_PROFILES=str(home / "profiles.toml"))
    desk = Desk()
    runtime.engine.handoffs.add_desk("test", desk)
    with serve(create_app(runtime)) as url:
        yield Site(url, runtime.engine.handoffs, desk)


class Site:
    """The served app, and the agents' side of its handoffs."""

    def __init__(self, url: str, handoffs, desk: Desk):
        self.url, self.handoffs, self.desk = url, handoffs, desk

    def agent(self, conversation: str, *texts: str) -> None:
        """Alice claims the conversation's escalation and writes `texts` to the visitor."""
        [escalation] = [e for e in self.desk.posts if e.conversation == f"web:{conversation}"]

        async def act() -> None:
            await self.handoffs.claim(escalation, "agent1", "Alice")
            for text in texts:
                await self.handoffs.from_agent(escalation, "agent1", text)
        asyncio.run(act())


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def until(driver, condition, timeout: float = WAIT):
    """Wait for `condition(driver)` to be truthy (bounded), returning it."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(JavascriptException,)).until(
        condition)


def bubbles(driver) -> list[dict]:
    return driver.execute_script(BUBBLES)


def idle(driver) -> bool:
    """No request in flight: the composer is usable and no bubble is still being written."""
    return driver.execute_script(
        "return !document.querySelector('#input').disabled && !document.querySelector('.typing, .streaming')")


def ask(driver, text: str) -> dict:
    """Type `text`, send it with Enter, wait for its reply; the reply's bubble."""
    count = len(bubbles(driver))
    field = driver.find_element(By.ID, "input")
    field.send_keys(text)
    field.send_keys(Keys.ENTER)
    until(driver, lambda d: idle(d) and len(bubbles(d)) >= count + 2)
    shown = bubbles(driver)
    assert shown[count] == {"role": "user", "text": text, "sources": [], "note": "", "chosen": []}
    return shown[count + 1]


def paste(driver, text: str) -> None:
    """Insert `text` into the composer as a paste does (through the editing path that
    applies a textarea's maxlength, unlike setting its value from script)."""
    driver.find_element(By.ID, "input").click()
    driver.execute_cdp_cmd("Input.insertText", {"text": text})


def conversation_of(driver) -> str:
    return driver.execute_script("return localStorage.getItem('switchboard.conversation')")


def page_errors(driver) -> list[str]:
    """What the console reported as errors (a first visit asks for no conversation: no 404)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_a_conversation_comes_back_as_it_was_and_a_long_paste_is_not_cut(site, browser):
    viewport(browser, 960, 1180)  # the whole conversation fits: the README's screenshot shows it all
    browser.get(site.url)
    until(browser, lambda d: "question to get started" in d.find_element(By.ID, "log").text)

    answer = ask(browser, QUESTION)
    assert "30 days" in answer["text"] and answer["sources"]
    assert all(url.startswith("https://help.maison-lumiere.example/") for url in answer["sources"])
    follow_up = ask(browser, FOLLOW_UP)  # read with the question before it: the return shipping table
    assert "€7.90" in follow_up["text"] and follow_up["sources"]
    helpful = browser.find_elements(By.CSS_SELECTOR, "#log > .msg.bot button[aria-label='Helpful']")[0]
    helpful.click()
    until(browser, lambda d: "Thanks for your feedback" in d.find_element(By.ID, "log").text)

    browser.find_element(By.ID, "human").click()
    until(browser, lambda d: idle(d) and len(bubbles(d)) == 5)
    assert "asked a member of our team" in bubbles(browser)[-1]["text"]
    # The page fetches what the agent writes while a person has the conversation: no reload.
    site.agent(conversation_of(browser), "Hello! A **prepaid label** is on its way to you.")
    until(browser, lambda d: len(bubbles(d)) == 7)
    before = bubbles(browser)
    assert [b["text"] for b in before[-2:]] == ["Alice from our team has joined the conversation.",
                                                "Alice: Hello! A prepaid label is on its way to you."]

    browser.refresh()
    until(browser, lambda d: len(bubbles(d)) == 7)
    after = bubbles(browser)
    assert after == before
    assert after[1]["chosen"] == ["Helpful"] and browser.find_elements(
        By.CSS_SELECTOR, "#log > .msg.bot button[aria-label='Not helpful']")[0].get_attribute("disabled")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    paste(browser, "x" * 25_000)
    assert browser.execute_script("return document.querySelector('#input').value.length") == 25_000
    browser.find_element(By.ID, "input").send_keys(Keys.ENTER)
    error = until(browser, lambda d: d.find_element(By.ID, "too-long").is_displayed()
                  and d.find_element(By.ID, "too-long"))
    assert "25,000 characters" in error.text and "20,000" in error.text
    assert browser.execute_script("return document.querySelector('#input').value.length") == 25_000
    assert bubbles(browser) == after  # nothing was sent, cut or not
    browser.execute_script("document.querySelector('#input').select()")
    browser.find_element(By.ID, "input").send_keys(Keys.BACKSPACE)
    until(browser, lambda d: not d.find_element(By.ID, "too-long").is_displayed())
    assert page_errors(browser) == []


def test_the_page_fits_a_390_px_phone(site, browser, tmp_path):
    viewport(browser, 390, 844, mobile=True)
    browser.get(site.url)
    until(browser, lambda d: "question to get started" in d.find_element(By.ID, "log").text)
    ask(browser, QUESTION)
    browser.find_element(By.ID, "human").click()
    until(browser, lambda d: idle(d) and len(bubbles(d)) == 3)
    browser.save_screenshot(str(tmp_path / "web-chat-390.png"))
    paste(browser, "y" * 20_001)
    browser.find_element(By.ID, "send").click()
    until(browser, lambda d: d.find_element(By.ID, "too-long").is_displayed())
    browser.save_screenshot(str(tmp_path / "web-chat-390-too-long.png"))
    # Nothing sticks out to the right: no sideways scrolling, every control on screen.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    outside = browser.execute_script("""
        return [...document.querySelectorAll('header *, #log .bubble, #composer *')]
          .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > 390.5)
          .map((e) => e.id || e.className || e.tagName);""")
    assert outside == []
    assert page_errors(browser) == []


def test_earlier_messages_come_back_a_page_at_a_time(site, browser, tmp_path):
    conversation, sent = "earlier-pages-0001", PAGE // 2 + 5  # a question and its reply each: past one page
    with httpx.Client(base_url=site.url, timeout=60) as client:
        for n in range(sent):
            assert client.post("/api/chat", json={"conversation": conversation, "text": f"message {n}"}).is_success
    browser.get(site.url)
    browser.execute_script(f"localStorage.setItem('switchboard.conversation', '{conversation}')")
    browser.refresh()
    until(browser, lambda d: len(bubbles(d)) == PAGE)
    assert [b["text"] for b in bubbles(browser)[-2:-1]] == [f"message {sent - 1}"]
    more = browser.find_element(By.CSS_SELECTOR, "#log .more button")
    browser.execute_script("arguments[0].scrollIntoView()", more)
    browser.save_screenshot(str(tmp_path / "load-earlier.png"))
    more.click()
    until(browser, lambda d: len(bubbles(d)) == 2 * sent)
    assert [b["text"] for b in bubbles(browser) if b["role"] == "user"] == [f"message {n}" for n in range(sent)]
    assert not browser.find_elements(By.CSS_SELECTOR, "#log .more")


def test_a_hello_is_greeted_with_nothing_to_rate_and_an_answer_can_be_rated(site, browser):
    browser.get(site.url)
    until(browser, lambda d: "question to get started" in d.find_element(By.ID, "log").text)
    greeting = ask(browser, "hello")
    assert "Hello" in greeting["text"] and greeting["sources"] == []
    assert not browser.find_elements(By.CSS_SELECTOR, "#log > .msg.bot")[-1].find_elements(By.CSS_SELECTOR, "button")
    assert ask(browser, QUESTION)["sources"]
    assert browser.find_elements(By.CSS_SELECTOR, "#log > .msg.bot")[-1].find_elements(
        By.CSS_SELECTOR, "button[aria-label='Helpful']")
