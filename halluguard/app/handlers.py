"""What the app's events do, as plain functions: testable without a browser or a running server.

Each handler takes a `ModelHub` (lazy models), plain inputs, and returns plain outputs (dicts, pandas
DataFrames, strings). Bad input raises ValueError with a message a user can act on; the UI layer
(`halluguard.app.ui`) turns that into a `gr.Error` shown in the page.

    hub = ModelHub(AppConfig())
    out = verify_pair(hub, source, summary)          # VerifyResult: highlight, table, overall, report
    for state in run_batch(hub, cfg, "rows.csv", source_col="source", summary_col="summary"):
        print(state.status)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from halluguard.app.config import AppConfig
from halluguard.app.models import ModelHub
from halluguard.types import Report, Summary

TABLE_EXTS = {".csv", ".jsonl", ".json", ".parquet"}
TEXT_EXTS = {".txt", ".md"}
# Colours for HighlightedText categories (span reasons from the verifiers). Light fills under black
# text (contrast >= 7:1); hues far apart, "unsupported" red and the rest-of-sentence "sentence" teal so
# the two most common reasons never look alike (a test checks contrast and distance).
COLOR_MAP = {
    "unsupported": "#f87171",
    "sentence": "#99f6e4",
    "number": "#fb923c",
    "date": "#fde047",
    "name": "#d8b4fe",
    "role": "#f9a8d4",
    "negation": "#7dd3fc",
    "cause": "#bef264",
    "entity": "#65ffaa",
    "scope": "#f4d2a3",
    "certainty": "#d865ff",
    "model": "#f87171",
    "reward": "#f87171",
}
LITE_REASONS = ("unsupported", "sentence", "number", "date", "name", "role", "entity", "negation", "cause", "scope",
                "certainty")
# The span reasons each backend emits: the legend shows only these.
REASONS_BY_VERIFIER = {
    "lite": LITE_REASONS,
    "entail": ("model",), "nli": ("model",), "span": ("model",), "judge": ("model",), "dpo-reward": ("reward",),
}


def color_map_for(verifier: str) -> dict[str, str]:
    """HighlightedText colours for a verifier backend (all known reasons when the backend is unknown)."""
    keep = REASONS_BY_VERIFIER.get(verifier, tuple(COLOR_MAP))
    return {k: COLOR_MAP[k] for k in keep}


TABLE_HEADERS = ["#", "summary sentence", "verdict", "score", "evidence (source)", "why"]

# Column names we guess from, most specific first; the UI lets the user override each guess.
COLUMN_GUESSES = {
    "source": ["source", "document", "doc", "article", "context", "premise", "text", "input"],
    "summary": ["summary", "claim", "response", "output", "hypothesis", "prediction", "generated"],
    "reference": ["reference", "ref", "gold", "target", "highlights", "reference_summary", "gold_summary"],
    "label": ["label", "hallucinated", "is_hallucinated", "gold_label", "labels"],
    "id": ["id", "doc_id", "example_id", "uid", "idx"],
}


# --------------------------------------------------------------------------------------- rendering


def highlight_value(summary: str, report: Report) -> dict[str, Any]:
    """`gr.HighlightedText` value: the summary with its flagged spans as character-offset entities.

    Overlapping spans are merged (HighlightedText needs disjoint entities); the merged span keeps the
    reason of the highest-scoring piece.
    """
    spans = sorted(
        ((max(0, s.start), min(len(summary), s.end), s.reason or "unsupported", s.score) for s in report.spans),
        key=lambda t: (t[0], -t[1]),
    )
    merged: list[list[Any]] = []
    for start, end, reason, score in spans:
        if end <= start:
            continue
        if merged and start < merged[-1][1]:
            last = merged[-1]
            if score > last[3]:
                last[2], last[3] = reason, score
            last[1] = max(last[1], end)
        else:
            merged.append([start, end, reason, score])
    return {"text": summary, "entities": [{"entity": r, "start": s, "end": e} for s, e, r, _ in merged]}


def sentence_table(report: Report) -> pd.DataFrame:
    """One row per summary sentence: verdict, score, best evidence sentence from the source, reasons."""
    rows = []
    for i, s in enumerate(report.sentences, 1):
        ev = s.evidence[0].text.strip() if s.evidence else ""
        why = "; ".join(s.reasons) if s.reasons else ", ".join(f"{sp.reason}: {sp.text}" for sp in s.spans)
        rows.append([i, s.text.strip(), s.verdict, round(float(s.score), 3), ev, why])
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def overall_markdown(report: Report, summary: Summary | None = None) -> str:
    """A short verdict line: label, score, threshold, flagged span count; notes extractive output."""
    n_bad = sum(s.verdict == "unsupported" for s in report.sentences)
    lines = [
        f"### {report.label.upper()} — P(hallucination) {report.score:.3f}",
        f"Threshold {report.threshold:.3g}, verifier `{report.backend}`: "
        f"{n_bad} of {len(report.sentences)} sentence(s) unsupported, {len(report.spans)} flagged span(s).",
    ]
    if summary is not None:
        what = "**Extractive** summary: sentences copied from the source, not generated." if summary.extractive \
            else f"Generated by `{summary.backend}`{' / ' + summary.model if summary.model else ''}."
        if summary.chunks > 1:
            what += f" Long document: summarized in {summary.chunks} chunks, then merged."
        lines.append(what)
    return "\n\n".join(lines)


def token_heatmap(report: Report, summary: str = "") -> list[tuple[str, float | None]] | None:
    """Per-token rewards (dpo-reward backend) as HighlightedText (text, value) pairs, value in [-1, 1].

    The value is the negated reward scaled by the largest magnitude: Gradio colours positive values red
    and negative ones purple, so the tokens the scorer finds least faithful are the reddest. Reads
    `report.extra["token_rewards"]` = [{"text", "start", "end", "reward"}, ...] (character offsets into
    the summary; the gaps between tokens are kept uncoloured); [(token, reward), ...] is accepted too.
    Returns None when the backend gave no rewards.
    """
    raw = report.extra.get("token_rewards") if report.extra else None
    if not raw:
        return None
    items = []
    for r in raw:
        if isinstance(r, dict):
            items.append((r.get("start"), r.get("end"), str(r.get("text", r.get("token", ""))), float(r.get("reward", 0.0))))
        else:
            items.append((None, None, str(r[0]), float(r[1])))
    scale = max((abs(v) for *_, v in items if math.isfinite(v)), default=0.0) or 1.0

    def value(v: float) -> float:
        return round(-v / scale, 3) if math.isfinite(v) else 0.0

    if summary and all(isinstance(a, int) and isinstance(b, int) for a, b, _, _ in items):
        out: list[tuple[str, float | None]] = []
        pos = 0
        for a, b, _, v in sorted(items, key=lambda t: t[0]):
            if a < pos or b > len(summary):
                continue  # overlapping or out-of-range token: skip rather than garble the text
            if a > pos:
                out.append((summary[pos:a], None))
            out.append((summary[a:b], value(v)))
            pos = b
        if pos < len(summary):
            out.append((summary[pos:], None))
        return out
    return [(t, value(v)) for _, _, t, v in items]


# --------------------------------------------------------------------------------------- tabs 1-3


@dataclass
class VerifyResult:
    highlight: dict[str, Any]
    table: pd.DataFrame
    overall: str
    report: dict[str, Any]  # Report.to_dict(), JSON-able: what gradio_client users get


def verify_pair(hub: ModelHub, source: str, summary: str) -> VerifyResult:
    """Tab 2 (Verify): flags for a given summary, no generation."""
    report = hub.verify(source or "", summary or "")
    return VerifyResult(highlight_value(summary, report), sentence_table(report), overall_markdown(report), report.to_dict())


@dataclass
class SummarizeResult(VerifyResult):
    summary: str = ""
    extractive: bool = False


def read_document(cfg: AppConfig, text: str | None, upload: str | None) -> str:
    """The document to summarize: pasted text, or an uploaded .txt/.md file (UTF-8) when given."""
    if upload:
        stored = ingest_upload(cfg, upload, TEXT_EXTS)
        try:
            text = decode_utf8(stored.read_bytes(), Path(upload).name)
        finally:  # read or refused, the copy is not needed any more (docs/app.md promises this)
            stored.unlink(missing_ok=True)
    if not text or not text.strip():
        raise ValueError("paste a document or upload a .txt / .md file")
    return text


def summarize_document(hub: ModelHub, cfg: AppConfig, text: str | None, upload: str | None, generator: str) -> SummarizeResult:
    """Tab 1 (Summarize): summary + flags, the summary verified against the document."""
    document = read_document(cfg, text, upload)
    summary = hub.summarize(generator, document)
    if not summary.text.strip():
        raise ValueError(f"{generator} returned an empty summary for this document")
    report = hub.verify(document, summary.text)
    return SummarizeResult(
        highlight_value(summary.text, report), sentence_table(report), overall_markdown(report, summary),
        {**report.to_dict(), "summary": summary.to_dict()}, summary.text, summary.extractive,
    )


@dataclass
class CompareSide:
    summary: str
    highlight: dict[str, Any]
    overall: str
    heatmap: list[tuple[str, float]] | None
    report: dict[str, Any]


def compare_generators(
    hub: ModelHub, cfg: AppConfig, text: str | None, left: str, right: str, reference: str | None = None,
    upload: str | None = None,
) -> tuple[CompareSide, CompareSide, pd.DataFrame]:
    """Tab 3 (Compare): two generators/adapters on one document; flags, scores, ROUGE and similarity."""
    document = read_document(cfg, text, upload)
    sides, summaries = [], []
    for choice in (left, right):
        s = hub.summarize(choice, document)
        report = hub.verify(document, s.text)
        sides.append(CompareSide(s.text, highlight_value(s.text, report), overall_markdown(report, s), token_heatmap(report, s.text),
                                 {**report.to_dict(), "summary": s.to_dict()}))
        summaries.append((choice, s, report))
    rows = []
    ref = (reference or "").strip()
    for choice, s, report in summaries:
        row: dict[str, Any] = {
            "generator": choice, "P(hallucination)": round(report.score, 3), "label": report.label,
            "flagged spans": len(report.spans), "words": len(s.text.split()),
        }
        if ref:
            from halluguard import metrics

            r = metrics.rouge_scores([s.text], [ref])
            row.update({k: round(v, 3) for k, v in r.items()})
            row["similarity"] = round(metrics.semantic_similarity([s.text], [ref]), 3)
        rows.append(row)
    return sides[0], sides[1], pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- uploads


def ingest_upload(cfg: AppConfig, path: str | Path, allowed_exts: set[str]) -> Path:
    """Copy an upload into the app's own dir under a generated name; return the new path.

    The user's file name is used for nothing but its extension (checked against `allowed_exts`), so a
    name like `../../etc/x.csv` or `a;rm -rf.csv` can never choose where anything is read or written.
    The size limit is checked here too (the server enforces `max_file_size` before this runs).
    """
    src = Path(path)
    ext = src.suffix.lower()
    if ext not in allowed_exts:
        raise ValueError(f"unsupported file type {ext or '(none)'}; upload one of: {', '.join(sorted(allowed_exts))}")
    if not src.is_file():
        raise ValueError("the upload did not arrive; try again")
    size = src.stat().st_size
    if size > cfg.max_file_size:
        raise ValueError(f"file is {size / 1e6:.1f} MB; the limit is {cfg.max_upload_mb:g} MB")
    if size == 0:
        raise ValueError("the uploaded file is empty")
    dest_dir = Path(cfg.output_dir) / "uploads"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{uuid.uuid4().hex}{ext}"
    shutil.copyfile(src, dest)
    return dest


def decode_utf8(data: bytes, what: str = "file") -> str:
    """Bytes -> text; a readable ValueError when the bytes are not UTF-8 (a BOM is accepted)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{what} is not UTF-8 text (bad byte 0x{data[e.start]:02x} on line {line}); save it as UTF-8 and upload again") from None


