"""The Gradio UI: five tabs over `halluguard.app.handlers` and `.results`. Building it loads no model.

    demo = build_demo(AppConfig())                 # gr.Blocks, nothing loaded yet
    demo.launch(**launch_kwargs(cfg))              # theme, css, auth, upload limit, allowed paths

API names (for `gradio_client.Client(url).predict(..., api_name=...)`): `/summarize`, `/verify`,
`/compare`, `/batch_columns`, `/batch_evaluate`, `/results`, `/status`.
"""

from __future__ import annotations

import functools
import html
import inspect
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from halluguard.app import handlers as H
from halluguard.app.config import AppConfig
from halluguard.app.models import ModelHub
from halluguard.app.results import load_results

TABLE_WIDTHS = ["4%", "33%", "10%", "7%", "31%", "15%"]
RESULT_WIDTHS = ["6%", "10%", "8%", "12%", "8%", "36%", "20%"]  # row, id, score, label, flagged, summary, spans
COMPARE_HEADERS = ["generator", "P(hallucination)", "label", "flagged spans", "words"]
MODEL_QUEUE = "model"  # one concurrency group for every event that runs a model: the GPU queue

log = logging.getLogger("halluguard.app")

CSS = """
.hg-note {color: var(--body-text-color-subdued); font-size: .9em}
footer {visibility: hidden}
/* Refused input: the message stays in the page (a toast is gone in seconds). */
.hg-error {border: 1px solid var(--error-border-color); border-left-width: 4px; border-radius: var(--radius-md);
  background: var(--error-background-fill); color: var(--error-text-color); padding: .6em .9em}
/* Flagged spans: flow as text. Gradio lays the pieces out as flex items with word-break: break-all,
   which cut words at the box edge ("loggerhea|d") when few spans are flagged. */
.hg-hl .textfield {display: block !important; word-break: normal !important; overflow-wrap: break-word}
.hg-hl .textfield .line-break {display: block}
.hg-hl .token.highlighted {margin: 0 1px; padding: 1px 3px}  /* the text's own spaces separate the chips */
/* Table headers never break inside a word ("ro|w"); the column widths leave room for them. */
.hg-table th .header {word-break: keep-all; overflow-wrap: normal; hyphens: none}
/* Markdown tables (batch metrics) take the theme's border colour, not black. */
.hg-metrics table, .hg-metrics th, .hg-metrics td {border-color: var(--border-color-primary) !important}
.hg-metrics th {background: var(--table-odd-background-fill)}
/* An upload refused in the browser (too large) leaves a red "Error" badge on the box; the toast
   says why, and the box must stay usable for the next file. Upload boxes are never event outputs,
   so their status tracker has nothing else to show. */
.hg-upload > [data-testid="status-tracker"] {display: none !important}
"""

# Original demo texts (written for this app; no dataset text).
EXAMPLE_DOC = (
    "The town council of Millbrook voted 7 to 2 on Tuesday to build a new public library on the site of the "
    "old bus depot. Construction is expected to cost 4.2 million dollars and to begin next spring. "
    "Mayor Elena Ruiz said the library would include a children's wing and a room for adult education classes. "
    "Two council members opposed the plan, arguing that the money should go to road repairs instead. "
    "The current library, built in 1968, will close once the new building opens."
)
EXAMPLE_DOC_2 = (
    "A team of marine biologists from the University of Tasman tagged 40 loggerhead turtles off the eastern "
    "coast in March. The satellite tags showed that most turtles travelled north along the warm current, "
    "covering up to 60 kilometres a day. Three turtles unexpectedly swam south into colder water. "
    "The researchers said they do not yet know why, and plan to tag another 25 turtles next year. "
    "The project is funded by a regional conservation trust."
)
VERIFY_EXAMPLES = [
    [EXAMPLE_DOC, "Millbrook's council voted 7 to 2 to build a library on the old bus depot site. It will cost 4.2 million dollars."],
    [EXAMPLE_DOC, "Millbrook's council voted 9 to 0 to build a library costing 6 million dollars. Mayor John Ruiz opposed the plan."],
    [EXAMPLE_DOC_2, "Researchers tagged 40 loggerhead turtles. All turtles travelled north along the warm current, and the project "
                    "is funded by the national government."],
]


