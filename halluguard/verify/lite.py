"""`lite`: the offline CPU verifier -- sentence alignment with MiniLM plus consistency checks.

    from halluguard.verify import get_verifier
    v = get_verifier("lite")                       # calibrated threshold from resources/
    report = v.verify(source, summary)
    report.score, report.label                     # P(hallucinated), "hallucinated"/"faithful"
    for s in report.sentences: s.verdict, s.score, s.evidence[0].text, s.spans
    v.score(sources, summaries)                    # batched: one embedding call for all pairs

How it decides, per summary sentence:
1. Alignment. Source sentences (long ones cut into windows, so a 50,000-word source is fine) are
   ranked by IDF-weighted overlap of stemmed content words; the top candidates and the summary
   sentence are embedded with all-MiniLM-L6-v2 and the most similar candidates become the evidence.
   Only candidates are embedded, which keeps the cost per pair bounded whatever the source length.
2. Checks, each flagging a span of the summary: numbers (values normalized: "1.5 million" =
   "1,500,000", "three" = 3, rounding allowed), dates (years, months, weekdays), names (capitalised
   words and acronyms the source never uses), negation (a negation cue present on one side only,
   versus the evidence, or a word whose opposite the evidence uses: "rose" / "fell"), and content
   words the source never mentions (stemmed, fuzzy for inflections), merged into phrases.
   Claim checks (`halluguard.verify.claims`) compare what the sentence says with its evidence: a
   negation flipped against evidence with the same words ("did not postpone" / "voted to postpone"),
   swapped roles ("Reed proposed ..., Lopez opposed" / the reverse) or offices ("Mayor Tom Lopez" where
   the source's mayor is Reed), a name of the source put where the evidence names someone else, a
   cause the source does not state ("rose 8 percent because investors welcomed ..."), a wider scope
   ("all residents" / "some residents") and a hedge dropped ("will reopen" / "could reopen").
3. A logistic model over a handful of sentence features (alignment gap, novel-content ratios,
   mismatch counts) gives the sentence score; the summary score is the largest sentence score.
   Weights and the threshold come from `halluguard/resources/lite_calibration.json`, fitted by
   `benchmarks/fit_lite.py` on dev splits only (the file says which and when).

Sentences with no content word ("Here is a summary:") are `unknown` and do not count. A sentence that would
be flagged only because it is worded differently (the embedding calls it a paraphrase of its evidence, its
words are not the evidence's, and no check fired) is `unknown` ("reworded: not checked word by word"), with
no red span: the calibrated abstention band (calibration key "reworded"). Text that is not English is
`unknown` as a whole: every check here is English.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from halluguard import text as T
from halluguard.types import Evidence, Report, SentenceVerdict, Span, label_for
from halluguard.verify import claims as C
from halluguard.verify.base import Verifier, validate_batch

# Order matters: it is the order of the weights in the calibration file.
FEATURES = (
    "sim_gap",  # 1 - cosine similarity to the best evidence unit
    "novel_src",  # share of content words the source never mentions (fuzzy match counts half)
    "novel_ev",  # share of content words absent from the evidence units
    "split_pairs",  # share of adjacent content-word pairs never together in one source window
    "num_mismatch",  # numbers with no matching value in the source (capped at 3)
    "date_mismatch",  # years / months / weekdays absent from the source
    "name_mismatch",  # capitalised names and acronyms absent from the source
    "neg_mismatch",  # negation on one side only (summary sentence vs evidence)
    "log_len",  # log(1 + content words): long sentences have more room to go wrong
    "log_n_novel",  # log(1 + content words the source never uses): counts, not shares, catch one bad word
    "log_n_notev",  # log(1 + content words found in the source but not near the evidence)
    "opposite",  # a word whose opposite the best evidence uses ("rose" vs "fell", "for" vs "against")
    "polarity_flip",  # negated on one side only, against evidence with the same words (claims.polarity_flip)
    "role_swap",  # a word whose actor is the other name of the evidence (claims.role_swaps)
    "cause",  # "because ..." / "due to ..." with a cause the source does not state there (claims.unsupported_cause)
)

_NOVEL_EV = FEATURES.index("novel_ev")

REWORDED_REASON = "reworded: not checked word by word"

# What the default verifier can and cannot see, in one line: the README, the app and `verify --help` show it.
SCOPE = (
    "The default `lite` verifier checks words, not meaning: numbers, dates, names, negation flips, swapped roles, "
    "names out of place, invented causes, widened scope, dropped hedges and content the source never mentions. "
    "A reworded sentence comes back `unknown`, and so does text that is not English; for meaning use a model "
    "backend (`entail`, `nli` with HHEM / MiniCheck, `span` with LettuceDetect, `judge`)."
)

SPAN_PRIORITY = {"number": 5, "date": 5, "name": 4, "role": 4, "entity": 4, "negation": 3, "scope": 3, "certainty": 2,
                 "cause": 2, "unsupported": 1, "sentence": 0}

DEFAULT_CALIBRATION: dict[str, Any] = {
    # Hand-set starting point, used only when the fitted file is missing.
    "features": list(FEATURES),
    "weights": [4.0, 4.0, 1.0, 1.0, 4.5, 4.0, 3.5, 3.5, 0.0, 0.5, 0.0, 3.5, 3.5, 3.5, 2.0],
    "bias": -3.5,
    "threshold": 0.5,
    "top_k": 2,
    "span_min_novelty": 0.75,
    "sentence_span_min_novel": 1.1,
    # A sentence whose number / date / name check fires scores at least this much: the check's
    # precision measured on dev data (see benchmarks/fit_lite.py). Empty = the model alone decides.
    "check_floors": {},
    # The abstention band for paraphrases (see LiteVerifier.is_reworded); None = off.
    "reworded": None,
    "fitted_on": "hand-set defaults (no fit)",
}


def default_calibration_path() -> Path:
    return Path(str(resources.files("halluguard") / "resources" / "lite_calibration.json"))


def load_calibration(calibration: str | Path | dict | None = None) -> dict[str, Any]:
    """The calibration dict: given as a dict, read from a path, or the packaged file (or defaults)."""
    if isinstance(calibration, dict):
        cal = dict(calibration)
    else:
        path = Path(calibration) if calibration is not None else default_calibration_path()
        if not path.exists():
            if calibration is not None:
                raise FileNotFoundError(f"lite calibration file not found: {path}")
            return dict(DEFAULT_CALIBRATION)
        try:
            cal = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"lite calibration file {path} is not valid JSON: {e}") from e
    merged = {**DEFAULT_CALIBRATION, **cal}
    if list(merged["features"]) != list(FEATURES) or len(merged["weights"]) != len(FEATURES):
        raise ValueError(
            f"lite calibration has features {merged['features']} but this version computes {list(FEATURES)}; "
            "refit it with benchmarks/fit_lite.py"
        )
    return merged


# ----------------------------------------------------------------------------------------------
# Source index: everything about the source computed once, however many summaries share it
# ----------------------------------------------------------------------------------------------


@dataclass
class _SourceIndex:
    text: str
    units: list[T.Segment]
    unit_stems: list[set[str]]
    postings: dict[str, np.ndarray]  # stem -> unit ids containing it
    idf: dict[str, float]
    stems: set[str]
    words: set[str]  # normalized surface words
    prefixes: set[str]  # 5-letter prefixes of longer words, for fuzzy matches
    numbers: list[T.NumberMention]
    number_values: set[float]
    months: set[int]
    weekdays: set[int]
    acronyms: set[str]  # initials of capitalised word runs ("World Health Organization" -> "who")
    pair_windows: dict[tuple[str, str], bool] = field(default_factory=dict)  # lazy co-occurrence memo
    unit_of_stem_sets: list[set[str]] = field(default_factory=list)

    @cached_property
    def unit_texts(self) -> list[str]:
        """The units' texts, built once per source (the cause check reads the units around its evidence)."""
        return [u.text for u in self.units]

    @cached_property
    def offices(self) -> list[tuple[frozenset[str], frozenset[str]]]:
        """Names the source writes with an office ("Mayor Ana Reed"), for the office-swap check."""
        return C.name_offices(self.text)


