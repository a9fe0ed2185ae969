"""End to end in a real headless Chromium (Debian's `chromium`), driven with Playwright's Python
package (`pip install playwright`; no Playwright browser download: it launches /usr/bin/chromium).

Opens the page, runs Verify, Summarize, Compare and a batch evaluation, checks what a user sees (words
not broken in the flagged spans, table headers on one line, whole-row chart ticks, real headers on empty
tables), that refused input shows its message in the page and clears stale results, and saves a
screenshot of each tab. Screenshots go to the test's tmp dir,
or to HALLUGUARD_SCREENSHOT_DIR when set (how docs/img/ is made):

    HALLUGUARD_SCREENSHOT_DIR=docs/img python -m pytest -q tests/test_app_browser.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system chromium)")

from halluguard.app import AppConfig, build_demo, launch_kwargs  # noqa: E402
from halluguard.app.ui import EXAMPLE_DOC, EXAMPLE_DOC_2, VERIFY_EXAMPLES  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT_MS = 120_000  # the first event loads MiniLM on a shared 2-core CPU


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    cfg = AppConfig(output_dir=str(tmp_path_factory.mktemp("app")), port=_free_port())
    demo = build_demo(cfg)
    kw = launch_kwargs(cfg)
    kw.update(prevent_thread_lock=True, quiet=True)
    _, u, _ = demo.launch(**kw)
    yield u
    demo.close()


@pytest.fixture(scope="module")
def page(url):
    with sync_api.sync_playwright() as p:
        # A fresh profile dir per launch is Playwright's default; the flags keep Chromium off the network.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(url)
        pg.get_by_role("tab", name="Summarize").wait_for()
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("HALLUGUARD_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _shot(page, shots: Path, name: str, top=None) -> Path:
    """Screenshot of the viewport; `top` (a locator) is scrolled to the top first, else the page top."""
    if top is None:
        page.evaluate("window.scrollTo(0, 0)")
    else:
        top.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # let the scroll and charts settle
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5_000
    return path


def _no_error_badges(page) -> None:
    """No component shows Gradio's bare red "Error" status (what a failed event left on its outputs)."""
    badges = page.locator("[data-testid=status-tracker] .error")
    assert sum(b.is_visible() for b in badges.all()) == 0


def _flows_as_text(page, selector: str) -> None:
    """The flagged-spans box wraps between words, never inside one ("loggerhea|d")."""
    style = page.locator(f"{selector} .textfield").evaluate(
        "e => { const c = getComputedStyle(e); return [c.display, c.wordBreak] }")
    assert style == ["block", "normal"], style


def _y_ticks(page, chart: str) -> list[str]:
    axis = page.locator(f"{chart} [aria-roledescription=axis][aria-label^='Y-axis'] .role-axis-label text")
    return axis.evaluate_all("els => els.map(e => e.textContent)")


def test_empty_page_shows_real_headers(page):
    _tab(page, "Batch evaluate")
    assert page.locator("#b-results th").all_inner_texts() == ["row", "id", "score", "label", "flagged", "summary", "spans"]
    assert not page.get_by_text("Preview (first rows)").is_visible()  # hidden until a file comes
    _tab(page, "Compare")
    heads = page.locator("th").filter(has_text="P(hallucination)")
    assert heads.count() >= 1 and page.locator("th", has_text=re.compile(r"^\s*1\s*$")).count() == 0


def test_verify_in_browser(page, shots):
    _tab(page, "Verify")
    page.locator("#v-src textarea").fill(EXAMPLE_DOC)
    page.locator("#v-sum textarea").fill(VERIFY_EXAMPLES[1][1])  # wrong vote count, cost and name
    page.locator("#v-btn").click()
    overall = page.locator("#v-overall")
    overall.get_by_text("hallucinated").wait_for()
    assert "P(hallucination)" in overall.inner_text()
    assert page.locator("#v-hl").get_by_text("9", exact=True).count() >= 1  # the wrong number is highlighted
    _flows_as_text(page, "#v-hl")
    _shot(page, shots, "verify")


