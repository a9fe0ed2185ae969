"""`halluguard bench`: a verifier on a labelled set, with bootstrap CIs and published anchors beside it.

    halluguard bench --backend lite --set faithbench:test
    halluguard bench --backend lite --set eval_sets/halluguard_small.jsonl --limit 50
    halluguard bench --backend nli --model ./HHEM-2.1-open --set summedits:evaluation --fit-threshold
    halluguard bench --backend lite --sets all --output runs/bench      # the BENCHMARKS.md table

Reports balanced accuracy, F1 of the hallucinated class and ROC-AUC, and where the set has span
annotations character-level span P/R/F1, each with a percentile-bootstrap 95 % CI over examples, plus
the threshold and where it came from. The threshold is never fitted on the rows being reported: it is
the verifier's stored calibration (fitted on dev splits), `--threshold`, a `--calibration` file, or
`--fit-threshold` / `--fit-threshold-on SET`, which fit on a dev split and refuse the reported one.

Python API:

    from halluguard.bench import run_bench
    result = run_bench(verifier, examples, set_name="summedits:evaluation")   # a JSON-ready dict
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------- published anchors

# Published figures shown beside ours. Sources: ../shared/data/README.md of the development machine,
# which collects them from the authors' releases (cited per entry). "same_rows": False means the figure
# was measured on a different sample of the set than the rows we report (see the note).
ANCHORS: dict[str, list[dict[str, Any]]] = {
    "faithbench": [
        {"system": "GPT-4o", "metric": "balanced_accuracy", "value": 0.547},
        {"system": "GPT-4-turbo", "metric": "balanced_accuracy", "value": 0.552},
        {"system": "HHEM-2.1", "metric": "balanced_accuracy", "value": 0.542},
        {"system": "TrueTeacher", "metric": "balanced_accuracy", "value": 0.532},
    ],
    "summedits": [
        {"system": "GPT-4", "metric": "balanced_accuracy", "value": 0.821},
        {"system": "ChatGPT", "metric": "balanced_accuracy", "value": 0.712},
        {"system": "QAFactEval", "metric": "balanced_accuracy", "value": 0.655},
        {"system": "SummaC-Conv", "metric": "balanced_accuracy", "value": 0.571},
        {"system": "human", "metric": "balanced_accuracy", "value": 0.909},
    ],
    "frank": [
        {"system": "FactCC", "metric": "roc_auc", "group": "cnndm", "value": 0.704},
        {"system": "FactCC", "metric": "roc_auc", "group": "bbc", "value": 0.555},
        {"system": "QAGS", "metric": "roc_auc", "group": "cnndm", "value": 0.636},
        {"system": "QAGS", "metric": "roc_auc", "group": "bbc", "value": 0.499},
    ],
}
ANCHOR_NOTES = {
    "faithbench": "Bao et al. 2024 (vectara/FaithBench release @cf89797): predictions shipped in the release, "
                  "threshold 0.5, all 750 samples, Questionable counted as hallucinated",
    "summedits": "Laban et al. 2023 (salesforce/factualNLG README): average over 10 domains; 8 are public",
    "frank": "Pagnoni et al. 2021 (FRANK's released baseline outputs): whole benchmark, per source dataset "
             "(cnndm = CNN/DM, bbc = XSum)",
}
ANCHOR_SET_ALIASES = {"faithbench-q": "faithbench", "faithbench-csv": "faithbench"}
# Detector predictions FaithBench ships per sample (meta["detector_scores"]), re-scored on our exact rows.
FAITHBENCH_SHIPPED = {"gpt_4o": "GPT-4o", "gpt-4-turbo": "GPT-4-turbo", "hhem-2.1": "HHEM-2.1",
                      "trueteacher": "TrueTeacher"}

# The `--sets all` table: (set spec, metric that the goal is stated in, goal).
ALL_SETS: list[tuple[str, str, float | None]] = [
    ("faithbench:test", "balanced_accuracy", 0.60),
    ("faithbench-q:test", "balanced_accuracy", 0.60),
    ("summedits:evaluation", "balanced_accuracy", 0.70),
    ("frank:test", "roc_auc", 0.75),
    ("xsumfaith:test", "balanced_accuracy", None),
]
GROUP_BY_DEFAULT = {"frank": "dataset", "summedits": "domain"}


# ----------------------------------------------------------------------------- scoring


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def score_examples(
    verifier: Any,
    examples: Sequence[Any],
    need_spans: bool,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "bench",
    cache: dict[tuple[str, str], tuple[float, list[tuple[int, int]] | None, str | None]] | None = None,
) -> list[tuple[float, list[tuple[int, int]] | None, str | None]]:
    """(score, predicted spans or None, error or None) per example, in order.

    Batches go through `verify_batch` (for spans) or `score`; a batch that raises is retried row by row
    so one bad row costs only itself (its score is NaN and its error is kept). `cache` maps
    (source, summary) to a previous result, so overlapping sets are scored once per run.
    """
    from tqdm.auto import tqdm

    cache = {} if cache is None else cache
    out: list[tuple[float, list[tuple[int, int]] | None, str | None] | None] = [None] * len(examples)
    todo = []
    for i, ex in enumerate(examples):
        hit = cache.get((ex.source, ex.summary))
        if hit is not None and (hit[1] is not None or not need_spans or hit[2] is not None):
            out[i] = hit
        else:
            todo.append(i)
    bar = tqdm(total=len(examples), desc=desc, unit="pair", disable=not progress, file=sys.stderr,
               initial=len(examples) - len(todo))

    def run(idx: list[int]) -> list[tuple[float, list[tuple[int, int]] | None, str | None]]:
        srcs = [examples[i].source for i in idx]
        sums = [examples[i].summary for i in idx]
        if need_spans:
            reports = verifier.verify_batch(srcs, sums)
            return [(_num(r.score), [(int(s.start), int(s.end)) for s in r.spans], None) for r in reports]
        return [(_num(s), None, None) for s in verifier.score(srcs, sums)]

    for a, b in _chunks(len(todo), max(1, batch_size)):
        idx = todo[a:b]
        try:
            results = run(idx)
        except Exception:  # noqa: BLE001 - isolate the failing row(s) below
            results = []
            for i in idx:
                try:
                    results.extend(run([i]))
                except Exception as e:  # noqa: BLE001 - one bad row must not lose the others
                    results.append((math.nan, None, f"{type(e).__name__}: {e}"))
        for i, res in zip(idx, results):
            out[i] = res
            cache[(examples[i].source, examples[i].summary)] = res
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


def _num(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


# ----------------------------------------------------------------------------- metrics with CIs


def _ci(fn: Callable[..., float], *arrays: Any, n_boot: int, seed: int) -> dict[str, float]:
    from halluguard.metrics import bootstrap_ci

    point, low, high = bootstrap_ci(fn, *arrays, n=n_boot, seed=seed)
    return {"value": point, "low": low, "high": high}


def evaluate_scores(
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    pred_spans: Sequence[list[tuple[int, int]] | None] | None = None,
    gold_spans: Sequence[list[tuple[int, int]] | None] | None = None,
    summaries: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Classification metrics (and span metrics where gold spans exist) with bootstrap 95 % CIs.

    Rows with a NaN score are "unknown": counted in `n_unknown` and left out (never as faithful).
    Span metrics use the rows whose gold spans are annotated; a summary scored below the threshold
    contributes no predicted spans (what a user acting on the labels sees); `span_ungated` counts every
    span the verifier returned.
    """
    import numpy as np

    from halluguard import metrics as M

    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    keep = ~np.isnan(s)
    cls = M.classification_metrics(y, s, threshold)
    yk, sk = y[keep], s[keep]
    out: dict[str, Any] = {
        "n": int(len(y)), "n_scored": int(keep.sum()), "n_unknown": int((~keep).sum()),
        "n_hallucinated": int(y.sum()), "hallucinated_rate": float(y.mean()) if len(y) else math.nan,
        "threshold": float(threshold),
        "confusion": {k: cls[k] for k in ("tp", "fp", "tn", "fn")},
        "precision": cls["precision"], "recall": cls["recall"], "accuracy": cls["accuracy"],
        "balanced_accuracy": _ci(lambda a, b: M.balanced_accuracy(a, b, threshold), yk, sk, n_boot=n_boot, seed=seed),
        "f1": _ci(lambda a, b: M.f1_hallucinated(a, b, threshold), yk, sk, n_boot=n_boot, seed=seed),
        "roc_auc": _ci(M.roc_auc, yk, sk, n_boot=n_boot, seed=seed),
        "span": None, "span_ungated": None,
    }
    if pred_spans is not None and gold_spans is not None:
        rows = [i for i, g in enumerate(gold_spans) if g is not None and keep[i]]
        if rows:
            texts = [summaries[i] for i in rows] if summaries is not None else None
            gold = [gold_spans[i] for i in rows]
            ungated = [pred_spans[i] or [] for i in rows]
            gated = [(pred_spans[i] or []) if s[i] >= threshold else [] for i in rows]
            for key, pred in (("span", gated), ("span_ungated", ungated)):
                counts = M.span_counts(pred, gold, texts)
                prf = M.span_prf_from_counts(counts)
                out[key] = {
                    "n": len(rows),
                    "precision": _ci(lambda c: M.span_prf_from_counts(c)["precision"], counts, n_boot=n_boot, seed=seed),
                    "recall": _ci(lambda c: M.span_prf_from_counts(c)["recall"], counts, n_boot=n_boot, seed=seed),
                    "f1": _ci(M.span_f1_from_counts, counts, n_boot=n_boot, seed=seed),
                    "chars": {k: prf[k] for k in ("overlap_chars", "pred_chars", "gold_chars")},
                }
    return out


