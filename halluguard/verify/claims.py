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
        words = [T.normalize_word(w.text) for w in toks[i:j]]  # "Salama's" is Salama
        keys = frozenset(w for w in words if w not in _TITLES and w not in T.STOPWORDS and w not in _DEMONYMS)
        if keys:
            shown = " ".join(w.text for w in toks[i:j] if T.normalize_word(w.text) in keys)
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
        if (k + 1 < len(toks) and text[toks[k - 1].end : toks[k].start].strip() == ","
                and toks[k].text.lower() == "who"):
            k += 1  # "Maria Chen, who proposed the plan": the relative clause's verb is hers
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


# Words before a plural noun that make it a group of actors ("some residents", "the workers").
_GROUP_LEAD = frozenset("some many most several few the local other all both".split())


def _group_mentions(text: str, toks: Sequence[T.Token], taken: list[Mention]) -> list[Mention]:
    """Groups named by a lower-case plural after a quantifier or article ("some residents opposed"),
    as mentions keyed by the word, so "Residents proposed ..." and "some residents opposed ..." meet."""
    used = {k for m in taken for k in range(m.start, m.end)}
    out = []
    for k in range(1, len(toks)):
        w = toks[k].text
        if (k in used or not w.islower() or not w.endswith("s") or w.endswith("ss") or not T.is_content(w)
                or toks[k - 1].text.lower() not in _GROUP_LEAD or not _joined(text, toks, k - 1)):
            continue
        out.append(Mention(k, k + 1, frozenset({T.normalize_word(w)}), w))
    return out


def role_swaps(sentence: str, evidence: str) -> list[tuple[T.Token, str, str]]:
    """Verbs whose actor the summary names differently from the evidence, where both actors occur on
    both sides: [(Token "proposed", "James Reed", "Maria Lopez")] for "Reed proposed the plan, while
    Lopez opposed it" against "Lopez proposed the plan, while Reed opposed it". Actors are names and
    groups ("Residents proposed the plan" against "Chen, who proposed the plan ... some residents
    opposed it")."""
    s_toks, e_toks = T.tokenize(sentence), T.tokenize(evidence)
    s_m, e_m = _mentions(sentence, s_toks), _mentions(evidence, e_toks)
    s_m = sorted(s_m + _group_mentions(sentence, s_toks, s_m), key=lambda m: m.start)
    e_m = sorted(e_m + _group_mentions(evidence, e_toks, e_m), key=lambda m: m.start)
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


# -- titles ---------------------------------------------------------------------------------------

# Offices written before a name ("Mayor Ana Reed", "chief executive Tim Cook"). Courtesy titles (Mr, Dr,
# Sir) say nothing about a role and are left out.
_OFFICES = frozenset(
    "councillor councilor senator rep representative president minister chancellor governor mayor judge "
    "chief general captain coach king queen prince princess ceo cfo chairman chairwoman chair director "
    "secretary spokesman spokeswoman spokesperson commissioner ambassador sheriff inspector sergeant detective "
    "manager founder bishop pope admiral colonel lieutenant prosecutor attorney treasurer speaker".split()
)
_OFFICE_ALIAS = {"councilor": "councillor", "rep": "representative", "chairwoman": "chairman", "chair": "chairman"}


def _office_lead(text: str, toks: Sequence[T.Token], m: Mention) -> int:
    """Index of the first of up to two office words written right before a name ("the chief executive
    Tim Cook" -> "chief"); m.start when there are none."""
    k = m.start
    while k > 0 and m.start - k < 2 and _joined(text, toks, k - 1) and toks[k - 1].text.lower() in _OFFICES:
        k -= 1
    return k


def _offices(text: str, toks: Sequence[T.Token], m: Mention) -> frozenset[str]:
    """The offices written in or right before a name: "Mayor Ana Reed", "the mayor Ana Reed"."""
    words = [t.text.lower() for t in toks[_office_lead(text, toks, m) : m.end]]
    return frozenset(_OFFICE_ALIAS.get(w, w) for w in words if w in _OFFICES)


def name_offices(text: str) -> list[tuple[frozenset[str], frozenset[str]]]:
    """(name keys, offices) for every name of `text` written with an office."""
    toks = T.tokenize(text)
    out = []
    for m in _mentions(text, toks):
        offices = _offices(text, toks, m)
        if offices:
            out.append((m.keys, offices))
    return out


