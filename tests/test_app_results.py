"""The app's Results tab back end (halluguard/app/results.py): a verdict.json or an ablation results.json
becomes a markdown table and PNG figures under the app's output folder; anything else is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from halluguard.app.results import load_results

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_verdict_json_gives_its_table_and_figure(tmp_path):
    view = load_results(ROOT / "examples/sft_vs_dpo/verdict.json", tmp_path)
    report = json.loads((ROOT / "examples/sft_vs_dpo/verdict.json").read_text())
    assert view.kind == "verdict" and f"**{report['verdict']}**" in view.markdown and report["reason"] in view.markdown
    assert len(view.figures) == 1 and Path(view.figures[0]).read_bytes()[:8] == PNG_MAGIC
    assert sorted(Path(f).name for f in view.files) == ["verdict.png", "verdict.svg"]
    assert all(Path(f).is_relative_to(tmp_path / "results") for f in view.files)  # the app's allowed output folder
    assert view.figures_html().startswith('<img src="data:image/png;base64,iVBORw0KGgo')


def test_ablation_results_give_one_figure_per_varied_factor(tmp_path):
    base = {"factor": "baseline", "variant": "baseline", "beta": 0.1, "learning_rate": 5e-6, "quantization": "nf4",
            "train_size": None, "global_step": 10, "hallucination_rate": 20.0}
    rows = [base, dict(base, factor="beta", variant="beta=0.3", beta=0.3, hallucination_rate=15.0),
            dict(base, factor="quantization", variant="quantization=int8", quantization="int8", hallucination_rate=21.0)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"kind": "ablation", "rows": rows}))
    view = load_results(path, tmp_path / "app")
    assert view.kind == "ablation" and "| beta=0.3 |" in view.markdown
    assert sorted(Path(p).name for p in view.figures) == ["ablation_beta.png", "ablation_quantization.png"]
    path.write_text(json.dumps(rows[:1]))  # a bare list of rows works too; one run only: nothing to plot
    view = load_results(path, tmp_path / "app")
    assert view.figures == [] and "No factor has two measured values" in view.markdown


@pytest.mark.parametrize("content,message", [
    ("{not json", "not a JSON file"),
    ('{"rows": 3}', "neither a verdict.json"),
    ('[{"variant": "x"}]', "neither a verdict.json"),
    ('{"verdict": "partial", "hallucination_rate": {"sft": 1}}', "lacks a field"),
])
def test_other_files_are_refused_with_a_reason(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_results(path, tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "nope.json", tmp_path)


def test_results_tab_through_the_launched_app(tmp_path):
    """The Results tab as an API user calls it: a verdict.json in, its table and figure out; a wrong
    file gives the reason as the error message."""
    pytest.importorskip("gradio_client")
    import socket

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from halluguard.app import AppConfig, build_demo, launch_kwargs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = AppConfig(output_dir=str(tmp_path / "app"), port=port)
    demo = build_demo(cfg)
    try:
        _, url, _ = demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        client = Client(url, verbose=False)
        table, figures, files = client.predict(handle_file(str(ROOT / "examples/sft_vs_dpo/verdict.json")),
                                               api_name="/results")
        report = json.loads((ROOT / "examples/sft_vs_dpo/verdict.json").read_text())
        assert f"**{report['verdict']}**" in table and "| hallucination rate (%) |" in table
        assert figures.count("<img src=\"data:image/png;base64,") == 1
        assert sorted(Path(f).name for f in files) == ["verdict.png", "verdict.svg"]
        assert Path(next(f for f in files if f.endswith(".png"))).read_bytes()[:8] == PNG_MAGIC
        bad = tmp_path / "other.json"
        bad.write_text('{"rows": 1}')
        with pytest.raises(AppError, match="neither a verdict.json"):
            client.predict(handle_file(str(bad)), api_name="/results")
    finally:
        demo.close()


@pytest.mark.browser
def test_results_tab_in_a_real_browser(tmp_path):
    """In headless Chromium: the uploaded verdict's figure is displayed (an image that loaded, not a broken
    link) beside its table; a wrong file's reason stays in the page."""
    import os
    import shutil
    import socket

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from halluguard.app import AppConfig, build_demo, launch_kwargs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = AppConfig(output_dir=str(tmp_path / "app"), port=port)
    demo = build_demo(cfg)
    shots = Path(os.environ.get("HALLUGUARD_SCREENSHOT_DIR") or tmp_path)
    try:
        _, url, _ = demo.launch(**launch_kwargs(cfg), prevent_thread_lock=True, quiet=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_role("tab", name="Results").click()
            page.locator("#r-file input[type=file]").set_input_files(str(ROOT / "examples/sft_vs_dpo/verdict.json"))
            img = page.locator("#r-figures img").first
            img.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 500", arg=img.element_handle())
            box = img.bounding_box()  # shown whole: the figure's aspect ratio, not cropped into a thumbnail
            assert box["width"] > 600 and box["width"] / box["height"] == pytest.approx(
                img.evaluate("i => i.naturalWidth / i.naturalHeight"), rel=0.02)
            assert "hallucination rate (%)" in page.locator("#r-table").inner_text()
            page.screenshot(path=str(shots / "results_tab.png"), full_page=True)
            bad = tmp_path / "notes.json"
            bad.write_text("[1, 2]")
            page.locator("#r-file button[aria-label='Clear']").first.click()  # the next file replaces this one
            page.locator("#r-file input[type=file]").set_input_files(str(bad))
            page.locator("#r-error").get_by_text("neither a verdict.json").wait_for()
            browser.close()
    finally:
        demo.close()
