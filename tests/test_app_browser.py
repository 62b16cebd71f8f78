"""A real browser on the running app: pick an example, see frames, table and highlighted winner;
then change the metric and press Caption. Debian's chromium + chromedriver, headless, no downloads.

Saves a screenshot to the test's temp folder, or to docs/screenshot.png with C4C_UPDATE_SCREENSHOT=1
(for the README, run it on the shipped zoo: C4C_TEST_ZOO=weights/demo)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from _app_harness import running_app  # noqa: F401  (fixture)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WINNER_BG = "rgb(255, 243, 176)"  # view.WINNER_STYLE's #fff3b0 as the browser reports it
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"

webdriver = pytest.importorskip("selenium.webdriver")
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="c4c-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,1900"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def table_rows(driver) -> dict[int, list]:
    """data-row -> its cells (the visible grid, not Gradio's hidden sizing copy)."""
    rows: dict[int, list] = {}
    for cell in driver.find_elements(By.CSS_SELECTOR, "#c4c-table [role=gridcell][data-row]"):
        rows.setdefault(int(cell.get_attribute("data-row")), []).append(cell)
    return rows


def shows_result(driver, n_frames: int, n_rows: int, metric_label: str) -> bool:
    meta = driver.find_elements(By.CSS_SELECTOR, "#c4c-winner .c4c-winner-meta")
    return (bool(meta) and metric_label in meta[0].text
            and len(driver.find_elements(By.CSS_SELECTOR, "#c4c-frames img")) == n_frames
            and len(table_rows(driver)) == n_rows)


def test_example_shows_frames_table_and_highlighted_winner(running_app, browser, tmp_path):
    from c4c.video.frames import sample_frames
    d = browser
    n_dec = len(running_app.decoders)
    pick = running_app.examples[0]
    n_frames = len(sample_frames(pick, max_frames=20).timestamps)
    d.get(running_app.url)
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.ID, "c4c-run"))
    example = WebDriverWait(d, 30).until(
        lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "button.gallery-item") if b.text.strip() == pick.stem])
    example[0].click()  # cached lazily: the first click computes it
    WebDriverWait(d, 180).until(lambda d: shows_result(d, n_frames, n_dec, "CIDEr-D"))

    rows = table_rows(d)
    starred = [r for r, cells in rows.items() if cells[1].text.startswith("\u2605")]
    assert len(starred) == 1
    for r, cells in rows.items():
        lit = [WINNER_BG in (c.get_attribute("style") or "") for c in cells]
        assert all(lit) if r == starred[0] else not any(lit), f"row {r} highlight {lit}"
    winner_caption = d.find_element(By.CSS_SELECTOR, "#c4c-winner .c4c-winner-caption").text
    assert winner_caption == rows[starred[0]][2].text
    why = d.find_element(By.ID, "c4c-why").text  # the vote's words, or the combined rule's (a zoo with a text tower)
    assert "won because" in why or "won on agreement and grounding" in why
    assert len(d.find_elements(By.CSS_SELECTOR, "#c4c-loo img, #c4c-heatmap img")) == 2

    # The live path (not the example cache): another metric, then Caption.
    d.find_element(By.XPATH, "//label[.//span[text()='BLEU-4']]").click()
    d.find_element(By.ID, "c4c-run").click()
    WebDriverWait(d, 180).until(lambda d: shows_result(d, n_frames, n_dec, "BLEU-4"))
    headers = [h.text for h in d.find_elements(By.CSS_SELECTOR, "#c4c-table thead th")]
    assert any("BLEU-4" in h for h in headers)

    d.find_element(By.XPATH, "//label[.//span[text()='CIDEr-D']]").click()  # back to the default for the picture
    d.find_element(By.ID, "c4c-run").click()
    WebDriverWait(d, 180).until(lambda d: shows_result(d, n_frames, n_dec, "CIDEr-D"))
    out = SCREENSHOT if os.environ.get("C4C_UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
    d.execute_script("window.scrollTo(0, 0)")
    assert d.save_screenshot(str(out)) and out.stat().st_size > 10_000
