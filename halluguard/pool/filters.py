"""Filters every training table goes through: licence, dedup, eval-document drop, per-set caps."""

from __future__ import annotations

import hashlib
import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .records import PoolPair, doc_key, fold_words, pair_key


def ship_only(pairs: Iterable[PoolPair], include_analysis: bool = False) -> list[PoolPair]:
    """The rows a shipped model may learn from (licence "ok" in the pool README).

    `include_analysis=True` keeps the analysis-only rows too -- for measurement, never for a model
    that ships."""
    return [p for p in pairs if p.ship_ok or include_analysis]


def dedup(pairs: Iterable[PoolPair]) -> tuple[list[PoolPair], dict[str, int]]:
    """Keep the first pair of each normalised (premise, hypothesis); drop every copy of a pair whose
    copies disagree on the label (the counterfactual SNLI set re-labels some e-SNLI pairs).

    Returns (kept, {"duplicates": n, "conflicting": n}) -- counts of rows removed."""
    pairs = list(pairs)
    labels: dict[str, set[int]] = defaultdict(set)
    keys = [pair_key(p.premise, p.hypothesis) for p in pairs]
    for k, p in zip(keys, pairs):
        labels[k].add(p.label)
    seen: set[str] = set()
    kept, dup, conflict = [], 0, 0
    for k, p in zip(keys, pairs):
        if len(labels[k]) > 1:
            conflict += 1
        elif k in seen:
            dup += 1
        else:
            seen.add(k)
            kept.append(p)
    return kept, {"duplicates": dup, "conflicting": conflict}


def _gram_hashes(words: Sequence[str], n: int) -> set[int]:
    return {int.from_bytes(hashlib.blake2b(" ".join(words[i:i + n]).encode(), digest_size=8).digest(), "little")
            for i in range(max(0, len(words) - n + 1))}


@dataclass
class EvalDocIndex:
    """Documents of the evaluation sets, matched by key and by word n-gram containment.

    A pool document matches when its `doc_key` (first 300 folded characters) equals an eval document's,
    or when it shares at least `min_grams` word `n`-grams with one eval document and those make at least
    `min_share` of either document: a truncated or re-tokenised copy of the same article, whichever of
    the two holds the longer version.
    """

    n: int = 8
    min_share: float = 0.3
    min_grams: int = 5
    keys: dict[str, str] = field(default_factory=dict)  # doc_key -> eval set name
    grams: dict[int, int] = field(default_factory=dict)  # n-gram hash -> eval document id
    doc_set: list[str] = field(default_factory=list)  # eval document id -> eval set name
    doc_size: list[int] = field(default_factory=list)  # eval document id -> its number of distinct n-grams

    def add(self, set_name: str, documents: Iterable[str]) -> None:
        for d in documents:
            self.keys.setdefault(doc_key(d), set_name)
            did = len(self.doc_set)
            self.doc_set.append(set_name)
            hs = _gram_hashes(fold_words(d), self.n)
            self.doc_size.append(len(hs))
            for h in hs:
                self.grams.setdefault(h, did)

    def match(self, document: str) -> str | None:
        """The eval set holding this document, or None."""
        hit = self.keys.get(doc_key(document))
        if hit is not None:
            return hit
        hs = _gram_hashes(fold_words(document), self.n)
        if len(hs) < self.min_grams:
            return None
        per_doc = Counter(self.grams[h] for h in hs if h in self.grams)
        if not per_doc:
            return None
        for did, shared in per_doc.most_common(3):
            if shared >= self.min_grams and shared >= self.min_share * min(len(hs), max(self.doc_size[did], 1)):
                return self.doc_set[did]
        return None


DEFAULT_EVAL_SETS = ("frank:all", "summedits:all", "xsumfaith:all", "faithbench:all", "faithbench-csv:all",
                     "ragtruth:all", "aggrefact:all")
OWN_EVAL_SET = "eval_sets/halluguard_small.jsonl"


def eval_index(specs: Sequence[str] = DEFAULT_EVAL_SETS, own_set: str | None = OWN_EVAL_SET,
               require: Sequence[str] = ("frank", "summedits", "xsumfaith", "faithbench")) -> EvalDocIndex:
    """An EvalDocIndex of every split of the sets the project reports on, read with the project's own
    loaders (halluguard.datasets). Sets not present on this machine are skipped, except those named in
    `require` (a missing one raises: the drop must not silently do nothing)."""
    from pathlib import Path

    from ..datasets import DatasetWarning, load_path, load_set, locate_set, parse_set_name

    idx = EvalDocIndex()
    for spec in specs:
        name, _ = parse_set_name(spec)
        if locate_set(name) is None:
            if name in require:
                raise FileNotFoundError(f"eval set {name!r} not found; the eval-document drop needs it")
            continue
        with warnings.catch_warnings():  # span-location warnings of the loaders do not matter for documents
            warnings.simplefilter("ignore", DatasetWarning)
            idx.add(name, {e.source for e in load_set(spec)})
    if own_set:
        path = Path(own_set)
        if not path.is_absolute():
            path = Path(__file__).resolve().parents[2] / own_set
        if path.exists():
            idx.add(path.stem, {e.source for e in load_path(str(path))})
    return idx


def drop_eval_documents(pairs: Iterable[PoolPair], index: EvalDocIndex | None = None,
                        min_words: int = 40) -> tuple[list[PoolPair], dict[str, Counter]]:
    """Remove pairs whose premise document appears in an evaluation set.

    Only premises of at least `min_words` words are checked (a one-sentence NLI premise is no
    article). Returns (kept, {"by_source": Counter(pool set -> rows dropped),
    "by_eval_set": Counter(eval set -> rows dropped)})."""
    index = index if index is not None else eval_index()
    verdict: dict[str, str | None] = {}
    kept: list[PoolPair] = []
    by_source: Counter = Counter()
    by_eval: Counter = Counter()
    for p in pairs:
        doc = p.meta.get("document", p.premise)
        key = p.doc_key or doc_key(doc)
        if key not in verdict:
            verdict[key] = index.match(doc) if len(doc.split()) >= min_words else None
        hit = verdict[key]
        if hit is None:
            kept.append(p)
        else:
            by_source[p.source_set] += 1
            by_eval[hit] += 1
    return kept, {"by_source": by_source, "by_eval_set": by_eval}


def cap_sources(pairs: Sequence[PoolPair], caps: dict[str, int], seed: int = 0) -> list[PoolPair]:
    """At most caps[source] pairs of each named source, sampled with a seeded RNG (order kept)."""
    by_src: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        by_src[p.source_set].append(i)
    keep: set[int] = set()
    rng = random.Random(seed)
    for src, idx in by_src.items():
        cap = caps.get(src)
        if cap is not None and len(idx) > cap:
            idx = rng.sample(idx, cap)
        keep.update(idx)
    return [p for i, p in enumerate(pairs) if i in keep]
