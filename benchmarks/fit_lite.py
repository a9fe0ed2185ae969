"""Fit the `lite` verifier's feature weights, threshold and span settings on DEV splits, then report
the held-out TEST splits.

    python benchmarks/fit_lite.py                      # fit -> halluguard/resources/lite_calibration.json,
                                                       # held-out numbers -> benchmarks/results/lite_heldout.json
    python benchmarks/fit_lite.py --eval-only          # held-out numbers for the calibration file as it is
    python benchmarks/fit_lite.py --floors-only        # keep the fit; re-measure the checks' floors on dev
    python benchmarks/fit_lite.py --limit 50           # quick smoke run (does not write the calibration)

Dev (fit) splits: FRANK valid, SummEdits non-evaluation rows, FaithBench dev half, XSumFaith dev half
(halves by source hash, `halluguard.datasets.hash_split`). Test (report) splits: FRANK test, SummEdits
evaluation, FaithBench test half (Unwanted or Questionable = hallucinated, as the published anchors;
Unwanted-only too), XSumFaith test half. Nothing from a test split is used for fitting.

The model: a sentence's logit is w . features + b (weights constrained >= 0 on "badness" features so
each check can only raise the score); a summary's logit is the max over its sentences (multiple-
instance learning: a summary is hallucinated when any sentence is). Loss: L2-regularised log loss, each
dev set weighted equally and, within a set, both classes weighted equally -- so the threshold that
follows aims at balanced accuracy on a mixture, not at one file's base rate. The threshold is the one
that maximises the mean balanced accuracy over the dev sets; span settings maximise span F1 on the
dev halves of FaithBench and XSumFaith (the sets with span annotations).

Embeddings are cached on disk (`--cache`, default /tmp) so refits are cheap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEV_SETS = ["frank:valid", "summedits:dev", "faithbench-q:dev", "xsumfaith:dev"]
TEST_SETS = ["frank:test", "summedits:evaluation", "faithbench-q:test", "faithbench:test", "xsumfaith:test"]
SPAN_DEV = ["faithbench-q:dev", "xsumfaith:dev"]
# Checks whose spans can set a floor under the sentence score, and the sets of floors tried (nested:
# within noise of the best, the larger set wins).
_BASE = ("number", "date", "name", "negation", "role", "cause")
# The checks added after the first six, tried in every combination on top of them.
_LATER = ("entity", "scope", "certainty")
CHECKS = _BASE + _LATER
FLOOR_OPTIONS = ((), ("number", "date"), ("number", "date", "name"), ("number", "date", "name", "role", "cause")) + tuple(
    _BASE + tuple(c for i, c in enumerate(_LATER) if mask >> i & 1) for mask in range(2 ** len(_LATER)))


def extract(verifier, examples, name: str, chunk: int = 64):
    """PairAnalysis per example (features + candidate spans), with progress on stderr."""
    out = []
    t0 = time.time()
    for lo in range(0, len(examples), chunk):
        part = examples[lo : lo + chunk]
        out.extend(verifier.analyze_batch([e.source for e in part], [e.summary for e in part]))
        if verifier.embed_cache is not None and hasattr(verifier.embed_cache, "save"):
            verifier.embed_cache.save()
        print(f"  {name}: {len(out)}/{len(examples)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return out


def _code_version() -> str:
    """Hash of the feature code as imported, so cached analyses never outlive a change to it."""
    import hashlib

    import halluguard.text
    import halluguard.verify.claims
    import halluguard.verify.lite

    global _VERSION
    if _VERSION is None:
        h = hashlib.sha1()
        # Only the feature code counts: lite.py up to its scoring section, text.py and the claim checks.
        lite_src = Path(halluguard.verify.lite.__file__).read_text(encoding="utf-8")
        h.update(lite_src.split("    # -- scoring")[0].encode())
        h.update(Path(halluguard.text.__file__).read_bytes())
        h.update(Path(halluguard.verify.claims.__file__).read_bytes())
        _VERSION = h.hexdigest()[:12]
    return _VERSION


_VERSION = None


def _dump(analyses) -> list:
    out = []
    for pa in analyses:
        units: dict[int, list] = {}
        sents = []
        for sa in pa.sentences:
            for c, _ in sa.evidence:
                u = pa.units[c]
                units.setdefault(c, [u.start, u.end])
            sents.append([
                [sa.seg.start, sa.seg.end], sa.judged, sa.features.tolist(),
                [[c, cos] for c, cos in sa.evidence],
                [[sp.start, sp.end, sp.score, sp.reason] for sp in sa.spans], sa.reasons,
                [list(t) for t in sa.token_novelty],
            ])
        out.append([{str(k): v for k, v in units.items()}, sents])
    return out


def _load(rows, examples):
    from halluguard.text import Segment
    from halluguard.types import Span
    from halluguard.verify.lite import PairAnalysis, SentenceAnalysis

    out = []
    for (units, sents), ex in zip(rows, examples):
        src, summ = ex.source, ex.summary
        ids = {int(k): i for i, k in enumerate(units)}
        useg = [Segment(a, b, src[a:b]) for a, b in units.values()]
        sas = []
        for (ss, se), judged, feats, ev, spans, reasons, tn in sents:
            sas.append(SentenceAnalysis(
                seg=Segment(ss, se, summ[ss:se]), judged=judged, candidates=[], features=np.array(feats),
                evidence=[(ids[c], cos) for c, cos in ev],
                spans=[Span(a, b, summ[a:b], sc, r) for a, b, sc, r in spans], reasons=reasons,
                token_novelty=[tuple(t) for t in tn]))
        out.append(PairAnalysis(src, summ, useg, sas))
    return out


def cached_extract(verifier, examples, name: str, limit):
    """`extract`, memoised on disk under /tmp by set, limit, code version and the examples' content
    (a change to a loader or a split must not reuse analyses of other texts)."""
    import hashlib

    content = hashlib.sha1("\x1e".join(f"{e.source}\x1f{e.summary}" for e in examples).encode()).hexdigest()[:10]
    path = Path(f"/tmp/halluguard_lite_an_{name.replace(':', '_')}_{limit}_k{verifier.top_k}_{_code_version()}"
                f"_{content}.json")
    if path.exists():
        return _load(json.loads(path.read_text()), examples)
    an = extract(verifier, examples, name)
    path.write_text(json.dumps(_dump(an)))
    return an


def bags(analyses):
    """Per example, the feature rows of its judged sentences (None when nothing is judged)."""
    out = []
    for pa in analyses:
        rows = [sa.features for sa in pa.sentences if sa.judged]
        out.append(np.vstack(rows) if rows else None)
    return out


def fit_mil(bag_list, y, w, free, l2=1e-4):
    """Max-over-sentences logistic regression by L-BFGS-B. Returns (weights, bias)."""
    from scipy.optimize import minimize

    keep = [i for i, b in enumerate(bag_list) if b is not None]
    X = np.vstack([bag_list[i] for i in keep])
    owner = np.concatenate([[k] * len(bag_list[i]) for k, i in enumerate(keep)])
    yy, ww = y[keep].astype(float), w[keep]
    ww = ww / ww.sum()
    d = X.shape[1]
    starts = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]

    def loss(theta):
        wt, b = theta[:d], theta[d]
        z = X @ wt + b
        zmax = np.maximum.reduceat(z, starts)
        # argmax row of each bag: the row where z equals the bag's max (first one)
        is_max = z == zmax[owner]
        first = np.zeros_like(is_max)
        seen = set()
        for r in np.flatnonzero(is_max):
            if owner[r] not in seen:
                seen.add(owner[r])
                first[r] = True
        p = 1 / (1 + np.exp(-np.clip(zmax, -40, 40)))
        eps = 1e-9
        L = -np.sum(ww * (yy * np.log(p + eps) + (1 - yy) * np.log(1 - p + eps))) + l2 * np.sum(wt**2)
        g_z = ww * (p - yy)  # dL/dzmax per bag
        rows = np.flatnonzero(first)
        gw = X[rows].T @ g_z[owner[rows]] + 2 * l2 * wt
        gb = g_z.sum()
        return L, np.r_[gw, gb]

    bounds = [(None, None) if f else (0.0, None) for f in free] + [(None, None)]
    theta0 = np.r_[np.full(d, 0.5), -1.0]
    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    return res.x[:d], float(res.x[d]), float(res.fun)


def fit_dev(bags_by: dict, free, cols=None, extra=None, l2: float = 1e-4):
    """`fit_mil` on the DEV_SETS together, each set weighted equally (`set_weights`). `bags_by[name]`
    starts with (labels, per-example feature bags); `cols` keeps those feature columns (all when None).
    Returns (weights, bias, loss)."""
    names, ys, bag_list = [], [], []
    for n in DEV_SETS:
        y, bl = bags_by[n][0], bags_by[n][1]
        names += [n] * len(y)
        ys += list(y)
        bag_list += [b if b is None or cols is None else b[:, cols] for b in bl]
    y = np.array(ys)
    return fit_mil(bag_list, y, set_weights(names, y, extra), free, l2=l2)


def set_weights(names, y, extra=None):
    """Each set total weight 1 (times `extra[name]`, default 1); inside a set both classes get half."""
    w = np.zeros(len(y))
    for n in set(names):
        idx = np.array([k for k, m in enumerate(names) if m == n])
        for c in (0, 1):
            sel = idx[y[idx] == c]
            if len(sel):
                w[sel] = 0.5 * (extra or {}).get(n, 1.0) / len(sel)
    return w


def mean_bacc(scores_by_set, labels_by_set, thr):
    from halluguard.metrics import balanced_accuracy

    vals = []
    for n in scores_by_set:
        s, y = scores_by_set[n], labels_by_set[n]
        keep = ~np.isnan(s)
        vals.append(balanced_accuracy(y[keep], s[keep], thr))
    return float(np.mean(vals))


def span_eval(verifier, analyses, examples, prevalence: float | None = None):
    """Character-level span P/R/F1 (halluguard.metrics). With `prevalence`, hallucinated and faithful
    examples are reweighted as if that share of summaries were hallucinated, so span settings are
    chosen for the deployment base rate rather than the dev file's (FaithBench ~68 %, XSumFaith ~90 %)."""
    from halluguard.metrics import span_counts

    reports = [verifier._report(pa) for pa in analyses]
    pred = [[(s.start, s.end) for s in r.spans] for r in reports]
    gold = [e.spans or [] for e in examples]
    counts = span_counts(pred, gold, [e.summary for e in examples]).astype(float)
    if prevalence is not None:
        y = np.array([e.label for e in examples])
        p = y.mean()
        if 0 < p < 1:
            counts *= np.where(y == 1, prevalence / p, (1 - prevalence) / (1 - p))[:, None]
    overlap, npred, ngold = counts.sum(0)
    prec = overlap / npred if npred else 0.0
    rec = overlap / ngold if ngold else 0.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}