# ----------------------------------------------------------------------------- threshold policy


def _spec_overlaps(a: str, b: str) -> bool:
    """Do two set specs (name[:split]) share rows? A missing split or `all` means every row."""
    from halluguard.datasets import parse_set_name

    (na, sa), (nb, sb) = parse_set_name(a), parse_set_name(b)
    base = {"faithbench-q": "faithbench", "ragtruth-summary": "ragtruth"}
    na, nb = base.get(na, na), base.get(nb, nb)
    if Path(na).exists() and Path(nb).exists():
        same = Path(na).resolve() == Path(nb).resolve()
    else:
        same = na == nb or ({na, nb} == {"faithbench", "faithbench-csv"})  # same sources, different files
    if not same:
        return False
    sa, sb = (sa or "all").lower(), (sb or "all").lower()
    aliases = {"dev": "valid", "validation": "valid"} if na == "frank" else {}
    sa, sb = aliases.get(sa, sa), aliases.get(sb, sb)
    return sa == "all" or sb == "all" or sa == sb


def dev_spec_for(spec: str) -> str:
    """The dev split that belongs to a reported set: frank:test -> frank:valid, eval.jsonl:test -> eval.jsonl:dev."""
    from halluguard.datasets import SETS, parse_set_name

    name, split = parse_set_name(spec)
    if name in SETS:
        info = SETS[name]
        if split in (None, "all") or split == info.dev_split:
            raise ValueError(f"--fit-threshold: {spec!r} has no held-out dev split to fit on; report a test split "
                             f"(e.g. {name}:{info.report_split}) or pass --fit-threshold-on")
        return f"{name}:{info.dev_split}"
    if split in ("test", None, "all"):
        if split != "test":
            raise ValueError(f"--fit-threshold: report {spec}:test and the threshold is fitted on {spec}:dev "
                             f"(halves by hash of the source), or pass --fit-threshold-on")
        return f"{name}:dev"
    raise ValueError(f"--fit-threshold: cannot tell the dev split of {spec!r}; pass --fit-threshold-on")


