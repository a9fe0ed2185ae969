"""Labelled hallucination-detection sets in one record type, a registry, and `halluguard data`.

    from halluguard.datasets import load_set, load_faithbench, Example
    test = load_set("faithbench:test")           # list[Example]; finds ../shared/data or $HALLUGUARD_DATA
    dev = load_set("summedits:dev")              # fit thresholds here, report on summedits:evaluation
    mine = load_set("eval_sets/halluguard_small.jsonl")   # a plain JSONL/CSV file works too

    halluguard data list                          # known sets and whether they are found locally
    halluguard data download frank                # fetch from the authors' release (needs internet)
    halluguard data show faithbench:test          # counts, base rate, span coverage
    halluguard data sft --from cnn_dailymail      # stage-A training data (halluguard/train/sft_data.py)

Every `Example` has `label` 1 = hallucinated, 0 = faithful (None = unlabelled) and `spans`: half-open
character offsets into `summary` of the hallucinated content, or None when the set has no span
annotation (an empty list means "annotated, nothing hallucinated").

Splits. FRANK `valid`/`test` and SummEdits `evaluation` are the authors' own; SummEdits `dev` is every
other row. FaithBench and XSumFaith have no official split: `dev`/`test` are halves by a stable hash of
the source text (`hash_split`), so one document never lands in both. RAGTruth and LLM-AggreFact keep
their native splits. Fit on `dev`, report on `test` (`evaluation` for SummEdits).

Only the standard library is imported at module top (the CLI's `--help` stays fast).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Example",
    "DatasetWarning",
    "SetInfo",
    "SETS",
    "hash_split",
    "find_data_dirs",
    "locate_set",
    "load_set",
    "parse_set_name",
    "load_frank",
    "load_summedits",
    "load_xsumfaith",
    "load_faithbench",
    "load_ragtruth",
    "load_aggrefact",
    "load_plain",
    "load_path",
    "download",
    "register",
]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # FRANK/RAGTruth documents exceed the 128 KiB default


# ----------------------------------------------------------------------------- record type


@dataclass
class Example:
    """One labelled (source, summary) pair.

    label: 1 = hallucinated, 0 = faithful, None = unlabelled.
    spans: hallucinated stretches of `summary` as half-open (start, end) character offsets, merged and
    sorted; None when the set has no span annotation.
    """

    id: str
    source: str
    summary: str
    label: int | None
    spans: list[tuple[int, int]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.spans is not None:
            d["spans"] = [{"start": a, "end": b, "text": self.summary[a:b]} for a, b in self.spans]
        return d


class DatasetWarning(UserWarning):
    """Rows skipped while loading (the message names the file, the rows and why)."""


def hash_split(text: str) -> str:
    """'dev' or 'test' by a stable hash of whitespace-normalised text (about half each, never random)."""
    norm = " ".join(text.split()).lower()
    return "dev" if int(hashlib.sha256(norm.encode("utf-8")).hexdigest()[:8], 16) % 2 == 0 else "test"


def _merge_spans(spans: Iterable[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """Clamp to [0, length], drop empty spans, merge overlapping/adjacent ones, sort."""
    clean = sorted((max(0, a), min(length, b)) for a, b in spans if min(length, b) > max(0, a))
    out: list[tuple[int, int]] = []
    for a, b in clean:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _Skips:
    """Collects bad rows so one bad row never loses the good ones; warns once at the end."""

    def __init__(self, where: str):
        self.where = where
        self.messages: list[str] = []

    def add(self, row: Any, msg: str) -> None:
        self.messages.append(f"row {row}: {msg}")

    def finish_part(self, examples: list[Example]) -> list[Example]:
        """Like `finish`, for one file of several: a file with no usable rows only warns."""
        if self.messages and not examples:
            warnings.warn(f"{self.where}: skipped {len(self.messages)} bad row(s): {self.messages[0]}",
                          DatasetWarning, stacklevel=3)
            return examples
        return self.finish(examples)

    def finish(self, examples: list[Example]) -> list[Example]:
        if self.messages:
            shown = "; ".join(self.messages[:3]) + (" ..." if len(self.messages) > 3 else "")
            if not examples:
                raise ValueError(f"{self.where}: no usable rows ({len(self.messages)} bad): {shown}")
            warnings.warn(f"{self.where}: skipped {len(self.messages)} bad row(s): {shown}", DatasetWarning,
                          stacklevel=3)
        return examples


# ----------------------------------------------------------------------------- file reading


def _open_text(path: Path):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_json_any(path: Path) -> Any:
    with _open_text(path) as f:
        return json.load(f)


def _iter_jsonl(path: Path, skips: _Skips) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open_text(path) as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                skips.add(i, f"not JSON ({e.msg})")
                continue
            if not isinstance(rec, dict):
                skips.add(i, f"expected a JSON object, got {type(rec).__name__}")
                continue
            yield i, rec


def _iter_records(path: Path, skips: _Skips) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a .jsonl/.json/.csv/.tsv/.parquet file, optionally gzipped, as (row index, dict)."""
    name = path.name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    if base.endswith((".jsonl", ".ndjson")):
        yield from _iter_jsonl(path, skips)
    elif base.endswith(".json"):
        data = _read_json_any(path)
        if isinstance(data, dict):
            for key in ("samples", "data", "rows", "examples"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        for i, rec in enumerate(data):
            if isinstance(rec, dict):
                yield i, rec
            else:
                skips.add(i, f"expected a JSON object, got {type(rec).__name__}")
    elif base.endswith((".csv", ".tsv")):
        with _open_text(path) as f:
            reader = csv.DictReader(f, delimiter="\t" if base.endswith(".tsv") else ",")
            for i, rec in enumerate(reader):
                yield i, dict(rec)
    elif base.endswith(".parquet"):
        import pandas as pd

        for i, rec in enumerate(pd.read_parquet(path).to_dict(orient="records")):
            yield i, rec
    else:
        raise ValueError(f"{path}: unknown file type; use .jsonl, .json, .csv, .tsv or .parquet (optionally .gz)")


def _resolve_file(path: str | os.PathLike, names: tuple[str, ...]) -> Path:
    """`path` itself, or the first of `names` inside it when it is a folder."""
    p = Path(path)
    if p.is_dir():
        for n in names:
            if (p / n).exists():
                return p / n
        raise FileNotFoundError(f"{path}: none of {', '.join(names)} found in this folder")
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return p


def _need_str(rec: dict[str, Any], keys: tuple[str, ...], what: str) -> str:
    for k in keys:
        v = rec.get(k)
        if isinstance(v, str) and v.strip():
            return v
    present = [k for k in keys if k in rec]
    if present:
        raise ValueError(f"empty or non-text {what} (column {present[0]!r})")
    raise ValueError(f"missing {what} (looked for {', '.join(repr(k) for k in keys)})")


def _check_split(split: str | None, allowed: tuple[str, ...], aliases: dict[str, str] | None = None) -> str | None:
    if split in (None, "", "all"):
        return None
    s = split.strip().lower()
    s = (aliases or {}).get(s, s)
    if s not in allowed:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(allowed + ('all',))}")
    return s


