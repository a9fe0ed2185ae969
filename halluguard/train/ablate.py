"""Stage-B ablations from one command: beta, learning rate, 4-bit vs 8-bit, training-set size.

    from halluguard.train import ablate
    ablate.main(["--config", "training/configs/ablate_qwen7b_grid.yaml"])

Every variant is the stage-B recipe `base_config` with one (mode `one_at_a_time`, the default) or all
(mode `grid`) of the factors changed, trained into `output_dir/<variant>/` and measured the same way:
the trainer's held-out DPO metrics (eval_rewards/accuracies, margins, loss) and, when `eval_file` is
given, the hallucination rate of greedy summaries by a verifier, ROUGE/similarity and preference
accuracy on `preference_file`. Results: results.json (what the app's Results tab loads), results.csv,
results.md, and per factor a figure of every metric against it (ablation_<factor>.png / .svg). A variant
whose run_info.json exists is not trained again (nor measured again, for the same eval inputs), so a
killed ablation resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halluguard.train.common import DEFAULT_INSTRUCTION, write_csv

logger = logging.getLogger("halluguard.train.ablate")

# factor -> the stage-B flag it sets
FACTORS = {"beta": "--beta", "learning_rate": "--learning_rate", "quantization": "--quantization",
           "train_size": "--max_train_samples"}
_BITS = {"nf4": 4, "int8": 8, "none": 16}  # the quantizations a variant may use
METRICS = ("hallucination_rate", "eval_rewards/accuracies", "eval_rewards/margins", "eval_loss",
           "preference_accuracy", "mean_margin", "rouge1", "similarity")


@dataclass
class AblationArguments:
    """Which stage-B factors to vary and how to measure each variant."""

    base_config: str | None = field(default=None, metadata={"help": "Stage-B YAML (training/configs/dpo_*.yaml) every variant starts from."})
    output_dir: str = field(default="runs/ablate", metadata={"help": "One sub-directory per variant + results.*."})
    betas: list[float] = field(default_factory=list, metadata={"help": "DPO beta values to try."})
    learning_rates: list[float] = field(default_factory=list, metadata={"help": "Learning rates to try."})
    quantizations: list[str] = field(default_factory=list, metadata={"help": "Base quantizations to try: nf4, int8, none."})
    train_sizes: list[int] = field(default_factory=list, metadata={"help": "Training-set sizes (pairs) to try."})
    mode: str = field(default="one_at_a_time", metadata={"help": "'one_at_a_time' (vary one factor around the base "
                                                                   "recipe) or 'grid' (every combination)."})
    overrides: list[str] = field(
        default_factory=list, metadata={"help": "Extra stage-B flags for every variant, e.g. ['--max_steps', '200']."}
    )
    eval_file: str | None = field(default=None, metadata={"help": "Held-out documents for hallucination rate / ROUGE (optional)."})
    document_column: str = field(default="document", metadata={"help": "Document column of eval_file."})
    summary_column: str = field(default="summary", metadata={"help": "Reference column of eval_file (optional)."})
    preference_file: str | None = field(default=None, metadata={"help": "Held-out preference pairs for preference accuracy."})
    max_documents: int | None = field(default=None, metadata={"help": "Evaluate only the first N documents."})
    max_pairs: int | None = field(default=None, metadata={"help": "Use only the first N preference pairs."})
    verifier: str = field(default="lite", metadata={"help": "Verifier backend for the hallucination rate."})
    verifier_kwargs: str = field(default="{}", metadata={"help": "JSON object of verifier keyword arguments."})
    max_new_tokens: int = field(default=160, metadata={"help": "Longest generated summary, in tokens."})
    batch_size: int = field(default=4, metadata={"help": "Generation / scoring batch size."})
    instruction: str = field(default=DEFAULT_INSTRUCTION, metadata={"help": "Summarization instruction (as in training)."})

    def __post_init__(self) -> None:
        if self.mode not in ("one_at_a_time", "grid"):
            raise ValueError(f"mode must be 'one_at_a_time' or 'grid', got {self.mode!r}")
        bad = [q for q in self.quantizations if q not in _BITS]
        if bad:
            raise ValueError(f"unknown quantization(s) {bad}; choose from {list(_BITS)}")


def variants(args: AblationArguments, baseline: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, factor, {factor: value, ...}) for every run; the base recipe itself is 'baseline'."""
    levels = {"beta": args.betas, "learning_rate": args.learning_rates, "quantization": args.quantizations,
              "train_size": args.train_sizes}
    levels = {k: list(v) for k, v in levels.items() if v}
    out: list[tuple[str, str, dict[str, Any]]] = [("baseline", "baseline", {})]
    if args.mode == "grid":
        keys = list(levels)
        for combo in itertools.product(*(levels[k] for k in keys)):
            change = {k: v for k, v in zip(keys, combo) if baseline.get(k) != v}
            if change:
                out.append(("+".join(f"{k}={v}" for k, v in change.items()), "grid", change))
    else:
        for k, vals in levels.items():
            out += [(f"{k}={v}", k, {k: v}) for v in vals if baseline.get(k) != v]
    return out