def _fitted_on(verifier: Any) -> str:
    """The verifier's note of what its calibration was fitted on (a dict or a dataclass with `fitted_on`)."""
    cal = getattr(verifier, "calibration", None)
    if isinstance(cal, dict):
        return str(cal.get("fitted_on") or "")
    return str(getattr(cal, "fitted_on", "") or "")


# XSumFaith's articles are FRANK's XSum articles and many XSumFaith (article, summary) pairs are FRANK
# pairs too, while XSumFaith's hash halves do not follow FRANK's split: a calibration fitted on one may
# have seen rows of the other's test split. Counted and warned about (not refused: it is another set).
_SHARED_DOCUMENTS = {frozenset({"xsumfaith", "frank"})}


def _check_not_fitted_on(fitted_on: str, spec: str, examples: Sequence[Any] | None = None) -> list[str]:
    """Refuse a calibration whose note names the reported set (name:split) among what it was fitted on;
    return warnings for fitted-on sets that share (source, summary) pairs with the reported rows."""
    from halluguard.datasets import load_set, parse_set_name

    notes: list[str] = []
    for token in re.split(r"[\s,;+()\[\]]+", fitted_on):
        token = token.strip().rstrip(".")
        if ":" not in token or token.count(":") != 1:
            continue
        if _spec_overlaps(token, spec):
            raise ValueError(f"refusing to report {spec}: the threshold/calibration was fitted on {token} "
                             f"({fitted_on!r}); report a split it was not fitted on")
        if frozenset({parse_set_name(token)[0], parse_set_name(spec)[0]}) in _SHARED_DOCUMENTS:
            shared = "some"
            if examples is not None:
                try:
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fitted_pairs = {(e.source, e.summary) for e in load_set(token)}
                    shared = str(sum((e.source, e.summary) in fitted_pairs for e in examples))
                except (OSError, ValueError):
                    pass
            if shared != "0":
                notes.append(f"the calibration was fitted on {token}, which holds {shared} of these {spec} "
                             f"(article, summary) pairs (XSumFaith and FRANK share XSum articles and summaries)")
    for n in notes:
        print(f"warning: {n}", file=sys.stderr)
    return notes