# ----------------------------------------------------------------------------- FRANK


_hash_split = hash_split


def _frank_document_splits(xsumfaith_file: Path) -> dict[str, str]:
    """document text -> "dev"/"test" from a FRANK file beside an XSumFaith file (../frank/), else {}."""
    for cand in (xsumfaith_file.parent.parent / "frank" / "frank_joined.jsonl.gz",
                 xsumfaith_file.parent.parent / "frank" / "frank_joined.jsonl",
                 xsumfaith_file.parent / "frank_joined.jsonl.gz"):
        if cand.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DatasetWarning)
                return {ex.source: ("dev" if ex.meta.get("split") == "valid" else "test")
                        for ex in load_frank(cand)}
    return {}


def load_frank(path: str | os.PathLike, split: str | None = None) -> list[Example]:
    """FRANK (Pagnoni et al. 2021) joined file: JSONL(.gz) with hash, dataset, model_name, split,
    document, summary, label (1 = consistent, i.e. Factuality == 1.0). Splits: `valid` (alias `dev`),
    `test` — FRANK's own, by article. No span annotation."""
    path = _resolve_file(path, ("frank_joined.jsonl.gz", "frank_joined.jsonl"))
    want = _check_split(split, ("valid", "test"), {"dev": "valid", "validation": "valid"})
    skips, out = _Skips(str(path)), []
    for i, rec in _iter_records(path, skips):
        try:
            rec_split = {"validation": "valid"}.get(str(rec.get("split", "")).lower(), str(rec.get("split", "")).lower())
            if want and rec_split != want:
                continue
            source = _need_str(rec, ("document", "article"), "document")
            summary = _need_str(rec, ("summary",), "summary")
            if "label" in rec and rec["label"] not in (None, ""):
                consistent = int(float(rec["label"]))
            elif rec.get("Factuality") not in (None, ""):
                consistent = int(float(rec["Factuality"]) == 1.0)
            else:
                raise ValueError("missing label / Factuality")
            if consistent not in (0, 1):
                raise ValueError(f"label {rec['label']!r} is not 0/1")
            out.append(Example(
                id=f"{rec.get('hash', i)}-{rec.get('model_name', '')}", source=source, summary=summary,
                label=1 - consistent, spans=None,
                meta={"set": "frank", "split": rec_split, "dataset": rec.get("dataset"),
                      "model_name": rec.get("model_name"), "factuality": _float_or_none(rec.get("Factuality"))},
            ))
        except (ValueError, TypeError) as e:
            skips.add(i, str(e))
    return skips.finish(out)


