"""SFT vs DPO on held-out documents: does DPO reduce hallucination? Metrics, paired tests, the verdict.

    from halluguard.train import verdict
    verdict.main(["--config", "training/configs/verdict_qwen7b_lite.yaml"])

Both adapters are loaded on ONE (4-bit) base and switched, so the comparison fits one GPU; or, with
`sft_summary_column` / `dpo_summary_column`, summaries both models wrote earlier are scored and no model is
loaded (examples/sft_vs_dpo/ was made that way). Per held-out
document and model: a greedy summary, its verifier score and flag (score >= the verifier's threshold),
ROUGE-1/2/Lsum and MiniLM similarity to the reference; `consistency_samples` sampled summaries whose
flags give the consistency (share of sample pairs that agree); on held-out preference pairs the
preference accuracy (log p(chosen) > log p(rejected)) and the confidence (mean log-prob margin).

Significance: McNemar's exact test on the paired hallucination flags, paired bootstrap CIs of every
difference (H3's `paired_bootstrap`), and a bootstrap CI of the rate difference in points.

The verdict rule. d = hallucination rate(SFT) - hallucination rate(DPO), in percentage points
(d > 0: DPO hallucinates less):
    d > 2 and McNemar p < alpha   -> "supported"
    d > 2 but not significant     -> "partial"   (the gain could be noise)
    1 < d <= 2                    -> "partial"   (the gap band: DPO ahead, under the 2-point bar)
    -1 <= d <= 1                  -> "partial"   (a tie; SFT ahead by at most 1 point is in here)
    d < -1                        -> "not supported" (SFT wins by more than a point)
The burden of proof is on DPO: "supported" needs the margin AND significance; "not supported" needs
only SFT ahead by more than a point.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from halluguard.train.common import DEFAULT_INSTRUCTION, read_table, set_seed, summary_messages, write_jsonl

logger = logging.getLogger("halluguard.train.verdict")

SUPPORTED, PARTIAL, NOT_SUPPORTED = "supported", "partial", "not supported"


# ---------------------------------------------------------------------------------------------------
# Rule and tests (pure functions, tested on constructed inputs)
# ---------------------------------------------------------------------------------------------------
def decide(diff_points: float, p_value: float, alpha: float = 0.05) -> tuple[str, str]:
    """(verdict, reason) for d = rate(SFT) - rate(DPO) in points and the paired test's p-value."""
    if math.isnan(diff_points):
        raise ValueError("the hallucination-rate difference is NaN (no decided summaries)")
    if diff_points > 2:
        if p_value < alpha:
            return SUPPORTED, f"DPO hallucinates {diff_points:.2f} points less (> 2) and p = {p_value:.3g} < {alpha}"
        return PARTIAL, f"DPO is {diff_points:.2f} points better (> 2) but p = {p_value:.3g} >= {alpha}: not significant"
    if diff_points > 1:
        return PARTIAL, f"DPO is {diff_points:.2f} points better: between 1 and 2 points, under the 2-point bar"
    if diff_points >= -1:
        return PARTIAL, f"difference {diff_points:+.2f} points is within +/-1 point: a tie"
    return NOT_SUPPORTED, f"SFT hallucinates {-diff_points:.2f} points less than DPO (> 1 point)"


def mcnemar_exact(sft_flags: Sequence[bool], dpo_flags: Sequence[bool]) -> dict[str, float]:
    """Exact McNemar test on paired binary flags (True = hallucinated).

    b = documents SFT hallucinated and DPO did not; c = the reverse. Under H0 b ~ Binomial(b + c, 1/2);
    the two-sided p-value is scipy's exact binomial test. Returns {"b", "c", "p_value"}.
    """
    from scipy.stats import binomtest

    if len(sft_flags) != len(dpo_flags):
        raise ValueError(f"got {len(sft_flags)} SFT flags but {len(dpo_flags)} DPO flags")
    b = sum(bool(s) and not bool(d) for s, d in zip(sft_flags, dpo_flags))
    c = sum(bool(d) and not bool(s) for s, d in zip(sft_flags, dpo_flags))
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return {"b": b, "c": c, "p_value": p}


