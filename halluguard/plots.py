"""Every figure halluguard draws, with matplotlib (Agg backend, imported on first use so that
`halluguard --help` and the app's start stay fast).

    from halluguard import plots
    fig = plots.verdict_figure(json.load(open("runs/verdict/verdict.json")))
    plots.save_figure(fig, "runs/verdict/verdict")      # -> verdict.png, verdict.svg
    svg = plots.figure_svg(plots.score_histogram(scores, gold, threshold=0.465))   # inline <svg> for HTML

Figures: training curves (`line_panels`), the batch report's score histogram (`score_histogram`), the
SFT-vs-DPO verdict (`verdict_figure`, `paired_scores_figure`) and one figure per ablation factor
(`ablation_figure`). Each returns a matplotlib Figure; `save_figure` writes PNG (slides) and SVG
(papers, scales cleanly).
"""

from __future__ import annotations

import functools
import io
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Colour-blind-safe (Okabe-Ito): SFT blue, DPO orange; faithful green, hallucinated vermillion.
SFT_COLOR, DPO_COLOR = "#0072B2", "#E69F00"
FAITHFUL_COLOR, HALLUCINATED_COLOR, UNLABELLED_COLOR = "#009E73", "#D55E00", "#6366F1"
SERIES_COLORS = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000"]

# Fixed SVG ids and no timestamps: the same figure gives the same bytes, so committed figures
# only change in git when the numbers do.
_RC = {"svg.hashsalt": "halluguard", "svg.fonttype": "none", "font.size": 10, "axes.spines.top": False,
       "axes.spines.right": False, "axes.titlesize": 11, "figure.dpi": 100}
_METADATA = {"svg": {"Date": None, "Creator": None}, "png": {"Software": None}}

METRIC_LABELS = {
    "hallucination_rate": "hallucination rate (%)", "eval_rewards/accuracies": "reward accuracy (held-out)",
    "eval_rewards/margins": "reward margin (held-out)", "eval_loss": "DPO loss (held-out)",
    "preference_accuracy": "preference accuracy", "mean_margin": "mean log-prob margin", "rouge1": "ROUGE-1",
    "similarity": "similarity to reference",
}
FACTOR_LABELS = {"beta": "DPO beta", "learning_rate": "learning rate", "quantization": "base quantization",
                 "train_size": "training pairs"}


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (servers, CI), unless MPLBACKEND names another."""
    import matplotlib

    # A Jupyter kernel sets MPLBACKEND to its inline backend; forcing Agg there would hide the figures.
    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_LOCK = threading.RLock()  # pyplot and rcParams are global: the app draws from several request threads


def _styled(fn):
    """Draw (or save) under our rc settings without changing the caller's global matplotlib style."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # Only our keys are saved and restored: rc_context() would also restore 'interactive', undoing
        # the Jupyter inline backend that activates on the first figure (which then is never shown).
        with _LOCK:
            rc = pyplot().rcParams
            saved = {k: rc[k] for k in _RC}
            rc.update(_RC)
            try:
                return fn(*args, **kwargs)
            finally:
                rc.update(saved)

    return wrapper