def load_rows(path: str | Path, cols: dict[str, str | None], required: tuple[str, ...], max_rows: int | None = None):
    """Rows of an upload via `halluguard.io.read_rows`: (rows, errors), each a Row or RowError.

    A missing column raises ValueError naming it and the columns present; a bad row (not JSON, not
    UTF-8, empty source) becomes a RowError and every good row is kept. No good row at all raises.
    """
    from halluguard import io as hio

    named = {k: v for k, v in cols.items() if v}
    optional = tuple(r for r in ("summary", "id", "label", "reference") if r not in required)
    items = list(hio.read_rows(path, columns=named, required=required, optional=optional))
    if max_rows is not None and len(items) > max_rows:
        raise ValueError(f"the file has {len(items)} rows; the app takes at most {max_rows} (use `halluguard evaluate` for big runs)")
    good = [r for r in items if isinstance(r, hio.Row)]
    bad = [r for r in items if not isinstance(r, hio.Row)]
    if not good:
        detail = "; ".join(_upload_msg(e.message) for e in bad[:3]) if bad else "the file has no rows"
        raise ValueError(f"no usable rows: {detail}")
    return items, bad


def _upload_msg(msg: str) -> str:
    """Drop the generated upload path from a reader message (the user never saw that name)."""
    import re

    return re.sub(r"^\S*/uploads/[0-9a-f]{32}\.\w+:\s*", "", msg)


