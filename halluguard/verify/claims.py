"""Claim-level checks for `lite`: the errors that change what a sentence says without adding new words.

A summary can reuse every word of its source and still be wrong:

- a **polarity flip**: "The council did not postpone the vote" against "the council voted to
  postpone the vote"; "also reduced" against "did not reduce";
- a **role swap**: "Reed proposed the plan, while Lopez opposed it" against "Lopez proposed the plan,
  while Reed opposed it"; "Leeds beat Hull" against "Hull beat Leeds";
- an **invented cause**: "shares rose 8 percent because investors welcomed the stadium" where the
  source says the rise was driven by sales.

Word-overlap features cannot see these, so each check here compares the structure of one summary
sentence with the source text it was aligned to. All three are deliberately narrow (they fire only
when the summary sentence otherwise matches its evidence closely), because a red flag on a faithful
sentence costs a user more than a missed one; how much each is worth is fitted on dev splits like the
other `lite` features (benchmarks/fit_lite.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from halluguard import text as T

# -- polarity ---------------------------------------------------------------------------------------

_NEG_RE = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot|\w+n't|\w+n\u2019t)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Flip:
    """A polarity flip: the character span of the summary sentence to flag and a reason in words."""

    start: int
    end: int
    reason: str


def negations(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _NEG_RE.finditer(text)]


def _stems(text: str) -> set[str]:
    return {T.stem(t.text) for t in T.tokenize(text) if T.is_content(t.text)}


def _coverage(sent_stems: set[str], ev_stems: set[str]) -> float:
    """Share of the sentence's content stems that the evidence uses (1.0 = nothing new)."""
    return len(sent_stems & ev_stems) / len(sent_stems) if sent_stems else 0.0


def _negated_stems(text: str, reach: int = 3) -> dict[str, str]:
    """The content words a negation cue governs (the next `reach` after it, in the same clause), as
    stem -> "cue word". "not only" negates nothing."""
    toks = T.tokenize(text)
    out: dict[str, str] = {}
    for i, tok in enumerate(toks):
        if not _NEG_RE.fullmatch(tok.text) or (i + 1 < len(toks) and toks[i + 1].text.lower() == "only"):
            continue
        n = 0
        for k in range(i + 1, len(toks)):
            if re.search(r"[.;:!?,\"\u201c\u201d()]", text[toks[k - 1].end : toks[k].start]):
                break  # the clause ended
            if T.is_content(toks[k].text):
                out.setdefault(T.stem(toks[k].text), f"{tok.text} {toks[k].text}")
                n += 1
                if n == reach:
                    break
    return out


def polarity_flip(sentence: str, evidence: str, min_coverage: float = 0.7) -> Flip | None:
    """A negation on one side only, against evidence that otherwise says the same thing.

    "Otherwise the same" = at least `min_coverage` of the sentence's content words are in the evidence,
    and the negated word itself appears on both sides: "did not postpone" vs "voted to postpone",
    "also reduced" vs "did not reduce". A negation about something else ("no injuries were reported")
    does not count. Offsets are into `sentence`."""
    s_neg, e_neg = negations(sentence), negations(evidence)
    if bool(s_neg) == bool(e_neg):
        return None
    ev_stems = _stems(evidence)
    if _coverage(_stems(sentence), ev_stems) < min_coverage:
        return None
    if s_neg:
        governed = {st: said for st, said in _negated_stems(sentence).items() if st in ev_stems}
        if not governed:
            return None
        s, e = s_neg[0]
        said = next(iter(governed.values()))
        return Flip(s, e, f"{said!r} where the source says it did")
    governed = _negated_stems(evidence)
    for tok in T.tokenize(sentence):
        said = governed.get(T.stem(tok.text))
        if said is not None:
            return Flip(tok.start, tok.end, f"{tok.text!r} where the source says {said!r}")
    return None


# -- roles ------------------------------------------------------------------------------------------

_TITLES = frozenset(
    "mr mrs ms miss dr prof professor sir dame lord lady councillor councilor senator rep representative "
    "president minister chancellor governor mayor judge chief general captain coach king queen prince princess "
    "st saint the a an".split()
)
# Capitalised words that describe rather than act ("Israeli airlines", "an Indian film").
_DEMONYMS = frozenset(
    "american british english scottish welsh irish french german spanish italian chinese japanese russian indian "
    "israeli palestinian iranian iraqi syrian egyptian turkish greek polish swedish norwegian danish finnish swiss "
    "belgian dutch portuguese ukrainian pakistani afghan nigerian kenyan korean vietnamese european african asian "
    "arab australian canadian mexican brazilian argentine saudi tamil hindu muslim christian jewish catholic "
    "republican democratic democrat labour conservative liberal".split()
)
# Words that may stand between an actor and its verb: "Lopez had proposed", "Hull then beat".
_VERB_LEAD = frozenset(
    "has have had was were is are will would could can may might did does do also then later reportedly "
    "allegedly successfully initially first previously eventually been be being".split()
)