class ErrorBoxes:
    """Refused input is shown in the page until the user's next action, and logged as one line.

    A handler wrapped by `guard` turns ValueError / FileNotFoundError (bad input) into a `gr.Error`
    that API clients get as their error message, without a server traceback, and remembers the message
    for the browser session. The event's `.failure()` step (`wire`) then puts it in the tab's error box
    and clears the outputs, so no earlier result stays under the message as if it belonged to the new
    input, and no output is left showing a bare "Error" badge. Real bugs keep their traceback.
    """

    MAX_SESSIONS = 1000  # API clients never run the failure step: keep their messages bounded

    def __init__(self) -> None:
        self._last: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def guard(self, fn: Callable) -> Callable:
        """`fn` (which takes a `request: gr.Request`) with user errors reported as described above."""
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as e:
                    raise self._refuse(fn.__name__, e, args, kwargs) from None
            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                raise self._refuse(fn.__name__, e, args, kwargs) from None
        return wrapper

    def _refuse(self, name: str, e: Exception, args, kwargs) -> Exception:
        request = next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)
        if isinstance(e, (ValueError, FileNotFoundError)):
            msg = str(e).strip() or e.__class__.__name__
            log.warning("halluguard app: %s refused: %s", name.removeprefix("do_"), msg)
            self._remember(request, msg)
            return gr.Error(msg, title="Cannot run this", visible=False, print_exception=False)
        self._remember(request, f"something went wrong on the server ({type(e).__name__}); its log has the details")
        return e  # a bug: gradio prints the traceback

    def _remember(self, request: gr.Request | None, msg: str) -> None:
        if request is None or not request.session_hash:
            return
        with self._lock:
            self._last[request.session_hash] = msg
            while len(self._last) > self.MAX_SESSIONS:
                self._last.popitem(last=False)

    def pop(self, request: gr.Request | None) -> str:
        with self._lock:
            return self._last.pop(getattr(request, "session_hash", None) or "", "the request failed")

    def wire(self, trigger: Callable, fn: Callable, inputs, outputs: list, box: gr.HTML,
             cleared: Callable[[], tuple], **kw) -> Any:
        """Run `fn` on `trigger`; the box hides at the next action and shows a refused input's message."""
        trigger(_hide_box, None, box, queue=False, show_progress="hidden", api_visibility="private")
        event = trigger(self.guard(fn), inputs, outputs, **kw)

        def show(request: gr.Request):
            return (gr.HTML(_error_html(self.pop(request)), visible=True), *cleared())

        event.failure(show, None, [box, *outputs], queue=False, show_progress="hidden", api_visibility="private")
        return event


def _hide_box():
    return gr.HTML(visible=False)


def _error_html(msg: str) -> str:
    return f'<div class="hg-error" role="alert"><strong>Cannot run this:</strong> {html.escape(msg)}</div>'


def _error_box(elem_id: str) -> gr.HTML:
    return gr.HTML(visible=False, elem_id=elem_id, padding=False)


def _empty(headers: list[str]) -> pd.DataFrame:
    """A table with its real headers and no rows (an empty gr.Dataframe shows "1 2 3" headers)."""
    return pd.DataFrame(columns=headers)


def _metrics_markdown(m: dict[str, Any]) -> str:
    names = [("rows", "rows"), ("verified", "verified"), ("hallucination_rate", "hallucination rate"),
             ("mean_score", "mean P(hallucination)"), ("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"),
             ("rougeLsum", "ROUGE-Lsum"), ("similarity", "semantic similarity"),
             ("balanced_accuracy", "balanced accuracy"), ("f1", "F1 (hallucinated class)"), ("roc_auc", "ROC-AUC"),
             ("threshold", "threshold")]
    lines = ["| metric | value |", "|---|---|"]
    for k, n in names:
        if k in m:
            v = m[k]
            lines.append(f"| {n} | {'–' if isinstance(v, float) and math.isnan(v) else (f'{v:.3f}' if isinstance(v, float) else v)} |")
    if m.get("label_error"):
        lines.append(f"\n⚠️ {m['label_error']}")
    if m.get("n_row_errors"):
        lines.append(f"\n⚠️ {m['n_row_errors']} row(s) could not be verified: " + "; ".join(m.get("row_errors", [])[:5]))
    return "\n".join(lines)


