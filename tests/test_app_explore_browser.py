"""A real browser on the Explore page: caption the examples and open them, see the table and the
corpus plots, click a row and see that video's single-video view (frames, captions, plots); then
open a results file with malformed lines from the allowed folder and filter it.

Saves a screenshot to the test's temp folder, or to docs/explore.png with C4C_UPDATE_SCREENSHOT=1
(for the README, on the shipped zoo: C4C_TEST_ZOO=weights/demo)."""

from __future__ import annotations

import os
import time
from pathlib import Path


from _app_harness import running_app  # noqa: F401  (fixture)
from explore_helpers import CORPUS, write_jsonl
from test_app_browser import browser  # noqa: F401  (fixture; skips the module without chromium)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait as _Wait  # noqa: E402

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "explore.png"


def rows(driver, table: str) -> dict[int, list[str]]:
    """data-row -> cell texts of a table (the visible grid, not Gradio's hidden sizing copy); read
    again if the table re-renders while it is being read."""
    for _ in range(5):
        out: dict[int, list[str]] = {}
        try:
            for cell in driver.find_elements(By.CSS_SELECTOR, f"#{table} [role=gridcell][data-row]"):
                out.setdefault(int(cell.get_attribute("data-row")), []).append(cell.text)
            return out
        except StaleElementReferenceException:
            time.sleep(0.5)
    raise AssertionError(f"#{table} kept re-rendering")


def WebDriverWait(driver, timeout):  # noqa: N802  (selenium's, ignoring elements replaced by a re-render)
    return _Wait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


def plots(driver, *ids: str) -> int:
    return sum(len(driver.find_elements(By.CSS_SELECTOR, f"#{i} img")) for i in ids)


def type_into(driver, elem_id: str, text: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input, #{elem_id} textarea")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def test_explore_the_examples_then_a_file(running_app, browser, tmp_path):
    d = browser
    n = len(running_app.examples)
    d.get(running_app.url + "explore")
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.ID, "c4c-x-examples"))
    d.find_element(By.ID, "c4c-x-examples").click()  # runs the zoo over the examples
    WebDriverWait(d, 300).until(lambda d: len(rows(d, "c4c-x-table")) == n)
    WebDriverWait(d, 60).until(lambda d: plots(d, "c4c-x-wins", "c4c-x-margins", "c4c-x-agreement") == 3)
    summary = d.find_element(By.ID, "c4c-x-summary").text
    assert f"{n} videos, {n} match the filters" in summary
    table = rows(d, "c4c-x-table")
    assert [r[1] for r in table.values()] == [p.name for p in running_app.examples]
    assert all(r[2] in running_app.decoders and r[3] for r in table.values())  # winner, caption

    # Choosing a row opens the single-video view from the stored result, frames decoded again.
    first = d.find_elements(By.CSS_SELECTOR, "#c4c-x-table [role=gridcell][data-row='0']")[3]
    first.click()
    WebDriverWait(d, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#c4c-x-winner .c4c-winner-caption"))
    WebDriverWait(d, 60).until(lambda d: plots(d, "c4c-x-loo", "c4c-x-heatmap") == 2
                               and d.find_elements(By.CSS_SELECTOR, "#c4c-x-frames img"))
    assert d.find_element(By.CSS_SELECTOR, "#c4c-x-winner .c4c-winner-caption").text == table[0][3]
    assert "won because" in d.find_element(By.ID, "c4c-x-why").text
    assert len(rows(d, "c4c-x-detail")) == len(running_app.decoders)
    assert "frames decoded again" in d.find_element(By.ID, "c4c-x-head").text
    out = SCREENSHOT if os.environ.get("C4C_UPDATE_SCREENSHOT") == "1" else tmp_path / "explore.png"
    d.execute_script("window.scrollTo(0, 0)")
    assert d.save_screenshot(str(out)) and out.stat().st_size > 10_000

    # A file from the allowed folder, with a malformed line: reported by number, the rest listed.
    write_jsonl(running_app.explore_dir / "browser.jsonl", CORPUS, {1: "{torn"})
    assert d.find_elements(By.CSS_SELECTOR, "#c4c-x-upload a, #c4c-x-upload .file-name")  # the examples' file
    type_into(d, "c4c-x-name", "browser.jsonl")  # naming a file drops the upload
    WebDriverWait(d, 30).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#c4c-x-upload a, #c4c-x-upload .file-name"))
    d.find_element(By.ID, "c4c-x-open").click()
    WebDriverWait(d, 60).until(lambda d: "browser.jsonl" in d.find_element(By.ID, "c4c-x-summary").text)
    summary = d.find_element(By.ID, "c4c-x-summary").text
    assert "4 videos, 4 match" in summary and "line 2: not valid JSON" in summary
    type_into(d, "c4c-x-search", "dog")
    WebDriverWait(d, 60).until(lambda d: len(rows(d, "c4c-x-table")) == 2)
    assert [r[1] for r in rows(d, "c4c-x-table").values()] == ["clips/v0.mp4", "clips/v2.mp4"]

    # The stored result is shown even though the video is not at hand.
    d.find_elements(By.CSS_SELECTOR, "#c4c-x-table [role=gridcell][data-row='1']")[3].click()
    WebDriverWait(d, 60).until(lambda d: "clips/v2.mp4" in d.find_element(By.ID, "c4c-x-head").text)
    assert "not at hand" in d.find_element(By.ID, "c4c-x-head").text
    assert d.find_element(By.CSS_SELECTOR, "#c4c-x-winner .c4c-winner-caption").text == "a yellow star changes colour"