@dataclass(frozen=True)
class Mention:
    start: int  # token index of the first word
    end: int  # token index after the last word
    keys: frozenset[str]  # lower-cased name words without titles: {"maria", "lopez"}
    text: str  # as written, without titles: "Maria Lopez"


def _joined(text: str, toks: Sequence[T.Token], i: int) -> bool:
    """Are tokens i and i+1 separated by spaces only (no punctuation: the same phrase)?"""
    return not text[toks[i].end : toks[i + 1].start].strip()


def _mentions(text: str, toks: Sequence[T.Token]) -> list[Mention]:
    """Runs of capitalised words, not broken by punctuation, that name someone: titles, demonyms and a
    capitalised first word that is an ordinary word ("The", "While") are not names."""
    out, i = [], 0
    while i < len(toks):
        if not (toks[i].text[:1].isupper() and toks[i].text[:1].isalpha()):
            i += 1
            continue
        j = i + 1
        while j < len(toks) and toks[j].text[:1].isupper() and toks[j].text[:1].isalpha() and _joined(text, toks, j - 1):
            j += 1
        words = [w.text.lower() for w in toks[i:j]]
        keys = frozenset(w for w in words if w not in _TITLES and w not in T.STOPWORDS and w not in _DEMONYMS)
        if keys:
            shown = " ".join(w.text for w in toks[i:j] if w.text.lower() in keys)
            out.append(Mention(i, j, keys, shown))
        i = j
    return out


def _same(a: frozenset[str], b: frozenset[str]) -> bool:
    return not a.isdisjoint(b)


def _agents(text: str, toks: Sequence[T.Token], mentions: list[Mention]) -> dict[str, Mention]:
    """For each verb-like word: the name that acts on it. Narrow on purpose: the word right after a name
    (auxiliaries and a few adverbs may stand between: "Lopez had proposed"), or a word followed by "by"
    and a name (passive: "was beaten by Leeds", "directed by Jayaraj"). Punctuation breaks the link. A
    word with two different actors is ambiguous and left out."""
    starts = {m.start: m for m in mentions}
    out: dict[str, Mention] = {}
    ambiguous: set[str] = set()

    def note(k: int, agent: Mention) -> None:
        w = toks[k].text
        if not T.is_content(w) or not w[:1].islower():
            return
        st = T.stem(w)
        if st in out and not _same(out[st].keys, agent.keys):
            ambiguous.add(st)
        out[st] = agent

    for m in mentions:
        k = m.end
        while k < len(toks) and _joined(text, toks, k - 1) and toks[k].text.lower() in _VERB_LEAD:
            k += 1
        if k < len(toks) and _joined(text, toks, k - 1):
            note(k, m)
    for k in range(len(toks) - 2):
        if toks[k + 1].text.lower() == "by" and k + 2 in starts and _joined(text, toks, k) and _joined(text, toks, k + 1):
            note(k, starts[k + 2])
    for st in ambiguous:
        out.pop(st, None)
    return out


def role_swaps(sentence: str, evidence: str) -> list[tuple[T.Token, str, str]]:
    """Verbs whose actor the summary names differently from the evidence, where both names occur on
    both sides: [(Token "proposed", "James Reed", "Maria Lopez")] for "Reed proposed the plan, while
    Lopez opposed it" against "Lopez proposed the plan, while Reed opposed it"."""
    s_toks, e_toks = T.tokenize(sentence), T.tokenize(evidence)
    s_m, e_m = _mentions(sentence, s_toks), _mentions(evidence, e_toks)
    if len(s_m) < 2 or len(e_m) < 2:
        return []  # a swap needs two names on each side
    s_agents, e_agents = _agents(sentence, s_toks, s_m), _agents(evidence, e_toks, e_m)
    out = []
    for tok in s_toks:
        st = T.stem(tok.text)
        a_s, a_e = s_agents.get(st), e_agents.get(st)
        if a_s is None or a_e is None or _same(a_s.keys, a_e.keys):
            continue
        # Both actors must be on both sides: otherwise it is a different name (the name check's job)
        # or a sentence about someone else.
        if any(_same(a_e.keys, m.keys) for m in s_m) and any(_same(a_s.keys, m.keys) for m in e_m):
            out.append((tok, a_s.text, a_e.text))
            s_agents.pop(st)
    return out


# -- causes -----------------------------------------------------------------------------------------