def _float_or_none(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- SummEdits


def load_summedits(path: str | os.PathLike, split: str | None = None, domains: Iterable[str] | None = None) -> list[Example]:
    """SummEdits (Laban et al. 2023): a folder of `summedits_<domain>.json[.gz]` (or one such file) with
    doc, summary, label (1 = consistent), edit_types, split. Splits: `evaluation` (the authors' held-out
    rows) and `dev` (every other row). `domains` keeps only those domains."""
    p = Path(path)
    files = sorted(p.glob("summedits_*.json*")) if p.is_dir() else [p]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{path}: no summedits_<domain>.json[.gz] files found")
    want = _check_split(split, ("evaluation", "dev"), {"eval": "evaluation", "test": "evaluation"})
    keep = {d.lower() for d in domains} if domains else None
    out: list[Example] = []
    for f in files:
        domain = re.sub(r"\.json(\.gz)?$", "", f.name).removeprefix("summedits_")
        if keep and domain not in keep:
            continue
        skips = _Skips(str(f))
        part: list[Example] = []
        for i, rec in _iter_records(f, skips):
            try:
                native = str(rec.get("split", "")).lower()
                rec_split = "evaluation" if native == "evaluation" else "dev"
                if want and rec_split != want:
                    continue
                consistent = int(float(rec["label"]))
                if consistent not in (0, 1):
                    raise ValueError(f"label {rec['label']!r} is not 0/1")
                edit_types = rec.get("edit_types")
                if isinstance(edit_types, str):
                    try:
                        edit_types = json.loads(edit_types.replace("'", '"'))
                    except json.JSONDecodeError:
                        edit_types = [edit_types]
                part.append(Example(
                    id=f"{domain}-{rec.get('id', i)}", source=_need_str(rec, ("doc", "document"), "doc"),
                    summary=_need_str(rec, ("summary",), "summary"), label=1 - consistent, spans=None,
                    meta={"set": "summedits", "split": rec_split, "domain": domain, "edit_types": edit_types},
                ))
            except (ValueError, TypeError, KeyError) as e:
                skips.add(i, f"missing {e}" if isinstance(e, KeyError) else str(e))
        out.extend(skips.finish_part(part))
    if not out and want is None:
        raise ValueError(f"{path}: no SummEdits rows found")
    return out


# ----------------------------------------------------------------------------- XSumFaith


def _locate_span(summary: str, text: str, start: int | None) -> tuple[int, int] | None:
    """Offsets of an annotated span in `summary`. XSumFaith's offsets are 1-based on a slightly different
    rendering of the summary, so try the given offsets, then one to the left, then the occurrence of the
    span text nearest to the given start."""
    if not text:
        return None
    if start is not None and start >= 0:
        for s in (start, start - 1):
            if s >= 0 and summary[s:s + len(text)] == text:
                return s, s + len(text)
    hay, needle = summary, text
    hits = [m.start() for m in re.finditer(re.escape(needle), hay)]
    if not hits:
        hay, needle = summary.lower(), text.strip().lower()
        hits = [m.start() for m in re.finditer(re.escape(needle), hay)] if needle else []
    if not hits:
        return None
    best = min(hits, key=lambda h: abs(h - (start or 0)))
    return best, best + len(needle)


def load_xsumfaith(path: str | os.PathLike, split: str | None = None, span_agreement: str = "majority") -> list[Example]:
    """XSumFaith (Maynez et al. 2020) joined with its documents: JSONL(.gz) with bbcid, system, document,
    summary, label_summac_majority (1 = consistent), spans [{worker_id, hallucination_type, span, start,
    end}]. Gold spans: characters marked by at least half the annotators (`span_agreement="majority"`)
    or by any (`"union"`); faithful rows get no spans. Splits: `dev`/`test`. XSumFaith's documents are
    FRANK's XSum articles (often with the very same summaries), so a document FRANK puts in its `test`
    split is `test` here and one in FRANK's `valid` is `dev`: nothing fitted on one set's dev half can
    then sit in the other's test half. Documents FRANK lacks (or when FRANK is not found beside this
    set) fall back to a hash of the document."""
    if span_agreement not in ("majority", "union"):
        raise ValueError("span_agreement must be 'majority' or 'union'")
    path = _resolve_file(path, ("xsumfaith_with_frank_documents.jsonl.gz", "xsumfaith_with_frank_documents.jsonl"))
    want = _check_split(split, ("dev", "test"))
    frank_splits = _frank_document_splits(path)

    def hash_split(source: str) -> str:  # noqa: F811 - FRANK's split first, the hash only as fallback
        return frank_splits.get(source) or _hash_split(source)

    skips, out = _Skips(str(path)), []
    lost_spans = 0
    for i, rec in _iter_records(path, skips):
        try:
            source = _need_str(rec, ("document",), "document")
            if want and hash_split(source) != want:
                continue
            summary = _need_str(rec, ("summary",), "summary")
            consistent = int(rec["label_summac_majority"])
            workers: dict[str, list[tuple[int, int]]] = {}
            for sp in rec.get("spans") or []:
                wid = str(sp.get("worker_id", ""))
                workers.setdefault(wid, [])
                if sp.get("span") in (None, "", "NULL"):
                    continue
                loc = _locate_span(summary, str(sp["span"]), _int_or_none(sp.get("start")))
                if loc is None:
                    lost_spans += 1
                    continue
                workers[wid].append(loc)
            spans: list[tuple[int, int]] = []
            if consistent == 0 and workers:
                need = 1 if span_agreement == "union" else (len(workers) + 1) // 2
                votes = [0] * (len(summary) + 1)
                for locs in workers.values():
                    for c in {c for a, b in locs for c in range(a, b)}:
                        votes[c] += 1
                spans = _merge_spans(_runs([v >= need for v in votes]), len(summary))
            out.append(Example(
                id=f"{rec.get('bbcid', i)}-{rec.get('system', '')}", source=source, summary=summary,
                label=1 - consistent, spans=spans,
                meta={"set": "xsumfaith", "split": hash_split(source), "system": rec.get("system"),
                      "bbcid": rec.get("bbcid")},
            ))
        except (ValueError, TypeError, KeyError) as e:
            skips.add(i, f"missing {e}" if isinstance(e, KeyError) else str(e))
    if lost_spans:
        warnings.warn(f"{path}: {lost_spans} annotated span(s) could not be located in their summary",
                      DatasetWarning, stacklevel=2)
    return skips.finish(out)


def _runs(mask: list[bool]) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, m in enumerate(mask + [False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- FaithBench


def _faithbench_severity(labels: Iterable[str]) -> str:
    labs = [str(x) for x in labels or []]
    if any(x.startswith("Unwanted") for x in labs):
        return "Unwanted"
    if "Questionable" in labs:
        return "Questionable"
    if "Benign" in labs:
        return "Benign"
    return "Consistent"


def load_faithbench(path: str | os.PathLike, split: str | None = None, questionable_hallucinated: bool = False) -> list[Example]:
    """FaithBench (Bao et al. 2024). `path`: the release folder (`data_for_release/batch_*.json`, with
    span annotations), one batch JSON, the repo folder, or `FaithBench.csv` (labels only).

    Label: hallucinated if an annotator marked the summary `Unwanted` (any `Unwanted.*` label);
    `Questionable` counts as hallucinated only with `questionable_hallucinated=True` — the published
    anchors in FaithBench's release (GPT-4o 54.7, HHEM-2.1 54.2 balanced accuracy) use that convention.
    `Benign` and unannotated summaries are faithful. Spans: union of the annotated summary spans whose
    label counts as hallucinated (character offsets into the summary exactly as released).
    `meta["detector_scores"]` holds the predictions shipped in the release as P(hallucinated).
    Splits: `dev`/`test` by hash of the source text.
    """
    p = Path(path)
    if p.is_dir():
        release = p / "data_for_release" if (p / "data_for_release").is_dir() else p
        files = sorted(release.glob("batch_*.json"), key=lambda f: int(re.sub(r"\D", "", f.stem) or 0))
        if not files:
            csv_path = p / "FaithBench.csv"
            if csv_path.exists():
                return _load_faithbench_csv(csv_path, split, questionable_hallucinated)
            raise FileNotFoundError(f"{path}: no data_for_release/batch_*.json or FaithBench.csv")
    elif p.suffix.lower() == ".csv":
        return _load_faithbench_csv(p, split, questionable_hallucinated)
    elif p.exists():
        files = [p]
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")
    want = _check_split(split, ("dev", "test"))
    bad = {"Unwanted", "Questionable"} if questionable_hallucinated else {"Unwanted"}
    out: list[Example] = []
    for f in files:
        skips = _Skips(str(f))
        part: list[Example] = []
        for i, rec in _iter_records(f, skips):
            try:
                source = _need_str(rec, ("source",), "source")
                if want and hash_split(source) != want:
                    continue
                summary = rec.get("summary")
                if not isinstance(summary, str) or not summary.strip():
                    raise ValueError("empty or missing summary")
                severities, spans = [], []
                for ann in rec.get("annotations") or []:
                    sev = _faithbench_severity(ann.get("label") or [])
                    severities.append(sev)
                    a, b = _int_or_none(ann.get("summary_start")), _int_or_none(ann.get("summary_end"))
                    if sev in bad and a is not None and b is not None:
                        spans.append((a, b))
                order = ["Consistent", "Benign", "Questionable", "Unwanted"]
                worst = max(severities, key=order.index) if severities else "Consistent"
                md = rec.get("metadata") or {}
                scores = {k: (None if v is None else round(1.0 - float(v), 6)) for k, v in md.items()
                          if k not in ("summarizer", "raw_sample_id") and isinstance(v, (int, float, type(None)))}
                part.append(Example(
                    id=f"{f.stem}-{rec.get('sample_id', i)}", source=source, summary=summary,
                    label=int(worst in bad), spans=_merge_spans(spans, len(summary)),
                    meta={"set": "faithbench", "split": hash_split(source), "worst_label": worst,
                          "summarizer": md.get("summarizer"), "detector_scores": scores},
                ))
            except (ValueError, TypeError) as e:
                skips.add(i, str(e))
        out.extend(skips.finish_part(part))
    return out


def _load_faithbench_csv(path: Path, split: str | None, questionable_hallucinated: bool) -> list[Example]:
    want = _check_split(split, ("dev", "test"))
    bad = {"Unwanted", "Questionable"} if questionable_hallucinated else {"Unwanted"}
    skips, out = _Skips(str(path)), []
    for i, rec in _iter_records(path, skips):
        try:
            source = _need_str(rec, ("source",), "source")
            if want and hash_split(source) != want:
                continue
            worst = str(rec.get("worst-label") or rec.get("worst_label") or "").strip()
            if worst not in ("Unwanted", "Questionable", "Benign", "Consistent"):
                raise ValueError(f"worst-label {worst!r} is not Unwanted/Questionable/Benign/Consistent")
            out.append(Example(
                id=f"csv-{i}", source=source, summary=_need_str(rec, ("summary",), "summary"),
                label=int(worst in bad), spans=None,
                meta={"set": "faithbench", "split": hash_split(source), "worst_label": worst,
                      "summarizer": rec.get("LLM"), "best_label": rec.get("best-label")},
            ))
        except (ValueError, TypeError) as e:
            skips.add(i, str(e))
    return skips.finish(out)


# ----------------------------------------------------------------------------- RAGTruth


def _ragtruth_source(info: Any) -> tuple[str, dict[str, Any]]:
    """RAGTruth's source_info is the passage text (Summary), {question, passages} (QA) or a record (Data2txt)."""
    if isinstance(info, str):
        return info, {}
    if isinstance(info, dict) and "passages" in info:
        return str(info["passages"]), {"question": info.get("question")}
    return json.dumps(info, ensure_ascii=False, indent=1), {}


def _label_spans(labels: Any, summary: str, where: str) -> list[tuple[int, int]]:
    spans = []
    for lab in labels or []:
        if isinstance(lab, dict):
            a, b = _int_or_none(lab.get("start")), _int_or_none(lab.get("end"))
        elif isinstance(lab, (list, tuple)) and len(lab) >= 2:
            a, b = _int_or_none(lab[0]), _int_or_none(lab[1])
        else:
            raise ValueError(f"{where}: span {lab!r} is not {{start, end}} or [start, end]")
        if a is None or b is None or a < 0 or b < a or a > len(summary):
            raise ValueError(f"{where}: span {lab!r} has bad offsets for a summary of {len(summary)} characters")
        spans.append((a, b))
    return _merge_spans(spans, len(summary))


def load_ragtruth(path: str | os.PathLike, split: str | None = None, task: str | None = None,
                  include_bad_quality: bool = False) -> list[Example]:
    """RAGTruth (Niu et al. 2024). `path`: a folder with `response.jsonl` + `source_info.jsonl` (the
    authors' release), or one JSONL with one source per line:
    `{"source": ..., "responses": [{"response": ..., "labels": [{"start", "end"}, ...]}, ...]}`.
    Label: hallucinated if a response has any labelled span; spans are the labels' character offsets into
    the response. `task` keeps one task type ("Summary", "QA", "Data2txt"). Native splits `train`/`test`
    (plus `dev`/`test` by hash when the file has no split field). Responses of quality other than "good"
    are dropped unless `include_bad_quality`."""
    p = Path(path)
    if p.is_dir() or p.name == "response.jsonl":
        folder = p if p.is_dir() else p.parent
        return _load_ragtruth_release(folder, split, task, include_bad_quality)
    return _load_ragtruth_lines(p, split, task)


def _load_ragtruth_release(folder: Path, split: str | None, task: str | None, include_bad_quality: bool) -> list[Example]:
    resp, info = folder / "response.jsonl", folder / "source_info.jsonl"
    for f in (resp, info):
        if not f.exists():
            raise FileNotFoundError(f"{f}: missing (RAGTruth needs response.jsonl and source_info.jsonl)")
    want = _check_split(split, ("train", "test"), {"dev": "train"})
    skips_info = _Skips(str(info))
    sources = {str(r.get("source_id")): r for _, r in _iter_jsonl(info, skips_info)}
    skips, out = _Skips(str(resp)), []
    for i, rec in _iter_jsonl(resp, skips):
        try:
            if want and str(rec.get("split", "")).lower() != want:
                continue
            if not include_bad_quality and rec.get("quality", "good") != "good":
                continue
            src = sources.get(str(rec.get("source_id")))
            if src is None:
                raise ValueError(f"source_id {rec.get('source_id')!r} not in source_info.jsonl")
            if task and str(src.get("task_type", "")).lower() != task.lower():
                continue
            source, extra = _ragtruth_source(src.get("source_info"))
            summary = _need_str(rec, ("response",), "response")
            spans = _label_spans(rec.get("labels"), summary, "labels")
            out.append(Example(
                id=str(rec.get("id", i)), source=source, summary=summary, label=int(bool(spans)), spans=spans,
                meta={"set": "ragtruth", "split": rec.get("split"), "task_type": src.get("task_type"),
                      "model": rec.get("model"), "source_id": rec.get("source_id"),
                      "label_types": [lab.get("label_type") for lab in rec.get("labels") or [] if isinstance(lab, dict)],
                      **extra},
            ))
        except (ValueError, TypeError) as e:
            skips.add(i, str(e))
    return skips.finish(out)


def _load_ragtruth_lines(path: Path, split: str | None, task: str | None) -> list[Example]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    skips, out = _Skips(str(path)), []
    for i, rec in _iter_records(path, skips):
        try:
            raw_source = rec.get("source", rec.get("source_info", rec.get("context", rec.get("document"))))
            source, extra = _ragtruth_source(raw_source)
            if not source.strip():
                raise ValueError("empty or missing source")
            if task and str(rec.get("task_type", "")).lower() != task.lower():
                continue
            native = rec.get("split")
            rec_split = str(native).lower() if native else hash_split(source)
            if split not in (None, "", "all") and rec_split != split.lower():
                continue
            responses = rec.get("responses")
            if not isinstance(responses, list) or not responses:
                raise ValueError("missing 'responses' list")
            for j, r in enumerate(responses):
                where = f"responses[{j}]"
                if not isinstance(r, dict):
                    skips.add(f"{i}.{j}", f"{where} is not an object")
                    continue
                try:
                    summary = _need_str(r, ("response", "text", "summary"), f"{where} text")
                    spans = _label_spans(r.get("labels"), summary, f"{where}.labels")
                    label = r.get("label", r.get("hallucinated"))
                    lab = int(bool(spans)) if label is None else _as_label(label)
                    out.append(Example(
                        id=f"{rec.get('id', rec.get('source_id', i))}-{j}", source=source, summary=summary,
                        label=lab, spans=spans,
                        meta={"set": "ragtruth", "split": rec_split, "task_type": rec.get("task_type"),
                              "model": r.get("model"), **extra},
                    ))
                except ValueError as e:
                    skips.add(f"{i}.{j}", str(e))
        except (ValueError, TypeError) as e:
            skips.add(i, str(e))
    return skips.finish(out)


# ----------------------------------------------------------------------------- LLM-AggreFact, plain


def _as_label(v: Any) -> int | None:
    """1 = hallucinated. Accepts 0/1, bools, and words (hallucinated/faithful/consistent/...)."""
    if v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, str):
        w = v.strip().lower()
        words = {"hallucinated": 1, "unfaithful": 1, "inconsistent": 1, "unsupported": 1, "yes": 1, "true": 1,
                 "faithful": 0, "consistent": 0, "supported": 0, "no": 0, "false": 0}
        if w in words:
            return words[w]
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"label {v!r} is not 0/1 or hallucinated/faithful") from None
    if f not in (0.0, 1.0):
        raise ValueError(f"label {v!r} is not 0/1")
    return int(f)


def load_aggrefact(path: str | os.PathLike, split: str | None = None, datasets: Iterable[str] | None = None) -> list[Example]:
    """LLM-AggreFact style (Tang et al. 2024): rows of (dataset, doc, claim, label) where label 1 =
    SUPPORTED (converted here to 1 = hallucinated). `path`: a folder of `dev-*.parquet`/`test-*.parquet`
    (the HF release layout, split from the file name) or one CSV/JSONL/Parquet file (split from a `split`
    column if any). `datasets` keeps only those sub-datasets (e.g. ["AggreFact-CNN", "RAGTruth"])."""
    p = Path(path)
    files = sorted(p.rglob("*.parquet")) + sorted(p.rglob("*.jsonl")) + sorted(p.rglob("*.csv")) if p.is_dir() else [p]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{path}: no LLM-AggreFact files found")
    keep = {d.lower() for d in datasets} if datasets else None
    out: list[Example] = []
    for f in files:
        file_split = next((s for s in ("dev", "test") if f.name.lower().startswith(s)), None)
        skips, part = _Skips(str(f)), []
        for i, rec in _iter_records(f, skips):
            try:
                rec_split = str(rec.get("split") or file_split or "").lower() or None
                if split not in (None, "", "all") and rec_split != split.lower():
                    continue
                ds = rec.get("dataset")
                if keep and str(ds).lower() not in keep:
                    continue
                supported = _as_label(rec.get("label"))
                if supported is None:
                    raise ValueError("missing label")
                part.append(Example(
                    id=f"{ds or f.stem}-{rec.get('id', i)}", source=_need_str(rec, ("doc", "document", "source"), "doc"),
                    summary=_need_str(rec, ("claim", "summary"), "claim"), label=1 - supported, spans=None,
                    meta={"set": "aggrefact", "split": rec_split, "dataset": ds},
                ))
            except (ValueError, TypeError) as e:
                skips.add(i, str(e))
        out.extend(skips.finish_part(part))
    return out


def load_plain(path: str | os.PathLike, split: str | None = None, source_col: str | None = None,
               summary_col: str | None = None, label_col: str | None = None) -> list[Example]:
    """A plain JSONL/CSV/TSV/JSON/Parquet file (optionally .gz) with `source`, `summary`, optional
    `label` (1/0 or hallucinated/faithful; 1 = hallucinated), optional `spans` (a list of {start, end}
    or [start, end]; in CSV a JSON string; without a label, a row is hallucinated iff it has spans),
    optional `id` and `split`. Other columns go to `meta`.
    Common aliases are accepted (document/doc/article, claim/response, hallucinated). A `split` column
    selects rows; without one, `dev`/`test` are halves by hash of the source."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    src_keys = (source_col,) if source_col else ("source", "document", "doc", "article", "context", "premise")
    sum_keys = (summary_col,) if summary_col else ("summary", "claim", "response", "hypothesis", "output")
    lab_keys = (label_col,) if label_col else ("label", "hallucinated", "is_hallucinated")
    skips, out = _Skips(str(p)), []
    spans_dropped: list[str] = []
    for i, rec in _iter_records(p, skips):
        try:
            source = _need_str(rec, src_keys, "source")
            summary = _need_str(rec, sum_keys, "summary")
            rec_split = str(rec["split"]).lower() if rec.get("split") not in (None, "") else hash_split(source)
            if split not in (None, "", "all") and rec_split != split.lower():
                continue
            label = next((_as_label(rec[k]) for k in lab_keys if k in rec), None)
            raw_spans = rec.get("spans")
            if isinstance(raw_spans, str):
                raw_spans = json.loads(raw_spans) if raw_spans.strip() else None
            spans = None if raw_spans is None else _label_spans(raw_spans, summary, "spans")
            if label is None and spans is not None:
                label = int(bool(spans))  # span-annotated without a label column: hallucinated iff it has spans
            if spans and label == 0:
                # the label wins (spans of benign edits are common); keep the row, count it in a warning
                spans_dropped.append(str(rec.get("id", i)))
                spans = []
            used = set(src_keys + sum_keys + lab_keys + ("spans", "id"))
            meta = {k: v for k, v in rec.items() if k not in used}
            meta.setdefault("split", rec_split)
            out.append(Example(id=str(rec.get("id", i)), source=source, summary=summary, label=label,
                               spans=spans, meta=meta))
        except json.JSONDecodeError as e:
            skips.add(i, f"spans is not JSON ({e.msg})")
        except (ValueError, TypeError) as e:
            skips.add(i, str(e))
    if spans_dropped:
        warnings.warn(f"{p}: {len(spans_dropped)} row(s) labelled faithful also had spans; kept as faithful "
                      f"with no spans (ids {', '.join(spans_dropped[:5])}{' ...' if len(spans_dropped) > 5 else ''})",
                      DatasetWarning, stacklevel=2)
    return skips.finish(out)


def load_path(path: str | os.PathLike, split: str | None = None) -> list[Example]:
    """Load any supported file or folder, telling the format from its name or its first record."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        if (p / "response.jsonl").exists():
            return load_ragtruth(p, split)
        if (p / "data_for_release").is_dir() or list(p.glob("batch_*.json")) or (p / "FaithBench.csv").exists():
            return load_faithbench(p, split)
        if list(p.glob("summedits_*.json*")):
            return load_summedits(p, split)
        if list(p.glob("frank_joined.jsonl*")):
            return load_frank(p, split)
        if list(p.glob("xsumfaith*.jsonl*")):
            return load_xsumfaith(p, split)
        if list(p.rglob("*.parquet")):
            return load_aggrefact(p, split)
        raise ValueError(f"{path}: cannot tell which data set this folder holds")
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if name.startswith("frank"):
        return load_frank(p, split)
    if name.startswith("xsumfaith"):
        return load_xsumfaith(p, split)
    if name.startswith("summedits_"):
        return load_summedits(p, split)
    if name == "faithbench.csv" or re.fullmatch(r"batch_\d+\.json", name):
        return load_faithbench(p, split)
    first = _first_record(p)
    if "responses" in first:
        return load_ragtruth(p, split)
    if "claim" in first and "doc" in first:
        return load_aggrefact(p, split)
    if "label_summac_majority" in first:
        return load_xsumfaith(p, split)
    return load_plain(p, split)


def _first_record(p: Path) -> dict[str, Any]:
    skips = _Skips(str(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, rec in _iter_records(p, skips):
            return rec
    return {}


# ----------------------------------------------------------------------------- registry

_GH = "https://raw.githubusercontent.com"
_FAITHBENCH_COMMIT = "cf89797d82812c23b5d5e5c121f1d9b8983bbbce"
_FAITHBENCH_BATCHES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16)  # batch 13 was never released
# sha256 of the files at that commit (a pinned commit cannot change; this catches truncated downloads and
# mirrors that serve something else). `halluguard data download --no-verify` skips the check.
_FAITHBENCH_SHA256 = {
    "FaithBench.csv": "b64595319c5a0673c7af00a12c9340a79aeb3437c021b097745413da42d80a09",
    "batch_1.json": "a4e7858702e741b0fb024a022a906f61fb8eb65011b7f7b138e56e080a4c8c59",
    "batch_2.json": "18f1b2b9eae6fbf2020f295dc5ca512ef1a7e389e763b707bc51831f58df6a70",
    "batch_3.json": "84b709a9d88998f478f429ee2330ea18666ae9e5340ea398ece03cec6ab54308",
    "batch_4.json": "c0f68bc222dd8b6e332cb6668840de8da150687ddf6f9b5bd243f389033fda42",
    "batch_5.json": "6be08bb37ccdf68e41e117b0174cc3c8b41ed7bf85134d00e0e89c023e96b436",
    "batch_6.json": "a5fd42aa64fbe15f535192ddfd3cfc72b53535cde7834cb6685ebe0a229f8587",
    "batch_7.json": "28e83e1487381ce317103505dab4d5679ad74f53541374a98e24e3673734343b",
    "batch_8.json": "5cf2b8ab42fe1d4b0018cf736448dd8a88318267b0efc2f45ea200e713932975",
    "batch_9.json": "4924fe2d0975890712032a128544c0619c2ebf81d5d472e99e7883f1a9720bd5",
    "batch_10.json": "8e5cec822516abbf74cd6796104bbe537da98628c671b64c10afa3b15bebe08c",
    "batch_11.json": "cf999c8fa9696f4b24d8f4b08f9fdd6603a942cfee63ad851ff6d1f265c116cc",
    "batch_12.json": "fda9f0e0eae69c13b79a8fc1f81d1f8a02e9f28ad8c3274619c4369bb15c818e",
    "batch_14.json": "72f07b9f4b91f8a49d96e7adc79a8308edb92a2e6b34babcd9ef68dc6b7b2f34",
    "batch_15.json": "c6608ce2edd17134674c7f8a0fdfc871e22458b432b35506889886c737eb4663",
    "batch_16.json": "e35ace1069bb79844b122415d3c4192f7147737a2b9ad509185fb2c1ba7090db",
}
_SUMMEDITS_DOMAINS = ("news", "podcast", "samsum", "sales_call", "sales_email", "scitldr", "qmsumm", "ectsum")


@dataclass(frozen=True)
class SetInfo:
    """A known public set: where it lives under a data folder, how to load and split it, where it came from."""

    name: str
    title: str
    relpath: str  # under a data folder (../shared/data, $HALLUGUARD_DATA, ~/.cache/halluguard/data)
    loader: Callable[..., list[Example]]
    splits: tuple[str, ...]
    dev_split: str  # fit thresholds / combinations here
    report_split: str  # report numbers here
    license: str
    homepage: str
    citation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    has_spans: bool = False
    download_key: str = ""  # which download recipe fetches it (several sets share one)


SETS: dict[str, SetInfo] = {s.name: s for s in [
    SetInfo("faithbench", "FaithBench (release JSON, spans; Unwanted = hallucinated)", "faithbench/data_for_release",
            load_faithbench, ("dev", "test"), "dev", "test", "CC BY-NC-SA 4.0 (research use)",
            "https://github.com/vectara/FaithBench",
            "Bao et al. 2024, FaithBench: A Diverse Hallucination Benchmark for Summarization by Modern LLMs",
            {"questionable_hallucinated": False}, True, "faithbench"),
    SetInfo("faithbench-q", "FaithBench (release JSON, spans; Unwanted or Questionable = hallucinated, as the published anchors)",
            "faithbench/data_for_release", load_faithbench, ("dev", "test"), "dev", "test",
            "CC BY-NC-SA 4.0 (research use)", "https://github.com/vectara/FaithBench",
            "Bao et al. 2024, FaithBench", {"questionable_hallucinated": True}, True, "faithbench"),
    SetInfo("faithbench-csv", "FaithBench.csv (800 rows, worst-label only, no spans)", "faithbench/FaithBench.csv",
            load_faithbench, ("dev", "test"), "dev", "test", "CC BY-NC-SA 4.0 (research use)",
            "https://github.com/vectara/FaithBench", "Bao et al. 2024, FaithBench",
            {"questionable_hallucinated": False}, False, "faithbench"),
    SetInfo("summedits", "SummEdits (8 domains)", "summedits", load_summedits, ("dev", "evaluation"), "dev",
            "evaluation", "Apache-2.0", "https://github.com/salesforce/factualNLG",
            "Laban et al. 2023, SummEdits / LLMs as Factual Reasoners", {}, False, "summedits"),
    SetInfo("frank", "FRANK (CNN/DM + XSum)", "frank/frank_joined.jsonl.gz", load_frank, ("valid", "test"), "valid",
            "test", "MIT", "https://github.com/artidoro/frank",
            "Pagnoni et al. 2021, Understanding Factuality in Abstractive Summarization with FRANK", {}, False, "frank"),
    SetInfo("xsumfaith", "XSumFaith (251 docs x 5 systems, spans)", "xsumfaith/xsumfaith_with_frank_documents.jsonl.gz",
            load_xsumfaith, ("dev", "test"), "dev", "test", "CC BY 4.0",
            "https://github.com/google-research-datasets/xsum_hallucination_annotations",
            "Maynez et al. 2020, On Faithfulness and Factuality in Abstractive Summarization", {}, True, "xsumfaith"),
    SetInfo("ragtruth", "RAGTruth (QA, Summary, Data2txt; spans)", "ragtruth", load_ragtruth, ("train", "test"),
            "train", "test", "MIT", "https://github.com/ParticleMedia/RAGTruth",
            "Niu et al. 2024, RAGTruth: A Hallucination Corpus for Trustworthy RAG", {}, True, "ragtruth"),
    SetInfo("ragtruth-summary", "RAGTruth, Summary task only", "ragtruth", load_ragtruth, ("train", "test"), "train",
            "test", "MIT", "https://github.com/ParticleMedia/RAGTruth", "Niu et al. 2024, RAGTruth",
            {"task": "Summary"}, True, "ragtruth"),
    SetInfo("aggrefact", "LLM-AggreFact (11 sets; gated on the HF hub)", "llm-aggrefact", load_aggrefact,
            ("dev", "test"), "dev", "test", "CC BY-ND 4.0 (evaluation only)",
            "https://huggingface.co/datasets/lytang/LLM-AggreFact",
            "Tang et al. 2024, MiniCheck: Efficient Fact-Checking of LLMs on Grounding Documents", {}, False,
            "aggrefact"),
]}


def _candidate_roots() -> list[Path]:
    """Data folders, in the order they are searched."""
    roots: list[Path] = []
    env = os.environ.get("HALLUGUARD_DATA")
    if env:
        roots.append(Path(env).expanduser())
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for d in (start, *start.parents):
            cand = d / "shared" / "data"
            if cand.is_dir():
                roots.append(cand)
                break
    roots.append(default_download_dir())
    seen, out = set(), []
    for r in roots:
        key = str(r.resolve()) if r.exists() else str(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def default_download_dir() -> Path:
    """Where `halluguard data download` writes: $HALLUGUARD_DATA, else ~/.cache/halluguard/data."""
    env = os.environ.get("HALLUGUARD_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "halluguard" / "data"


def find_data_dirs() -> list[Path]:
    """Existing data folders: $HALLUGUARD_DATA, the nearest `shared/data` above the working directory and
    above the package, and the download cache."""
    return [r for r in _candidate_roots() if r.is_dir()]


def locate_set(name: str) -> Path | None:
    """The path of a registered set in the first data folder that holds it, or None."""
    info = SETS.get(name)
    if info is None:
        raise ValueError(f"unknown set {name!r}; known: {', '.join(SETS)}")
    for root in find_data_dirs():
        if (root / info.relpath).exists():
            return root / info.relpath
    return None


def parse_set_name(spec: str) -> tuple[str, str | None]:
    """'faithbench:test' -> ('faithbench', 'test'); a path (which may itself contain ':') -> (path, None)."""
    spec = spec.strip()
    if not spec:
        raise ValueError("empty set name")
    if spec in SETS or Path(spec).exists():
        return spec, None
    if ":" in spec:
        name, split = spec.rsplit(":", 1)
        return name, (split or None)
    return spec, None


def load_set(spec: str, limit: int | None = None, **kwargs: Any) -> list[Example]:
    """Load a registered set (`name[:split]`, e.g. "faithbench:test") or any file/folder path
    (`path[:split]`). Keyword arguments go to the set's loader. `limit` keeps the first N examples."""
    name, split = parse_set_name(spec)
    if name in SETS:
        info = SETS[name]
        path = locate_set(name)
        if path is None:
            roots = ", ".join(str(r) for r in _candidate_roots())
            raise FileNotFoundError(
                f"set {name!r} not found (looked for {info.relpath} under: {roots}); "
                f"run `halluguard data download {info.download_key}` or set HALLUGUARD_DATA"
            )
        if split is not None and split.lower() not in info.splits + ("all",):
            aliases = {"frank": {"dev": "valid", "validation": "valid"}}.get(name, {})
            if split.lower() not in aliases:
                raise ValueError(f"set {name!r} has splits: {', '.join(info.splits)} (or all); got {split!r}")
        examples = info.loader(path, split, **{**info.kwargs, **kwargs})
    else:
        if not Path(name).exists():
            raise FileNotFoundError(f"{spec!r} is neither a known set ({', '.join(SETS)}) nor an existing path")
        examples = load_path(name, split) if not kwargs else load_plain(name, split, **kwargs)
    return examples[:limit] if limit else examples


# ----------------------------------------------------------------------------- download

@dataclass(frozen=True)
class _Remote:
    url: str
    dest: str  # relative to the download folder
    sha256: str | None = None


def download_plan(key: str) -> list[_Remote]:
    """The files a download recipe fetches, from the authors' own releases."""
    if key == "faithbench":
        base = f"{_GH}/vectara/FaithBench/{_FAITHBENCH_COMMIT}"
        return [_Remote(f"{base}/FaithBench.csv", "faithbench/FaithBench.csv", _FAITHBENCH_SHA256["FaithBench.csv"])] + [
            _Remote(f"{base}/data_for_release/batch_{b}.json", f"faithbench/data_for_release/batch_{b}.json",
                    _FAITHBENCH_SHA256[f"batch_{b}.json"])
            for b in _FAITHBENCH_BATCHES
        ]
    if key == "summedits":
        base = f"{_GH}/salesforce/factualNLG/master/data/summedits"
        return [_Remote(f"{base}/summedits_{d}.json", f"summedits/summedits_{d}.json") for d in _SUMMEDITS_DOMAINS]
    if key == "frank":
        base = f"{_GH}/artidoro/frank/main/data"
        return [_Remote(f"{base}/benchmark_data.json", "frank/raw/benchmark_data.json"),
                _Remote(f"{base}/human_annotations.json", "frank/raw/human_annotations.json")]
    if key == "xsumfaith":
        base = f"{_GH}/google-research-datasets/xsum_hallucination_annotations/master"
        return download_plan("frank")[:1] + [
            _Remote(f"{base}/hallucination_annotations_xsum_summaries.csv", "xsumfaith/raw/hallucination_annotations_xsum_summaries.csv"),
            _Remote(f"{base}/factuality_annotations_xsum_summaries.csv", "xsumfaith/raw/factuality_annotations_xsum_summaries.csv"),
        ]
    if key == "ragtruth":
        base = f"{_GH}/ParticleMedia/RAGTruth/main/dataset"
        return [_Remote(f"{base}/response.jsonl", "ragtruth/response.jsonl"),
                _Remote(f"{base}/source_info.jsonl", "ragtruth/source_info.jsonl")]
    raise ValueError(f"no download recipe {key!r}; choose one of: {', '.join(DOWNLOADS)}")


DOWNLOADS = ("faithbench", "summedits", "frank", "xsumfaith", "ragtruth", "aggrefact")


def fetch(url: str, dest: Path, sha256: str | None = None, client: Any = None, progress: bool = True) -> Path:
    """Download `url` to `dest` (atomically, via a .part file), checking `sha256` when given.
    `file://` URLs are copied (handy for mirrors and tests). `client` is an `httpx.Client` to reuse."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    if url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        src = Path(unquote(urlparse(url).path))
        if not src.exists():
            raise FileNotFoundError(f"{url}: no such file")
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            for chunk in iter(lambda: fi.read(1 << 20), b""):
                digest.update(chunk)
                fo.write(chunk)
    else:
        import httpx
        from tqdm.auto import tqdm

        own = client is None
        client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=20.0))
        try:
            with client.stream("GET", url) as r:
                if r.status_code != 200:
                    raise OSError(f"{url}: HTTP {r.status_code}")
                total = int(r.headers.get("content-length") or 0) or None
                with open(tmp, "wb") as fo, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                                                 disable=not progress, leave=False) as bar:
                    for chunk in r.iter_bytes():
                        digest.update(chunk)
                        fo.write(chunk)
                        bar.update(len(chunk))
        except httpx.HTTPError as e:
            tmp.unlink(missing_ok=True)
            raise OSError(f"{url}: download failed ({type(e).__name__}: {e})") from None
        finally:
            if own:
                client.close()
    if sha256 and digest.hexdigest() != sha256:
        tmp.unlink(missing_ok=True)
        raise OSError(f"{url}: checksum mismatch (got sha256 {digest.hexdigest()}, expected {sha256})")
    os.replace(tmp, dest)
    return dest


def download(key: str, dest: str | os.PathLike | None = None, force: bool = False, client: Any = None,
             progress: bool = True, base_url: str | None = None, verify: bool = True) -> Path:
    """Fetch a public set from its authors' release into `dest` (default `default_download_dir()`) in the
    layout `load_set` expects, joining files where the release splits them (FRANK articles + annotations;
    XSumFaith annotations + FRANK's copies of the XSum articles). Returns the folder written.
    `base_url` replaces https://raw.githubusercontent.com (a mirror, or file:// for tests); `verify=False`
    skips the sha256 check of files whose checksum is known."""
    key = key.strip().lower()
    key = SETS[key].download_key if key in SETS else key
    if key not in DOWNLOADS:
        raise ValueError(f"unknown data set {key!r}; choose one of: {', '.join(DOWNLOADS)}")
    root = Path(dest).expanduser() if dest else default_download_dir()
    root.mkdir(parents=True, exist_ok=True)
    if key == "aggrefact":
        return _download_aggrefact(root)
    plan = download_plan(key)
    if base_url:
        plan = [_Remote(r.url.replace(_GH, base_url.rstrip("/"), 1), r.dest, r.sha256) for r in plan]
    for i, remote in enumerate(plan, 1):
        target = root / remote.dest
        if target.exists() and not force:
            continue
        if progress:
            print(f"[{i}/{len(plan)}] {remote.url}", file=sys.stderr)
        fetch(remote.url, target, remote.sha256 if verify else None, client=client, progress=progress)
    if key == "frank":
        _build_frank(root)
    elif key == "xsumfaith":
        _build_xsumfaith(root)
    return root


def _build_frank(root: Path) -> Path:
    """Join FRANK's benchmark_data.json (article, summary) with human_annotations.json (Factuality)."""
    bench = json.loads((root / "frank/raw/benchmark_data.json").read_text(encoding="utf-8"))
    ann = json.loads((root / "frank/raw/human_annotations.json").read_text(encoding="utf-8"))
    factuality = {(a["hash"], a["model_name"]): a for a in ann}
    out = root / "frank/frank_joined.jsonl.gz"
    n = 0
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for b in bench:
            a = factuality.get((b["hash"], b["model_name"]))
            if a is None:
                continue
            fact = float(a["Factuality"])
            row = {"hash": b["hash"], "dataset": "bbc" if b["hash"].isdigit() else "cnndm",
                   "model_name": b["model_name"], "split": b.get("split", a.get("split")),
                   "document": b["article"], "summary": b["summary"], "reference": b.get("reference"),
                   "Factuality": fact, "label": int(fact == 1.0)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    if n == 0:
        raise ValueError("FRANK: no annotated summaries matched the benchmark data")
    return out


def _build_xsumfaith(root: Path) -> Path:
    """Join XSumFaith span annotations with the XSum articles FRANK ships (the ones available offline)."""
    bench = json.loads((root / "frank/raw/benchmark_data.json").read_text(encoding="utf-8"))
    articles = {b["hash"]: b["article"] for b in bench if str(b["hash"]).isdigit()}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    with open(root / "xsumfaith/raw/hallucination_annotations_xsum_summaries.csv", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            bbcid = str(rec["bbcid"])
            if bbcid not in articles:
                continue
            row = rows.setdefault((bbcid, rec["system"]), {
                "bbcid": bbcid, "system": rec["system"], "document": articles[bbcid], "summary": rec["summary"],
                "spans": [], "is_factual_votes": []})
            row["spans"].append({"worker_id": rec.get("worker_id"), "hallucination_type": rec.get("hallucination_type"),
                                 "span": rec.get("hallucinated_span"),
                                 "start": _int_or_none(rec.get("hallucinated_span_start")),
                                 "end": _int_or_none(rec.get("hallucinated_span_end"))})
    fact_path = root / "xsumfaith/raw/factuality_annotations_xsum_summaries.csv"
    if fact_path.exists():
        with open(fact_path, encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                row = rows.get((str(rec["bbcid"]), rec["system"]))
                if row is not None:
                    row["is_factual_votes"].append(rec.get("is_factual"))
    out = root / "xsumfaith/xsumfaith_with_frank_documents.jsonl.gz"
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for row in rows.values():
            workers = {s["worker_id"] for s in row["spans"]}
            marking = {s["worker_id"] for s in row["spans"] if s["span"] not in (None, "", "NULL")}
            # consistent when fewer than half of the annotators marked a hallucinated span (SummaC's majority)
            row["label_summac_majority"] = int(len(marking) * 2 < len(workers))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


def _download_aggrefact(root: Path) -> Path:
    """LLM-AggreFact is gated on the HF hub: accept its terms on the dataset page, log in
    (`huggingface-cli login`), then this fetches the parquet files with huggingface_hub."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub ships with transformers
        raise OSError("LLM-AggreFact download needs huggingface_hub") from e
    target = root / SETS["aggrefact"].relpath
    try:
        snapshot_download("lytang/LLM-AggreFact", repo_type="dataset", local_dir=str(target),
                          allow_patterns=["data/*.parquet"])
    except Exception as e:  # noqa: BLE001 - gated/offline errors come in many types; say what to do
        raise OSError(f"LLM-AggreFact download failed ({type(e).__name__}: {e}); accept the terms at "
                      f"{SETS['aggrefact'].homepage} and run `huggingface-cli login` first") from None
    return root


# ----------------------------------------------------------------------------- CLI


def _stats(examples: list[Example]) -> dict[str, Any]:
    labelled = [e for e in examples if e.label is not None]
    with_spans = [e for e in examples if e.spans is not None]
    return {
        "n": len(examples),
        "labelled": len(labelled),
        "hallucinated": sum(e.label for e in labelled),
        "hallucinated_rate": round(sum(e.label for e in labelled) / len(labelled), 4) if labelled else None,
        "with_span_annotation": len(with_spans),
        "spans": sum(len(e.spans or []) for e in with_spans),
        "documents": len({e.source for e in examples}),
    }


def _cmd_list(args: Any) -> int:
    rows = []
    for name, info in SETS.items():
        path = locate_set(name)
        rows.append((name, "found" if path else "missing", str(path) if path else f"halluguard data download {info.download_key}",
                     "/".join(info.splits), info.license))
    widths = [max(len(r[i]) for r in rows + [("set", "status", "where", "splits", "licence")]) for i in range(5)]
    header = ("set", "status", "where", "splits", "licence")
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    roots = find_data_dirs()
    print(f"\ndata folders searched: {', '.join(str(r) for r in _candidate_roots())}"
          + ("" if roots else "  (none exists yet)"))
    return 0


def _cmd_download(args: Any) -> int:
    root = download(args.name, dest=args.dest, force=args.force, base_url=args.base_url, progress=not args.quiet,
                    verify=not args.no_verify)
    print(f"{args.name}: ready under {root}")
    return 0


def _cmd_show(args: Any) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        examples = load_set(args.set)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(json.dumps(_stats(examples), indent=2))
    if args.examples:
        for ex in examples[: args.examples]:
            d = ex.to_dict()
            d["source"] = d["source"][:300] + ("..." if len(d["source"]) > 300 else "")
            print(json.dumps(d, ensure_ascii=False))
    return 0


def register(subparsers: Any) -> None:
    """Add `halluguard data list | download | show | sft`."""
    p = subparsers.add_parser("data", help="list, download and inspect labelled benchmark sets; build SFT data",
                              description="Public hallucination-detection sets: where they are, how to get them.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    pl = sub.add_parser("list", help="known sets and whether they are found locally")
    pl.set_defaults(func=_cmd_list)
    pd_ = sub.add_parser("download", help="fetch a public set from its authors' release (needs internet)")
    pd_.add_argument("name", help=f"one of: {', '.join(DOWNLOADS)}")
    pd_.add_argument("--dest", default=None, help="data folder (default: $HALLUGUARD_DATA or ~/.cache/halluguard/data)")
    pd_.add_argument("--force", action="store_true", help="download again even if the files exist")
    pd_.add_argument("--base-url", default=None, help="mirror replacing https://raw.githubusercontent.com")
    pd_.add_argument("--quiet", action="store_true", help="no progress output")
    pd_.add_argument("--no-verify", action="store_true", help="skip the sha256 check of files with a known checksum")
    pd_.set_defaults(func=_cmd_download)
    ps = sub.add_parser("show", help="counts, base rate and span coverage of a set or file")
    ps.add_argument("set", help="NAME[:split] (e.g. faithbench:test) or a file path")
    ps.add_argument("--examples", type=int, default=0, help="also print the first N examples")
    ps.set_defaults(func=_cmd_show)
    from halluguard.train import sft_data  # standard library only at its top: --help stays fast

    sft_data.register(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