def fit_threshold(verifier: Any, dev_spec: str, report_spec: str, metric: str = "balanced_accuracy",
                  limit: int | None = None, batch_size: int = 16, progress: bool = True,
                  cache: dict | None = None) -> tuple[float, float, int]:
    """Fit a threshold on `dev_spec` (refusing any overlap with `report_spec`); returns (t, metric value, n)."""
    from halluguard.datasets import load_set
    from halluguard.metrics import best_threshold

    if _spec_overlaps(dev_spec, report_spec):
        raise ValueError(f"refusing to fit a threshold on {dev_spec}: it shares rows with the reported set "
                         f"{report_spec}; fit on a dev split")
    dev = [e for e in load_set(dev_spec) if e.label is not None]
    if limit:
        dev = _subsample(dev, limit, seed=1)
    if len({e.label for e in dev}) < 2:
        raise ValueError(f"{dev_spec}: need both labels to fit a threshold")
    res = score_examples(verifier, dev, need_spans=False, batch_size=batch_size, progress=progress,
                         desc=f"fit {dev_spec}", cache=cache)
    t, v = best_threshold([e.label for e in dev], [r[0] for r in res], metric=metric)
    return t, v, len(dev)


def _subsample(examples: list, limit: int, seed: int = 0) -> list:
    """A seeded random subset in original order (the first N rows of a file are often one class)."""
    if limit >= len(examples):
        return examples
    import numpy as np

    idx = np.sort(np.random.default_rng(seed).choice(len(examples), size=limit, replace=False))
    return [examples[i] for i in idx]


# ----------------------------------------------------------------------------- one set