_CAUSE_CUE = re.compile(
    r"\b(?:because(?:\s+of)?|due\s+to|owing\s+to|thanks\s+to|as\s+a\s+(?:result|consequence)\s+of|"
    r"(?:was|were|is|are|been)\s+(?:caused|driven|triggered|prompted|fuelled|fueled)\s+by|in\s+response\s+to|"
    r"which\s+(?:led|caused|prompted|forced|triggered)|(?:led|leading)\s+to|resulted\s+in|so\s+that)\b",
    re.IGNORECASE,
)
# Any wording with which a source can state a reason (wider than the summary cues on purpose: the
# check asks only whether the source links the two facts at all).
_SOURCE_CAUSAL = re.compile(
    r"\b(?:because|due|owing|thanks|result|consequence|caus\w*|driv\w*|led|lead\w*|prompt\w*|trigger\w*|"
    r"fuel\w*|spark\w*|blam\w*|attribut\w*|reason\w*|after|following|amid|since|as|so|therefore|hence|"
    r"response|boost\w*|forc\w*|help\w*|why|associat\w*|link\w*|relat\w*|result\w*|for|from|over|behind|"
    r"contribut\w*|stem\w*|root\w*)\b",
    re.IGNORECASE,
)


def unsupported_cause(
    sentence: str, units: Sequence[str], evidence: Sequence[int], min_support: float = 0.6
) -> tuple[int, int] | None:
    """An explicit causal claim ("because ...", "due to ...", "led to ...") whose cause the source does
    not state next to the effect.

    `units` are the source's sentences/windows and `evidence` the indices of those the sentence was
    aligned to, best first. The cause is the clause after the cue; it is supported when at least
    `min_support` of its content words appear in the best unit, its neighbours or the runner-up,
    and that stretch of source has some causal wording. "is due to repay" (a schedule) is no cause.
    Returns the (start, end) of the cue and its clause in `sentence`, or None."""
    m = _CAUSE_CUE.search(sentence)
    if m is None or not units or not evidence:
        return None
    if m.group(0).lower().startswith("due") and re.search(r"\b(?:is|are|was|were|be|been|not)\s+$", sentence[: m.start()]):
        return None
    end = len(sentence)
    stop = re.search(r"[,;:.!?]\s|\s(?:and|but|while|whereas)\s", sentence[m.end() :])
    if stop:
        end = m.end() + stop.start()
    cause = _stems(sentence[m.end() : end])
    if not cause:
        return None
    best = evidence[0]
    near = " ".join(units[max(0, best - 1) : best + 2] + [units[i] for i in evidence[1:]])
    support = len(cause & _stems(near)) / len(cause)
    if support >= min_support and _SOURCE_CAUSAL.search(near):
        return None
    s, e = m.start(), end
    while e > s and not sentence[e - 1].isalnum():
        e -= 1
    return s, e


# -- input the verifier cannot judge ----------------------------------------------------------------

_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an of to in and is was are were for on with that this it as by at from be has have had "
    "not or but its their his her they he she we will would said says you your i my me our us do does did "
    "can could should may might how what who which when where there here no so if than then them these those "
    "been being also more about into over after new".split()
)
# Function words of the languages a summarizer is most often fed instead (German, French, Spanish,
# Italian, Portuguese, Dutch, Welsh, Swedish/Danish/Norwegian), minus the ones English shares.
_OTHER_FUNCTION_WORDS = frozenset(
    "der die und das ist nicht ein eine den dem des mit sich auf für von zu im wird wurde sind "
    "le la les et est une du des dans pour sur pas que qui au aux ce sont été "
    "el los las y es del por con para una su al lo como pero fue "
    "il di che della per con non sono gli nel alla "
    "os da do em um uma não são ao pelo pela "
    "het een van en zijn niet op voor ook werd "
    "mae yng yn ac ar gan wedi fod hyn ei eu oedd "
    "och att är inte för som på av med ikke og til er".split()
) - _ENGLISH_FUNCTION_WORDS


def language_problem(text: str, min_words: int = 6) -> str | None:
    """Why `lite` cannot judge this text, or None: its checks (stems, stopwords, negation and
    opposite lists, number words) are English. A text mostly in a non-Latin script gets a reason, and
    so does one of at least `min_words` words where another language's function words outnumber
    English ones and make up at least 8 % of it. A list of names, a scorecard or a stutter
    ("jordan spieth, jordan spieth") has few function words of any language and is still judged."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    non_latin = sum(1 for c in letters if ord(c) > 0x024F) / len(letters)
    if non_latin > 0.5:
        return "not English (mostly non-Latin script): lite checks English text only"
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < min_words:
        return None
    english = sum(1 for w in words if w in _ENGLISH_FUNCTION_WORDS)
    other = sum(1 for w in words if w in _OTHER_FUNCTION_WORDS)
    if other > english and other / len(words) >= 0.08:
        return "does not look like English: lite checks English text only"
    return None


__all__ = ["Flip", "language_problem", "negations", "polarity_flip", "role_swaps", "unsupported_cause"]
