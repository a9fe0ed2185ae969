"""The full training table (pool + synthetic perturbations) and its compact token-id export.

    from halluguard.pool.build import TableConfig, build_table, export_npz
    pairs, report = build_table(TableConfig(seed=0))
    export_npz(pairs, ".entail/train_pairs.npz")      # what training/entail.py reads (train_file)

Order of the steps, each counted in `report`:
  load every set -> licence filter (ship_ok rows only, unless include_analysis) -> dedup -> drop the
  documents of every set the project reports on -> per-set caps -> (window, sentence) pairs ->
  synthetic errors and faithful rewrites over the kept documents -> dedup again.

Export keys (np.savez_compressed; the layout `halluguard.train.entail.load_pairs` reads):
  input_ids (N, L) uint16   [CLS] premise [SEP] hypothesis [SEP], 0-padded; the premise is cut first
  labels (N,) int8          1 = not supported, 0 = supported
  token_labels (N, L) int8  1 = changed / unsupported hypothesis word-piece, 0 = fine, -1 = no label
                            (premise, padding, and label-1 rows without span annotation)
  group (N,) int64          rows of one document share it (held-out splits keep groups whole)
  source (N,) int16 + source_names, kind (N,) int16 + kind_names, synthetic (N,) bool
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import filters, load_pool
from .records import PoolPair
from .sources import SOURCES
from .windows import to_sentence_pairs

# README: Breaking NLI, MED and HELP are template-built; keep them a small share of the table.
DEFAULT_CAPS = {"breaking_nli": 2000, "med": 1500, "help": 1500}


@dataclass
class TableConfig:
    """How the training table is put together."""

    pool_dir: str | None = field(default=None, metadata={"help": "train_pool/ folder; empty = found under shared/data."})
    sources: list[str] | None = field(default=None, metadata={"help": "Pool sets to use (default: all)."})
    include_analysis: bool = field(default=False, metadata={"help": "Also use analysis-only sets. Never for a model that ships."})
    caps: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPS),
                                 metadata={"help": "At most this many pairs of a set (after the eval-document drop)."})
    drop_eval_docs: bool = field(default=True, metadata={"help": "Drop documents of FRANK/SummEdits/XSumFaith/FaithBench/own set."})
    window_sentences: int = field(default=3, metadata={"help": "Sentences per evidence window of summary-level sets."})
    max_premise_words: int = field(default=120, metadata={"help": "Longer premises are cut to their best window."})
    ambiguous: str = field(default="drop", metadata={"help": "Unfaithful multi-sentence summaries whose bad sentence "
                                                             "cannot be placed: 'drop' or 'all' (every unplaced sentence = 1)."})
    synthetic_per_doc: int = field(default=4, metadata={"help": "Synthetic pairs drawn per document (0 = none)."})
    synthetic_max: int = field(default=30000, metadata={"help": "At most this many synthetic pairs in all."})
    faithful_share: float = field(default=0.4, metadata={"help": "Share of synthetic pairs that are faithful rewrites (label 0)."})
    synthetic_sources: list[str] = field(default_factory=lambda: ["fib", "summacoz", "polytope", "fever", "wice"],
                                         metadata={"help": "Sets whose documents / evidence feed the perturbation generator."})
    seed: int = field(default=0, metadata={"help": "Seed of caps, sampling and perturbations."})


def _count(pairs: Sequence[PoolPair]) -> Counter:
    return Counter(p.source_set for p in pairs)


def build_table(cfg: TableConfig, pool: Sequence[PoolPair] | None = None,
                eval_index: filters.EvalDocIndex | None = None) -> tuple[list[PoolPair], dict[str, Any]]:
    """The training table and a report of counts per set after every step (see the module docstring)."""
    from .. import perturb

    if cfg.ambiguous not in ("drop", "all"):
        raise ValueError(f"ambiguous must be 'drop' or 'all', got {cfg.ambiguous!r}")
    pairs = list(pool) if pool is not None else load_pool(cfg.pool_dir, cfg.sources)
    rep: dict[str, Any] = {"config": asdict(cfg), "loaded": _count(pairs)}
    pairs = filters.ship_only(pairs, cfg.include_analysis)
    rep["after_licence"] = _count(pairs)
    pairs, rep["dedup"] = filters.dedup(pairs)
    rep["after_dedup"] = _count(pairs)
    if cfg.drop_eval_docs:
        pairs, dropped = filters.drop_eval_documents(pairs, eval_index)
        rep["eval_doc_drop"] = dropped
    rep["after_eval_drop"] = _count(pairs)
    pairs = filters.cap_sources(pairs, cfg.caps, cfg.seed)
    rep["after_caps"] = _count(pairs)
    docs = [p for p in pairs if p.source_set in cfg.synthetic_sources]
    pairs = to_sentence_pairs(pairs, cfg.window_sentences, cfg.ambiguous, cfg.max_premise_words)
    rep["sentence_pairs"] = _count(pairs)
    synth: list[PoolPair] = []
    if cfg.synthetic_per_doc > 0:
        synth = perturb.generate_pairs(docs, per_doc=cfg.synthetic_per_doc, max_pairs=cfg.synthetic_max,
                                       faithful_share=cfg.faithful_share, window=cfg.window_sentences, seed=cfg.seed)
    rep["synthetic_by_kind"] = Counter(f"{p.kind} (label {p.label})" for p in synth)
    pairs, rep["final_dedup"] = filters.dedup(pairs + synth)
    rep["final"] = _count(pairs)
    rep["final_labels"] = Counter(p.label for p in pairs)
    rep["final_labels_by_set"] = {n: Counter(p.label for p in pairs if p.source_set == n) for n in rep["final"]}
    return pairs, rep


# ----------------------------------------------------------------------------- export


def minilm_tokenizer():
    """The packaged MiniLM's fast WordPiece tokenizer (offline; the same one the model uses)."""
    from transformers import AutoTokenizer

    from ..embeddings import model_path

    return AutoTokenizer.from_pretrained(model_path())