def run_bench(
    verifier: Any,
    examples: Sequence[Any],
    set_name: str,
    threshold: float | None = None,
    threshold_source: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
    group_by: str | None = None,
    cache: dict | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """Score `examples` (datasets.Example) with `verifier` and return a JSON-ready result dict.

    `threshold` defaults to `verifier.threshold` (its stored calibration). `group_by` names a
    `meta` key (e.g. "dataset" for FRANK) to add per-group metrics.
    """
    labelled = [e for e in examples if e.label is not None]
    if not labelled:
        raise ValueError(f"{set_name}: no labelled examples to benchmark")
    if len({e.label for e in labelled}) < 2:
        print(f"warning: {set_name} has only one label; ROC-AUC is undefined", file=sys.stderr)
    if threshold is None:
        threshold = float(getattr(verifier, "threshold", 0.5))
        fitted = _fitted_on(verifier)
        threshold_source = threshold_source or (
            f"{backend or getattr(verifier, 'name', 'verifier')} stored calibration" + (f" ({fitted})" if fitted else ""))
    need_spans = any(e.spans is not None for e in labelled)
    cached_before = sum(1 for e in labelled if (e.source, e.summary) in (cache or {}))
    t0 = time.perf_counter()
    res = score_examples(verifier, labelled, need_spans, batch_size=batch_size, progress=progress, desc=set_name,
                         cache=cache)
    seconds = time.perf_counter() - t0
    fresh = len(labelled) - cached_before  # pairs scored now, not reused from an earlier set of this run
    labels = [e.label for e in labelled]
    scores = [r[0] for r in res]
    result = {
        "set": set_name,
        "backend": backend or getattr(verifier, "name", type(verifier).__name__),
        "threshold": float(threshold),
        "threshold_source": threshold_source or "given",
        "seconds": round(seconds, 2),
        "pairs_per_s": round(fresh / seconds, 2) if seconds > 0 and fresh else None,
        "n_reused": len(labelled) - fresh,
        "errors": [{"id": e.id, "error": r[2]} for e, r in zip(labelled, res) if r[2]][:20],
        "n_errors": sum(1 for r in res if r[2]),
        "n_boot": n_boot,
        **evaluate_scores(labels, scores, threshold,
                          [r[1] for r in res] if need_spans else None,
                          [e.spans for e in labelled] if need_spans else None,
                          [e.summary for e in labelled], n_boot=n_boot, seed=seed),
    }
    if group_by:
        groups: dict[str, list[int]] = {}
        faithful_untyped = []
        for i, e in enumerate(labelled):
            v = e.meta.get(group_by)
            if isinstance(v, (list, tuple)):
                # a list field such as error types: a row joins each of its groups, and faithful rows
                # with no type join every group, so each group's metrics read "type-t errors vs faithful"
                if not v and e.label == 0:
                    faithful_untyped.append(i)
                for t in v:
                    groups.setdefault(str(t), []).append(i)
            else:
                groups.setdefault(str(v), []).append(i)
        for idx in groups.values():
            idx.extend(faithful_untyped)
        result["groups"] = {
            g: {k: v for k, v in evaluate_scores([labels[i] for i in idx], [scores[i] for i in idx], threshold,
                                                 n_boot=n_boot, seed=seed).items()
                if k in ("n", "n_hallucinated", "balanced_accuracy", "f1", "recall", "roc_auc")}
            for g, idx in sorted(groups.items())
        }
        result["group_by"] = group_by
    shipped = _shipped_predictions(labelled, labels, n_boot, seed)
    if shipped:
        result["same_rows_baselines"] = shipped
    result["predictions"] = [
        {"id": e.id, "label": e.label, "score": (None if math.isnan(r[0]) else r[0]),
         **({"spans": r[1]} if need_spans else {}), **({"error": r[2]} if r[2] else {})}
        for e, r in zip(labelled, res)
    ]
    return result


def _shipped_predictions(examples: Sequence[Any], labels: list[int], n_boot: int, seed: int) -> list[dict[str, Any]]:
    """FaithBench ships other detectors' predictions per sample: score them on exactly our rows (t = 0.5)."""
    from halluguard import metrics as M

    out = []
    for key, system in FAITHBENCH_SHIPPED.items():
        vals = [(e.meta.get("detector_scores") or {}).get(key, "absent") for e in examples]
        if all(v == "absent" for v in vals):
            continue
        pairs = [(y, v) for y, v in zip(labels, vals) if isinstance(v, (int, float))]
        if not pairs:
            continue
        ys, ss = [p[0] for p in pairs], [p[1] for p in pairs]
        out.append({"system": system, "n": len(pairs), "threshold": 0.5,
                    "balanced_accuracy": _ci(lambda a, b: M.balanced_accuracy(a, b, 0.5), ys, ss, n_boot=n_boot, seed=seed),
                    "f1": M.f1_hallucinated(ys, ss, 0.5)})
    return out


# ----------------------------------------------------------------------------- rendering


def _fmt(m: dict[str, float] | None, pct: bool = True) -> str:
    if not m or m.get("value") is None or (isinstance(m["value"], float) and math.isnan(m["value"])):
        return "–"
    k = 100 if pct else 1
    d = 1 if pct else 3
    if m.get("low") is None or math.isnan(m["low"]):
        return f"{m['value'] * k:.{d}f}"
    return f"{m['value'] * k:.{d}f} [{m['low'] * k:.{d}f}, {m['high'] * k:.{d}f}]"


def anchors_for(set_spec: str) -> list[dict[str, Any]]:
    name = set_spec.split(":", 1)[0]
    return ANCHORS.get(ANCHOR_SET_ALIASES.get(name, name), [])


def result_markdown(r: dict[str, Any]) -> str:
    """One set's result as Markdown: metrics with CIs, threshold and its origin, anchors, breakdowns."""
    lines = [f"### {r['set']} — `{r['backend']}`", ""]
    lines.append(f"{r['n']} pairs ({r['n_hallucinated']} hallucinated, {100 * r['hallucinated_rate']:.1f} %)"
                 + (f", {r['n_unknown']} unknown" if r["n_unknown"] else "")
                 + (f", {r['n_errors']} errors" if r["n_errors"] else "")
                 + f"; threshold {r['threshold']:.4g} from {r['threshold_source']}; "
                 + (f"{r['pairs_per_s']} pairs/s" if r.get("pairs_per_s") else "scores reused from an earlier set")
                 + f"; 95 % CIs: percentile bootstrap over examples, {r['n_boot']} resamples.")
    for w in r.get("warnings", []):
        lines.append(f"\n**Warning:** {w}.")
    lines += ["", "| metric | value [95 % CI] |", "|---|---|",
              f"| balanced accuracy (%) | {_fmt(r['balanced_accuracy'])} |",
              f"| F1, hallucinated (%) | {_fmt(r['f1'])} |",
              f"| ROC-AUC | {_fmt(r['roc_auc'], pct=False)} |",
              f"| precision / recall, hallucinated (%) | {100 * r['precision']:.1f} / {100 * r['recall']:.1f} |"]
    if r.get("span"):
        sp = r["span"]
        lines += [f"| span precision (%) | {_fmt(sp['precision'])} |",
                  f"| span recall (%) | {_fmt(sp['recall'])} |",
                  f"| span F1 (%) | {_fmt(sp['f1'])} |"]
    anchors = anchors_for(r["set"])
    if anchors or r.get("same_rows_baselines"):
        lines += ["", "| system | metric | value | on |", "|---|---|---|---|"]
        for b in r.get("same_rows_baselines", []):
            lines.append(f"| {b['system']} | balanced accuracy (%) | {_fmt(b['balanced_accuracy'])} | "
                         f"these {b['n']} rows (prediction shipped with the set, t = 0.5) |")
        name = ANCHOR_SET_ALIASES.get(r["set"].split(":")[0], r["set"].split(":")[0])
        for a in anchors:
            metric = "balanced accuracy (%)" if a["metric"] == "balanced_accuracy" else "ROC-AUC"
            val = f"{100 * a['value']:.1f}" if a["metric"] == "balanced_accuracy" else f"{a['value']:.3f}"
            lines.append(f"| {a['system']} | {metric}{' (' + a['group'] + ')' if a.get('group') else ''} | {val} | "
                         f"published (1) |")
        if anchors:
            lines += ["", f"(1) {ANCHOR_NOTES.get(name, '')}."]
    if r.get("groups"):
        lines += ["", f"| {r['group_by']} | n (halluc.) | balanced accuracy (%) | recall (%) | F1 (%) | ROC-AUC |",
                  "|---|---|---|---|---|---|"]
        for g, m in r["groups"].items():
            lines.append(f"| {g} | {m['n']} ({m['n_hallucinated']}) | {_fmt(m['balanced_accuracy'])} | "
                         f"{100 * m['recall']:.1f} | {_fmt(m['f1'])} | {_fmt(m['roc_auc'], pct=False)} |")
    return "\n".join(lines) + "\n"


def summary_markdown(results: list[dict[str, Any]], command: str) -> str:
    """The BENCHMARKS table: one row per set, ours beside the goal and the published anchors."""
    goals = {spec: (metric, goal) for spec, metric, goal in ALL_SETS}
    lines = [
        f"Command: `{command}`", "",
        "| set | n (halluc. %) | balanced acc. % [95 % CI] | F1 halluc. % | ROC-AUC | span F1 % | threshold (from) | goal | published anchors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['set']} | – | not run: {r['error']} | | | | | | |")
            continue
        metric, goal = goals.get(r["set"], (None, None))
        goal_txt = "–" if goal is None else (f"{metric.replace('_', ' ')} ≥ {goal * 100:.0f}" if metric != "roc_auc"
                                             else f"ROC-AUC ≥ {goal:.2f}")
        anchors = []
        for b in r.get("same_rows_baselines", []):
            anchors.append(f"{b['system']} {100 * b['balanced_accuracy']['value']:.1f} (same rows)")
        for a in anchors_for(r["set"]):
            if r.get("same_rows_baselines") and a["metric"] == "balanced_accuracy":
                continue  # the same-rows figures above are the fair comparison; the 750-sample ones are in the detail
            v = f"{100 * a['value']:.1f}" if a["metric"] == "balanced_accuracy" else f"{a['value']:.3f}"
            anchors.append(f"{a['system']} {v}" + (f" ({a['group']})" if a.get("group") else ""))
        span = _fmt(r["span"]["f1"]) if r.get("span") else "–"
        auc = _fmt(r["roc_auc"], pct=False)
        if r.get("groups") and any(a.get("group") for a in anchors_for(r["set"])):
            # FRANK's anchors are per source dataset: show ours the same way
            auc += "; " + ", ".join(f"{g} {_fmt(m['roc_auc'], pct=False).split(' ')[0]}" for g, m in r["groups"].items())
        src = r["threshold_source"].split(";")[0]  # the full note is in the per-set file
        src = src if len(src) <= 140 else src[:137] + "..."
        if src.count("(") > src.count(")"):
            src += ")"
        lines.append(
            f"| {r['set']} | {r['n']} ({100 * r['hallucinated_rate']:.0f}) | {_fmt(r['balanced_accuracy'])} | "
            f"{_fmt(r['f1'])} | {auc} | {span} | {r['threshold']:.3g} ({src}) | "
            f"{goal_txt} | {'; '.join(anchors) or '–'} |")
    ctx = _aggrefact_context()
    if ctx:
        lines += ["", ctx]
    return "\n".join(lines) + "\n"


def _aggrefact_context() -> str:
    """LLM-AggreFact leaderboard rows for well-known detectors (context only: different data from ours)."""
    from halluguard.datasets import find_data_dirs

    path = next((d / "llm_aggrefact_leaderboard_bacc.csv" for d in find_data_dirs()
                 if (d / "llm_aggrefact_leaderboard_bacc.csv").exists()), None)
    if path is None:
        return ""
    import csv

    want = ("Bespoke-Minicheck-7B", "MiniCheck-Flan-T5-L", "HHEM-2.1-open", "AlignScore", "SummaC-ZS", "gpt-4o-2024-05-13")
    with open(path, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("model") in want]
    if not rows:
        return ""
    out = ["Context (not our data): LLM-AggreFact leaderboard balanced accuracy (%), "
           "llm-aggrefact.github.io @eba04fb — AggreFact-CNN / AggreFact-XSum are summarization sets.", "",
           "| system | size | 11-set avg | AggreFact-CNN | AggreFact-XSum |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r.get('size', '')} | {r.get('avg_bacc_11', '')} | {r.get('CNN', '')} | {r.get('XSum', '')} |")
    return "\n".join(out)


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.replace(os.sep, "_")).strip("_")[-80:]