def _json_safe(m: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(m, default=str).replace("NaN", "null"))


def _bar_plot(df: pd.DataFrame | None) -> gr.BarPlot:
    """A count chart whose y-axis ticks are whole rows (see `H.y_limit`)."""
    return gr.BarPlot(value=df, y_lim=H.y_limit(df["rows"] if df is not None else []))


def build_demo(cfg: AppConfig | None = None, hub: ModelHub | None = None) -> gr.Blocks:
    """The whole app as a `gr.Blocks`; models load on first use, not here."""
    cfg = cfg or AppConfig()
    hub = hub or ModelHub(cfg)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    choices = hub.generator_choices()
    legend = H.color_map_for(cfg.verifier)
    errors = ErrorBoxes()
    model_ev = dict(concurrency_id=MODEL_QUEUE, concurrency_limit=cfg.model_concurrency)

    def do_status():
        return {"generator": cfg.generator, "generator_choices": choices, "verifier": cfg.verifier,
                "loaded": hub.loaded(), "max_upload_mb": cfg.max_upload_mb, "max_rows": cfg.max_rows,
                "auth": bool(cfg.auth), "output_dir": cfg.output_dir}

    with gr.Blocks(title="halluguard", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# halluguard\nSummaries with their hallucinations flagged: red spans are content the source does "
            f"not support. Generator: **{cfg.generator}**, verifier: **{cfg.verifier}**. "
            "Scores are P(hallucination), 0–1.")
        if cfg.verifier == "lite":
            from halluguard.verify.lite import SCOPE

            gr.Markdown(f"<small>{SCOPE}</small>", elem_id="verifier-scope")
        with gr.Tab("Summarize", id="summarize"):
            _summarize_tab(hub, cfg, errors, choices, legend, model_ev)
        with gr.Tab("Verify", id="verify"):
            _verify_tab(hub, errors, legend, model_ev)
        with gr.Tab("Compare", id="compare"):
            _compare_tab(hub, cfg, errors, choices, legend, model_ev)
        with gr.Tab("Batch evaluate", id="batch"):
            _batch_tab(hub, cfg, errors, choices)
        with gr.Tab("Results", id="results"):
            _results_tab(cfg, errors)
        with gr.Accordion("Operations", open=False):
            o_json = gr.JSON(label="Settings and loaded models")
            o_btn = gr.Button("Refresh", size="sm")
        o_btn.click(do_status, None, o_json, api_name="status", concurrency_limit=None)
        demo.load(do_status, None, o_json, api_visibility="private", concurrency_limit=None)

    demo.queue(default_concurrency_limit=cfg.model_concurrency, max_size=256)
    demo.hg_config = cfg  # type: ignore[attr-defined]  # for launch_kwargs and tests
    demo.hg_hub = hub  # type: ignore[attr-defined]
    return demo


def _results_tab(cfg, errors: ErrorBoxes) -> None:
    """A verdict.json or ablation results.json: its table and figures (halluguard.app.results)."""
    def do_results(upload, request: gr.Request):
        if not upload:
            return "", "", None
        view = load_results(upload, cfg.output_dir)
        return view.markdown, view.figures_html(), view.files

    gr.Markdown("Load a `verdict.json` (training/verdict.py) or an ablation `results.json` (training/ablate.py) "
                "to see its table and figures. The same figures are written next to the JSON as PNG and SVG.",
                elem_classes="hg-note")
    upload = gr.File(label="verdict.json or results.json", file_types=[".json"], type="filepath", elem_id="r-file",
                     elem_classes="hg-upload")
    box = _error_box("r-error")
    figures = gr.HTML(elem_id="r-figures")  # whole figures at the page's width (a gallery crops them)
    table = gr.Markdown(elem_id="r-table", elem_classes="hg-metrics")
    files = gr.File(label="Figures as PNG and SVG", file_count="multiple", interactive=False, elem_id="r-files")
    errors.wire(upload.change, do_results, [upload], [table, figures, files], box, lambda: ("", "", None),
                api_name="results", concurrency_limit=None)


