"""The one record type of the training pool, and the small text helpers every loader shares.

    PoolPair(premise, hypothesis, label, source_set, licence, ship_ok, doc_key, spans, kind, level)

label: 1 = the hypothesis is NOT supported by the premise (contradiction, neutral, refuted, not enough
info, unattributable, inconsistent, hallucinated), 0 = supported (entailment, supports, attributable,
consistent, faithful). Each loader's docstring states its own mapping.

level: "pair"     -- premise is evidence of sentence size (NLI, fact checking, dialogue knowledge);
       "summary"  -- premise is a whole document and hypothesis a whole summary; `to_sentence_pairs`
                     (windows.py) turns these into (best 3-sentence window, summary sentence) pairs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, replace

LEVELS = ("pair", "summary")


@dataclass(frozen=True)
class PoolPair:
    """One labelled (evidence, claim) pair of the training pool.

    spans: unsupported stretches of `hypothesis` as half-open character offsets (empty when the set has
    no span annotation -- which says nothing, it does not mean "no error").
    doc_key: `doc_key(premise document)`; pairs of one document share it (splits group on it).
    kind: the subset or perturbation kind ("fib/factcc-negation", "negation", ...), for per-kind counts.
    """

    premise: str
    hypothesis: str
    label: int
    source_set: str
    licence: str
    ship_ok: bool
    doc_key: str = ""
    spans: tuple[tuple[int, int], ...] = ()
    kind: str = ""
    level: str = "pair"
    synthetic: bool = False
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(f"{self.source_set}: label must be 0 or 1, got {self.label!r}")
        if self.level not in LEVELS:
            raise ValueError(f"{self.source_set}: level must be one of {LEVELS}, got {self.level!r}")
        n = len(self.hypothesis)
        for a, b in self.spans:
            if not 0 <= a < b <= n:
                raise ValueError(f"{self.source_set}: span ({a}, {b}) outside a hypothesis of {n} characters")

    def with_(self, **changes) -> PoolPair:
        return replace(self, **changes)


# ----------------------------------------------------------------------------- normalisation

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_WS = re.compile(r"\s+")


def fold(text: str) -> str:
    """Lower-case, accents stripped, every run of non-alphanumerics removed.

    Tokenised copies of one article ("washington ( cnn ) president obama 's") and the original
    ("Washington (CNN)President Obama's") fold to the same string, so document keys and containment
    checks survive the formats the sets were released in.
    """
    t = unicodedata.normalize("NFKD", text.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return _NON_ALNUM.sub("", t)


def fold_words(text: str) -> list[str]:
    """The alphanumeric words of `fold`'s text, in order (for n-gram containment)."""
    t = unicodedata.normalize("NFKD", text.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return [w for w in _NON_ALNUM.split(t) if w]


def doc_key(document: str, prefix_chars: int = 300) -> str:
    """A stable key of a document: sha1 of the first `prefix_chars` folded characters (16 hex digits)."""
    return hashlib.sha1(fold(document)[:prefix_chars].encode()).hexdigest()[:16]


def pair_key(premise: str, hypothesis: str) -> str:
    """Dedup key: the folded premise and hypothesis (whitespace, case, punctuation and tokenisation ignored)."""
    return hashlib.sha1((fold(premise) + "\x00" + fold(hypothesis)).encode()).hexdigest()


_DETOK = [
    (re.compile(r"``\s*"), '"'), (re.compile(r"\s*''"), '"'),
    (re.compile(r"-LRB-\s*", re.I), "("), (re.compile(r"\s*-RRB-", re.I), ")"),
    (re.compile(r"-LSB-\s*", re.I), "["), (re.compile(r"\s*-RSB-", re.I), "]"),
    (re.compile(r"\s+([.,;:!?%)\]])"), r"\1"),
    (re.compile(r"([(\[$])\s+"), r"\1"),
    (re.compile(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", re.I), r"\1"),
    (re.compile(r"\s+-\s+(?=\w)"), " - "),
]


def detok(text: str) -> str:
    """Undo PTB-style tokenisation ("packages ." -> "packages.", "obama 's" -> "obama's", `` -> ")."""
    t = text.strip()
    for pat, rep in _DETOK:
        t = pat.sub(rep, t)
    return _WS.sub(" ", t).strip()


def clean(text: str) -> str:
    """Whitespace collapsed and trimmed; None/NaN-ish cells become ''."""
    if text is None:
        return ""
    return _WS.sub(" ", str(text)).strip()


NLI_LABELS = {"entailment": 0, "neutral": 1, "contradiction": 1, "not_entailment": 1, "non-entailment": 1}


def nli_label(value: str, where: str) -> int | None:
    """3-way or 2-way NLI label -> 1 = not supported; '' / '-' (no gold label) -> None (row skipped)."""
    v = clean(value).lower()
    if v in ("", "-"):
        return None
    if v not in NLI_LABELS:
        raise ValueError(f"{where}: unknown NLI label {value!r} (expected one of {sorted(NLI_LABELS)})")
    return NLI_LABELS[v]


def locate_tokens(text: str, tokens: list[str], mask: list[bool]) -> list[tuple[int, int]]:
    """Character spans in `text` of the tokens whose mask is True (tokens found left to right, merged)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for tok, on in zip(tokens, mask):
        i = text.find(tok, pos)
        if i < 0:
            continue
        if on:
            if spans and text[spans[-1][1]:i].strip() == "":
                spans[-1] = (spans[-1][0], i + len(tok))
            else:
                spans.append((i, i + len(tok)))
        pos = i + len(tok)
    return spans