def evaluate(verifier, data, sets, ci: bool = True):
    from halluguard.metrics import (
        balanced_accuracy,
        bootstrap_ci,
        classification_metrics,
        f1_hallucinated,
        roc_auc,
        span_counts,
        span_f1_from_counts,
    )

    from halluguard.verify.lite import REWORDED_REASON as REWORDED

    results = {}
    for name in sets:
        examples, analyses = data[name]
        reports = [verifier._report(pa) for pa in analyses]
        y = np.array([e.label for e in examples])
        s = np.array([r.score for r in reports], dtype=float)
        m = classification_metrics(y, s, verifier.threshold)
        row = {k: m[k] for k in ("balanced_accuracy", "f1", "precision", "recall", "roc_auc", "threshold", "n",
                                 "n_hallucinated", "n_unknown")}
        # Labelled "unknown" though scored: a reworded sentence (the abstention band) and nothing flagged.
        row["share_label_unknown"] = float(np.mean([r.label == "unknown" for r in reports]))
        row["share_sentences_reworded"] = float(np.mean([
            sum(v.reasons == [REWORDED] for v in r.sentences) / max(1, len(r.sentences)) for r in reports]))
        if ci:
            keep = ~np.isnan(s)
            yk, sk = y[keep], s[keep]
            t = verifier.threshold
            row["balanced_accuracy_ci"] = bootstrap_ci(lambda a, b, t=t: balanced_accuracy(a, b, t), yk, sk, n=500)[1:]
            row["f1_ci"] = bootstrap_ci(lambda a, b, t=t: f1_hallucinated(a, b, t), yk, sk, n=500)[1:]
            row["roc_auc_ci"] = bootstrap_ci(roc_auc, yk, sk, n=500)[1:]
        if examples and examples[0].spans is not None:
            pred = [[(sp.start, sp.end) for sp in r.spans] for r in reports]
            gold = [e.spans or [] for e in examples]
            counts = span_counts(pred, gold, [e.summary for e in examples])
            tot = counts.sum(0)
            p = tot[0] / tot[1] if tot[1] else 0.0
            r_ = tot[0] / tot[2] if tot[2] else 0.0
            row["span_precision"], row["span_recall"] = float(p), float(r_)
            row["span_f1"] = float(span_f1_from_counts(counts))
            if ci:
                row["span_f1_ci"] = bootstrap_ci(span_f1_from_counts, counts, n=500)[1:]
        results[name] = {k: (round(v, 4) if isinstance(v, float) else
                             [round(x, 4) for x in v] if isinstance(v, tuple) else v) for k, v in row.items()}
        print(f"{name:24s} " + " ".join(
            f"{k}={results[name][k]}" for k in ("balanced_accuracy", "f1", "roc_auc", "span_f1", "share_label_unknown")
            if k in results[name]),
            flush=True)
    return results