def consistency(flag_samples: Sequence[Sequence[bool]]) -> float:
    """Mean over documents of the share of sample pairs whose flags agree (1 = always the same)."""
    vals = []
    for flags in flag_samples:
        pairs = list(combinations(flags, 2))
        if pairs:
            vals.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(vals) / len(vals) if vals else math.nan


def wilson_ci(k: int, n: int, z: float = 1.959964) -> list[float]:
    """95% Wilson score interval of a rate k/n, in percent. Unlike the normal approximation it stays
    inside 0-100 and is not [0, 0] when k = 0 (small held-out sets have wide intervals: say so)."""
    if n <= 0:
        raise ValueError("wilson_ci needs n > 0")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # min/max with p: at k = n (or 0) rounding put the bound a hair inside the rate (99.99999999999999 for
    # 100), a negative error bar that matplotlib refuses
    return [100 * min(p, max(0.0, centre - half)), 100 * max(p, min(1.0, centre + half))]


def _paired_bootstrap(a, b, n: int, seed: int) -> dict[str, float]:
    from halluguard.metrics import paired_bootstrap

    return paired_bootstrap(a, b, n=n, seed=seed)


def compare(sft: dict[str, list], dpo: dict[str, list], alpha: float = 0.05, n_bootstrap: int = 2000,
            seed: int = 0) -> dict[str, Any]:
    """Per-model summaries, paired differences (DPO - SFT) with CIs, McNemar, and the verdict.

    `sft`/`dpo` hold per-item lists with the same keys: "flags" (bool per document, required), optional
    "rouge1", "rouge2", "rougeLsum", "similarity" (per document), "pref_correct" (bool per held-out
    pair), "margins" (float per pair), "sample_flags" (list of bools per document).
    """
    if "flags" not in sft or "flags" not in dpo:
        raise ValueError("both models need per-document 'flags'")
    n = len(sft["flags"])
    if n == 0 or len(dpo["flags"]) != n:
        raise ValueError(f"flags must be non-empty and paired: {n} SFT vs {len(dpo['flags'])} DPO")
    sf = [float(x) for x in sft["flags"]]
    df = [float(x) for x in dpo["flags"]]
    rate_s, rate_d = 100 * sum(sf) / n, 100 * sum(df) / n
    boot = _paired_bootstrap(sf, df, n_bootstrap, seed)  # mean(SFT - DPO) in [0, 1]
    mc = mcnemar_exact(sft["flags"], dpo["flags"])
    diff = rate_s - rate_d
    verdict, reason = decide(diff, mc["p_value"], alpha)
    out: dict[str, Any] = {
        "n_documents": n,
        "hallucination_rate": {"sft": rate_s, "dpo": rate_d, "diff_points": diff,
                               "ci_points": [100 * boot["low"], 100 * boot["high"]],
                               "rate_ci": {"sft": wilson_ci(int(sum(sf)), n), "dpo": wilson_ci(int(sum(df)), n),
                                           "method": "Wilson score, 95%"},
                               "mcnemar": mc, "bootstrap_p": boot["p_value"]},
        "verdict": verdict, "reason": reason, "alpha": alpha,
        "rule": "d = rate(SFT) - rate(DPO) in points; supported: d > 2 and McNemar p < alpha; partial: "
                "d > 2 not significant, 1 < d <= 2, or -1 <= d <= 1; not supported: d < -1",
        "metrics": {},
    }
    for key in ("rouge1", "rouge2", "rougeLsum", "similarity", "margins"):
        if sft.get(key) and dpo.get(key):
            b = _paired_bootstrap(dpo[key], sft[key], n_bootstrap, seed)
            out["metrics"][key] = {"sft": _mean(sft[key]), "dpo": _mean(dpo[key]), "diff_dpo_minus_sft": b["diff"],
                                   "ci": [b["low"], b["high"]], "p_value": b["p_value"]}
    if sft.get("pref_correct") and dpo.get("pref_correct"):
        a, c = [float(x) for x in dpo["pref_correct"]], [float(x) for x in sft["pref_correct"]]
        b = _paired_bootstrap(a, c, n_bootstrap, seed)
        out["metrics"]["preference_accuracy"] = {
            "sft": _mean(c), "dpo": _mean(a), "diff_dpo_minus_sft": b["diff"], "ci": [b["low"], b["high"]],
            "mcnemar": mcnemar_exact([not x for x in sft["pref_correct"]], [not x for x in dpo["pref_correct"]])}
    if sft.get("sample_flags") and dpo.get("sample_flags"):
        out["metrics"]["consistency"] = {"sft": consistency(sft["sample_flags"]), "dpo": consistency(dpo["sample_flags"])}
    if "margins" in out["metrics"]:
        out["metrics"]["confidence_mean_margin"] = out["metrics"].pop("margins")
    return out