def detect_columns(columns: list[str]) -> dict[str, str | None]:
    """Best guess for each role (source, summary, reference, label, id) from the column names."""
    lower = {c.lower().strip(): c for c in columns}
    out: dict[str, str | None] = {}
    used: set[str] = set()
    for role, names in COLUMN_GUESSES.items():
        out[role] = None
        for n in names:
            if n in lower and lower[n] not in used:
                out[role] = lower[n]
                used.add(lower[n])
                break
    return out


@dataclass
class UploadInfo:
    columns: list[str]
    guesses: dict[str, str | None]
    preview: pd.DataFrame
    n_rows: int
    errors: list[str]


def inspect_upload(cfg: AppConfig, upload: str) -> UploadInfo:
    """Batch tab, on upload: columns, detected defaults, a preview, and any unreadable rows."""
    from halluguard import io as hio

    stored = ingest_upload(cfg, upload, TABLE_EXTS)
    try:
        try:
            columns = [str(c) for c in hio.input_columns(stored)]
        except ValueError as e:
            raise ValueError(_upload_msg(str(e))) from None
        items = list(hio.read_records(stored))
    finally:
        stored.unlink(missing_ok=True)
    good = [r for r in items if isinstance(r, hio.Row)]
    errors = [_upload_msg(r.message) for r in items if not isinstance(r, hio.Row)]
    if not good:
        raise ValueError("no readable rows: " + ("; ".join(errors[:3]) if errors else "the file is empty"))
    if len(items) > cfg.max_rows:
        raise ValueError(f"the file has {len(items)} rows; the app takes at most {cfg.max_rows} (use `halluguard evaluate` for big runs)")
    if not columns:
        raise ValueError("the file has no columns")
    preview = pd.DataFrame([{c: _short(r.data.get(c)) for c in columns} for r in good[:5]], columns=columns)
    return UploadInfo(columns, detect_columns(columns), preview, len(items), errors)