def measure_floors(data: dict) -> dict[str, float]:
    """For each check, the balanced precision of "the check fired somewhere in the summary", averaged
    over the dev sets where it fired. A fired check then scores at least that much."""
    floors = {}
    for reason in CHECKS:
        vals = []
        for name in DEV_SETS:
            ex, an = data[name]
            y_ = np.array([e.label for e in ex])
            fire = np.array([any(sp.reason == reason for sa in pa.sentences for sp in sa.spans) for pa in an])
            tpr = (fire & (y_ == 1)).sum() / max(1, (y_ == 1).sum())
            fpr = (fire & (y_ == 0)).sum() / max(1, (y_ == 0).sum())
            print(f"  {reason} fires on {name}: {fire[y_ == 1].sum()} hallucinated, {fire[y_ == 0].sum()} faithful")
            if tpr + fpr > 0:
                vals.append(tpr / (tpr + fpr))
        floors[reason] = round(float(np.mean(vals)), 4) if vals else 0.0
    silent = [r for r in CHECKS if floors[r] == 0.0 and r in POOL_CHECKS]
    if silent:
        print(f"never fired on dev: {silent}; measuring on the training pool instead")
        floors.update(pool_floors(silent))
    print("check floors (measured):", floors)
    return floors


# Checks that may never fire on the dev summaries (a quantifier widened: "all residents" for "some
# residents"): their floor is measured instead on the licensed, non-synthetic pair rows of the training
# pool (NLI, fact checking, dialogue; halluguard.pool), where the evidence is one or a few sentences.
POOL_CHECKS = {"scope": "scope_overreach"}


