"""Sentence-level pairs from document-level ones, SummaC style: each summary sentence against the
best window of 3 consecutive document sentences, chosen by a cheap lexical retriever (idf-weighted
overlap of content-word stems). The model is applied to exactly such (window, sentence) pairs.

Sentence labels of a document-level pair:
- faithful summary -> every sentence 0;
- spans annotated -> a sentence is 1 when a span overlaps it, else 0 (its spans move with it);
- unfaithful without spans -> a sentence copied from the document (its folded text, or every word
  trigram of it, occurs there) or found in a faithful summary of the same document is 0; if exactly
  one sentence is left it is 1, otherwise the label cannot be placed and those sentences are dropped
  (`ambiguous="drop"`) or all marked 1 (`ambiguous="all"`);
- unfaithful extractive summaries (FIB's CNN/DM distractors) are left out: their error is lost context.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from ..text import ABBREVIATIONS, is_content, split_sentences, stem, tokenize
from .records import PoolPair, fold, fold_words

_LOWER_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence offsets; lower-cased corpora (CNN/DM as FIB ships it) split on any end mark + space."""
    letters = [c for c in text[:2000] if c.isalpha()]
    if letters and sum(c.isupper() for c in letters) < 0.01 * len(letters):
        out, start = [], 0
        for m in _LOWER_SPLIT.finditer(text):
            last = text[start:m.start()].split()[-1:] or [""]
            if last[0].rstrip(".").lower() in ABBREVIATIONS:  # "mr. holt"
                continue
            out.append((start, m.start() + len(m.group(0).rstrip())))
            start = m.end()
        out.append((start, len(text)))
        return [(a, b) for a, b in out if text[a:b].strip()]
    return [(s.start, s.end) for s in split_sentences(text)]


def _stems(text: str) -> list[str]:
    return [stem(t.text) for t in tokenize(text) if is_content(t.text)]


class WindowRetriever:
    """Best k-sentence window of one document for a claim sentence (idf-weighted stem overlap)."""

    def __init__(self, document: str, k: int = 3, max_words: int = 120):
        self.document = document
        spans = sentences(document)
        self.sents = [document[a:b] for a, b in spans] or [document]
        self.k = max(1, k)
        self.max_words = max_words
        self.sent_stems = [set(_stems(s)) for s in self.sents]
        df = Counter(w for ss in self.sent_stems for w in ss)
        n = len(self.sents)
        self.idf = {w: math.log(1 + n / c) for w, c in df.items()}
        self.doc_grams = _trigrams(fold_words(document))

    def best(self, claim: str) -> str:
        claim_stems = set(_stems(claim))
        n = len(self.sents)
        if n <= self.k:
            return self._clip(" ".join(self.sents))
        per_sent = [sum(self.idf.get(w, 0.0) for w in claim_stems & ss) for ss in self.sent_stems]
        best_i, best_score = 0, -1.0
        for i in range(n - self.k + 1):
            # Words covered by the window (not the sum of sentences): a repeated word counts once.
            covered = set().union(*self.sent_stems[i:i + self.k]) & claim_stems
            score = sum(self.idf.get(w, 0.0) for w in covered) + 1e-3 * per_sent[i]
            if score > best_score:
                best_i, best_score = i, score
        return self._clip(" ".join(self.sents[best_i:best_i + self.k]))

    def _clip(self, text: str) -> str:
        words = text.split()
        return text if len(words) <= self.max_words else " ".join(words[:self.max_words])


def _summary_sentences(p: PoolPair) -> list[tuple[int, int]]:
    """Offsets of the summary's sentences in p.hypothesis (the loader's own split when it kept one)."""
    given = p.meta.get("summary_sents")
    if given:
        out, pos = [], 0
        for s in given:
            i = p.hypothesis.find(s, pos)
            if i < 0:
                break
            out.append((i, i + len(s)))
            pos = i + len(s)
        else:
            return out
    return sentences(p.hypothesis)


def _trigrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def _copied(sentence: str, doc_folded: str, doc_grams: set[tuple[str, ...]]) -> bool:
    """Copied from the document: its folded text occurs there, or every word trigram of it does (a copy
    split or quoted differently, or stitched from two places)."""
    f = fold(sentence)
    if len(f) >= 10 and f in doc_folded:
        return True
    words = fold_words(sentence)
    return len(words) >= 4 and _trigrams(words) <= doc_grams


def _sentence_labels(p: PoolPair, sents: list[tuple[int, int]], doc_folded: str, doc_grams: set, faithful: set[str],
                     ambiguous: str) -> list[int | None]:
    if p.label == 0:
        return [0] * len(sents)
    if p.spans:
        return [int(any(a < e and s < b for a, b in p.spans)) for s, e in sents]
    if len(sents) == 1:
        return [1]
    # A copied sentence is supported by its own window; so is one of a faithful summary of the document.
    supported = [fold(p.hypothesis[s:e]) in faithful or _copied(p.hypothesis[s:e], doc_folded, doc_grams)
                 for s, e in sents]
    left = supported.count(False)
    if left == 1 or (left > 1 and ambiguous == "all"):
        return [0 if ok else 1 for ok in supported]
    return [0 if ok else None for ok in supported]


# FIB's CNN/DM distractors come from extractive systems: their sentences are copies whose "error" is the
# context they lost, which no (window, sentence) label can carry. Their faithful summaries are kept.
EXTRACTIVE_DISTRACTORS = ("cnn_dm/fib/", "cnn_dm/factually_consistent-model_generated/")


def to_sentence_pairs(pairs: Sequence[PoolPair], k: int = 3, ambiguous: str = "drop", max_premise_words: int = 120,
                      skip_unfaithful_kinds: Sequence[str] = EXTRACTIVE_DISTRACTORS) -> list[PoolPair]:
    """Document-level pairs -> (best window, sentence) pairs; sentence-level pairs with a premise longer
    than `max_premise_words` get the best window of their premise; other pairs pass through unchanged.
    Unfaithful summaries whose kind starts with one of `skip_unfaithful_kinds` are left out."""
    if ambiguous not in ("drop", "all"):
        raise ValueError(f"ambiguous must be 'drop' or 'all', got {ambiguous!r}")
    faithful: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        if p.level == "summary" and p.label == 0:
            for s, e in _summary_sentences(p):
                faithful[p.doc_key].add(fold(p.hypothesis[s:e]))
    retrievers: dict[str, WindowRetriever] = {}
    out: list[PoolPair] = []
    for p in pairs:
        if p.level == "pair":
            if len(p.premise.split()) > max_premise_words:
                r = WindowRetriever(p.premise, k, max_premise_words)
                p = p.with_(premise=r.best(p.hypothesis), meta={**p.meta, "windowed": True})
            out.append(p)
            continue
        if p.label == 1 and p.kind.startswith(tuple(skip_unfaithful_kinds)):
            continue
        key = p.doc_key
        if key not in retrievers:
            if len(retrievers) > 64:  # documents come grouped; keep memory flat
                retrievers.clear()
            retrievers[key] = WindowRetriever(p.premise, k, max_premise_words)
        r = retrievers[key]
        sents = _summary_sentences(p)
        labels = _sentence_labels(p, sents, fold(p.premise), r.doc_grams, faithful[key], ambiguous)
        for (s, e), lab in zip(sents, labels):
            if lab is None:
                continue
            sent = p.hypothesis[s:e]
            spans = tuple((max(a, s) - s, min(b, e) - s) for a, b in p.spans if a < e and s < b)
            out.append(p.with_(premise=r.best(sent), hypothesis=sent, label=lab, spans=spans, level="pair",
                               meta={"from_summary": True}))
    return out