def office_swaps(sentence: str, source_offices: list[tuple[frozenset[str], frozenset[str]]]) -> list[tuple[int, int, str]]:
    """Names the summary gives another person's office: "Mayor Tom Lopez" where the source has
    "Councillor Tom Lopez" and "Mayor Ana Reed". Fires only when the source writes this name with a
    different office and writes the summary's office before another name, so an office the source
    never mentions (or a promotion it reports) is not taken for a swap. `source_offices` is
    `name_offices(source)`. Returns [(start, end, reason)] with character offsets into `sentence`."""
    toks = T.tokenize(sentence)
    out = []
    for m in _mentions(sentence, toks):
        said = _offices(sentence, toks, m)
        if not said:
            continue
        own = frozenset().union(*(o for keys, o in source_offices if _same(keys, m.keys)))
        if not own or not said.isdisjoint(own):
            continue
        if any(not said.isdisjoint(o) and not _same(keys, m.keys) for keys, o in source_offices):
            why = f"the source's {min(said)} is not {m.text} (the source calls {m.text} {min(own)})"
            out.append((toks[_office_lead(sentence, toks, m)].start, toks[m.end - 1].end, why))
    return out


# -- names out of place -----------------------------------------------------------------------------


_CALENDAR = frozenset(T.MONTHS) | frozenset(T.WEEKDAYS)


def _proper(text: str, toks: Sequence[T.Token], mentions: list[Mention]) -> list[Mention]:
    """The mentions that are surely names: not a lone capitalised word opening a sentence ("Today",
    "Earlier Tuesday": months and weekdays are the date check's), not a speaker label ("Sales Agent:"),
    not a shouted header ("FIRST FOX")."""
    out = []
    for m in mentions:
        words = [t.text for t in toks[m.start : m.end] if T.normalize_word(t.text) not in _CALENDAR]
        opens = m.start == 0 or bool(re.search(r"[.!?:;\"\u201c\n]\s*$", text[: toks[m.start].start]))
        label = bool(re.match(r"\s*:", text[toks[m.end - 1].end :]))  # "Sales Agent: ..." names a speaker
        if len(words) - opens < 1 or label or (len(words) > 1 and all(w.isupper() for w in words)):
            continue
        out.append(m)
    return out


def _slot(toks: Sequence[T.Token], m: Mention) -> tuple[str, str]:
    """The words right before and after a mention: its slot in the sentence."""
    left = toks[m.start - 1].text.lower() if m.start > 0 else ""
    right = toks[m.end].text.lower() if m.end < len(toks) else ""
    return left, right


def misplaced_names(sentence: str, evidence: str, context: str = "",
                    min_coverage: float = 0.7) -> list[tuple[int, int, str]]:
    """Names the source uses elsewhere, put in the slot where the evidence has another name: "was
    bought by managing director Hawick Knitwear in November" where the evidence says "... director
    Sandy Wood in November" and Hawick Knitwear is the firm. The name check cannot see these (every
    word is in the source). Fires only when the sentence without its names matches the evidence and
    `context` (the runner-up evidence) on `min_coverage` of its content words, the name is not in
    `evidence` (the best source sentence), and `evidence` has another name in the same slot (the same
    word right before or right after it). The slot tells a swap from a sentence that fuses two source
    sentences (a name from one, the facts of the other), and the runner-up evidence, which a swapped
    name pulls in, does not excuse it. Returns [(start, end, reason)] with offsets into `sentence`."""
    s_toks = T.tokenize(sentence)
    s_m = _proper(sentence, s_toks, _mentions(sentence, s_toks))
    if not s_m:
        return []
    e_toks = T.tokenize(evidence)
    e_m = _proper(evidence, e_toks, _mentions(evidence, e_toks))
    displaced = [m for m in e_m if not any(_same(m.keys, x.keys) for x in s_m)]
    if not displaced:
        return []
    name_stems = {T.stem(t.text) for m in s_m for t in s_toks[m.start : m.end]}
    rest = _stems(sentence) - name_stems
    if not rest or _coverage(rest, _stems(evidence + " " + context)) < min_coverage:
        return []
    # Only the best sentence excuses a name. The sentences around it used to excuse theirs too
    # (for a "he said" whose name is next door), but they then excused any neighbour's name put in the
    # wrong slot ("Morgan Hale, who founded the firm" where Hale is the analysts' bank one sentence on and
    # the founder Laura Stein); without them dev fires on 9 more hallucinated and 2 more faithful summaries
    # (22 / 4), with them only where the evidence has a pronoun 18 / 4.
    best_words = {T.normalize_word(t.text) for t in e_toks}
    out = []
    for m in s_m:
        if not m.keys.isdisjoint(best_words):
            continue
        left, right = _slot(s_toks, m)
        # In the best sentence's slot: the same word right before or after another name there.
        rival = next((d for d in displaced if (left and _slot(e_toks, d)[0] == left)
                      or (right and _slot(e_toks, d)[1] == right)), None)
        if rival is None:
            continue
        s, e = s_toks[m.start].start, s_toks[m.end - 1].end
        out.append((s, e, f"{m.text!r} where the source names {rival.text!r}"))
    return out