def pool_floors(missing: Sequence[str]) -> dict[str, float]:
    """Balanced precision of each check in `missing` (a POOL_CHECKS key) on the pool's pair rows."""
    from halluguard.pool import load_pool
    from halluguard.pool.filters import ship_only
    from halluguard.verify import claims as C

    rows = [p for p in ship_only(load_pool()) if p.level == "pair" and not p.synthetic and len(p.premise) <= 3000]
    n1 = sum(p.label for p in rows)
    n0 = len(rows) - n1
    out = {}
    for reason in missing:
        check = getattr(C, POOL_CHECKS[reason])
        fired = [p.label for p in rows if check(p.hypothesis, p.premise) is not None]
        f1, f0 = sum(fired), len(fired) - sum(fired)
        tpr, fpr = f1 / max(1, n1), f0 / max(1, n0)
        out[reason] = round(tpr / (tpr + fpr), 4) if tpr + fpr else 0.0
        print(f"  {reason} on {len(rows)} licensed pool pairs: fires on {f1} unsupported, {f0} supported -> floor {out[reason]}")
    return out


def choose_floors(cal: dict, cache, data: dict, floors: dict, threshold: float | None = None):
    """Which floors to use (and, unless `threshold` is given, the threshold): the best mean dev balanced
    accuracy; within 0.005 of the best (noise) the larger set of floors wins, since a fired check is the
    most specific flag. Returns (floors used, threshold, mean dev balanced accuracy)."""
    from halluguard.verify.lite import LiteVerifier

    grid = np.array([threshold]) if threshold is not None else np.linspace(0.05, 0.95, 181)
    y_by = {n: np.array([e.label for e in data[n][0]]) for n in DEV_SETS}
    options = []
    for use in FLOOR_OPTIONS:
        v_tmp = LiteVerifier(calibration={**cal, "threshold": 0.5, "check_floors": {k: floors[k] for k in use}},
                             embed_cache=cache)
        s_by = {n: np.array([v_tmp._report(pa).score for pa in data[n][1]], dtype=float) for n in DEV_SETS}
        vals = [mean_bacc(s_by, y_by, t) for t in grid]
        options.append((max(vals), len(use), use, float(grid[int(np.argmax(vals))])))
        print(f"  floors {use or 'none'}: threshold {options[-1][3]:.3f}, mean dev balanced accuracy {max(vals):.4f}")
    top = max(o[0] for o in options)
    best_ba, _, use, thr = max((o for o in options if o[0] >= top - 0.005), key=lambda o: o[1])
    return use, thr, best_ba