def save_result(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path, Path]:
    """Write <set>.json (metrics), <set>.predictions.jsonl (per-example scores) and <set>.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = f"{_slug(result['set'])}__{_slug(result['backend'])}"
    preds = result.get("predictions", [])
    j, p, m = out_dir / f"{slug}.json", out_dir / f"{slug}.predictions.jsonl", out_dir / f"{slug}.md"
    j.write_text(json.dumps({k: v for k, v in result.items() if k != "predictions"}, indent=2, default=_json_default),
                 encoding="utf-8")
    with open(p, "w", encoding="utf-8") as f:
        for row in preds:
            f.write(json.dumps(row, default=_json_default) + "\n")
    m.write_text(result_markdown(result), encoding="utf-8")
    return j, p, m


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


# ----------------------------------------------------------------------------- CLI


def _backend_kwargs(args: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for key in ("model", "adapter", "quantization", "preset"):
        v = getattr(args, key, None)
        if v is not None:
            kw[key] = v
    if args.trust_remote_code:
        kw["trust_remote_code"] = True
    for item in args.backend_arg or []:
        if "=" not in item:
            raise ValueError(f"--backend-arg {item!r}: use KEY=VALUE")
        k, v = item.split("=", 1)
        try:
            kw[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            kw[k.strip()] = v
    return kw


def _build_verifier(args: Any) -> Any:
    from halluguard.verify import get_verifier

    kw = _backend_kwargs(args)
    if args.calibration and args.backend in ("lite", "dpo-reward"):
        kw["calibration"] = args.calibration  # these take their weights / reward mapping from the file too
    try:
        return get_verifier(args.backend, **kw)
    except ImportError as e:
        raise ValueError(f"backend {args.backend!r} is not available: {e}") from None
    except TypeError as e:
        raise ValueError(f"backend {args.backend!r} does not accept these options ({e})") from None


def _resolve_threshold(args: Any, verifier: Any, spec: str, cache: dict,
                       examples: Sequence[Any] | None = None) -> tuple[float | None, str | None, list[str]]:
    """(threshold, where it came from); None means the verifier's stored calibration."""
    chosen = [x for x in ("threshold", "calibration", "fit_threshold", "fit_threshold_on") if getattr(args, x)]
    if len(chosen) > 1:
        raise ValueError("choose one of --threshold, --calibration, --fit-threshold, --fit-threshold-on")
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:
            raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
        return args.threshold, "--threshold (given)", []
    if args.calibration:
        path = Path(args.calibration)
        if not path.exists():
            raise FileNotFoundError(f"--calibration {path}: no such file")
        try:
            cal = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"--calibration {path}: not JSON ({e.msg})") from None
        if not isinstance(cal, dict) or not isinstance(cal.get("threshold"), (int, float)):
            raise ValueError(f"--calibration {path}: needs a numeric 'threshold' field")
        fitted = str(cal.get("fitted_on") or "")
        notes = _check_not_fitted_on(fitted, spec, examples)
        return float(cal["threshold"]), f"{path}" + (f" (fitted on {fitted})" if fitted else ""), notes
    if args.fit_threshold or args.fit_threshold_on:
        dev = args.fit_threshold_on or dev_spec_for(spec)
        t, v, n = fit_threshold(verifier, dev, spec, metric=args.fit_metric, limit=args.limit,
                                batch_size=args.batch_size, progress=not args.no_progress, cache=cache)
        return t, f"fitted on {dev} (n={n}, {args.fit_metric} {v:.3f})", []
    return None, None, _check_not_fitted_on(_fitted_on(verifier), spec, examples)