# -- scope ------------------------------------------------------------------------------------------

# How much of a group a quantifier claims: part of it < most of it < all of it. "Some", "several" and
# "many" are one step: where one ends and the next begins is a matter of wording, not of fact.
_SCOPE = {
    "few": 1, "some": 1, "several": 1, "certain": 1, "part": 1, "many": 1, "numerous": 1, "most": 2,
    "majority": 2, "all": 3, "every": 3, "each": 3, "entire": 3, "whole": 3,
}


def _quantified(toks: Sequence[T.Token], text: str, reach: int = 3) -> list[tuple[int, int, set[str]]]:
    """(token index, scope, stems of the group) for each quantifier: "most of the local residents" ->
    (i, 2, {"local", "resident"}). "the most expensive" and "at most" are not quantifiers."""
    out = []
    for i, tok in enumerate(toks):
        w = tok.text.lower()
        if w not in _SCOPE or (i > 0 and toks[i - 1].text.lower() in {"the", "at", "a", "in", "for", "of"} and w != "all"):
            continue
        group: set[str] = set()
        for k in range(i + 1, min(len(toks), i + 1 + reach + 2)):
            if re.search(r"[.;:!?,\"\u201c\u201d()]", text[toks[k - 1].end : toks[k].start]):
                break
            if T.is_content(toks[k].text):
                group.add(T.stem(toks[k].text))
                if len(group) == reach:
                    break
        if group:
            out.append((i, _SCOPE[w], group))
    return out


def scope_overreach(sentence: str, evidence: str, min_coverage: float = 0.6) -> tuple[int, int, str] | None:
    """A quantifier that claims more of a group than the evidence does: "all residents welcomed" where
    the evidence says "some residents welcomed". Both must quantify the same group (a shared content
    word after the quantifier) and the rest of the sentence must match the evidence. A smaller claim
    ("some" for "all") is true and not flagged. Returns (start, end, reason) in `sentence`."""
    s_toks, e_toks = T.tokenize(sentence), T.tokenize(evidence)
    s_q = _quantified(s_toks, sentence)
    if not s_q or _coverage(_stems(sentence), _stems(evidence)) < min_coverage:
        return None
    e_q = _quantified(e_toks, evidence)
    for i, scope, group in s_q:
        for j, e_scope, e_group in e_q:
            if e_scope < scope and group & e_group and s_toks[i].text.lower() not in {t.text.lower() for t in e_toks}:
                tok = s_toks[i]
                return tok.start, tok.end, f"{tok.text!r} where the source says {e_toks[j].text!r}"
    return None


# -- certainty --------------------------------------------------------------------------------------

# Cues that make a claim uncertain ("may close", "is expected to close", "allegedly stole") or only
# intended ("plans to close", "threatened to close"). The intention cues count only with "to".
_EPISTEMIC = frozenset(
    "may might could possibly perhaps maybe probably reportedly allegedly apparently potentially presumably "
    "seemingly supposedly purportedly arguably".split()
)
# Hedging participles and adjectives count only before "to": "is expected to rise", "is likely to
# close"; "expected revenue" and "the alleged theft" hedge a noun, which a summary may name as it is.
_EPISTEMIC_TO = frozenset("unlikely believed thought suspected alleged rumoured rumored".split())
_INTENT = frozenset(
    "plan plans planned planning intend intends intended aim aims aimed hope hopes hoped seek seeks sought want "
    "wants wanted propose proposes proposed threaten threatens threatened promise promises promised pledge "
    "pledged pledges vow vowed vows considering considers consider set going offered offers expected likely".split()
)
# A sentence with any of these keeps the claim hedged or attributed: forecasts ("revenue is projected
# to ..."), reports ("a report by Forbes found ..."), accusations, conditions.
_SENTENCE_HEDGE = _EPISTEMIC | _EPISTEMIC_TO | _INTENT | frozenset(
    "would should accused charged claims claimed claim says said suggests suggested if whether anticipated "
    "anticipates predicted predicts forecast forecasts projected projects foreseen estimated estimates "
    "report reports reported according sources can cannot chance chances risk risks risked possible "
    "possibility unless speculated speculation unclear uncertain".split()
)
# Words a cue may govern that carry no claim of their own ("may soon", "could also").
_NOT_A_CLAIM = frozenset("soon also still even now already eventually finally ever again later yet then back able".split())
_PREPOSITIONS = frozenset("on of for about in to from by with toward towards into at".split())