def test_summarize_example_in_browser(page, shots):
    _tab(page, "Summarize")
    page.get_by_text(EXAMPLE_DOC_2[:40]).first.click()  # a clickable example fills the document
    sync_api.expect(page.locator("#s-doc textarea")).to_have_value(EXAMPLE_DOC_2)
    page.locator("#s-btn").click()
    page.locator("#s-overall").get_by_text("Extractive").wait_for()
    _flows_as_text(page, "#s-hl")
    # the box is as wide as its column: a word cut at its edge would leave one text line per row of
    # the box; whole words give more lines only when there is more text. Check the line boxes.
    lines = page.locator("#s-hl .textfield .text").first.evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length }")
    assert lines >= 2
    _shot(page, shots, "summarize")


def test_compare_in_browser(page, shots):
    _tab(page, "Compare")
    page.locator("#c-doc textarea").fill(EXAMPLE_DOC)
    page.locator("#c-btn").click()
    page.get_by_text("Scores side by side").wait_for()
    page.get_by_text("extractive (1 sentence)").last.wait_for()
    page.get_by_text("P(hallucination)").first.wait_for()
    _flows_as_text(page, "#c-l-hl")
    _shot(page, shots, "compare", top=page.locator("#c-btn"))


def test_batch_in_browser(page, shots, tmp_path):
    _tab(page, "Batch evaluate")
    rows = [{"id": f"n{i}", "document": EXAMPLE_DOC,
             "summary": ["The council voted 7 to 2 to build a library.", "The council voted 9 to 0 for a stadium."][i % 2],
             "reference": "The council voted 7 to 2 for a new library.", "label": i % 2} for i in range(8)]
    good = tmp_path / "rows.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    page.locator("#b-file input[type=file]").set_input_files(str(good))
    page.locator("#b-info").get_by_text("8 rows").wait_for()
    page.locator("#b-btn").click()
    page.locator("#b-status").get_by_text(re.compile("^done:")).wait_for()
    page.locator("#b-metrics").get_by_text("balanced accuracy").wait_for()
    files = page.locator("#b-files")
    for name in ("results.csv", "results.jsonl", "report.html"):
        files.get_by_text(name).first.wait_for()
    page.wait_for_timeout(500)  # the charts draw after their data arrives
    for chart in ("#b-hist", "#b-labels"):  # counts: whole-row ticks only
        ticks = _y_ticks(page, chart)
        assert ticks and all(t.isdigit() for t in ticks), (chart, ticks)
    border = page.locator("#b-metrics td").first.evaluate("e => getComputedStyle(e).borderTopColor")
    assert border not in ("rgb(0, 0, 0)", "rgb(31, 41, 55)"), border  # the theme's border, not black
    _shot(page, shots, "batch", top=page.locator("#b-btn"))