def _short(v: Any, n: int = 120) -> str:
    s = _cell(v)
    return s[:n] + "…" if len(s) > n else s


# --------------------------------------------------------------------------------------- batch


@dataclass
class BatchState:
    """What one step of a batch run shows: progress, the rows so far, and (at the end) metrics + files."""

    status: str
    done: int
    total: int
    results: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)
    histogram: pd.DataFrame | None = None
    labels: pd.DataFrame | None = None
    files: list[str] = field(default_factory=list)  # results.csv, results.jsonl, report.html
    finished: bool = False


RESULT_COLUMNS = ["row", "id", "score", "label", "flagged", "summary", "spans"]


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _run_dir(cfg: AppConfig, data: bytes, settings: dict[str, Any]) -> Path:
    """Same file + same settings -> same dir, so a re-run resumes instead of starting over."""
    h = hashlib.sha256(data + json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    d = Path(cfg.output_dir) / "runs" / h
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_batch(
    hub: ModelHub, cfg: AppConfig, upload: str, source_col: str, summary_col: str | None = None,
    reference_col: str | None = None, label_col: str | None = None, id_col: str | None = None,
    generate: bool = False, generator: str | None = None, update_every: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[BatchState]:
    """Tab 4 (Batch): verify (optionally generate first) every row; yields states as it goes.

    Results go to `<output_dir>/runs/<hash>/results.jsonl` through `halluguard.io.ResumableWriter`, row
    by row, so a crashed or repeated run with the same file and settings resumes where it stopped
    (rows that failed are retried). At the end the run writes results.csv and a self-contained
    report.html next to it. Bad rows are reported (label "error") and never stop the good ones.
    """
    from halluguard import io as hio

    cols = {"source": source_col, "summary": summary_col, "reference": reference_col, "label": label_col, "id": id_col}
    cols = {k: (v or None) for k, v in cols.items()}
    if not cols["source"]:
        raise ValueError("pick the source column")
    if not generate and not cols["summary"]:
        raise ValueError("pick the summary column, or tick 'generate summaries'")
    if generate:
        if not generator:
            raise ValueError("pick a generator for 'generate summaries'")
        cols["summary"] = None  # generated summaries replace the column
    stored = ingest_upload(cfg, upload, TABLE_EXTS)
    try:
        data = stored.read_bytes()
        try:
            items, read_errors = load_rows(stored, cols, ("source",) if generate else ("source", "summary"), cfg.max_rows)
        except ValueError as e:
            raise ValueError(_upload_msg(str(e))) from None
    finally:
        stored.unlink(missing_ok=True)
    settings = {"cols": cols, "generate": bool(generate), "generator": generator if generate else None,
                "verifier": cfg.verifier, "threshold": cfg.threshold}
    run_dir = _run_dir(cfg, data, settings)
    out_jsonl = run_dir / "results.jsonl"
    total = len(items)
    t0 = time.time()
    with hio.ResumableWriter(out_jsonl) as writer:
        resumed = len(writer.done)
        records = {r["_row"]: r for r in hio.read_results(out_jsonl)} if resumed else {}

        def table() -> pd.DataFrame:
            rows = [[r["_row"], _cell(r.get("id")), r.get("score"), r.get("label", ""), len(r.get("spans") or []),
                     _short(r.get("summary"), 200), ", ".join(s["text"] for s in r.get("spans") or [])[:200]]
                    for _, r in sorted(records.items())]
            return pd.DataFrame(rows, columns=RESULT_COLUMNS)

        yield BatchState(f"starting: {total} rows" + (f", {resumed} already done (resuming)" if resumed else ""),
                         resumed, total, table())
        for item in items:
            if item.index in writer.done:
                continue
            rec = _verify_row(hub, item, generate, generator)
            writer.write(rec)
            records[item.index] = rec
            if progress is not None:
                progress(len(records), total)
            if len(records) % update_every == 0:
                writer.sync()
                rate = (len(records) - resumed) / max(1e-9, time.time() - t0)
                yield BatchState(f"{len(records)}/{total} rows ({rate:.1f} rows/s)", len(records), total, table())
        writer.sort_by_row()
    final = [r for _, r in sorted(records.items())]
    row_errors = [str(r["error"]) for r in final if r.get("error")]
    m = batch_metrics(final, threshold=_threshold(hub))
    m["row_errors"] = row_errors[:50]
    m["n_row_errors"] = len(row_errors)
    hist = score_histogram(final)
    lab = label_counts(final)
    files = _write_outputs(run_dir, final, m, settings)
    status = f"done: {total} rows in {time.time() - t0:.1f} s" + (f" ({resumed} resumed)" if resumed else "")
    if row_errors:
        status += f"; {len(row_errors)} row(s) had errors (listed under metrics)"
    yield BatchState(status, total, total, table(), m, hist, lab, files, True)


def _verify_row(hub: ModelHub, item: Any, generate: bool, generator: str | None) -> dict[str, Any]:
    """One output record: `_row`, id, summary, score, label, spans (or `error`), reference and gold."""
    from halluguard import io as hio

    if not isinstance(item, hio.Row):
        return {"_row": item.index, "id": _cell(item.id) or str(item.index), "summary": "", "score": None,
                "label": "error", "spans": [], "error": _upload_msg(item.message)}
    src = _cell(item.get("source"))
    rec: dict[str, Any] = {"_row": item.index, "id": _cell(item.id) or str(item.index), "source": src}
    try:
        if generate:
            summ = hub.summarize(generator, src).text
            rec["generated_by"] = generator
        else:
            summ = _cell(item.get("summary"))
        rec["summary"] = summ
        report = hub.verify(src, summ)
        rec.update(score=round(report.score, 4), label=report.label,
                   spans=[{"start": s.start, "end": s.end, "text": s.text, "score": round(s.score, 4), "reason": s.reason}
                          for s in report.spans],
                   n_sentences=len(report.sentences),
                   n_unsupported=sum(s.verdict == "unsupported" for s in report.sentences))
    except ValueError as e:  # a bad row is reported, never fatal, never loses the good ones
        rec.update(summary=rec.get("summary", ""), score=None, label="error", spans=[], error=f"row {item.index}: {e}")
    if item.get("reference") is not None:
        rec["reference"] = _cell(item.get("reference"))
    if item.get("label") is not None:
        rec["gold"] = hio.parse_label(item.get("label"))
    return rec


def _threshold(hub: ModelHub) -> float:
    return float(hub.cfg.threshold if hub.cfg.threshold is not None else getattr(hub.verifier(), "threshold", 0.5))


def batch_metrics(records: list[dict[str, Any]], threshold: float = 0.5) -> dict[str, Any]:
    """Hallucination rate, score summary, ROUGE/similarity (with references), BA/F1 (with labels)."""
    from halluguard import metrics

    ok = [r for r in records if r.get("score") is not None]
    out: dict[str, Any] = {"rows": len(records), "verified": len(ok), "threshold": threshold}
    out["hallucination_rate"] = metrics.hallucination_rate([r["label"] for r in ok]) if ok else math.nan
    scores = [r["score"] for r in ok]
    out["mean_score"] = float(sum(scores) / len(scores)) if scores else math.nan
    with_ref = [r for r in ok if r.get("reference", "").strip() and r.get("summary", "").strip()]
    if with_ref:
        preds, refs = [r["summary"] for r in with_ref], [r["reference"] for r in with_ref]
        out.update({k: v for k, v in metrics.rouge_scores(preds, refs).items()})
        out["similarity"] = metrics.semantic_similarity(preds, refs)
        out["n_with_reference"] = len(with_ref)
    labelled = [r for r in ok if r.get("gold") is not None]
    if any("gold" in r for r in records) and not labelled:
        out["label_error"] = "label column given but no value could be read as hallucinated (1) / faithful (0)"
    if labelled:
        try:
            cm = metrics.classification_metrics([r["gold"] for r in labelled], [r["score"] for r in labelled], threshold)
        except ValueError as e:
            out["label_error"] = f"label column not usable: {e}"
        else:
            for k in ("balanced_accuracy", "f1", "precision", "recall", "roc_auc", "n", "tp", "fp", "tn", "fn"):
                out[k] = cm[k]
    # 4 decimals: what the page and report show; the JSON no longer carries float noise (0.0618777423...).
    return {k: round(v, 4) if isinstance(v, float) and math.isfinite(v) else v for k, v in out.items()}


def score_histogram(records: list[dict[str, Any]], bins: int = 10) -> pd.DataFrame:
    """Counts of scores in equal-width bins over 0-1, as a frame for gr.BarPlot (x=bin, y=count)."""
    counts = [0] * bins
    for r in records:
        if r.get("score") is not None:
            counts[min(bins - 1, int(float(r["score"]) * bins))] += 1
    # Labelled by the bin's lower edge ("0.3" = scores in [0.3, 0.4)): short labels stay readable on the axis.
    return pd.DataFrame({"score": [f"{i / bins:.1f}" for i in range(bins)], "rows": counts})


LABEL_ORDER = ["hallucinated", "faithful", "unknown", "error"]


def label_counts(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows per predicted label for gr.BarPlot: hallucinated and faithful always, unknown / error only
    when some row has them (four bars crowd their names together on a narrow screen)."""
    c = {k: 0 for k in LABEL_ORDER}
    for r in records:
        c[r.get("label", "unknown") if r.get("label") in c else "unknown"] += 1
    keep = [k for k in LABEL_ORDER if c[k] or k in ("hallucinated", "faithful")]
    return pd.DataFrame({"label": keep, "rows": [c[k] for k in keep]})


def y_limit(counts) -> list[float]:
    """y range [0, top] for a bar chart of row counts whose axis ticks fall on whole rows.

    Vega-Lite picks about height/40 ticks at "nice" steps (1, 2, 5 x 10^k); over 0..top with top >= 6
    and at most 8 ticks (Gradio's default chart height) the step is 1 or more. Over 0..2 it was 0.5.
    """
    return [0, max(6, int(max(counts, default=0)))]


def _write_outputs(run_dir: Path, records, m, settings) -> list[str]:
    from halluguard.app.report import render_batch_report

    jsonl = run_dir / "results.jsonl"  # already complete: written row by row
    csv_path = run_dir / "results.csv"
    keys = ["_row", "id", "score", "label", "source", "summary", "reference", "gold", "n_sentences", "n_unsupported", "spans", "error"]
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for r in records:
            w.writerow([json.dumps(r.get(k, "")) if k == "spans" else _cell(r.get(k, "")) for k in keys])
    html_path = run_dir / "report.html"
    html_path.write_text(render_batch_report(records, m, settings), encoding="utf-8")
    return [str(csv_path), str(jsonl), str(html_path)]