def _hedged_stems(text: str, toks: Sequence[T.Token]) -> dict[str, tuple[str, bool]]:
    """Content words a hedge cue governs in `text`, as stem -> ("cue word", is an intention): the first
    content word after a modal or epistemic cue ("could reopen", "allegedly stole"), or after "to" for
    an intention or a forecast ("plans to open", "is expected to cost"). "May" the month is no cue. A
    word the text also states unhedged elsewhere ("tagged 40 turtles ... plan to tag 25 more") is left
    out: the evidence says it as fact too."""
    out: dict[str, tuple[str, bool]] = {}
    governed: set[int] = set()
    for i, tok in enumerate(toks):
        w = tok.text
        lw = w.lower()
        if i + 1 < len(toks) and toks[i + 1].text.lower() in {"you", "i", "we", "not"}:
            continue  # "could you take ...": a request; "could not show": a negation (polarity's job)
        to_next = i + 1 < len(toks) and toks[i + 1].text.lower() == "to"
        if lw in _EPISTEMIC and not (lw == "may" and w[0].isupper()):
            first, intent = i + 1, False
        elif lw in _EPISTEMIC_TO and to_next:
            first, intent = i + 2, False
        elif lw in _INTENT and to_next:
            first, intent = i + 2, True
        else:
            continue
        for k in range(first, min(len(toks), first + 4)):
            if re.search(r"[.;:!?,\"\u201c\u201d()]", text[toks[k - 1].end : toks[k].start]):
                break
            word = toks[k].text
            if T.is_content(word) and word.lower() not in _EPISTEMIC | _NOT_A_CLAIM:
                if word.isalpha() and word[0].islower():  # a verb or predicate, not a number or a name
                    out.setdefault(T.stem(word), (text[tok.start : toks[k].end], intent))
                    governed.add(k)
                break
    stated = {T.stem(t.text) for k, t in enumerate(toks) if k not in governed and T.is_content(t.text)}
    return {st: v for st, v in out.items() if st not in stated}


# Words that assert certainty on top of a claim ("will definitely begin"): the source has to say it.
_BOOSTERS = frozenset("definitely certainly undoubtedly surely unquestionably inevitably guaranteed "
                      "undeniably indisputably".split())


def certainty_shift(sentence: str, evidence: str, min_coverage: float = 0.7) -> tuple[int, int, str] | None:
    """A claim the evidence hedges, stated as fact: "the bridge will reopen" / "the bridge reopened"
    where the evidence says "the bridge could reopen"; "opened 50 stores" where it says "plans to open
    50 stores". Fires only when the sentence has no hedge of its own (any modal, intention or
    attribution cue but "will", which states a future as certain; for an intention, "will open" is
    let pass) and otherwise matches the evidence. Also a certainty booster the evidence lacks
    ("will definitely begin" for "said construction would begin"), whatever the evidence's hedges.
    Returns (start, end, reason) in `sentence`: the stated word."""
    s_toks = T.tokenize(sentence)
    boost = next((t for t in s_toks if t.text.lower() in _BOOSTERS), None)
    if boost is not None and boost.text.lower() not in evidence.lower():
        rest = sentence[: boost.start] + sentence[boost.end :]
        if _coverage(_stems(rest), _stems(evidence)) >= min_coverage:
            return boost.start, boost.end, f"{boost.text!r}: the source does not say it is certain"
    if any(t.text.lower() in _SENTENCE_HEDGE and t.text != "May" for t in s_toks):
        return None
    e_toks = T.tokenize(evidence)
    hedged = _hedged_stems(evidence, e_toks)
    if not hedged or _coverage(_stems(sentence), _stems(evidence)) < min_coverage:
        return None
    future = any(t.text.lower() in {"will", "shall"} for t in s_toks)
    for k, tok in enumerate(s_toks):
        hit = hedged.get(T.stem(tok.text)) if T.is_content(tok.text) else None
        if hit is None or (k > 0 and s_toks[k - 1].text.lower() in _PREPOSITIONS) or tok.text.lower().endswith("ing"):
            continue  # "to open", "tips on becoming", "with work starting next year": not stated as done
        said, intent = hit
        if intent and future:
            continue  # "will open" for "plans to open": a plan restated, not a fact invented
        return tok.start, tok.end, f"{tok.text!r} stated as fact where the source says {said!r}"
    return None


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
    r"contribut\w*|stem\w*|root\w*|cit\w*|explain\w*|justif\w*|motivat\w*|given|pointing|noting)\b",
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


__all__ = [
    "Flip", "certainty_shift", "language_problem", "misplaced_names", "name_offices", "negations", "office_swaps", "polarity_flip",
    "role_swaps", "scope_overreach", "unsupported_cause",
]