def _bench_one(args: Any, verifier: Any, spec: str, cache: dict) -> dict[str, Any]:
    import warnings

    from halluguard.datasets import DatasetWarning, load_set, parse_set_name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        examples = load_set(spec)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.limit:
        examples = _subsample(examples, args.limit, seed=args.seed)
    threshold, source, notes = _resolve_threshold(args, verifier, spec, cache, examples)
    name = parse_set_name(spec)[0]
    group_by = args.group_by or GROUP_BY_DEFAULT.get(name)
    if group_by is None and examples and isinstance(examples[0].meta.get("types"), list):
        group_by = "types"  # eval_sets: metrics per error type
    result = run_bench(verifier, examples, set_name=spec, threshold=threshold, threshold_source=source,
                       n_boot=args.n_boot, seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress,
                       group_by=group_by, cache=cache,
                       backend=f"{args.backend}:{args.preset}" if getattr(args, "preset", None) else args.backend)
    if notes:
        result["warnings"] = notes
    return result


def _cmd_bench(args: Any) -> int:
    if not args.set and not args.sets:
        raise ValueError("give --set NAME[:split] (or a file) or --sets all")
    if args.set and args.sets:
        raise ValueError("give either --set or --sets, not both")
    specs = [s for s, _, _ in ALL_SETS] if args.sets == "all" else (
        [s.strip() for s in args.sets.split(",") if s.strip()] if args.sets else [args.set])
    verifier = _build_verifier(args)
    out_dir = Path(args.output) if args.output else Path("runs") / "bench"
    cache: dict = {}
    results = []
    for spec in specs:
        try:
            r = _bench_one(args, verifier, spec, cache)
        except FileNotFoundError as e:
            if len(specs) == 1:
                raise
            print(f"warning: skipping {spec}: {e}", file=sys.stderr)
            results.append({"set": spec, "error": str(e).split(";")[0]})
            continue
        results.append(r)
        j, p, m = save_result(r, out_dir)
        print(result_markdown(r))
        print(f"saved {j}, {p}, {m}", file=sys.stderr)
        if len(specs) > 1:  # rewritten after every set, so a long run cut short still leaves its table
            _save_summary(results, out_dir)
    if len(specs) > 1:
        print(_save_summary(results, out_dir))
        print(f"saved {out_dir / 'summary.md'}, {out_dir / 'summary.json'}", file=sys.stderr)
    return 0


