"""Figures (halluguard/plots.py) and the HTML report: each figure is drawn by matplotlib with the data
it was given (read back from the SVG text), written as PNG + SVG; the report is rendered from its
template with gold labels beside predictions; the template ships in a non-editable install."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from halluguard import plots
from halluguard.app.report import render_batch_report

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _verdict(verdict="partial", sft=50.0, dpo=20.0):
    return {"n_documents": 10, "verdict": verdict, "reason": "DPO is 30.00 points better (> 2) but p = 0.25",
            "hallucination_rate": {"sft": sft, "dpo": dpo, "diff_points": sft - dpo, "ci_points": [0.0, 60.0],
                                   "mcnemar": {"p_value": 0.25},
                                   "rate_ci": {"sft": [23.7, 76.3], "dpo": [5.7, 51.0]}}}


def test_verdict_figure_shows_rates_cis_and_the_verdict(tmp_path):
    paths = plots.save_figure(plots.verdict_figure(_verdict()), tmp_path / "verdict")
    assert [p.name for p in paths] == ["verdict.png", "verdict.svg"]
    assert paths[0].read_bytes()[:8] == PNG_MAGIC
    svg = paths[1].read_text()
    for text in ("Verdict: partial", "50.0%", "20.0%", "d = +30.0 points", "McNemar p = 0.25", "Wilson CI",
                 "Why: DPO is 30.00 points better"):
        assert text in svg, text
    # the same figure twice gives the same bytes: committed figures change only with their numbers
    again = plots.save_figure(plots.verdict_figure(_verdict()), tmp_path / "again")
    assert again[1].read_text() == svg


def test_verdict_figure_rejects_what_is_not_a_verdict():
    with pytest.raises(ValueError, match="not a verdict report"):
        plots.verdict_figure({"rows": []})


def _ablation_rows():
    base = {"factor": "baseline", "beta": 0.1, "learning_rate": 5e-6, "quantization": "nf4", "train_size": 1000}
    rows = [dict(base, variant="baseline", hallucination_rate=20.0, eval_loss=0.50)]
    for f, v, hr in (("beta", 0.05, 25.0), ("beta", 0.3, 18.0), ("learning_rate", 1e-6, 22.0),
                     ("quantization", "int8", 19.0), ("train_size", 500, 24.0), ("train_size", 2000, 17.5)):
        rows.append(dict(base, variant=f"{f}={v}", factor=f, **{f: v}, hallucination_rate=hr, eval_loss=0.6))
    return rows


@pytest.mark.parametrize("factor,xlabel,tick", [("beta", "DPO beta", "0.3"), ("learning_rate", "learning rate", None),
                                                ("quantization", "base quantization", "8-bit"),
                                                ("train_size", "training pairs", "2000")])
def test_ablation_figure_per_factor(factor, xlabel, tick):
    fig = plots.ablation_figure(_ablation_rows(), factor, ["hallucination_rate", "eval_loss", "rouge1"])
    assert [ax.get_xlabel() for ax in fig.axes if ax.get_visible()] == [xlabel, xlabel]  # rouge1 unmeasured: no panel
    hr = fig.axes[0]
    assert hr.get_title() == "hallucination rate (%)"
    n_points = {"beta": 3, "learning_rate": 2, "quantization": 2, "train_size": 3}[factor]
    assert len(hr.lines[0].get_xdata()) == n_points  # the factor's variants and the baseline
    if factor == "learning_rate":
        assert hr.get_xscale() == "log"
    svg = plots.figure_svg(fig)
    assert svg.startswith("<svg") and (tick is None or tick in svg)


def test_grid_ablation_plots_the_runs_that_change_one_factor():
    rows = _ablation_rows()
    for r in rows[1:]:
        r["factor"] = "grid"
    rows.append(dict(rows[0], factor="grid", variant="beta=0.3+quantization=int8", beta=0.3, quantization="int8",
                     hallucination_rate=99.0))  # two factors changed: not on the beta line
    fig = plots.ablation_figure(rows, "beta", ["hallucination_rate"])
    assert sorted(fig.axes[0].lines[0].get_ydata()) == [18.0, 20.0, 25.0]


def test_ablation_figure_needs_two_values():
    rows = [r for r in _ablation_rows() if r["factor"] in ("baseline",)]
    assert plots.ablation_figure(rows, "beta", ["hallucination_rate"]) is None


def test_ablation_writes_json_csv_md_and_figures(tmp_path):
    from halluguard.train import ablate

    figures = ablate.write_results(tmp_path, _ablation_rows())
    assert {p.name for p in figures} == {f"ablation_{f}.{e}" for f in ablate.FACTORS for e in ("png", "svg")}
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["kind"] == "ablation" and len(data["rows"]) == 7
    md = (tmp_path / "results.md").read_text()
    assert "| beta=0.3 |" in md and "![ablation_beta](ablation_beta.png)" in md


def test_line_panels_wrap_and_check_input():
    fig = plots.line_panels([(f"m{i}", {"a": [(1, i), (2, i + 1)]}) for i in range(6)], ncols=4)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 6 and len(fig.axes) == 8
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())  # steps are whole numbers
    with pytest.raises(ValueError, match="at least one"):
        plots.line_panels([])


def test_histogram_counts_are_whole_rows_and_split_by_gold():
    fig = plots.score_histogram([0.05, 0.15, 0.15, 0.95], gold=[0, 0, 1, 1], threshold=0.465)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height()) for p in ax.patches if p.get_height() > 0)
    assert heights == [1, 1, 1, 1]  # stacked: faithful 0.05, 0.15; hallucinated 0.15, 0.95
    assert all(float(t).is_integer() for t in ax.get_yticks())  # no half-row ticks
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gold: faithful", "gold: hallucinated"]
    with pytest.raises(ValueError, match="gold labels"):
        plots.score_histogram([0.1], gold=[0, 1])


def test_paired_scores_figure_marks_the_documents_mcnemar_counts():
    fig = plots.paired_scores_figure([0.9, 0.2, 0.3], [0.1, 0.8, 0.35], 0.5, labels=["fixed", "broke", "same"])
    ax = fig.axes[0]
    assert ax.get_title() == "per document: 1 fixed by DPO (green), 1 newly flagged (red)"
    names = {t.get_text() for t in ax.texts}
    assert {"fixed", "broke"} <= names and "same" not in names and "threshold 0.5" in names
    with pytest.raises(ValueError, match="paired"):
        plots.paired_scores_figure([0.1], [0.2, 0.3], 0.5)


def test_plots_leave_the_callers_matplotlib_settings_alone():
    import matplotlib

    plt = plots.pyplot()
    before = plt.rcParams["svg.fonttype"], plt.rcParams["axes.spines.top"], matplotlib.is_interactive()
    matplotlib.interactive(True)  # Jupyter's inline backend turns this on with the first figure: keep it on
    try:
        plots.figure_svg(plots.line_panels([("x", {"x": [(0, 0), (1, 1)]})]))
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(before[2])
    assert (plt.rcParams["svg.fonttype"], plt.rcParams["axes.spines.top"]) == before[:2]


# ---------------------------------------------------------------------------------------------------
# The HTML report
# ---------------------------------------------------------------------------------------------------
def _records(gold=True):
    recs = [{"_row": 0, "id": "a", "score": 0.9, "label": "hallucinated", "summary": "It cost 9 euros.",
             "spans": [{"start": 8, "end": 9, "score": 0.9, "reason": "number"}]},
            {"_row": 1, "id": "b", "score": 0.1, "label": "faithful", "summary": "It opened."},
            {"_row": 2, "id": "c", "label": "error", "summary": "", "error": "source is empty"}]
    if gold:
        recs[0]["gold"], recs[1]["gold"], recs[2]["gold"] = 1, 1, None
    return recs


def test_report_shows_gold_labels_beside_predictions():
    html = render_batch_report(_records(), {"rows": 3, "hallucination_rate": 0.5, "threshold": 0.465,
                                            "balanced_accuracy": 0.5, "row_errors": ["row 2: source is empty"]},
                               {"cols": {"source": "doc", "label": "label"}, "verifier": "lite"})
    assert "<th>predicted</th><th>gold</th>" in html
    rows = re.findall(r"<tr><td>(\w)</td>(.*?)</tr>", html, flags=re.S)
    assert [r[0] for r in rows] == ["a", "b", "c"]
    assert '<td class="hallucinated">hallucinated</td>' in rows[0][1]           # agrees
    assert '<td class="hallucinated disagree">hallucinated</td>' in rows[1][1]  # predicted faithful, gold 1
    assert '<td class="none">–</td>' in rows[2][1]
    assert '<mark title="number (0.90)">9</mark>' in html and "source is empty" in html
    # the histogram is matplotlib's inline SVG, stacked by gold label, with the threshold
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert "gold: hallucinated" in svg and "threshold 0.465" in svg
    assert not re.search(r"<script|<link|<img|\ssrc=|href=\"http", html)  # self-contained: nothing to fetch


def test_report_without_gold_has_no_gold_column():
    html = render_batch_report(_records(gold=False), {"rows": 3, "threshold": 0.5}, {"verifier": "lite"})
    assert "<th>gold</th>" not in html and "gold:" not in html and "<svg" in html


def test_report_escapes_user_text_and_handles_no_scores():
    recs = [{"_row": 0, "id": "<b>x</b>", "label": "error", "summary": "<script>alert(1)</script>", "error": "<i>"}]
    html = render_batch_report(recs, {"rows": 1}, {"cols": {"source": "<s>"}, "verifier": "lite"}, title="<t>")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x" in html and "&lt;i&gt;" in html
    assert "<title>&lt;t&gt;</title>" in html and "No row was scored" in html


def test_every_resource_file_ships_in_a_non_editable_install():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["halluguard"]
    pkg = ROOT / "halluguard"
    missing = [str(p.relative_to(pkg)) for p in (pkg / "resources").rglob("*") if p.is_file()
               and "__pycache__" not in p.parts
               and not any(fnmatch.fnmatch(str(p.relative_to(pkg)), pat) for pat in patterns)]
    assert not missing, f"add these to [tool.setuptools.package-data] in pyproject.toml: {missing}"
    assert (pkg / "resources/templates/batch_report.html.j2").is_file()


def test_importing_the_cli_does_not_import_matplotlib():
    code = "import sys, halluguard.cli, halluguard.app.report, halluguard.train.verdict; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_batch_run_writes_a_report_with_gold_labels(tmp_path):
    """The app's batch job end to end (lite verifier): the report it writes has the gold column."""
    from halluguard.app import handlers as H
    from halluguard.app.config import AppConfig
    from halluguard.app.models import ModelHub

    cfg = AppConfig(output_dir=str(tmp_path))
    src = ROOT / "examples/sample_pairs.jsonl"
    *_, last = H.run_batch(ModelHub(cfg), cfg, str(src), "source", "summary", None, "label", "id")
    html = Path(next(f for f in last.files if f.endswith("report.html"))).read_text()
    gold = {json.loads(x)["id"]: json.loads(x)["label"] for x in src.read_text().splitlines()}
    rows = re.findall(r'<tr><td>([\w-]+)</td><td class="(\w+)">\w+</td><td class="(\w+)[ "]', html)
    assert {r[0]: r[2] for r in rows} == gold  # each row's gold label, beside its prediction
    assert "gold: hallucinated" in html and "gold: faithful" in html  # the histogram is stacked by it