def _content_tokens(text: str) -> list[T.Token]:
    return [t for t in T.tokenize(text) if T.is_content(t.text)]


def _index_source(source: str, max_unit_words: int) -> _SourceIndex:
    units = T.split_units(source, max_words=max_unit_words) or [T.Segment(0, len(source), source)]
    unit_stems: list[set[str]] = []
    words: set[str] = set()
    post: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        st = set()
        for tok in T.tokenize(u.text):
            w = T.normalize_word(tok.text)
            words.add(w)
            for part in w.split("-") if "-" in w else (w,):
                words.add(part)
            if T.is_content(tok.text):
                s = T.stem(tok.text)
                st.add(s)
                if "-" in w:
                    st.update(T.stem(p) for p in w.split("-") if p)
        unit_stems.append(st)
        for s in st:
            post.setdefault(s, []).append(i)
    n = len(units)
    idf = {s: math.log((n + 1) / (len(p) + 0.5)) + 1.0 for s, p in post.items()}
    stems = set(post)
    prefixes = {w[:5] for w in words | stems if len(w) >= 6}
    numbers = T.extract_numbers(source)
    dates = T.extract_dates(source)
    acronyms = set()
    for m in re.finditer(r"(?:\b[A-Z][\w'-]*(?:\s+(?:of|for|and|the|de|du)\b)*\s*){2,}", source):
        caps = [w for w in m.group(0).split() if w[:1].isupper()]
        if len(caps) >= 2:
            acronyms.add("".join(w[0] for w in caps).lower())
    return _SourceIndex(
        text=source, units=units, unit_stems=unit_stems,
        postings={s: np.asarray(p, dtype=np.int64) for s, p in post.items()}, idf=idf, stems=stems,
        words=words, prefixes=prefixes, numbers=numbers, number_values={x.value for x in numbers},
        months={d.value for d in dates if d.kind == "month"},
        weekdays={d.value for d in dates if d.kind == "weekday"}, acronyms=acronyms,
    )