def _baseline_values(base_config: str) -> dict[str, Any]:
    from halluguard.train.preference import make_parser

    margs, cfg = make_parser().parse_args_and_config(["--config", base_config])
    return {"beta": cfg.beta, "learning_rate": cfg.learning_rate, "quantization": margs.quantization,
            "train_size": margs.max_train_samples}


def _measure_variant(args: AblationArguments, info: dict[str, Any], verifier) -> dict[str, float]:
    from halluguard.loading import ModelSpec, load_model
    from halluguard.train.common import read_table
    from halluguard.train.verdict import _mean, measure, read_preference_pairs

    ds = read_table(args.eval_file, [args.document_column], "eval")
    if args.max_documents:
        ds = ds.select(range(min(args.max_documents, len(ds))))
    docs = list(ds[args.document_column])
    refs = list(ds[args.summary_column]) if args.summary_column in ds.column_names else [None] * len(docs)
    prefs = read_preference_pairs(args.preference_file, args.max_pairs) if args.preference_file else None
    a = info["args"]
    spec = ModelSpec(model=a["model_name_or_path"], quantization=a["quantization"], dtype=a["model_dtype"],
                     adapters={"variant": info["output_dir"]}, allow_fallback=a["allow_fallback"])
    model, tok = load_model(spec)
    m = measure(model, tok, verifier, docs, refs, prefs, instruction=args.instruction,
                max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    out = {"hallucination_rate": 100 * _mean([float(f) for f in m["flags"]])}
    for k in ("rouge1", "similarity"):
        if k in m:
            out[k] = _mean(m[k])
    if "pref_correct" in m:
        out["preference_accuracy"] = _mean([float(x) for x in m["pref_correct"]])
        out["mean_margin"] = _mean(m["margins"])
    return out


def run(args: AblationArguments, verifier=None) -> list[dict[str, Any]]:
    """Train and measure every variant; write results.csv, results.md and plots; return the rows."""
    from halluguard.train import preference

    if not args.base_config:
        raise ValueError("base_config is required (a stage-B YAML)")
    baseline = _baseline_values(args.base_config)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.eval_file and verifier is None:
        from halluguard.verify import get_verifier

        verifier = get_verifier(args.verifier, **json.loads(args.verifier_kwargs or "{}"))
    rows: list[dict[str, Any]] = []
    plan = variants(args, baseline)
    for i, (name, factor, change) in enumerate(plan, 1):
        vdir = out / name.replace("/", "_")
        info_path = vdir / "run_info.json"
        logger.info("ablation %d/%d: %s", i, len(plan), name)
        if info_path.exists():  # finished earlier: a killed ablation resumes here
            info = json.loads(info_path.read_text(encoding="utf-8"))
        else:
            argv = ["--config", args.base_config, *args.overrides, "--output_dir", str(vdir)]
            for k, v in change.items():
                argv += [FACTORS[k], str(v)]
            info = preference.main(argv)
        values = {**baseline, **change}
        row: dict[str, Any] = {"variant": name, "factor": factor, **values, "global_step": info["global_step"],
                               "train_loss": info["train_loss"]}
        for k in ("eval_rewards/accuracies", "eval_rewards/margins", "eval_loss"):
            row[k] = info.get("eval", {}).get(k)
        if args.eval_file:
            cache = vdir / "ablation_measures.json"  # measured once; a rerun reuses it with the training
            key = {"eval_file": args.eval_file, "preference_file": args.preference_file, "verifier": args.verifier,
                   "max_documents": args.max_documents, "max_pairs": args.max_pairs}
            cached = json.loads(cache.read_text(encoding="utf-8")) if cache.exists() else {}
            if cached.get("key") != key:
                cached = {"key": key, "measures": _measure_variant(args, info, verifier)}
                cache.write_text(json.dumps(cached, indent=2), encoding="utf-8")
            row.update(cached["measures"])
        rows.append(row)
    write_results(out, rows)
    return rows


def write_results(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """results.json, results.csv, results.md and the figures; returns the figure paths."""
    (out / "results.json").write_text(json.dumps({"kind": "ablation", "rows": rows}, indent=2, default=str) + "\n",
                                      encoding="utf-8")
    write_csv(out / "results.csv", rows)
    figures = plot_results(rows, out)
    md = results_markdown(rows) + "".join(f"\n![{p.stem}]({p.name})\n" for p in figures if p.suffix == ".png")
    (out / "results.md").write_text(md, encoding="utf-8")
    return figures


def results_markdown(rows: list[dict[str, Any]]) -> str:
    cols = ["variant", "beta", "learning_rate", "quantization", "train_size", "global_step"] + \
        [m for m in METRICS if any(r.get(m) is not None for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def plot_results(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Per factor, every measured metric against the factor's values (the baseline included), as
    ablation_<factor>.png and .svg. A factor with fewer than two measured values gets no figure."""
    from halluguard import plots

    paths: list[Path] = []
    for factor in FACTORS:
        fig = plots.ablation_figure(rows, factor, METRICS)
        if fig is not None:
            paths += plots.save_figure(fig, out / f"ablation_{factor}")
    return paths


def make_parser():
    from trl import TrlParser

    return TrlParser((AblationArguments,))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    (args,) = make_parser().parse_args_and_config(argv)
    return run(args)