def _mean(xs: Sequence[float]) -> float:
    xs = [float(x) for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else math.nan


def to_markdown(report: dict[str, Any], figure: str | None = None) -> str:
    """The verdict, its reason and a table of every metric; `figure` (a path relative to the .md) is shown."""
    h = report["hallucination_rate"]
    lines = [f"# SFT vs DPO: **{report['verdict']}**", "", report["reason"], "",
             f"Held-out documents: {report['n_documents']}. Rule: {report['rule']}.", "",
             "| metric | SFT | DPO | DPO - SFT | 95% CI | p |", "|---|---|---|---|---|---|",
             (f"| hallucination rate (%) | {h['sft']:.2f} | {h['dpo']:.2f} | {(-h['diff_points']) or 0.0:+.2f} | "
             f"[{(-h['ci_points'][1]) or 0.0:.2f}, {(-h['ci_points'][0]) or 0.0:.2f}] | "
             f"McNemar {h['mcnemar']['p_value']:.3g} |")]
    for k, m in report["metrics"].items():
        if k == "consistency":
            lines.append(f"| consistency | {m['sft']:.3f} | {m['dpo']:.3f} | {m['dpo'] - m['sft']:+.3f} | | |")
            continue
        p = m.get("p_value", m.get("mcnemar", {}).get("p_value", math.nan))
        lines.append(f"| {k} | {m['sft']:.3f} | {m['dpo']:.3f} | {m['diff_dpo_minus_sft']:+.3f} | "
                     f"[{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] | {p:.3g} |")
    if h.get("rate_ci"):
        ci = h["rate_ci"]
        lines += ["", f"Hallucination rate per model with 95% Wilson CIs: SFT {h['sft']:.2f} "
                      f"[{ci['sft'][0]:.2f}, {ci['sft'][1]:.2f}], DPO {h['dpo']:.2f} [{ci['dpo'][0]:.2f}, {ci['dpo'][1]:.2f}]."]
    if figure:
        lines += ["", f"![SFT vs DPO: hallucination rates and the verdict]({figure})"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Measuring one adapter (also used by the ablations)
# ---------------------------------------------------------------------------------------------------
def measure(model, tok, verifier, documents: list[str], references: list[str | None], prefs: list[dict] | None,
            *, instruction: str = DEFAULT_INSTRUCTION, max_new_tokens: int = 160, batch_size: int = 4,
            consistency_samples: int = 0, temperature: float = 0.8, max_prompt_tokens: int | None = None,
            ) -> dict[str, list]:
    """Per-item measurements of the model's CURRENT adapter state (see `compare` for the keys)."""
    from halluguard.train.common import completion_logprobs, generate

    prompts = [summary_messages(d, instruction) for d in documents]
    summaries = [s[0] for s in generate(model, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                        max_prompt_tokens=max_prompt_tokens)]
    out = score_summaries(verifier, documents, references, summaries)
    thr = float(getattr(verifier, "threshold", 0.5))
    if prefs:
        ch = completion_logprobs(model, tok, [p["prompt"] for p in prefs], [p["chosen"] for p in prefs], batch_size)
        rj = completion_logprobs(model, tok, [p["prompt"] for p in prefs], [p["rejected"] for p in prefs], batch_size)
        out["margins"] = [a - b for a, b in zip(ch, rj)]
        out["pref_correct"] = [a > b for a, b in zip(ch, rj)]
    if consistency_samples >= 2:
        samples = generate(model, tok, prompts, num_return_sequences=consistency_samples, do_sample=True,
                           temperature=temperature, max_new_tokens=max_new_tokens, batch_size=batch_size,
                           max_prompt_tokens=max_prompt_tokens)
        flat_src = [d for d, ss in zip(documents, samples) for _ in ss]
        flat = [s if s.strip() else "(empty)" for ss in samples for s in ss]
        sc = verifier.score(flat_src, flat)
        k = consistency_samples
        out["sample_flags"] = [[x >= thr for x in sc[i * k:(i + 1) * k]] for i in range(len(documents))]
    return out


def score_summaries(verifier, documents: list[str], references: list[str | None], summaries: list[str]) -> dict[str, list]:
    """Per-document scores and flags of finished summaries (+ ROUGE and similarity when every document
    has a reference): the part of `measure` that needs no generator."""
    if len(summaries) != len(documents):
        raise ValueError(f"got {len(summaries)} summaries for {len(documents)} documents")
    thr = float(getattr(verifier, "threshold", 0.5))
    safe = [s if isinstance(s, str) and s.strip() else "(empty)" for s in summaries]  # scored, not dropped
    scores = verifier.score(documents, safe)
    out: dict[str, list] = {"summaries": list(summaries), "scores": scores, "flags": [s >= thr for s in scores]}
    pairs = [(s, r) for s, r in zip(safe, references) if isinstance(r, str) and r.strip()]
    if pairs and len(pairs) == len(documents):
        from halluguard.metrics import rouge_per_example, similarity_per_example

        out.update(rouge_per_example([p for p, _ in pairs], [r for _, r in pairs]))
        out["similarity"] = similarity_per_example([p for p, _ in pairs], [r for _, r in pairs])
    return out


def read_preference_pairs(path: str, limit: int | None = None) -> list[dict]:
    """Held-out preference pairs as {"prompt": messages, "chosen": text, "rejected": text}."""
    from halluguard.train.scorer import _text

    ds = read_table(path, ["prompt", "chosen", "rejected"], "preferences")
    rows = []
    for r in ds:
        if not isinstance(r["prompt"], list):
            raise ValueError(f"{path}: the verdict needs conversational prompts (lists of messages)")
        rows.append({"prompt": r["prompt"], "chosen": _text(r["chosen"]), "rejected": _text(r["rejected"])})
    return rows[:limit] if limit else rows


# ---------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------
@dataclass
class VerdictArguments:
    """Compare the SFT and DPO adapters on held-out documents."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Base model both adapters were trained on."})
    sft_adapter: str | None = field(default=None, metadata={"help": "Stage-A adapter directory."})
    dpo_adapter: str | None = field(default=None, metadata={"help": "Stage-B adapter directory."})
    quantization: str = field(default="nf4", metadata={"help": "'nf4', 'int8' or 'none' for the shared base."})
    model_dtype: str = field(default="auto", metadata={"help": "Dtype of the base."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom model code from the hub."})
    allow_fallback: bool = field(default=False, metadata={"help": "Load unquantized if 4/8-bit is unavailable."})
    eval_file: str | None = field(default=None, metadata={"help": "Held-out documents (+ reference summaries), never trained on."})
    document_column: str = field(default="document", metadata={"help": "Document column of eval_file."})
    summary_column: str = field(default="summary", metadata={"help": "Reference column (optional: ROUGE/similarity)."})
    sft_summary_column: str | None = field(
        default=None, metadata={"help": "Column of eval_file holding SFT summaries made earlier. With dpo_summary_column "
                                        "the verdict scores these and loads no model (e.g. a previous per_document.jsonl: "
                                        "sft_summaries / dpo_summaries)."}
    )
    dpo_summary_column: str | None = field(default=None, metadata={"help": "Column of eval_file with DPO summaries (see sft_summary_column)."})
    preference_file: str | None = field(
        default=None, metadata={"help": "Held-out preference pairs (triplets val.jsonl) for preference accuracy."}
    )
    train_files: list[str] = field(
        default_factory=list, metadata={"help": "Training files (SFT data, triplets train.jsonl): an evaluation document "
                                                "found in any of them (same normalized text) is an error."}
    )
    max_documents: int | None = field(default=None, metadata={"help": "Evaluate only the first N documents."})
    max_pairs: int | None = field(default=None, metadata={"help": "Use only the first N preference pairs."})
    verifier: str = field(default="lite", metadata={"help": "Verifier backend that flags hallucinations."})
    verifier_kwargs: str = field(default="{}", metadata={"help": "JSON object of verifier keyword arguments."})
    max_new_tokens: int = field(default=160, metadata={"help": "Longest generated summary, in tokens."})
    batch_size: int = field(default=4, metadata={"help": "Generation / scoring batch size."})
    consistency_samples: int = field(
        default=4, metadata={"help": "Sampled summaries per document for consistency (0 or 1 = skip)."}
    )
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature for the consistency samples."})
    alpha: float = field(default=0.05, metadata={"help": "Significance level of the paired test."})
    n_bootstrap: int = field(default=2000, metadata={"help": "Paired bootstrap resamples."})
    seed: int = field(default=42, metadata={"help": "Seed for sampling and the bootstrap."})
    output_dir: str = field(default="runs/verdict", metadata={"help": "Where verdict.json/.md and per_document.jsonl go."})
    instruction: str = field(default=DEFAULT_INSTRUCTION, metadata={"help": "Summarization instruction (as in training)."})


def make_parser():
    from trl import TrlParser

    return TrlParser((VerdictArguments,))


def _load_inputs(args: VerdictArguments):
    if not args.eval_file:
        raise ValueError("eval_file is required (held-out documents)")
    ds = read_table(args.eval_file, [args.document_column], "eval")
    if args.max_documents:
        ds = ds.select(range(min(args.max_documents, len(ds))))
    docs = list(ds[args.document_column])
    refs = list(ds[args.summary_column]) if args.summary_column in ds.column_names else [None] * len(docs)
    prefs = read_preference_pairs(args.preference_file, args.max_pairs) if args.preference_file else None
    check_held_out(docs, args.train_files, args.document_column)
    given = None
    if args.sft_summary_column or args.dpo_summary_column:  # run() checked that both are set
        missing = [c for c in (args.sft_summary_column, args.dpo_summary_column) if c not in ds.column_names]
        if missing:
            raise ValueError(f"{args.eval_file}: no column {missing[0]!r}; columns are {ds.column_names}")
        given = {"sft": list(ds[args.sft_summary_column]), "dpo": list(ds[args.dpo_summary_column])}
    return docs, refs, prefs, given


def check_held_out(documents: list[str], train_files: list[str], document_column: str = "document") -> None:
    """Raise ValueError if an evaluation document also appears (same normalized text) in a training file."""
    from halluguard.train.triplets import doc_key

    keys = {doc_key(d): i for i, d in enumerate(documents)}
    for path in train_files:
        ds = read_table(path, [], "training")
        col = document_column if document_column in ds.column_names else "document"
        if col not in ds.column_names:
            raise ValueError(f"{path}: no {document_column!r} column to check held-out documents against")
        seen = sorted({keys[k] + 1 for k in (doc_key(d) for d in ds[col] if isinstance(d, str)) if k in keys})
        if seen:
            raise ValueError(f"{len(seen)} evaluation document(s) also appear in training file {path} "
                             f"(eval rows {seen[:10]}): the verdict needs held-out documents")


def run(args: VerdictArguments, verifier=None) -> dict[str, Any]:
    """Measure both adapters on one base (or score summaries made earlier), compare, and write
    verdict.json, verdict.md, per_document.jsonl and the figure verdict.png / verdict.svg."""
    given = bool(args.sft_summary_column or args.dpo_summary_column)
    if given and not (args.sft_summary_column and args.dpo_summary_column):
        raise ValueError("set both sft_summary_column and dpo_summary_column to score existing summaries")
    if not given and not (args.model_name_or_path and args.sft_adapter and args.dpo_adapter):
        raise ValueError("model_name_or_path, sft_adapter and dpo_adapter are required "
                         "(or sft_summary_column and dpo_summary_column to score existing summaries)")
    set_seed(args.seed)
    docs, refs, prefs, summaries = _load_inputs(args)
    if verifier is None:
        from halluguard.verify import get_verifier

        verifier = get_verifier(args.verifier, **json.loads(args.verifier_kwargs or "{}"))
    if given:
        logger.info("scoring existing SFT and DPO summaries of %d documents (no model is loaded)", len(docs))
        res = {m: score_summaries(verifier, docs, refs, summaries[m]) for m in ("sft", "dpo")}
    else:
        docs, refs, res = _measure_adapters(args, docs, refs, prefs, verifier)
    report = compare(res["sft"], res["dpo"], alpha=args.alpha, n_bootstrap=args.n_bootstrap, seed=args.seed)
    report.update({"verifier": args.verifier, "threshold": float(getattr(verifier, "threshold", 0.5)),
                   "base_model": args.model_name_or_path, "sft_adapter": args.sft_adapter,
                   "dpo_adapter": args.dpo_adapter, "args": asdict(args)})
    write_outputs(Path(args.output_dir), report, docs, refs, res)
    return report


def _measure_adapters(args: VerdictArguments, docs, refs, prefs, verifier):
    from halluguard.loading import ModelSpec, load_model, set_adapter
    from halluguard.train.common import prompt_fits

    spec = ModelSpec(model=args.model_name_or_path, quantization=args.quantization, dtype=args.model_dtype,
                     adapters={"sft": args.sft_adapter, "dpo": args.dpo_adapter},
                     trust_remote_code=args.trust_remote_code, allow_fallback=args.allow_fallback)
    model, tok = load_model(spec)
    fits = prompt_fits(model, tok, [summary_messages(d, args.instruction) for d in docs], args.max_new_tokens)
    if not all(fits):  # both models are measured on the same documents: drop a too-long one for both, visibly
        logger.warning("%d document(s) too long for the model's context are left out: rows %s", fits.count(False),
                       [i + 1 for i, f in enumerate(fits) if not f][:10])
        docs = [d for d, f in zip(docs, fits) if f]
        refs = [r for r, f in zip(refs, fits) if f]
        if not docs:
            raise ValueError("every evaluation document is too long for the model's context")
    res = {}
    for name in ("sft", "dpo"):
        set_adapter(model, name)
        set_seed(args.seed)  # the same sampling noise for both models
        logger.info("measuring the %s adapter on %d documents", name, len(docs))
        res[name] = measure(model, tok, verifier, docs, refs, prefs, instruction=args.instruction,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            consistency_samples=args.consistency_samples, temperature=args.temperature)
    return docs, refs, res


def write_outputs(out: Path, report: dict[str, Any], docs: list[str], refs: list, res: dict[str, dict[str, list]]) -> None:
    """verdict.json, verdict.png/.svg, verdict.md (which shows the figure) and per_document.jsonl."""
    from halluguard import plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "verdict.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    figures = plots.save_figure(plots.verdict_figure(report), out / "verdict")
    (out / "verdict.md").write_text(to_markdown(report, figure=figures[0].name), encoding="utf-8")
    write_jsonl(out / "per_document.jsonl", [
        {"index": i, "document": docs[i], "reference": refs[i],
         **{f"{m}_{k}": res[m][k][i] for m in ("sft", "dpo") for k in ("summaries", "scores", "flags")}}
        for i in range(len(docs))])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    (args,) = make_parser().parse_args_and_config(argv)
    return run(args)