def _flags(legend: dict[str, str], **kw) -> gr.HighlightedText:
    return gr.HighlightedText(color_map=legend, show_legend=True, combine_adjacent=False, elem_classes="hg-hl", **kw)


def _verdicts() -> gr.Dataframe:
    return gr.Dataframe(value=_empty(H.TABLE_HEADERS), label="Per-sentence verdicts", wrap=True, interactive=False,
                        column_widths=TABLE_WIDTHS, elem_classes="hg-table")


def _summarize_tab(hub, cfg, errors: ErrorBoxes, choices, legend, model_ev) -> None:
    def do_summarize(text, upload, generator, request: gr.Request):
        r = H.summarize_document(hub, cfg, text, upload, generator)
        return r.summary, r.highlight, r.table, r.overall, r.report

    with gr.Row():
        with gr.Column():
            doc = gr.Textbox(label="Document", lines=10, placeholder="Paste a document…", elem_id="s-doc")
            upload = gr.File(label="…or upload a .txt / .md file (UTF-8)", file_types=sorted(H.TEXT_EXTS),
                             type="filepath", elem_id="s-file", elem_classes="hg-upload")
            gen = gr.Dropdown(choices, value=choices[0], label="Generator")
            btn = gr.Button("Summarize and verify", variant="primary", elem_id="s-btn")
            box = _error_box("s-error")
        with gr.Column():
            overall = gr.Markdown(elem_id="s-overall")
            summary = gr.Textbox(label="Summary", lines=4, buttons=["copy"], interactive=False)
            flags = _flags(legend, label="Flagged spans", elem_id="s-hl")
    table = _verdicts()
    report = gr.JSON(label="Report (JSON)", open=False)
    gr.Examples([[EXAMPLE_DOC], [EXAMPLE_DOC_2]], inputs=[doc], label="Example documents")
    errors.wire(btn.click, do_summarize, [doc, upload, gen], [summary, flags, table, overall, report], box,
                lambda: ("", None, _empty(H.TABLE_HEADERS), "", None), api_name="summarize", **model_ev)


def _verify_tab(hub, errors: ErrorBoxes, legend, model_ev) -> None:
    def do_verify(source, summary, request: gr.Request):
        r = H.verify_pair(hub, source, summary)
        return r.highlight, r.table, r.overall, r.report

    with gr.Row():
        src = gr.Textbox(label="Source", lines=10, elem_id="v-src")
        summ = gr.Textbox(label="Summary", lines=10, elem_id="v-sum")
    btn = gr.Button("Verify", variant="primary", elem_id="v-btn")
    box = _error_box("v-error")
    overall = gr.Markdown(elem_id="v-overall")
    flags = _flags(legend, label="Flagged spans", elem_id="v-hl")
    table = _verdicts()
    report = gr.JSON(label="Report (JSON)", open=False)
    gr.Examples(VERIFY_EXAMPLES, inputs=[src, summ], label="Examples: one faithful, two with errors")
    errors.wire(btn.click, do_verify, [src, summ], [flags, table, overall, report], box,
                lambda: (None, _empty(H.TABLE_HEADERS), "", None), api_name="verify", **model_ev)