def _save_summary(results: list[dict[str, Any]], out_dir: Path) -> str:
    command = "halluguard " + " ".join(sys.argv[1:]) if sys.argv and "halluguard" in sys.argv[0] else "halluguard bench ..."
    table = summary_markdown(results, command)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(table, encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(
        [{k: v for k, v in r.items() if k != "predictions"} for r in results], indent=2, default=_json_default),
        encoding="utf-8")
    return table


def register(subparsers: Any) -> None:
    """Add `halluguard bench`."""
    p = subparsers.add_parser(
        "bench", help="benchmark a verifier on a labelled set (balanced accuracy, F1, ROC-AUC, span F1, CIs)",
        description="Score a labelled set with a verifier backend and report balanced accuracy, F1 of the "
                    "hallucinated class, ROC-AUC and span P/R/F1 with bootstrap 95 % CIs, beside published "
                    "anchors. The threshold is never fitted on the reported rows.")
    p.add_argument("--backend", default="lite", help="verifier backend: lite (default), entail, nli, span, judge, dpo-reward")
    p.add_argument("--set", default=None, help="NAME[:split] (see `halluguard data list`) or a file path[:split]")
    p.add_argument("--sets", default=None, help="'all' (FaithBench, SummEdits, FRANK, XSumFaith test splits) "
                                                 "or a comma-separated list of NAME[:split]")
    thr = p.add_argument_group("threshold (default: the verifier's stored calibration, fitted on dev splits)")
    thr.add_argument("--threshold", type=float, default=None, help="use this threshold")
    thr.add_argument("--calibration", default=None,
                     help="JSON with 'threshold' (and 'fitted_on'); lite and dpo-reward also read their "
                          "weights / reward mapping from it")
    thr.add_argument("--fit-threshold", action="store_true",
                     help="fit on the set's own dev split (frank:test -> frank:valid; file:test -> file:dev)")
    thr.add_argument("--fit-threshold-on", default=None, metavar="SET",
                     help="fit on this set (refused when it shares rows with the reported set)")
    thr.add_argument("--fit-metric", default="balanced_accuracy", choices=["balanced_accuracy", "f1", "accuracy"])
    p.add_argument("--limit", type=int, default=None, help="a seeded random subset of N examples (quick runs)")
    p.add_argument("--output", default=None, help="folder for <set>.json/.md/.predictions.jsonl (default runs/bench)")
    p.add_argument("--group-by", default=None, help="meta field for a per-group breakdown (default: FRANK dataset, "
                                                    "SummEdits domain)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32, help="pairs per verifier call (progress granularity)")
    p.add_argument("--no-progress", action="store_true")
    be = p.add_argument_group("backend options (passed to the verifier)")
    be.add_argument("--preset", default=None, help="a published detector's settings (span: lettucedetect-base, "
                    "lettucedetect-large; nli: hhem-2.1-open, minicheck-roberta-large, minicheck-deberta-v3-large); "
                    "see docs/verifiers.md")
    be.add_argument("--model", default=None, help="model id or path (nli, span, judge, dpo-reward)")
    be.add_argument("--adapter", default=None, help="LoRA adapter path (judge, dpo-reward)")
    be.add_argument("--quantization", default=None, choices=["nf4", "int8", "none"])
    be.add_argument("--trust-remote-code", action="store_true",
                    help="allow the model's own code (needed by HHEM-2.1-open); off unless given")
    be.add_argument("--backend-arg", action="append", metavar="KEY=VALUE",
                    help="any other verifier keyword (VALUE parsed as JSON when it can be); repeatable")
    p.set_defaults(func=_cmd_bench)