# Words a summary may use for a name the source spells differently (demonyms, common short forms).
# Each group is symmetric: any member in the source supports any other member in the summary.
_ALIAS_GROUPS = [
    "britain british briton britons uk england english scotland scottish scot scots wales welsh",
    "us usa america american americans", "france french", "germany german germans",
    "spain spanish", "italy italian italians", "china chinese", "japan japanese", "russia russian russians",
    "india indian indians", "ireland irish", "netherlands dutch holland", "australia australian australians",
    "canada canadian canadians", "mexico mexican mexicans", "brazil brazilian", "israel israeli israelis",
    "iran iranian", "iraq iraqi", "syria syrian", "egypt egyptian", "turkey turkish", "greece greek",
    "poland polish", "sweden swedish", "norway norwegian", "denmark danish", "finland finnish",
    "switzerland swiss", "belgium belgian", "portugal portuguese", "ukraine ukrainian", "pakistan pakistani",
    "afghanistan afghan", "nigeria nigerian", "kenya kenyan", "korea korean", "vietnam vietnamese",
    "europe european eu", "africa african", "asia asian", "arab arabic", "saudi saudis",
    "ceo chief executive", "un united nations", "pm prime minister", "mp mps parliament",
    "tv television", "gop republican republicans",
]
_ALIASES: dict[str, frozenset[str]] = {}
for _g in _ALIAS_GROUPS:
    _members = frozenset(_g.split())
    for _m in _members:
        _ALIASES[_m] = _ALIASES.get(_m, frozenset()) | _members


def _word_support(word: str, idx: _SourceIndex) -> float:
    """1.0 = the source uses this word (or an inflection), 0.5 = only a fuzzy match, 0.0 = never."""
    w = T.normalize_word(word)
    if w in idx.words or T.stem(word) in idx.stems:
        return 1.0
    if w in _ALIASES and not _ALIASES[w].isdisjoint(idx.words):
        return 1.0
    if "-" in w and all((p in idx.words or T.stem(p) in idx.stems) for p in w.split("-") if p):
        return 1.0
    if len(w) >= 6 and w[:5] in idx.prefixes:
        return 0.5
    return 0.0


def _co_occur(a: str, b: str, idx: _SourceIndex) -> bool:
    """Do stems a and b appear in one source unit or two adjacent ones?"""
    key = (a, b) if a <= b else (b, a)
    hit = idx.pair_windows.get(key)
    if hit is None:
        pa, pb = idx.postings.get(a), idx.postings.get(b)
        if pa is None or pb is None:
            hit = False
        else:
            # Sorted unit ids: any |i - j| <= 1?
            j = np.searchsorted(pb, pa)
            lo = np.clip(j - 1, 0, len(pb) - 1)
            hi = np.clip(j, 0, len(pb) - 1)
            hit = bool(np.any(np.abs(pb[lo] - pa) <= 1) or np.any(np.abs(pb[hi] - pa) <= 1))
        idx.pair_windows[key] = hit
    return hit


# ----------------------------------------------------------------------------------------------
# Per-sentence analysis
# ----------------------------------------------------------------------------------------------


@dataclass
class SentenceAnalysis:
    """Features and candidate spans of one summary sentence (before the model turns them into a score)."""

    seg: T.Segment
    judged: bool  # False when the sentence has no content word
    candidates: list[int]  # source unit ids, lexical order
    features: np.ndarray  # len(FEATURES)
    evidence: list[tuple[int, float]] = field(default_factory=list)  # (unit id, cosine)
    spans: list[Span] = field(default_factory=list)  # check spans: number/date/name/negation (summary offsets)
    reasons: list[str] = field(default_factory=list)
    # (start, end, novelty) per content word, summary offsets: 1 = the source never uses it,
    # 0.5 = only a fuzzy match, 0.3 = in the source but not near the evidence, 0 = supported.
    token_novelty: list[tuple[int, int, float]] = field(default_factory=list)


