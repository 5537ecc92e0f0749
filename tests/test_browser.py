"""The web front in a real browser (issue 24): headless Chromium driven by Selenium through
Debian's chromium-driver, against `csat serve`'s application on a real port. Few and focused:
a rater fills the questionnaire (a reason the answer needs, left out, is refused in the page),
the quality office watches the round's 回收率 move, a unit manager opens an explanation.

``CSAT_SCREENSHOTS=DIR`` keeps a screenshot of each page looked at."""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from csat.engine import Engine

PASSWORD = "correct horse battery"


def _driver_or_skip():
    chromedriver = shutil.which("chromedriver")
    if chromedriver is None or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            raise RuntimeError("chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium/chromedriver here (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1400",
                "--lang=zh-CN"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture
def served(tmp_path):
    import uvicorn

    from csat.web import create_app
    db = str(tmp_path / "csat.db")
    with Engine.open(db) as e:
        e.append([{"type": "unit", "id": "div-a", "kind": "division"}]
                 + [{"type": "unit", "id": f"ws-{i}", "kind": "workshop", "name": f"{i}号车间"} for i in (1, 2)]
                 + [{"type": "unit", "id": f"dept-{i}", "kind": "department", "name": f"部门{i}", "parent": "div-a"}
                    for i in range(2)])
        e.append([{"type": "round", "id": "r1", "ruleset": "plant-50", "period": "2026-03", "due": "2099-03-28",
                   "rule": {"raters": "workshop", "subjects": "department"}}])
        e.accounts.add("qo", "office", PASSWORD)
        e.accounts.add("ma", "manager", PASSWORD, unit="div-a")
        links = {r["rater"]: r["token"] for r in e.round_links("r1")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db, secret="browser-test"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    driver = _driver_or_skip()
    driver.implicitly_wait(5)
    try:
        yield driver, f"http://127.0.0.1:{port}", links
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(10)


def shot(driver, name: str) -> None:
    folder = os.environ.get("CSAT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def sign_in(driver, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button").click()
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, 10).until(lambda d: "/login" not in d.current_url)  # signed in before going on


def test_a_month_in_the_browser(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    driver, base, links = served

    sign_in(driver, base, "qo")  # the office: nobody has answered yet
    driver.get(f"{base}/rounds/r1")
    assert "回收率 0.0 %" in driver.find_element(By.ID, "rate").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#missing tbody tr")) == 4

    driver.delete_all_cookies()  # a rater, by their link: no account
    driver.get(f"{base}/r/{links['ws-1']}")
    for d in ("dept-0", "dept-1"):
        for item in ("attitude", "solution"):
            Select(driver.find_element(By.NAME, f"{d}::{item}")).select_by_value("满意")
        Select(driver.find_element(By.NAME, f"{d}::response")).select_by_value("满意")
    Select(driver.find_element(By.NAME, "dept-0::response")).select_by_value("不满意")  # needs a reason
    reason = driver.find_element(By.NAME, "dept-0::response::reason")
    assert reason.get_attribute("required") == "true"  # marked as they answer
    driver.find_element(By.CSS_SELECTOR, "#questionnaire > button").click()
    assert driver.execute_script("return arguments[0].validity.valueMissing", reason)  # refused in the page
    assert "已提交" not in driver.page_source
    shot(driver, "rater-form")
    reason.send_keys("领料等了三天")
    driver.find_element(By.CSS_SELECTOR, "#questionnaire > button").click()
    assert "已提交" in driver.find_element(By.CSS_SELECTOR, "p.done").text
    shot(driver, "rater-sent")

    sign_in(driver, base, "qo")  # the office sees the 回收率 move
    driver.get(f"{base}/rounds/r1")
    assert "回收率 50.0 %" in driver.find_element(By.ID, "rate").text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#missing tbody tr")) == 2
    shot(driver, "round-progress")

    sign_in(driver, base, "ma")  # the manager opens dept-0's explanation from their scores
    driver.get(f"{base}/scores?period=2026-03")
    driver.find_element(By.CSS_SELECTOR, 'a[href^="/explain/plant-50/dept-0/"]').click()
    page = driver.find_element(By.TAG_NAME, "main").text
    assert "部门0" in page and "计算过程" in page and "ws-1" not in page  # the rater is not named to them
    shot(driver, "manager-explanation")