def _compare_tab(hub, cfg, errors: ErrorBoxes, choices, legend, model_ev) -> None:
    def heat(side):
        return gr.HighlightedText(value=side.heatmap, visible=side.heatmap is not None)

    def do_compare(text, left, right, reference, request: gr.Request):
        a, b, table = H.compare_generators(hub, cfg, text, left, right, reference)
        return (a.highlight, a.overall, heat(a), b.highlight, b.overall, heat(b), table,
                {"left": a.report, "right": b.report})

    doc = gr.Textbox(label="Document", lines=8, elem_id="c-doc")
    with gr.Row():
        left = gr.Dropdown(choices, value=choices[0], label="Left")
        right = gr.Dropdown(choices, value=choices[-1], label="Right")
    ref = gr.Textbox(label="Reference summary (optional: adds ROUGE and similarity)", lines=3)
    btn = gr.Button("Compare", variant="primary", elem_id="c-btn")
    box = _error_box("c-error")
    with gr.Row():
        with gr.Column():
            l_md = gr.Markdown()
            l_hl = _flags(legend, label="Left: flagged spans", elem_id="c-l-hl")
            l_heat = gr.HighlightedText(label="Left: token heat map (dpo-reward; red = lower reward)", visible=False,
                                        elem_classes="hg-hl")
        with gr.Column():
            r_md = gr.Markdown()
            r_hl = _flags(legend, label="Right: flagged spans", elem_id="c-r-hl")
            r_heat = gr.HighlightedText(label="Right: token heat map (dpo-reward; red = lower reward)", visible=False,
                                        elem_classes="hg-hl")
    table = gr.Dataframe(value=_empty(COMPARE_HEADERS), label="Scores side by side", interactive=False,
                         elem_classes="hg-table")
    reports = gr.JSON(label="Reports (JSON)", open=False)
    gr.Examples([[EXAMPLE_DOC_2, "Researchers tagged 40 loggerhead turtles off the eastern coast; most travelled north along a warm current."]],
                inputs=[doc, ref], label="Example (with a reference)")
    no_heat = gr.HighlightedText(value=None, visible=False)
    errors.wire(btn.click, do_compare, [doc, left, right, ref], [l_hl, l_md, l_heat, r_hl, r_md, r_heat, table, reports],
                box, lambda: (None, "", no_heat, None, "", no_heat, _empty(COMPARE_HEADERS), None),
                api_name="compare", **model_ev)