@dataclass
class _Meaning:
    """What `_meaning_checks` found in one sentence: feature values, spans (summary offsets), reasons."""

    neg_mismatch: float = 0.0
    opposite: float = 0.0
    polarity_flip: float = 0.0
    role_swap: float = 0.0
    cause: float = 0.0
    spans: list[Span] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass
class PairAnalysis:
    source: str
    summary: str
    units: list[T.Segment]
    sentences: list[SentenceAnalysis]


_LIST_MARKER = re.compile(r"\s*[(\[]?\d{1,2}[.):\]]\s?$")
# "Here is a concise summary of the passage:" -- a preamble, nothing to verify.
_PREAMBLE = re.compile(
    r"^\s*(?:(?:here\s+is|here's|below\s+is|the\s+following\s+is|this\s+is)\b[^.]{0,80}\b(?:summary|overview|points)\b"
    r"|[^.]{0,80}\b(?:summary|summarize|summarise)\b[^.]{0,60}:\s*$)",
    re.IGNORECASE,
)
# "The passage does not mention ...": a sentence about the source document, not about its facts.
_META = re.compile(r"\b(?:passage|text|article|document|source|excerpt|summary|context)\b", re.IGNORECASE)


def _is_name(tok: T.Token, first_in_sentence: bool) -> bool:
    t = tok.text
    if not t[:1].isupper() or not t[:1].isalpha():
        return False
    if len(t) >= 2 and t.isupper():
        return True  # acronym, even sentence-initial
    if first_in_sentence:
        return False
    return T.normalize_word(t) not in T.STOPWORDS