def refit_floors(base: dict, cache, data: dict, args):
    """--floors-only: the shipped calibration with its check floors re-measured on dev and the set of
    floors re-chosen at its own threshold; everything else (weights, threshold, spans, band) kept."""
    from halluguard.verify.lite import LiteVerifier

    cal = dict(base)
    floors = measure_floors(data)
    use, _, ba = choose_floors(cal, cache, data, floors, threshold=float(cal["threshold"]))
    cal["check_floors"] = {k: floors[k] for k in use}
    print(f"floors {use} at threshold {cal['threshold']}: mean dev balanced accuracy {ba:.4f}")
    dev_metrics = evaluate(LiteVerifier(calibration=cal, embed_cache=cache), data, DEV_SETS, ci=False)
    cal["dev_metrics"] = {n: {k: dev_metrics[n][k] for k in ("balanced_accuracy", "f1", "roc_auc", "span_f1")
                              if k in dev_metrics[n]} for n in DEV_SETS}
    cal["floors_at"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    cal["floors_command"] = "python benchmarks/fit_lite.py --floors-only"
    if args.limit is None:
        Path(args.out).write_text(json.dumps(cal, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return LiteVerifier(calibration=cal, embed_cache=cache)


def fit_reworded(cal: dict, cache, data: dict, y_by: dict, span_prevalence: float, min_gain: float = 0.002,
                 max_span_loss: float = 0.005) -> dict | None:
    """The abstention band for paraphrases (LiteVerifier.is_reworded): the (min_sim, min_novel) that
    maximise mean dev balanced accuracy when such sentences count just under the threshold, among the
    settings that cost at most `max_span_loss` of mean dev span F1 (an unflagged reworded sentence in a
    hallucinated summary loses its spans); None when no setting gains `min_gain` over the band off."""
    from halluguard.verify.lite import LiteVerifier

    thr = float(cal["threshold"])

    def measure(band):
        v = LiteVerifier(calibration={**cal, "reworded": band}, embed_cache=cache)
        s_by = {n: np.array([v._report(pa).score for pa in data[n][1]], dtype=float) for n in DEV_SETS}
        f1 = float(np.mean([span_eval(v, data[n][1], data[n][0], span_prevalence)["f1"] for n in SPAN_DEV]))
        return mean_bacc(s_by, y_by, thr), f1

    base, base_f1 = measure(None)
    best, best_ba = None, base
    for min_sim in (0.65, 0.7, 0.75, 0.8, 0.85):
        for min_novel in (0.2, 0.3, 0.4, 0.5):
            band = {"min_sim": min_sim, "min_novel": min_novel, "score_cap": round(thr - 0.01, 4)}
            ba, f1 = measure(band)
            ok = f1 >= base_f1 - max_span_loss
            print(f"  reworded band sim>={min_sim} novel>={min_novel}: mean dev balanced accuracy {ba:.4f} "
                  f"(off: {base:.4f}), span F1 {f1:.4f} (off: {base_f1:.4f}){'' if ok else ' -- loses spans'}")
            if ok and ba > best_ba:
                best, best_ba = band, ba
    if best is None or best_ba < base + min_gain:
        print("reworded band: off (no setting gains enough on dev without losing spans)")
        return None
    print(f"reworded band: {best} ({base:.4f} -> {best_ba:.4f})")
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eval-only", action="store_true", help="do not fit; evaluate the current calibration")
    ap.add_argument("--floors-only", action="store_true",
                    help="keep weights, threshold, span settings and reworded band; re-measure on dev the floor of each "
                         "check (for a change to claims.py that adds a check but no feature)")
    ap.add_argument("--limit", type=int, default=None, help="examples per set (smoke runs; never written)")
    ap.add_argument("--cache", default="/tmp/halluguard_lite_emb.npz", help="embedding cache file")
    ap.add_argument("--out", default=str(ROOT / "halluguard" / "resources" / "lite_calibration.json"))
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "lite_heldout.json"))
    ap.add_argument("--l2", type=float, default=1e-4, help="L2 penalty (the loss is a weighted mean)")
    ap.add_argument("--no-test", action="store_true", help="fit only, skip the held-out report")
    ap.add_argument("--top-k", type=int, default=None, help="source candidates embedded per summary sentence")
    ap.add_argument("--set-weight", action="append", default=[], metavar="SET=W",
                    help="weight of a dev set in the fit (default 1 each), e.g. faithbench-q:dev=2")
    ap.add_argument("--span-prevalence", type=float, default=0.27,
                    help="share of hallucinated summaries assumed when choosing span settings (deployment base rate)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    from halluguard.datasets import load_set
    from halluguard.embeddings import DiskCache
    from halluguard.verify.lite import DEFAULT_CALIBRATION, FEATURES, LiteVerifier, load_calibration

    _code_version()  # pin the feature-code version before anything is extracted
    cache = DiskCache(args.cache)
    try:
        base = load_calibration()
    except ValueError as e:  # the feature list changed: the stored weights mean nothing any more
        if args.eval_only:
            raise
        print(f"note: {e}; fitting from the defaults", file=sys.stderr)
        base = dict(DEFAULT_CALIBRATION)
    if args.top_k is not None:
        base["top_k"] = args.top_k
    verifier = LiteVerifier(calibration=base, embed_cache=cache)

    wanted = ([] if args.eval_only else DEV_SETS) + ([] if args.no_test else TEST_SETS)
    data = {}
    for name in dict.fromkeys(wanted):
        ex = [e for e in load_set(name, limit=args.limit) if e.label is not None]
        data[name] = (ex, cached_extract(verifier, ex, name, args.limit))
    cache.save()

    if args.floors_only and not args.eval_only:
        verifier = refit_floors(base, cache, data, args)
    elif not args.eval_only:
        extra = {k: float(v) for k, v in (kv.split("=") for kv in args.set_weight)}
        free = [f == "log_len" for f in FEATURES]  # length may lower or raise the score
        bags_by = {n: ([e.label for e in data[n][0]], bags(data[n][1])) for n in DEV_SETS}
        weights, bias, loss = fit_dev(bags_by, free, extra=extra, l2=args.l2)
        print("weights:", dict(zip(FEATURES, np.round(weights, 3))), "bias", round(bias, 3), "loss", round(loss, 4))

        cal = dict(base)
        cal.update({"weights": [round(float(x), 5) for x in weights], "bias": round(bias, 5)})
        floors = measure_floors(data)
        use, thr, best_ba = choose_floors(cal, cache, data, floors)
        cal["check_floors"] = {k: floors[k] for k in use}
        print(f"threshold {thr:.3f}, floors {use}: mean dev balanced accuracy {best_ba:.4f}")

        cal["threshold"] = round(thr, 4)
        y_by = {n: np.array([e.label for e in data[n][0]]) for n in DEV_SETS}
        cal["reworded"] = None  # fitted below, once the span settings are known
        # Span settings: which novel words become spans, when to flag the whole sentence instead.
        best = None
        for min_nov in (0.3, 0.5, 1.0):
            for sent_nov in (0.0, 0.15, 0.25, 0.4, 0.55, 1.1):
                cal_try = {**cal, "span_min_novelty": min_nov, "sentence_span_min_novel": sent_nov}
                v = LiteVerifier(calibration=cal_try, embed_cache=cache)
                f1s = [span_eval(v, data[n][1], data[n][0], args.span_prevalence)["f1"] for n in SPAN_DEV]
                f = float(np.mean(f1s))
                print(f"  spans: min_novelty={min_nov} sentence_if_novel>={sent_nov}: F1 {np.round(f1s, 4)} mean {f:.4f}")
                if best is None or f > best[0]:
                    best = (f, min_nov, sent_nov)
        cal["span_min_novelty"], cal["sentence_span_min_novel"] = best[1], best[2]
        cal["reworded"] = fit_reworded(cal, cache, data, y_by, args.span_prevalence)
        dev_v = LiteVerifier(calibration=cal, embed_cache=cache)
        dev_metrics = evaluate(dev_v, data, DEV_SETS, ci=False)
        cal["fitted_on"] = ("dev splits only: " + ", ".join(
            f"{n} ({len(data[n][0])})" for n in DEV_SETS) + "; sets weighted equally, classes balanced within each set; "
            "threshold = max mean balanced accuracy over these sets; span settings = max span F1 on "
            + ", ".join(SPAN_DEV) + f" reweighted to {args.span_prevalence:.0%} hallucinated summaries; reworded band = "
            "max mean balanced accuracy at <= 0.5 points of span F1 lost")
        cal["fitted_at"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        cal["fit_command"] = "python benchmarks/fit_lite.py"
        cal["dev_metrics"] = {n: {k: dev_metrics[n][k] for k in ("balanced_accuracy", "f1", "roc_auc", "span_f1")
                                  if k in dev_metrics[n]} for n in DEV_SETS}
        if args.limit is None:
            Path(args.out).write_text(json.dumps(cal, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
        verifier = LiteVerifier(calibration=cal, embed_cache=cache)

    if not args.no_test:
        print(f"held-out (threshold {verifier.threshold}):")
        res = evaluate(verifier, data, TEST_SETS)
        if args.limit is None:
            Path(args.results).parent.mkdir(parents=True, exist_ok=True)
            out = {"calibration": verifier.calibration.get("fitted_on"), "fitted_at": verifier.calibration.get("fitted_at"),
                   "command": "python benchmarks/fit_lite.py" + (" --eval-only" if args.eval_only else
                                                                " --floors-only" if args.floors_only else ""),
                   "results": res}
            Path(args.results).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