def _batch_tab(hub, cfg, errors: ErrorBoxes, choices) -> None:
    def do_columns(upload, request: gr.Request):
        if not upload:
            empty = gr.Dropdown(choices=[], value=None)
            return empty, empty, empty, empty, empty, gr.Dataframe(value=None, visible=False), "Upload a CSV, JSONL or Parquet file."
        info = H.inspect_upload(cfg, upload)
        cols, g = info.columns, info.guesses
        opt = [""] + cols  # "" = not used
        msg = f"**{info.n_rows} rows**, columns: {', '.join(f'`{c}`' for c in cols)}. Detected defaults are pre-selected; change any."
        if info.errors:
            msg += f"\n\n⚠️ {len(info.errors)} unreadable line(s) will be skipped: " + "; ".join(info.errors[:3])
        if not g["source"]:
            msg += "\n\n⚠️ No source column detected: pick one."
        return (gr.Dropdown(choices=cols, value=g["source"]), gr.Dropdown(choices=opt, value=g["summary"] or ""),
                gr.Dropdown(choices=opt, value=g["reference"] or ""), gr.Dropdown(choices=opt, value=g["label"] or ""),
                gr.Dropdown(choices=opt, value=g["id"] or ""), gr.Dataframe(value=info.preview, visible=True), msg)

    def do_batch(upload, source_col, summary_col, reference_col, label_col, id_col, generate, generator,
                 request: gr.Request, progress=gr.Progress()):
        if not upload:
            raise ValueError("upload a CSV, JSONL or Parquet file first")
        progress(0, desc="reading the file")

        def tick(done, total):
            progress((done, total), desc="verifying" if not generate else "generating + verifying", unit="rows")

        last = None
        for st in H.run_batch(hub, cfg, upload, source_col, summary_col, reference_col, label_col, id_col,
                              bool(generate), generator, progress=tick):
            last = st
            if not st.finished:
                yield st.status, st.results, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if last is not None and last.metrics.get("n_row_errors"):
            gr.Warning(f"{last.metrics['n_row_errors']} row(s) had errors; see the metrics panel")
        yield (last.status, last.results, _metrics_markdown(last.metrics), _json_safe(last.metrics),
               _bar_plot(last.histogram), _bar_plot(last.labels), last.files)

    def no_results():  # a new file, or a refused run: nothing on screen may belong to an earlier one
        return "", _empty(H.RESULT_COLUMNS), "", None, _bar_plot(None), _bar_plot(None), None

    gr.Markdown(f"Upload **CSV, JSONL or Parquet** (≤ {cfg.max_upload_mb:g} MB, ≤ {cfg.max_rows} rows). "
                "Columns are detected; change any. Results are written as they go and can be downloaded "
                "as CSV, JSONL and a self-contained HTML report.", elem_classes="hg-note")
    upload = gr.File(label="Rows to evaluate", file_types=sorted(H.TABLE_EXTS), type="filepath", elem_id="b-file",
                     elem_classes="hg-upload")
    upload_box = _error_box("b-upload-error")
    info = gr.Markdown(elem_id="b-info")
    with gr.Row():
        src = gr.Dropdown([], label="source column", allow_custom_value=True)
        summ = gr.Dropdown([], label="summary column", allow_custom_value=True)
        ref = gr.Dropdown([], label="reference column (optional)", allow_custom_value=True)
        lab = gr.Dropdown([], label="label column (optional, 1 = hallucinated)", allow_custom_value=True)
        idc = gr.Dropdown([], label="id column (optional)", allow_custom_value=True)
    with gr.Row():
        gen_on = gr.Checkbox(False, label="Generate summaries first (ignores the summary column)")
        gen = gr.Dropdown(choices, value=choices[0], label="Generator")
    preview = gr.Dataframe(label="Preview (first rows)", interactive=False, visible=False, elem_classes="hg-table")
    btn = gr.Button("Evaluate", variant="primary", elem_id="b-btn")
    box = _error_box("b-error")
    status = gr.Markdown(elem_id="b-status")
    with gr.Row():
        metrics = gr.Markdown(elem_id="b-metrics", elem_classes="hg-metrics")
        hist = gr.BarPlot(x="score", y="rows", title="Score distribution (bin start)", sort=None, label="Score histogram",
                          y_lim=H.y_limit([]), elem_id="b-hist")
        labels = gr.BarPlot(x="label", y="rows", title="Predicted labels", sort=H.LABEL_ORDER, label="Labels",
                            y_lim=H.y_limit([]), elem_id="b-labels")
    files = gr.File(label="Downloads: results.csv, results.jsonl, report.html", file_count="multiple",
                    interactive=False, elem_id="b-files")
    results = gr.Dataframe(value=_empty(H.RESULT_COLUMNS), label="Results", interactive=False, wrap=True,
                           column_widths=RESULT_WIDTHS, elem_id="b-results", elem_classes="hg-table")
    metrics_json = gr.JSON(label="Metrics (JSON)", open=False)

    run_outputs = [status, results, metrics, metrics_json, hist, labels, files]
    upload.change(no_results, None, run_outputs, queue=False, show_progress="hidden", api_visibility="private")
    errors.wire(upload.change, do_columns, [upload], [src, summ, ref, lab, idc, preview, info], upload_box,
                lambda: (*[gr.Dropdown(choices=[], value=None)] * 5, gr.Dataframe(value=None, visible=False), ""),
                api_name="batch_columns", concurrency_limit=None)
    # A batch job has its own group: it takes the model lock per row, so it never holds the model
    # queue for its whole run and interactive users keep getting answers while it works.
    errors.wire(btn.click, do_batch, [upload, src, summ, ref, lab, idc, gen_on, gen], run_outputs, box, no_results,
                api_name="batch_evaluate", concurrency_id="batch", concurrency_limit=cfg.batch_concurrency)


def launch_kwargs(cfg: AppConfig) -> dict[str, Any]:
    """Arguments for `demo.launch(...)` (Gradio 6: theme/css live here, not on Blocks)."""
    return dict(
        server_name=cfg.host, server_port=cfg.port, share=cfg.share, auth=cfg.auth_pair,
        auth_message="halluguard: log in" if cfg.auth else None,
        max_file_size=cfg.max_file_size,
        # Only the app's own output dir is added; gradio's cache (uploads, returned files) is its own.
        allowed_paths=[str(Path(cfg.output_dir).resolve())],
        theme=gr.themes.Soft(), css=CSS, footer_links=["api"],
    )