class LiteVerifier(Verifier):
    """Offline CPU verifier: MiniLM sentence alignment + number/date/name/negation/novelty checks,
    combined by a small calibrated logistic model.

    Args:
        threshold: summary score >= threshold -> "hallucinated" (default: the calibrated one).
        calibration: dict or path of a calibration JSON (default: the packaged, dev-fitted file).
        device: torch device for the embedder ("cpu").
        batch_size: sentences per embedding forward pass.
        embed_cache: optional text -> vector mapping (dict or `embeddings.DiskCache`) reused across calls.
        max_unit_words: source sentences longer than this are cut into windows for alignment.
    """

    name = "lite"

    def __init__(
        self,
        threshold: float | None = None,
        calibration: str | Path | dict | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        embed_cache: MutableMapping[str, np.ndarray] | None = None,
        max_unit_words: int = 60,
    ):
        self.calibration = load_calibration(calibration)
        self.weights = np.asarray(self.calibration["weights"], dtype=np.float64)
        self.bias = float(self.calibration["bias"])
        if threshold is None:
            threshold = float(self.calibration["threshold"])
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.device = device
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.embed_cache = embed_cache
        self.max_unit_words = max_unit_words
        self.top_k = int(self.calibration.get("top_k", 3))
        self._embedder = None

    # -- embedding ------------------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            from halluguard.embeddings import get_embedder

            self._embedder = get_embedder(device=self.device)
        # Sorting by length keeps padding (wasted compute) low inside each forward batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vecs = self._embedder.encode([texts[i] for i in order], batch_size=self.batch_size, cache=self.embed_cache)
        out = np.empty_like(vecs)
        out[order] = vecs
        return out

    # -- analysis -------------------------------------------------------------------------------

    def analyze_batch(self, sources: Sequence[str], summaries: Sequence[str]) -> list[PairAnalysis]:
        """Features and candidate spans for each pair (no model applied). Raises ValueError naming
        the first bad pair. Used by `verify_batch` and by benchmarks/fit_lite.py."""
        validate_batch(sources, summaries, item="pair")
        indexes: dict[str, _SourceIndex] = {}
        plans = []
        to_embed: dict[str, int] = {}

        def slot(t: str) -> int:
            if t not in to_embed:
                to_embed[t] = len(to_embed)
            return to_embed[t]

        for src, summ in zip(sources, summaries):
            idx = indexes.get(src)
            if idx is None:
                idx = indexes[src] = _index_source(src, self.max_unit_words)
            sents = T.split_units(summ, max_words=80)
            plan = []
            for seg in sents:
                ctoks = _content_tokens(seg.text)
                cands = self._candidates(ctoks, idx)
                plan.append((seg, ctoks, cands, slot(seg.text), [slot(idx.units[c].text) for c in cands]))
            plans.append((idx, summ, plan))

        vecs = self._embed(list(to_embed)) if to_embed else np.zeros((0, 384), np.float32)

        out = []
        for idx, summ, plan in plans:
            sas = []
            for seg, ctoks, cands, s_slot, c_slots in plan:
                sims = vecs[c_slots] @ vecs[s_slot] if c_slots else np.zeros(0)
                sas.append(self._analyze_sentence(summ, seg, ctoks, cands, sims, idx))
            out.append(PairAnalysis(idx.text, summ, idx.units, sas))
        return out

    def _candidates(self, ctoks: list[T.Token], idx: _SourceIndex) -> list[int]:
        n = len(idx.units)
        if n <= self.top_k:
            return list(range(n))
        scores = np.zeros(n)
        for s in {T.stem(t.text) for t in ctoks}:
            p = idx.postings.get(s)
            if p is not None:
                scores[p] += idx.idf[s]
        k = self.top_k
        top = np.argpartition(-scores, k - 1)[:k] if n > k else np.arange(n)
        top = sorted(top.tolist(), key=lambda i: (-scores[i], i))
        if scores[top[0]] == 0:
            # Nothing shared: fall back to the opening sentences (the lede) so there is evidence.
            top = list(range(min(k, n)))
        return top

    def _analyze_sentence(
        self, summ: str, seg: T.Segment, ctoks: list[T.Token], cands: list[int], sims: np.ndarray,
        idx: _SourceIndex,
    ) -> SentenceAnalysis:
        base = seg.start
        order = np.argsort(-sims) if len(sims) else np.zeros(0, dtype=int)
        evidence = [(cands[i], float(sims[i])) for i in order[:2]]
        best = float(sims[order[0]]) if len(sims) else 0.0
        ev_stems: set[str] = set()
        for c in cands:
            ev_stems |= idx.unit_stems[c]
        spans: list[Span] = []
        reasons: list[str] = []

        # Numbers (and years).
        nums = T.extract_numbers(seg.text)
        num_bad = date_bad = 0
        num_chars: set[int] = set()
        for m in nums:
            num_chars.update(range(m.start, m.end))
            if m.kind != "year" and m.value == 1 and m.text.lower() in ("one",):
                continue
            if _LIST_MARKER.match(seg.text[: m.end + 1]):
                continue  # "1. Veeram ..." numbers a list item; it states nothing
            if (m.text[:1].isalpha() and m.value <= 10 and m.kind == "number"
                    and not any(x.value <= 20 and x.kind != "year" for x in idx.numbers)):
                continue  # "two films", "three points": a count the summarizer made, the source has none
            ok = m.value in idx.number_values or any(T.numbers_match(m, x) for x in idx.numbers)
            if not ok:
                if m.kind == "year":
                    date_bad += 1
                    spans.append(Span(base + m.start, base + m.end, m.text, 1.0, "date"))
                    reasons.append(f"year {m.text!r} not in the source")
                else:
                    num_bad += 1
                    spans.append(Span(base + m.start, base + m.end, m.text, 1.0, "number"))
                    reasons.append(f"number {m.text!r} not in the source")
        # Months and weekdays.
        for d in T.extract_dates(seg.text):
            known = idx.months if d.kind == "month" else idx.weekdays
            if d.value not in known:
                date_bad += 1
                spans.append(Span(base + d.start, base + d.end, d.text, 1.0, "date"))
                reasons.append(f"{d.kind} {d.text!r} not in the source")
            num_chars.update(range(d.start, d.end))

        # Names and content words.
        all_toks = T.tokenize(seg.text)
        first_alpha = next((t for t in all_toks if t.text[:1].isalpha()), None)
        name_bad = 0
        novelty: list[tuple[T.Token, float]] = []  # (token, 0..1) for content tokens
        n_missing_src = 0.0
        n_missing_ev = 0
        stems_seq: list[str] = []
        name_spans: list[tuple[int, int]] = []
        for tok in ctoks:
            if tok.start in num_chars:
                continue
            sup = _word_support(tok.text, idx)
            st = T.stem(tok.text)
            if _is_name(tok, tok is first_alpha or (first_alpha is not None and tok.start == first_alpha.start)):
                if sup == 0.0 and T.normalize_word(tok.text) not in idx.acronyms:
                    name_bad += 1
                    name_spans.append((tok.start, tok.end))
            nov = 1.0 - sup
            novelty.append((tok, nov))
            n_missing_src += nov
            if st not in ev_stems:
                n_missing_ev += 1
            if sup == 1.0:
                stems_seq.append(st)
        for s, e in _merge_runs(name_spans, seg.text):
            spans.append(Span(base + s, base + e, seg.text[s:e], 1.0, "name"))
            reasons.append(f"name {seg.text[s:e]!r} not in the source")

        # Novel phrases are merged from `token_novelty` in `_report`, where the threshold is known.
        token_novelty = [(base + t.start, base + t.end, nov if T.stem(t.text) in ev_stems or nov > 0 else 0.3)
                         for t, nov in novelty]
        runs = [(t.start, t.end) for t, nov in novelty if nov >= 1.0]
        if runs:
            reasons.append("content the source never mentions: "
                           + ", ".join(repr(seg.text[s:e]) for s, e in _merge_runs(runs, seg.text)[:3]))

        meaning = self._meaning_checks(seg, evidence, best, idx)
        spans += meaning.spans
        reasons += meaning.reasons

        # Pairs of supported words that the source never puts together (swapped roles/entities).
        pairs = list(itertools.pairwise(stems_seq))
        split = sum(1 for a, b in pairs if a != b and not _co_occur(a, b, idx))
        split_ratio = split / len(pairs) if pairs else 0.0

        n_content = max(1, len(novelty))
        judged = len(novelty) + len(nums) > 0 and not _PREAMBLE.search(seg.text)
        feats = np.array([
            1.0 - best if cands else 1.0,
            n_missing_src / n_content if novelty else 0.0,
            n_missing_ev / n_content if novelty else 0.0,
            split_ratio,
            min(num_bad, 3),
            min(date_bad, 3),
            min(name_bad, 3),
            meaning.neg_mismatch,
            math.log1p(len(novelty)),
            math.log1p(sum(1 for _, nov in novelty if nov >= 1.0)),
            math.log1p(sum(1 for _, _, nov in token_novelty if 0.0 < nov < 0.5)),
            meaning.opposite,
            meaning.polarity_flip,
            meaning.role_swap,
            meaning.cause,
        ], dtype=np.float64)
        return SentenceAnalysis(seg=seg, judged=judged, candidates=cands, features=feats,
                                evidence=evidence, spans=spans, reasons=reasons, token_novelty=token_novelty)

    def _meaning_checks(
        self, seg: T.Segment, evidence: list[tuple[int, float]], best: float, idx: _SourceIndex,
    ) -> _Meaning:
        """Checks of what the sentence claims against its evidence, beyond its words: negation, opposites
        ("rose" / "fell"), polarity flips, swapped roles, invented causes and the stronger claims of
        `_stronger_claims` (halluguard.verify.claims)."""
        out = _Meaning()
        ev_units = [idx.units[c] for c, _ in evidence]
        if not ev_units or _META.search(seg.text):
            return out
        base, text, ev = seg.start, seg.text, ev_units[0].text
        s_neg = C.negations(text)
        # A negation cue on one side only, or a word whose opposite the evidence uses ("rose" / "fell").
        # Both together cancel ("did not rise" / "fell"). The runner-up evidence counts as support: the
        # best unit may be a neighbouring sentence ("revenue grew") while the next one holds the claim.
        opposites = T.opposite_mismatches(text, ev, " ".join(u.text for u in ev_units[1:]))
        differs = [bool(s_neg) != bool(C.negations(u.text)) for u in ev_units]
        # A span only against evidence with the same words: "did not postpone" vs "voted to postpone". The
        # runner-up may be that sentence: a short negated claim ("the company did not report record
        # profit") often embeds nearer an unrelated sentence than the one it negates.
        flip = next((f for u, d in zip(ev_units, differs) if d
                     for f in [C.polarity_flip(text, u.text)] if f is not None), None)
        flipped = differs[0] or (flip is not None and not opposites)
        if flipped and not opposites:
            out.neg_mismatch = 1.0  # loose: against any evidence; the fitted weight says what it is worth
            if flip is not None:
                out.polarity_flip = 1.0
                out.spans.append(Span(base + flip.start, base + flip.end, text[flip.start : flip.end], 1.0, "negation"))
                out.reasons.append(f"negation flipped: {flip.reason}")
        elif opposites and not flipped:
            out.opposite = 1.0
            if best >= 0.6:
                tok, ev_word = opposites[0]
                out.spans.append(Span(base + tok.start, base + tok.end, tok.text, 1.0, "negation"))
                out.reasons.append(f"{tok.text!r} where the evidence says {ev_word!r}")
        ev_all = " ".join(u.text for u in ev_units)
        swaps = C.role_swaps(text, ev_all)
        if swaps:
            out.role_swap = 1.0
            tok, said, source_says = swaps[0]
            out.spans.append(Span(base + tok.start, base + tok.end, tok.text, 1.0, "role"))
            out.reasons.append(f"roles swapped: in the source {source_says!r}, not {said!r}, is the one who "
                               f"{tok.text!r}")
        self._stronger_claims(out, seg, evidence, idx)
        cause = C.unsupported_cause(text, idx.unit_texts, [c for c, _ in evidence])
        if cause is not None:
            out.cause = 1.0
            s, e = cause
            out.spans.append(Span(base + s, base + e, text[s:e], 1.0, "cause"))
            out.reasons.append(f"cause {text[s:e]!r} not stated by the source")
        return out

    @staticmethod
    def _stronger_claims(out: _Meaning, seg: T.Segment, evidence: list[tuple[int, float]], idx: _SourceIndex) -> None:
        """Claims that reuse the source's words but say more than it does: another person's office, a
        name of the source where the evidence names someone else (the name check sees only names the
        source never uses), a quantifier widened ("all" for "some"), a hedge dropped ("will reopen" for
        "could reopen"). Spans and floors only: none has a fitted feature of its own."""
        base, text = seg.start, seg.text
        units = [idx.units[c].text for c, _ in evidence]
        found = [(s, e, "role", f"office swapped: {why}") for s, e, why in C.office_swaps(text, idx.offices)[:1]]
        found += [(s, e, "entity", f"name out of place: {why}")
                  for s, e, why in C.misplaced_names(text, units[0], " ".join(units[1:]))[:1]
                  if all(T.normalize_word(w) in idx.words for w in text[s:e].split())]
        for check, reason, label in ((C.scope_overreach, "scope", "scope widened"),
                                     (C.certainty_shift, "certainty", "hedge dropped")):
            hit = check(text, " ".join(units))
            if hit is not None:
                found.append((hit[0], hit[1], reason, f"{label}: {hit[2]}"))
        for s, e, reason, why in found:
            out.spans.append(Span(base + s, base + e, text[s:e], 1.0, reason))
            out.reasons.append(why)

    # -- scoring --------------------------------------------------------------------------------

    def sentence_logits(self, feats: np.ndarray) -> np.ndarray:
        return feats @ self.weights + self.bias

    def sentence_score(self, sa: SentenceAnalysis) -> float:
        """P(unsupported) of a judged sentence: the fitted model, raised to the floor of any check that fired."""
        floors = self.calibration.get("check_floors") or {}
        p = float(_sigmoid(self.sentence_logits(sa.features)))
        for sp in sa.spans:
            p = max(p, float(floors.get(sp.reason, 0.0)))
        return p

    def is_reworded(self, sa: SentenceAnalysis, p: float) -> bool:
        """Would flag, but only because the wording differs: the embedding says the sentence paraphrases its
        evidence (similarity >= min_sim), a share >= min_novel of its content words are not the evidence's,
        and no number / date / name / negation / role / cause check fired. Word checks cannot judge such a
        sentence, so it is `unknown`, not `unsupported` (calibration key "reworded"; absent = off)."""
        band = self.calibration.get("reworded")
        if not band or p < self.threshold or sa.spans or not sa.evidence:
            return False
        return sa.evidence[0][1] >= float(band["min_sim"]) and sa.features[_NOVEL_EV] >= float(band["min_novel"])

    def _spans(self, sa: SentenceAnalysis, summary: str, p: float) -> list[Span]:
        """The flagged stretches of an unsupported sentence: the checks' own spans, novel phrases, or the
        whole sentence when nothing specific fired (low alignment, recombined facts) or most of it is new."""
        spans = [Span(s.start, s.end, s.text, round(p, 4), s.reason) for s in sa.spans]
        runs = [(s, e) for s, e, nov in sa.token_novelty if nov >= float(self.calibration["span_min_novelty"])]
        for s, e in _merge_runs(runs, summary):
            spans.append(Span(s, e, summary[s:e], round(p, 4), "unsupported"))
        if not spans or sa.features[1] >= float(self.calibration["sentence_span_min_novel"]):
            specific = _dedupe([sp for sp in spans if sp.reason != "unsupported"])
            spans = specific + _gaps(summary, sa.seg.start, sa.seg.end, specific, round(p, 4))
        return _dedupe(spans)

    def _report(self, pa: PairAnalysis) -> Report:
        thr = self.threshold
        why_not = C.language_problem(pa.summary) or C.language_problem(pa.source[:20000])
        verdicts: list[SentenceVerdict] = []
        all_spans: list[Span] = []
        scores: list[float] = []
        n_reworded = 0
        for sa in pa.sentences:
            ev = [Evidence(u.start, u.end, u.text, round(max(0.0, min(1.0, cos)), 4))
                  for u, cos in ((pa.units[c], cos) for c, cos in sa.evidence)]
            if why_not or not sa.judged:
                verdicts.append(SentenceVerdict(sa.seg.start, sa.seg.end, sa.seg.text, "unknown", float("nan"),
                                                ev, [], [why_not or "no content word to check"]))
                continue
            p = self.sentence_score(sa)
            if self.is_reworded(sa, p):
                # The verdict abstains. With a "score_cap" the summary score counts the sentence at most at
                # the cap (just under the threshold); without one the score is left as the features say,
                # so rankings and benchmark scores do not move, and only the verdict and the spans change.
                n_reworded += 1
                cap = self.calibration["reworded"].get("score_cap")
                scores.append(p if cap is None else min(p, float(cap)))
                verdicts.append(SentenceVerdict(sa.seg.start, sa.seg.end, sa.seg.text, "unknown", round(p, 4), ev,
                                                [], [REWORDED_REASON]))
                continue
            scores.append(p)
            spans = self._spans(sa, pa.summary, p) if p >= thr else []
            reasons = list(sa.reasons) if p >= thr else []
            if p >= thr and not reasons:
                best = sa.evidence[0][1] if sa.evidence else 0.0
                reasons = [f"weakly aligned with the source (best similarity {best:.2f})"]
            verdicts.append(SentenceVerdict(sa.seg.start, sa.seg.end, sa.seg.text,
                                            "unsupported" if p >= thr else "supported", round(p, 4), ev, spans, reasons))
            all_spans.extend(spans)
        score = max(scores) if scores else float("nan")
        label = label_for(score, thr)
        flagged = any(v.verdict == "unsupported" for v in verdicts)
        if n_reworded and not flagged:
            label = "unknown"  # nothing flagged, but a reworded sentence was not checked word by word
        all_spans.sort(key=lambda s: (s.start, s.end))
        extra = {"calibration": self.calibration.get("fitted_on", "")}
        if why_not:
            extra["unjudged"] = why_not
        if n_reworded:
            extra["reworded_sentences"] = n_reworded
        return Report(score=round(score, 4) if scores else score, label=label, threshold=thr,
                      backend=self.name, sentences=verdicts, spans=all_spans, extra=extra)

    def verify_batch(
        self,
        sources: Sequence[str],
        summaries: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        chunk_size: int = 64,
    ) -> list[Report]:
        """Verify many pairs; embeddings are computed in one batched call per `chunk_size` pairs."""
        if len(sources) != len(summaries):
            raise ValueError(f"got {len(sources)} sources but {len(summaries)} summaries")
        out: list[Report] = []
        total = len(sources)
        for lo in range(0, total, chunk_size):
            try:
                analyses = self.analyze_batch(sources[lo : lo + chunk_size], summaries[lo : lo + chunk_size])
            except ValueError as e:
                msg = str(e)
                m = re.match(r"pair (\d+): (.*)", msg)
                if m:
                    raise ValueError(f"pair {lo + int(m.group(1))}: {m.group(2)}") from None
                raise
            out.extend(self._report(a) for a in analyses)
            if progress is not None:
                progress(len(out), total)
        return out