def test_results_headers_stay_on_one_line(page, tmp_path):
    """Long summaries on a 1024 px screen squeezed the short columns until "row" wrapped as "ro|w"."""
    page.set_viewport_size({"width": 1024, "height": 900})
    try:
        page.reload()
        _tab(page, "Batch evaluate")
        rows = tmp_path / "long.jsonl"
        rows.write_text("".join(json.dumps({"id": f"doc-{i}", "source": EXAMPLE_DOC_2, "summary": EXAMPLE_DOC_2 * 2}) + "\n"
                                for i in range(3)))
        page.locator("#b-file input[type=file]").set_input_files(str(rows))
        page.locator("#b-info").get_by_text("3 rows").wait_for()
        page.locator("#b-btn").click()
        page.locator("#b-status").get_by_text(re.compile("^done:")).wait_for()
        heads = page.locator("#b-results th .header").evaluate_all(
            "els => els.map(e => [e.textContent.trim(), e.getBoundingClientRect().height / parseFloat(getComputedStyle(e).lineHeight)])")
        assert [h for h, _ in heads] == ["row", "id", "score", "label", "flagged", "summary", "spans"]
        assert all(n < 1.5 for _, n in heads), heads  # each one-word header on one line
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_refused_verify_keeps_its_message_and_clears_the_old_result(page):
    _tab(page, "Verify")
    page.locator("#v-src textarea").fill(EXAMPLE_DOC)
    page.locator("#v-sum textarea").fill(VERIFY_EXAMPLES[1][1])
    page.locator("#v-btn").click()
    page.locator("#v-overall").get_by_text("hallucinated").wait_for()
    page.locator("#v-sum textarea").fill("")
    page.locator("#v-btn").click()
    page.locator("#v-error").get_by_text("summary is empty").wait_for()
    page.wait_for_timeout(1000)
    assert page.locator("#v-error").is_visible()  # in the page, not a toast that fades
    assert "HALLUCINATED" not in page.locator("#v-overall").inner_text()  # the old verdict is gone
    assert page.locator("#v-hl").get_by_text("9", exact=True).count() == 0
    _no_error_badges(page)
    page.locator("#v-sum textarea").fill(VERIFY_EXAMPLES[0][1])
    page.locator("#v-btn").click()  # the next action hides the message
    page.locator("#v-overall").get_by_text("faithful").wait_for()
    assert not page.locator("#v-error").is_visible()


def test_bad_upload_shows_a_readable_error(page, tmp_path):
    page.reload()  # a fresh, empty upload box
    _tab(page, "Batch evaluate")
    good = tmp_path / "rows.csv"
    good.write_text("source,summary\n" + "".join(f'"{EXAMPLE_DOC}",The council voted 7 to 2.\n' for _ in range(3)))
    page.locator("#b-file input[type=file]").set_input_files(str(good))
    page.locator("#b-info").get_by_text("3 rows").wait_for()
    page.locator("#b-btn").click()
    page.locator("#b-status").get_by_text(re.compile("^done:")).wait_for()
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("source,summary\nCaf\xe9,Th\xe9\n".encode("latin-1"))
    page.locator("#b-file button[aria-label='Clear']:visible").first.click()  # the box's ×: room for a new file
    page.locator("#b-file input[type=file]").set_input_files(str(bad))
    error = page.locator("#b-upload-error")
    error.get_by_text("not valid UTF-8").wait_for()  # a readable error in the page, not a crash
    page.wait_for_timeout(1000)
    assert error.is_visible() and "Cannot run this" in error.inner_text()
    assert page.locator("#b-status").inner_text().strip() == ""  # the earlier run's results are cleared
    assert page.locator("#b-results tbody tr").count() == 0 or "0.2" not in page.locator("#b-results").inner_text()
    _no_error_badges(page)
    assert page.get_by_role("tab", name="Verify").is_visible()  # the page is still alive


def test_too_large_upload_leaves_the_box_usable(page, tmp_path):
    page.reload()
    _tab(page, "Batch evaluate")
    big = tmp_path / "big.csv"
    with big.open("w") as f:  # just over the default 20 MB: refused by the browser before it is sent
        f.write("source,summary\n")
        f.write(("x" * 1023 + "\n") * (21 * 1024))
    page.locator("#b-file input[type=file]").set_input_files(str(big))
    page.get_by_text("exceed the maximum allowed size").first.wait_for()  # gradio's own toast says why
    page.wait_for_timeout(500)
    _no_error_badges(page)
    assert not page.locator("#b-file").get_by_text("Error", exact=True).is_visible()
    good = tmp_path / "rows.jsonl"
    good.write_text(json.dumps({"source": EXAMPLE_DOC, "summary": "The council voted 7 to 2."}) + "\n")
    page.locator("#b-file input[type=file]").set_input_files(str(good))
    page.locator("#b-info").get_by_text("1 rows").wait_for()  # and the next file goes through