@_styled
def save_figure(fig, stem: str | os.PathLike, formats: Sequence[str] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Write `fig` as stem.png and stem.svg (or `formats`), close it, and return the paths."""
    plt = pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(stem.name + "." + fmt)
        fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_METADATA.get(fmt))
        paths.append(path)
    plt.close(fig)
    return paths


@_styled
def figure_svg(fig, close: bool = True) -> str:
    """The figure as an inline `<svg>` element (no XML prolog), for self-contained HTML."""
    plt = pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_METADATA["svg"])
    if close:
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


# ---------------------------------------------------------------------------------------------------
# Line panels: training curves and anything else "y against x"
# ---------------------------------------------------------------------------------------------------
Series = Mapping[str, Sequence[tuple[float, float]]]


@_styled
def line_panels(panels: Sequence[tuple[str, Series]], xlabel: str = "step", ncols: int = 4):
    """Small multiples, one panel per (title, {label: [(x, y), ...]}), wrapped after `ncols` panels."""
    from matplotlib.ticker import MaxNLocator

    if not panels:
        raise ValueError("line_panels needs at least one (title, series) panel")
    plt = pyplot()
    n = len(panels)
    cols = min(n, ncols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (title, series) in zip(axes.flat, panels):
        for j, (label, pts) in enumerate(series.items()):
            pts = sorted(pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1.5, label=label,
                    color=SERIES_COLORS[j % len(SERIES_COLORS)])
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if all(float(p[0]).is_integer() for pts in series.values() for p in pts):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps: no "2.5"
        if len(series) > 1:
            ax.legend(fontsize=8, frameon=False)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# The batch report's score histogram
# ---------------------------------------------------------------------------------------------------
@_styled
def score_histogram(scores: Sequence[float], gold: Sequence[int | None] | None = None, threshold: float | None = None,
                    bins: int = 10):
    """Scores in equal-width bins over 0-1; stacked by gold label (1 = hallucinated) when any is given,
    with the decision threshold as a dashed line."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    edges = [i / bins for i in range(bins + 1)]
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    gold = list(gold) if gold is not None else [None] * len(scores)
    if len(gold) != len(scores):
        raise ValueError(f"got {len(scores)} scores but {len(gold)} gold labels")
    groups = [("gold: faithful", 0, FAITHFUL_COLOR), ("gold: hallucinated", 1, HALLUCINATED_COLOR),
              ("no gold label", None, UNLABELLED_COLOR)]
    data, labels, colors = [], [], []
    for name, value, color in groups:
        vals = [min(max(float(s), 0.0), 1.0) for s, g in zip(scores, gold) if g == value]
        if vals:
            data.append(vals)
            labels.append(name)
            colors.append(color)
    if data:
        ax.hist(data, bins=edges, stacked=True, color=colors, label=labels, edgecolor="white", linewidth=0.8)
    if threshold is not None:
        ax.axvline(threshold, color="#374151", ls="--", lw=1)
        ax.annotate(f"threshold {threshold:g}", (threshold, 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -10), textcoords="offset points", fontsize=8, color="#374151")
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(hallucination)")
    ax.set_ylabel("rows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no half-row ticks
    if len(labels) > 1 or (labels and labels[0] != "no gold label"):
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# SFT vs DPO
# ---------------------------------------------------------------------------------------------------
@_styled
def verdict_figure(report: Mapping[str, Any]):
    """Left: each model's hallucination rate with its 95% CI. Right: d = rate(SFT) - rate(DPO) with its
    paired-bootstrap CI against the verdict rule's bands (tie within +/-1, 'supported' needs d > 2 and
    significance). The title is the verdict, the caption its reason."""
    h = _check_verdict(report)
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.5]},
                                      layout="constrained")
    _rates_panel(left, h, report["n_documents"])
    _diff_panel(right, h)
    fig.suptitle(f"Does DPO reduce hallucination?  Verdict: {report['verdict']}", fontsize=12, fontweight="bold")
    fig.supxlabel(f"Why: {report.get('reason', '')}", fontsize=9, color="#374151")
    return fig


def _rates_panel(ax, h: Mapping[str, Any], n: int) -> None:
    rates = [h["sft"], h["dpo"]]
    cis = h.get("rate_ci") or {}
    have_ci = "sft" in cis and "dpo" in cis
    # max(0, ...): matplotlib refuses a negative error bar, and an interval from elsewhere may sit a
    # rounding error inside its own point
    err = ([[max(0.0, r - cis[m][0]) for r, m in zip(rates, ("sft", "dpo"))],
            [max(0.0, cis[m][1] - r) for r, m in zip(rates, ("sft", "dpo"))]] if have_ci else None)
    bars = ax.bar(["SFT", "DPO"], rates, yerr=err, capsize=6, color=[SFT_COLOR, DPO_COLOR], width=0.55,
                  error_kw={"lw": 1.2, "ecolor": "#374151"})
    for bar, r in zip(bars, rates):
        ax.annotate(f"{r:.1f}%", (bar.get_x(), r), xytext=(2, 2), textcoords="offset points", fontsize=9)
    top = max(rates + ([cis["sft"][1], cis["dpo"][1]] if have_ci else []))
    ax.set_ylim(0, min(100.0, top * 1.15 + 1))
    ax.set_ylabel("hallucination rate (%)")
    ax.set_title(f"per model, n = {n} documents" + (", 95% Wilson CI" if have_ci else ""), fontsize=10)