def _sigmoid(z: float | np.ndarray):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _merge_runs(runs: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Merge token spans separated only by stopwords, spaces, hyphens or apostrophes (<= 2 words)."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(runs):
        if out:
            gap = text[out[-1][1] : s]
            words = re.findall(r"[^\W_]+", gap)
            if not re.search(r"[.,;:!?()\"\u201c\u201d]", gap) and len(words) <= 2 and all(
                T.normalize_word(w) in T.STOPWORDS for w in words
            ):
                out[-1] = (out[-1][0], e)
                continue
        out.append((s, e))
    return out


def _gaps(text: str, start: int, end: int, taken: list[Span], score: float) -> list[Span]:
    """"sentence" spans covering text[start:end] outside `taken`, trimmed of spaces and punctuation."""
    out, pos = [], start
    for cut_s, cut_e in [(sp.start, sp.end) for sp in sorted(taken, key=lambda x: x.start)] + [(end, end)]:
        a, b = pos, min(cut_s, end)
        while a < b and not text[a].isalnum():
            a += 1
        while b > a and not (text[b - 1].isalnum() or text[b - 1] in ".!?%)\"'”"):
            b -= 1
        if b > a and any(c.isalnum() for c in text[a:b]):
            out.append(Span(a, b, text[a:b], score, "sentence"))
        pos = max(pos, cut_e)
    return out


def _dedupe(spans: list[Span]) -> list[Span]:
    """Merge overlapping spans into their union, keeping the most specific reason
    (number/date > name > negation > unsupported > sentence) and the highest score."""
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if out and s.start < out[-1].end:
            k = out[-1]
            reason = k.reason if SPAN_PRIORITY.get(k.reason, 0) >= SPAN_PRIORITY.get(s.reason, 0) else s.reason
            end = max(k.end, s.end)
            text = k.text + s.text[k.end - s.start :] if s.end > k.end else k.text
            out[-1] = Span(k.start, end, text, max(k.score, s.score), reason)
        else:
            out.append(s)
    return out


__all__ = ["FEATURES", "REWORDED_REASON", "SCOPE", "LiteVerifier", "PairAnalysis", "SentenceAnalysis", "load_calibration"]