def group_id(key: str) -> int:
    """The export's `group` of a document key (stable across runs and machines)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:15], 16)


def encode_pairs(pairs: Sequence[PoolPair], tokenizer=None, max_len: int = 128, batch: int = 2048) -> dict[str, np.ndarray]:
    """Token ids, labels and hypothesis token labels of `pairs` (keys in the module docstring)."""
    if max_len < 8:
        raise ValueError(f"max_len must be at least 8, got {max_len}")
    tok = tokenizer or minilm_tokenizer()
    if tok.vocab_size > 65535:
        raise ValueError(f"vocabulary of {tok.vocab_size} does not fit uint16 ids")
    n = len(pairs)
    ids = np.zeros((n, max_len), dtype=np.uint16)
    tl = np.full((n, max_len), -1, dtype=np.int8)
    for start in range(0, n, batch):
        chunk = pairs[start:start + batch]
        # verbose=False: long premises are cut below, the "longer than 512" warning is noise here
        prem = tok([p.premise for p in chunk], add_special_tokens=False, verbose=False)["input_ids"]
        hyp = tok([p.hypothesis for p in chunk], add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        for j, p in enumerate(chunk):
            row, labs = _assemble(prem[j], hyp["input_ids"][j], hyp["offset_mapping"][j], p, tok, max_len)
            ids[start + j, :len(row)] = row
            tl[start + j, :len(labs)] = labs
    names = sorted({p.source_set for p in pairs})
    kinds = sorted({p.kind for p in pairs})
    return {
        "input_ids": ids,
        "labels": np.array([p.label for p in pairs], dtype=np.int8),
        "token_labels": tl,
        "group": np.array([group_id(p.doc_key or p.premise) for p in pairs], dtype=np.int64),
        "source": np.array([names.index(p.source_set) for p in pairs], dtype=np.int16),
        "source_names": np.array(names),
        "kind": np.array([kinds.index(p.kind) for p in pairs], dtype=np.int16),
        "kind_names": np.array(kinds),
        "synthetic": np.array([p.synthetic for p in pairs], dtype=bool),
    }


def _assemble(prem: list[int], hyp: list[int], offsets, p: PoolPair, tok, max_len: int) -> tuple[list[int], list[int]]:
    """[CLS] premise [SEP] hypothesis [SEP] within max_len (premise cut first, but kept at >= 16 pieces
    when it has them), and the token labels aligned with it."""
    room = max_len - 3
    keep_p = min(len(prem), max(room - len(hyp), min(16, len(prem))))
    keep_h = min(len(hyp), room - keep_p)
    row = [tok.cls_token_id, *prem[:keep_p], tok.sep_token_id, *hyp[:keep_h], tok.sep_token_id]
    labs = [-1] * (keep_p + 2)
    if p.label == 0 or p.spans:
        # A supported sentence has no unsupported piece; an annotated one has exactly its spans.
        labs += [int(any(a < e and s < b for a, b in p.spans)) for s, e in offsets[:keep_h]]
    else:
        labs += [-1] * keep_h
    return row, labs + [-1]


def export_npz(pairs: Sequence[PoolPair], path: str | Path, tokenizer=None, max_len: int = 128) -> dict[str, Any]:
    """Write the compressed export; returns {"rows", "bytes", "mean_tokens", "truncated_share"}."""
    arrays = encode_pairs(pairs, tokenizer, max_len)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    lengths = (arrays["input_ids"] != 0).sum(1)
    return {"rows": len(pairs), "bytes": path.stat().st_size, "mean_tokens": float(lengths.mean()) if len(pairs) else 0.0,
            "truncated_share": float((lengths == max_len).mean()) if len(pairs) else 0.0}


def format_report(rep: dict[str, Any]) -> str:
    """A Markdown table of pairs per set after each step, then synthetic counts per kind."""
    steps = ["loaded", "after_licence", "after_dedup", "after_eval_drop", "after_caps", "sentence_pairs", "final"]
    names = sorted(set().union(*(rep.get(s, {}) for s in steps)))
    lines = ["| set | licence ok | " + " | ".join(steps) + " |", "|---|---|" + "---|" * len(steps)]
    for n in names:
        ok = SOURCES[n].ship_ok if n in SOURCES else True
        lines.append(f"| {n} | {'yes' if ok else 'analysis only'} | "
                     + " | ".join(str(rep.get(s, {}).get(n, 0)) for s in steps) + " |")
    lines.append("| **all** | | " + " | ".join(str(sum(rep.get(s, {}).values())) for s in steps) + " |")
    drop = rep.get("eval_doc_drop", {})
    if drop:
        lines += ["", "Eval-document drop, rows per eval set: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(drop["by_eval_set"].items()))]
    lines += ["", f"Dedup (first pass): {rep.get('dedup')}; final pass: {rep.get('final_dedup')}",
              f"Final labels: {dict(rep.get('final_labels', {}))}", "", "| set | label 0 | label 1 |", "|---|---|---|"]
    lines += [f"| {n} | {c.get(0, 0)} | {c.get(1, 0)} |" for n, c in sorted(rep.get("final_labels_by_set", {}).items())]
    lines += ["", "| synthetic kind | pairs |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(rep.get("synthetic_by_kind", {}).items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Build the table and write the export and a Markdown report.

        python -m halluguard.pool.build --out .entail/train_pairs.npz --report .entail/train_pairs.md
        python -m halluguard.pool.build --out x.npz --synthetic_per_doc 0 --seed 1
    """
    import argparse
    import dataclasses
    import json

    ap = argparse.ArgumentParser(prog="python -m halluguard.pool.build", description=main.__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="Where the .npz export goes.")
    ap.add_argument("--report", default=None, help="Markdown report of the counts (default: beside --out, .md).")
    ap.add_argument("--max_len", type=int, default=128, help="Word-pieces per (premise, hypothesis) row.")
    for f in dataclasses.fields(TableConfig):
        if f.type in ("int", "float", "bool", "str | None", "str"):
            kind = {"int": int, "float": float}.get(f.type, str)
            if f.type == "bool":
                ap.add_argument(f"--{f.name}", type=lambda v: v.lower() in ("1", "true", "yes"), default=f.default,
                                help=f.metadata.get("help"))
            else:
                ap.add_argument(f"--{f.name}", type=kind, default=f.default, help=f.metadata.get("help"))
    ap.add_argument("--caps", type=json.loads, default=dict(DEFAULT_CAPS), help='Per-set caps as JSON, e.g. \'{"med": 1000}\'.')
    ap.add_argument("--sources", type=lambda v: v.split(","), default=None, help="Comma-separated pool sets (default: all).")
    args = ap.parse_args(argv)
    cfg = TableConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TableConfig) if hasattr(args, f.name)})
    pairs, rep = build_table(cfg)
    info = export_npz(pairs, args.out, max_len=args.max_len)
    report = Path(args.report or Path(args.out).with_suffix(".md"))
    report.write_text(format_report(rep) + "\n\nExport: " + json.dumps(info) + "\n", encoding="utf-8")
    print(format_report(rep))
    print(json.dumps(info))
    return {"report": rep, "export": info}


if __name__ == "__main__":
    main()