def _check_verdict(report: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(report, Mapping) or "verdict" not in report or "hallucination_rate" not in report:
        raise ValueError("not a verdict report: expected the keys 'verdict' and 'hallucination_rate' "
                         "(the verdict.json written by training/verdict.py)")
    return report["hallucination_rate"]


def _diff_panel(ax, h: Mapping[str, Any]) -> None:
    """d with its CI over the rule's bands, each band named where it is."""
    d, (lo, hi) = h["diff_points"], h["ci_points"]
    span = max(5.0, abs(lo), abs(hi), abs(d)) * 1.2
    ax.axvspan(-span, -1, color=SFT_COLOR, alpha=0.10, lw=0)
    ax.axvspan(-1, 1, color="#9ca3af", alpha=0.30, lw=0)
    ax.axvspan(2, span, color=DPO_COLOR, alpha=0.15, lw=0)
    ax.axvline(0, ymax=0.75, color="#374151", lw=0.8)  # stops below the band names
    for x, text in ((-span * 0.55, "not supported\n(SFT better by > 1)"), (0, "tie\n|d| <= 1"),
                    (2 + (span - 2) * 0.5, "supported if\nd > 2 and p < alpha")):
        ax.text(x, 0.93, text, ha="center", va="top", fontsize=8, color="#4b5563", transform=ax.get_xaxis_transform())
    ax.errorbar([d], [0], xerr=[[max(0.0, d - lo)], [max(0.0, hi - d)]], fmt="o", color="#111827", capsize=6, ms=7, lw=1.5)
    p = h.get("mcnemar", {}).get("p_value")
    ax.annotate(f"d = {d:+.1f} points" + (f"\nMcNemar p = {p:.3g}" if p is not None else ""), (d, 0),
                xytext=(0, -12), textcoords="offset points", ha="center", va="top", fontsize=9,
                bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
    ax.set_xlim(-span, span)
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_xlabel("d = rate(SFT) - rate(DPO), points (> 0: DPO hallucinates less)")
    ax.set_title("difference, 95% paired-bootstrap CI", fontsize=10)


@_styled
def paired_scores_figure(sft_scores: Sequence[float], dpo_scores: Sequence[float], threshold: float,
                         labels: Sequence[str] | None = None):
    """One line per document from its SFT score to its DPO score: the pairs McNemar's test counts are the
    lines that cross the threshold (red: DPO newly flagged, green: DPO fixed)."""
    sft_scores, dpo_scores = [float(x) for x in sft_scores], [float(x) for x in dpo_scores]  # lists, Series, arrays
    if len(sft_scores) != len(dpo_scores) or not sft_scores:
        raise ValueError(f"need paired, non-empty scores: got {len(sft_scores)} SFT and {len(dpo_scores)} DPO")
    labels = list(labels) if labels is not None else [str(i) for i in range(len(sft_scores))]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for s, d, name in zip(sft_scores, dpo_scores, labels):
        fixed, broke = s >= threshold > d, d >= threshold > s
        color = FAITHFUL_COLOR if fixed else HALLUCINATED_COLOR if broke else "#9ca3af"
        ax.plot([0, 1], [s, d], marker="o", color=color, lw=2 if (fixed or broke) else 1, alpha=0.9)
        if fixed or broke:
            ax.annotate(name, (1, d), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8, color=color)
    ax.axhline(threshold, color="#374151", ls="--", lw=1)
    ax.annotate(f"threshold {threshold:g}", (0.5, threshold), xytext=(0, 3), textcoords="offset points",
                ha="center", fontsize=8, color="#374151", zorder=5,
                bbox={"fc": "white", "ec": "none", "alpha": 0.85, "pad": 1})
    ax.set_xticks([0, 1], ["SFT", "DPO"])
    ax.set_xlim(-0.15, 1.35)
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(hallucination)")
    n_fixed = sum(s >= threshold > d for s, d in zip(sft_scores, dpo_scores))
    n_broke = sum(d >= threshold > s for s, d in zip(sft_scores, dpo_scores))
    ax.set_title(f"per document: {n_fixed} fixed by DPO (green), {n_broke} newly flagged (red)", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------
# Ablations
# ---------------------------------------------------------------------------------------------------
_BITS = {"nf4": 4, "int8": 8, "none": 16}


@_styled
def ablation_figure(rows: Sequence[Mapping[str, Any]], factor: str, metrics: Sequence[str]):
    """Each metric (one panel) against one factor's values, the baseline recipe's point included and
    ringed. Learning rate is on a log axis; quantization is categorical (4-bit, 8-bit, 16-bit).
    The points are the runs that differ from the baseline in this factor only, so a grid ablation gives
    the same figures as one factor at a time (its other combinations are in results.md). Returns None
    when fewer than two values of the factor have a measured metric."""
    from matplotlib.ticker import NullFormatter

    base = next((r for r in rows if r.get("factor") == "baseline"), None)
    if base is None:
        pts_rows = [r for r in rows if r.get("factor") == factor]
    else:
        others = [f for f in FACTOR_LABELS if f != factor]
        pts_rows = [r for r in rows if all(r.get(f) == base.get(f) for f in others)]
    panels = []
    for m in metrics:
        pts = [(_x(r.get(factor), factor), float(r[m]), r is base) for r in pts_rows
               if r.get(factor) is not None and _finite(r.get(m))]
        if len({p[0] for p in pts}) >= 2:
            panels.append((m, sorted(pts, key=lambda p: p[0])))
    if not panels:
        return None
    plt = pyplot()
    cols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 2.9 * nrows), squeeze=False)
    for ax, (m, pts) in zip(axes.flat, panels):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, marker="o", ms=5, lw=1.5, color=SERIES_COLORS[0])
        for x, y, is_base in pts:
            if is_base:
                ax.plot([x], [y], "o", ms=11, mfc="none", mec=HALLUCINATED_COLOR, mew=1.5)
        ax.set_title(METRIC_LABELS.get(m, m))
        ax.set_xlabel(FACTOR_LABELS.get(factor, factor))
        ax.grid(alpha=0.3)
        if factor == "learning_rate":
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ticks = sorted(set(xs))  # a few tried values: label exactly those
        ax.set_xticks(ticks, [f"{int(t)}-bit" if factor == "quantization" else f"{t:g}" for t in ticks])
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"Ablation: {FACTOR_LABELS.get(factor, factor)} (ringed: the base recipe)", fontsize=11)
    fig.tight_layout()
    return fig


def _x(value: Any, factor: str) -> float:
    if factor == "quantization":
        if value not in _BITS:
            raise ValueError(f"unknown quantization {value!r}; expected one of {list(_BITS)}")
        return float(_BITS[value])
    return float(value)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
