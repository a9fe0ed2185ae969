"""Synthetic errors and faithful rewrites of real sentences, with the changed characters as spans.

    import random
    from halluguard.perturb import perturb, KINDS, FAITHFUL_KINDS
    e = perturb("The council postponed the vote on Monday.", "negation", random.Random(0))
    e.text, e.label, e.kind, e.spans   # "The council did not postpone the vote on Monday.", 1, "negation", ((12, 28),)

Errors (label 1; `spans` = exactly the characters of the new text that carry the error):
  negation    add/remove "not", "did not X" <-> "Xed"          antonym    rose -> fell, approved -> rejected
  number      a quantity changed                               date       weekday / month / year changed
  entity      a name replaced by another name of the document  role       two names of one sentence swapped
  modality    may / could / is expected to -> will             cause      an unsupported "because ..." added
  detail      an unsupported detail added ("on Tuesday", "unanimously", ...)
Faithful rewrites (label 0; they keep every number and every name; spans mark what was reworded):
  synonym     curated paraphrases ("postponed" -> "pushed back", "shop owners" -> "shopkeepers")
  reorder     a fronted adverbial or a reporting clause moved   passive    "A approved the plan" -> "The plan was approved by A"
  drop_clause a non-essential clause without numbers or names removed
  number_format the same quantity written another way ("8 percent" -> "8%", "$5 million" -> "5 million dollars")

Every function takes a `random.Random`; the same seed gives the same output. `generate_pairs` turns
documents of the pool into (evidence window, edited sentence) training pairs; `perturb(sentence, kind)`
writes single cases such as the hand-written subtle ones.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .pool.records import PoolPair
from .text import is_content
from .pool.windows import WindowRetriever, sentences


@dataclass(frozen=True)
class Edit:
    """One edited sentence: label 1 = unsupported by the original, 0 = a faithful rewrite."""

    text: str
    label: int
    kind: str
    spans: tuple[tuple[int, int], ...]
    original: str


def apply(text: str, repl: Sequence[tuple[int, int, str]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Apply non-overlapping replacements (start, end, new) to `text`; return the new text and the
    spans the new strings occupy in it."""
    out, spans, pos, shift = [], [], 0, 0
    for a, b, new in sorted(repl):
        if a < pos:
            raise ValueError(f"overlapping replacements at {a}")
        out.append(text[pos:a])
        start = a + shift
        out.append(new)
        core = new.strip()
        if core:  # the span covers the new characters, not the spaces around them
            lead = len(new) - len(new.lstrip())
            spans.append((start + lead, start + lead + len(core)))
        shift += len(new) - (b - a)
        pos = b
    out.append(text[pos:])
    return "".join(out), tuple(spans)


def _case_like(word: str, model: str) -> str:
    if model.isupper() and len(model) > 1:
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


_ARTICLE = re.compile(r"\b(a|an|A|An) $")


def _fix_article(orig: str, a: int, b: int, new: str) -> tuple[int, int, str]:
    """Keep "a"/"an" agreeing with a replaced word ("an eight" -> "a seven"); the article joins the span."""
    m = _ARTICLE.search(orig[:a])
    if not m or not new[:1].isalpha():
        return a, b, new
    want = "an" if new[:1].lower() in "aeiou" else "a"
    if m.group(1).lower() == want:
        return a, b, new
    return m.start(), b, _case_like(want, m.group(1)) + " " + new


def _edit(orig: str, repl, label: int, kind: str) -> Edit | None:
    repl = [_fix_article(orig, a, b, new) if a < b else (a, b, new) for a, b, new in repl]
    text, spans = apply(orig, repl)
    if text == orig:
        return None
    return Edit(text, label, kind, spans, orig)


# ----------------------------------------------------------------------------- word lists

# past tense -> base form, for "Xed" <-> "did not X"
PAST = {
    "postponed": "postpone", "approved": "approve", "rejected": "reject", "announced": "announce",
    "confirmed": "confirm", "reduced": "reduce", "increased": "increase", "signed": "sign", "won": "win",
    "lost": "lose", "accepted": "accept", "agreed": "agree", "attended": "attend", "closed": "close",
    "opened": "open", "raised": "raise", "cut": "cut", "banned": "ban", "allowed": "allow", "admitted": "admit",
    "denied": "deny", "supported": "support", "opposed": "oppose", "voted": "vote", "delayed": "delay",
    "cancelled": "cancel", "canceled": "cancel", "completed": "complete", "launched": "launch", "hired": "hire",
    "fired": "fire", "bought": "buy", "sold": "sell", "paid": "pay", "received": "receive", "visited": "visit",
    "met": "meet", "arrested": "arrest", "charged": "charge", "released": "release", "joined": "join",
    "left": "leave", "resigned": "resign", "returned": "return", "scored": "score", "killed": "kill",
    "injured": "injure", "found": "find", "discovered": "discover", "built": "build", "passed": "pass",
    "blocked": "block", "offered": "offer", "promised": "promise", "expected": "expect", "planned": "plan",
    "decided": "decide", "refused": "refuse", "called": "call", "warned": "warn", "claimed": "claim",
    "praised": "praise", "criticised": "criticise", "criticized": "criticize", "defeated": "defeat", "beat": "beat",
    "reached": "reach", "ended": "end", "started": "start", "began": "begin", "moved": "move", "changed": "change",
    "repaired": "repair", "replaced": "replace", "funded": "fund", "spent": "spend", "lowered": "lower",
    "improved": "improve", "expanded": "expand", "dropped": "drop", "rose": "rise", "fell": "fall", "grew": "grow",
}
BASE_TO_PAST = {v: k for k, v in PAST.items() if k not in ("canceled", "criticized")}

ANTONYMS = [
    ("rose", "fell"), ("rise", "fall"), ("rising", "falling"), ("increased", "decreased"), ("increase", "decrease"),
    ("higher", "lower"), ("more", "fewer"), ("gained", "lost"), ("won", "lost"), ("win", "lose"),
    ("approved", "rejected"), ("accepted", "rejected"), ("supported", "opposed"), ("support", "oppose"),
    ("allowed", "banned"), ("before", "after"), ("first", "last"), ("largest", "smallest"), ("biggest", "smallest"),
    ("highest", "lowest"), ("opened", "closed"), ("open", "closed"), ("up", "down"), ("profit", "loss"),
    ("strong", "weak"), ("stronger", "weaker"), ("early", "late"), ("earlier", "later"), ("cheaper", "more expensive"),
    ("success", "failure"), ("successful", "unsuccessful"), ("guilty", "innocent"), ("legal", "illegal"),
    ("expanded", "reduced"), ("hired", "fired"), ("arrived", "left"), ("entered", "left"), ("bought", "sold"),
    ("praised", "criticised"), ("agreed", "refused"), ("confirmed", "denied"), ("maximum", "minimum"),
    ("majority", "minority"), ("best", "worst"), ("better", "worse"), ("positive", "negative"), ("public", "private"),
    ("domestic", "foreign"), ("north", "south"), ("east", "west"), ("younger", "older"), ("youngest", "oldest"),
]
_ANT = {}
for _a, _b in ANTONYMS:
    _ANT.setdefault(_a, _b)
    _ANT.setdefault(_b, _a)

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
NUMBER_GROUPS = [["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"],
                 ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"],
                 ["hundred", "thousand", "million", "billion"], ["dozens", "hundreds", "thousands", "millions"]]
NUMBER_WORDS = [w for g in NUMBER_GROUPS for w in g]

# Faithful paraphrases (both directions are used unless marked one-way below).
SYNONYMS = [
    ("postponed", "pushed back"), ("postpone", "push back"), ("shop owners", "shopkeepers"),
    ("chief financial officer", "finance chief"), ("chief executive officer", "chief executive"),
    ("purchased", "bought"), ("purchase", "buy"), ("approximately", "about"), ("commenced", "began"),
    ("began", "started"), ("attempted", "tried"), ("stated", "said"), ("large", "big"), ("children", "kids"),
    ("physician", "doctor"), ("automobile", "car"), ("assist", "help"), ("assisted", "helped"),
    ("obtained", "got"), ("numerous", "many"), ("sufficient", "enough"), ("prior to", "before"),
    ("in addition", "also"), ("however", "but"), ("residents", "locals"), ("rapidly", "quickly"),
    ("reside", "live"), ("resided", "lived"), ("request", "ask"), ("requested", "asked"),
    ("inform", "tell"), ("informed", "told"), ("demonstrate", "show"), ("demonstrated", "showed"),
    ("sufficiently", "enough"), ("terminate", "end"), ("terminated", "ended"), ("utilise", "use"),
    ("utilize", "use"), ("perhaps", "maybe"), ("enormous", "huge"), ("tiny", "very small"),
    ("commence", "begin"), ("additional", "extra"), ("individuals", "people"), ("vehicle", "car"),
    ("police officers", "officers"), ("the prime minister", "the premier"), ("examine", "look at"),
    ("examined", "looked at"), ("investigate", "look into"), ("investigated", "looked into"),
    ("cancelled", "called off"), ("canceled", "called off"), ("rose", "went up"), ("fell", "went down"),
    ("increased", "went up"), ("decreased", "went down"),
    ("in order to", "to"), ("a number of", "several"), ("currently", "now"), ("at present", "now"),
    ("subsequently", "later"), ("additionally", "also"), ("nevertheless", "still"), ("whilst", "while"),
    ("amongst", "among"), ("required", "needed"), ("youngsters", "young people"), ("commented", "said"),
    ("told reporters", "said"), ("in the wake of", "after"), ("due to", "because of"), ("as well as", "and"),
    ("a great deal of", "a lot of"), ("nearly", "almost"), ("spokesman", "spokesperson"),
    ("spokeswoman", "spokesperson"), ("hospitalised", "taken to hospital"), ("hospitalized", "taken to hospital"),
    ("passed away", "died"), ("inquire", "ask"), ("discussed", "talked about"), ("expenditure", "spending"),
    ("the majority of", "most"), ("in excess of", "more than"), ("more than", "over"), ("on a daily basis", "daily"),
    ("regarding", "about"), ("with regard to", "about"), ("sustained", "suffered"), ("the firm", "the company"),
    ("per cent", "percent"), ("roughly", "about"), ("in the event that", "if"), ("approximately", "around"),
]
# Most pairs go formal -> plain only: the plain word is often another part of speech elsewhere ("use",
# "also", "car"), and "said" -> "stated" reads worse. These few are safe both ways.
_BOTH_WAYS = {"postponed", "postpone", "shop owners", "chief financial officer", "chief executive officer", "began",
              "cancelled", "canceled", "purchased", "large", "children", "rapidly", "enormous", "nearly", "due to",
              "the firm", "per cent"}
_SYN: dict[str, str] = {}
for _a, _b in SYNONYMS:
    _SYN.setdefault(_a, _b)
    if _a in _BOTH_WAYS:
        _SYN.setdefault(_b, _a)

DETAILS = ["on Tuesday", "for the first time", "in a unanimous vote", "after a two-hour debate", "late at night",
           "despite strong opposition", "to widespread surprise", "in secret", "at a press conference",
           "for the third year running", "with immediate effect", "under pressure from investors",
           "ahead of schedule", "in front of hundreds of supporters", "by a narrow margin"]
CAUSE_LINKS = ["because", "because", "due to the fact that", "in response to the fact that"]
DUE_TO = ["due to", "because of", "as a result of"]
CAUSE_NOUNS = ["rising costs", "pressure from investors", "the bad weather", "a surge in demand", "public anger",
               "a shortage of staff", "safety concerns", "a legal dispute", "falling prices", "the new rules"]

AUX = r"is|are|was|were|has|have|had|will|would|can|could|should|may|might|must|does|do|did"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NUM = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?![\w])")
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
# Runs of capitalised words (with "of", "de", ... inside): candidate names.
# A capitalised word ("O'Neill" yes, the "'s" of "Ziggy's" no), then more joined by spaces or "of", "de", ...
_CAP = r"[A-Z](?:[a-zA-Z\-]*'(?!s\b))?[a-zA-Z\-]+"
_NAME = re.compile(rf"\b{_CAP}(?:\s+(?:of|de|van|von|the|al|bin|di|da|la|le|du|del)?\s*{_CAP})*")
_NOT_NAMES = set(WEEKDAYS) | set(MONTHS) | {
    "The", "A", "An", "He", "She", "It", "They", "We", "I", "You", "His", "Her", "Their", "Its", "This", "That",
    "These", "Those", "But", "And", "Or", "If", "When", "While", "After", "Before", "On", "In", "At", "For", "As",
    "Mr", "Mrs", "Ms", "Dr", "There", "Here", "Some", "Many", "Most", "All", "One", "Two", "Three", "Last", "Next",
    "However", "Also", "Earlier", "Later", "Meanwhile", "Yesterday", "Today", "Tomorrow", "According", "Police",
    "Officials", "By", "From", "With", "Without", "Under", "Over", "Since", "Although", "Despite", "During",
    "No", "Not", "Now", "Then", "Such", "Each", "Every", "Both", "Other", "What", "Who", "Why", "How", "Where",
}


# ----------------------------------------------------------------------------- errors (label 1)


def _words(text: str):
    return list(_WORD.finditer(text))


def negation(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Flip the polarity of one clause: remove a "not", turn "did not X" into "Xed" (and back), or add
    "not" after an auxiliary."""
    options = []
    for m in re.finditer(r"\b(did|does|do)\s+not\s+([a-z]+)\b", s):
        past = BASE_TO_PAST.get(m.group(2))
        if past:  # "did not reduce" -> "reduced" / "also reduced"
            options.append([(m.start(), m.end(), past)])
            options.append([(m.start(), m.end(), "also " + past)])
    for m in re.finditer(rf"\b({AUX})\s+(not|n't)\s+", s, re.I):
        if m.group(1).lower() not in ("do", "does", "did"):  # "did not X" -> "Xed" above, never "did X"
            options.append([(m.start(), m.end(), m.group(1) + " ")])  # span = the auxiliary left bare
    for m in re.finditer(r"\b({})\b".format("|".join(sorted(PAST, key=len, reverse=True))), s):
        before = s[:m.start()].rstrip().split()[-1:] or [""]
        if before[0].lower() not in {"be", "been", "being", "was", "were", "is", "are", "has", "have", "had", "the", "a"}:
            options.append([(m.start(), m.end(), "did not " + PAST[m.group(1)])])
    for m in re.finditer(rf"\b({AUX})\s+(?!not\b|n't\b)([a-z]+)", s, re.I):
        options.append([(m.end(1), m.end(1), " not")])
    if not options:
        return None
    repl = rng.choice(options)
    e = _edit(s, repl, 1, "negation")
    if e and repl[0][2].endswith(" "):  # removed "not": mark the bare auxiliary itself, not the space
        a, _ = e.spans[0]
        e = Edit(e.text, 1, "negation", ((a, a + len(repl[0][2]) - 1),), s)
    return e


def antonym(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    opts = [m for m in _words(s) if m.group(0).lower() in _ANT]
    if not opts:
        return None
    m = rng.choice(opts)
    return _edit(s, [(m.start(), m.end(), _case_like(_ANT[m.group(0).lower()], m.group(0)))], 1, "antonym")


def _new_number(tok: str, rng: random.Random) -> str:
    if "," in tok:
        v = int(tok.replace(",", ""))
        new = v + rng.choice([-1, 1]) * max(1, int(v * rng.uniform(0.1, 0.6)))
        return f"{max(new, 1):,}"
    if "." in tok:
        decimals = len(tok.split(".")[1])
        v = float(tok)
        return f"{v * rng.choice([0.5, 0.7, 1.3, 1.6, 2.0]) + 10 ** -decimals:.{decimals}f}"
    v = int(tok)
    choices = [x for x in {v + 1, v + 2, v - 1, v * 2, v + 10, max(v // 2, 0), v * 3} if x != v and x >= 0]
    return str(rng.choice(choices))


def number(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    opts = [m for m in _NUM.finditer(s) if not _YEAR.fullmatch(m.group(0))]
    words = [m for m in _words(s) if m.group(0).lower() in NUMBER_WORDS]
    if not opts and not words:
        return None
    m = rng.choice(opts + words)
    tok = m.group(0)
    if tok.lower() in NUMBER_WORDS:  # "ten" -> "six", "million" -> "billion": same kind of word
        group = next(g for g in NUMBER_GROUPS if tok.lower() in g)
        new = _case_like(rng.choice([w for w in group if w != tok.lower()]), tok)
    else:
        new = _new_number(tok, rng)
    return _edit(s, [(m.start(), m.end(), new)], 1, "number")


def date(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    opts = []
    for m in _words(s):
        w = m.group(0)
        pool = WEEKDAYS if w in WEEKDAYS else MONTHS if w in MONTHS and w != "May" else None
        if pool:
            opts.append((m, rng.choice([x for x in pool if x != w])))
    for m in _YEAR.finditer(s):
        opts.append((m, str(int(m.group(0)) + rng.choice([-3, -2, -1, 1, 2]))))
    if not opts:
        return None
    m, new = rng.choice(opts)
    return _edit(s, [(m.start(), m.end(), new)], 1, "date")


def _is_name_word(word: str) -> bool:
    """A capitalised word that reads as a name ("Obama", "I"), not a function word ("The", "After")."""
    return word == "I" or word in TITLES or (word[:1].isupper() and word not in _NOT_NAMES and bool(names("x " + word)))


TITLES = {"Mayor", "President", "Prime", "Minister", "Councillor", "Senator", "Governor", "Judge", "Chancellor",
          "Secretary", "King", "Queen", "Prince", "Princess", "Sir", "Dame", "Lord", "Lady", "General", "Captain",
          "Coach", "Manager", "Chairman", "Professor", "Prof", "Dr", "Mr", "Mrs", "Ms", "Miss", "Inspector",
          "Sergeant", "Officer", "Detective", "Chief", "Director", "Pope", "Bishop", "Rev", "Reverend", "Justice"}


def names(text: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of the capitalised name runs of `text`: titles ("Mayor", "Dr") cut off the front,
    sentence-opening function words, weekdays and months left out."""
    out = []
    for m in _NAME.finditer(text):
        start, name = m.start(), m.group(0)
        parts = name.split()
        while len(parts) > 1 and parts[0].rstrip(".") in TITLES:
            cut = name.index(parts[1], len(parts[0]))
            start, name, parts = start + cut, name[cut:], parts[1:]
        if parts[0] in _NOT_NAMES or parts[0].rstrip(".") in TITLES:
            continue
        if len(parts) == 1 and (start == 0 or text[:start].rstrip()[-1:] in ".!?\"'"):
            continue  # a lone capitalised word opening a sentence is usually not a name
        out.append((start, start + len(name), name))
    return out


_ORG_WORDS = {"of", "the", "and", "Corp", "Inc", "Ltd", "Party", "Council", "University", "Club", "Company", "Group",
              "Bank", "Court", "Ministry", "Department", "Agency", "Union", "League", "United", "City", "FC"}


def name_type(text: str, start: int, name: str) -> str:
    """"person" for a name after a title or of 2-3 plain capitalised words ("Ana Lopez"), else "other".
    Swapping two people is the subtle error; swapping a person with a place is easy to spot."""
    before = text[:start].split()[-1:] or [""]
    parts = name.split()
    if before[0].rstrip(".") in TITLES or before[0].lower() in {"councillor", "mayor", "minister", "president", "mr", "mrs", "ms", "dr"}:
        return "person"
    if 2 <= len(parts) <= 3 and not set(parts) & _ORG_WORDS and all(p[:1].isupper() and p[1:].islower() for p in parts):
        return "person"
    return "other"


def entity(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Replace a name with another name of the same document (same number of words when possible)."""
    here = names(s)
    if not here:
        return None
    present = {n for _, _, n in here}
    others = sorted({n for _, _, n in names(context)} - present)
    others = [o for o in others if not any(o in p or p in o for p in present)]
    if not others:
        return None
    a, b, name = rng.choice(here)
    kind = name_type(s, a, name)
    ctx_types = {n: name_type(context, x, n) for x, _, n in names(context)}
    same = [o for o in others if ctx_types.get(o) == kind and len(o.split()) == len(name.split())]
    same = same or [o for o in others if ctx_types.get(o) == kind] or others
    return _edit(s, [(a, b, rng.choice(same))], 1, "entity")


def role(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Swap two different names of one sentence ("A defeated B" -> "B defeated A"; proposer <-> opponent)."""
    here = names(s)
    pairs = [(x, y) for i, x in enumerate(here) for y in here[i + 1:] if x[2] not in y[2] and y[2] not in x[2]]
    if not pairs:
        return None
    # Two people (or two organisations / places) trade places: the swap a reader could believe. A person
    # swapped with a place is nonsense no reader needs a model for, so it is not generated.
    same = [(x, y) for x, y in pairs if name_type(s, x[0], x[2]) == name_type(s, y[0], y[2])]
    if not same:
        return None
    x, y = rng.choice(same)
    return _edit(s, [(x[0], x[1], y[2]), (y[0], y[1], x[2])], 1, "role")


_MODAL = re.compile(r"\b(may|might|could|is expected to|are expected to|is likely to|are likely to|plans to|"
                    r"plan to|hopes to|hope to|is set to|are set to|would)\s+(?=[a-z])", re.I)


def modality(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Hedged to certain: "may/could/is expected to X" -> "will X"."""
    opts = list(_MODAL.finditer(s))
    if not opts:
        return None
    m = rng.choice(opts)
    word = _case_like("will", m.group(1))
    e = _edit(s, [(m.start(1), m.end(1), word)], 1, "modality")
    return e


def _end(s: str) -> int:
    """Where a clause can be appended: before the closing punctuation and quotes."""
    m = re.search(r"[.!?]?[\"'\u201d\u2019)]*\s*$", s)
    return m.start() if m else len(s)


def cause(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Append an unsupported cause: "because <another fact of the document>" or "due to <a reason>"."""
    end = _end(s)
    if end < 15:
        return None
    facts = [context[a:b] for a, b in sentences(context)] if context else []
    facts = [f.strip() for f in facts if 5 <= len(f.split()) <= 18 and f.strip() not in s and not f.strip().endswith("?")]
    if facts and rng.random() < 0.6:
        fact = rng.choice(facts).rstrip(".!?\"' ")
        if not _is_name_word(fact.split()[0]):
            fact = fact[0].lower() + fact[1:]
        clause = f" {rng.choice(CAUSE_LINKS)} {fact}"
    else:
        clause = f" {rng.choice(DUE_TO)} {rng.choice(CAUSE_NOUNS)}"
    return _edit(s, [(end, end, clause)], 1, "cause")


def detail(s: str, rng: random.Random, context: str = "", phrases: Sequence[str] = (), **kw) -> Edit | None:
    """Append a detail the document does not give: a phrase of another document (`phrases`) or of a
    small curated list."""
    end = _end(s)
    if end < 15:
        return None
    low = (context or s).lower()
    pool = list(DETAILS) + rng.sample(list(phrases), min(len(phrases), 40))
    opts = [d for d in pool if d.lower() not in low and not any(w in low for w in d.lower().split() if len(w) > 5)]
    if not opts:
        return None
    # At the end, or before the first comma of a long enough opening: an edit always at the end of the
    # sentence would teach the model where to look rather than what to check.
    at = end
    comma = s.find(", ")
    if 15 <= comma < end - 10 and rng.random() < 0.4:
        at = comma
    return _edit(s, [(at, at, " " + rng.choice(opts))], 1, "detail")


# ----------------------------------------------------------------------------- faithful rewrites (label 0)


def synonym(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    low = s.lower()
    opts = []
    for phrase, rep in _SYN.items():
        for m in re.finditer(rf"\b{re.escape(phrase)}\b", low):
            opts.append((m.start(), m.end(), _case_like(rep, s[m.start():m.end()])))
    if not opts:
        return None
    rng.shuffle(opts)
    chosen, taken = [], []
    for a, b, rep in opts[: 1 + rng.randrange(2)]:
        if all(b <= x or a >= y for x, y in taken):
            chosen.append((a, b, rep))
            taken.append((a, b))
    return _edit(s, chosen, 0, "synonym")


_PERCENT = re.compile(r"(\d[\d.,]*)(\s?%|\s(?:percent|per cent)\b)")
_MONEY = re.compile(r"([$\u00a3\u20ac])(\d[\d.,]*)(\s(?:million|billion|thousand)\b)?")
_CURRENCY = {"$": "dollars", "\u00a3": "pounds", "\u20ac": "euros"}


def number_format(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """The same quantity written another way: "8 percent" <-> "8%", "$5 million" -> "5 million dollars"."""
    opts = []
    for m in _PERCENT.finditer(s):
        new = m.group(1) + (" percent" if "%" in m.group(2) else "%")
        opts.append((m.start(), m.end(), new))
    for m in _MONEY.finditer(s):
        opts.append((m.start(), m.end(), f"{m.group(2)}{m.group(3) or ''} {_CURRENCY[m.group(1)]}"))
    if not opts:
        return None
    return _edit(s, [rng.choice(opts)], 0, "number_format")


_FRONTED = re.compile(r"^((?:On|In|During|After|Before|At|Last|Earlier|Later|Since|By|Following|Despite)\b[^,]{2,60}),\s+(\S)")
_REPORTED = re.compile(r"^(.{12,}?),\s+(?:(he|she|they|it|officials|police|experts|analysts|witnesses|researchers|"
                       r"(?:the|a) [a-z]+(?: [a-z]+)?)|([A-Z][\w.'\- ]{1,60}?))\s+(said|says|added|told [\w ]{1,30}?)"
                       r"([.!?\"']*)\s*$")


def reorder(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Move a fronted adverbial to the end ("On Monday, X did Y." -> "X did Y on Monday."), or a trailing
    reporting clause to the front ("X, officials said." -> "Officials said X.")."""
    m = _FRONTED.match(s)
    if m:
        adv = m.group(1)
        rest = s[m.start(2):]
        end = _end(rest)
        body = rest[:end] if _is_name_word(rest.split()[0]) else rest[0].lower() + rest[1:end]
        adv_low = adv[0].lower() + adv[1:]
        new = f"{body[0].upper() + body[1:]} {adv_low}{rest[end:]}"
        return _whole(s, new, "reorder")
    m = _REPORTED.match(s)
    if m and m.group(5) in ("", "."):
        who = m.group(2) or m.group(3)
        clause = m.group(1)
        clause = clause if _is_name_word(clause.split()[0]) else clause[0].lower() + clause[1:]
        new = f"{who[0].upper() + who[1:]} {m.group(4)} {clause}."
        return _whole(s, new, "reorder")
    return None


def _whole(orig: str, new: str, kind: str) -> Edit | None:
    """A rewrite that moved material around: the span is the part that differs (common prefix/suffix kept)."""
    if new == orig:
        return None
    a = 0
    while a < min(len(orig), len(new)) and orig[a] == new[a]:
        a += 1
    b = 0
    while b < min(len(orig), len(new)) - a and orig[-1 - b] == new[-1 - b]:
        b += 1
    return Edit(new, 0, kind, ((a, len(new) - b),) if len(new) - b > a else (), orig)


_ACTIVE = re.compile(r"^((?:The|A|An) [a-z][\w\- ]{0,30}?|[A-Z][a-z]+(?: [A-Z][a-z]+){0,3}) ("
                     + "|".join(v for v in PAST if v.endswith("ed"))
                     + r") ((?:the|a|an|its|his|her|their) [\w\- ]{2,40}?)([,.;].*|)$")


def passive(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """"The council approved the plan." -> "The plan was approved by the council." (simple clauses only)."""
    m = _ACTIVE.match(s)
    if not m:
        return None
    agent, verb, obj, rest = m.groups()
    head = obj.split()[-1]
    be = "were" if head.endswith("s") and not head.endswith("ss") else "was"
    agent_txt = agent if not re.match(r"(The|A|An) ", agent) else agent[0].lower() + agent[1:]
    new = f"{obj[0].upper() + obj[1:]} {be} {verb} by {agent_txt}{rest}"
    return _whole(s, new, "passive")


_CLAUSE = re.compile(r",\s+(?:who|which|where)\s+[^,]{3,80},|,\s+(?:officials|police|experts|analysts) said(?=[.,])|"
                     r",\s+(?:however|meanwhile|in fact|of course),", re.I)


def drop_clause(s: str, rng: random.Random, context: str = "", **kw) -> Edit | None:
    """Remove a non-restrictive clause that holds no number and no name (so nothing checkable goes)."""
    opts = [m for m in _CLAUSE.finditer(s) if not re.search(r"\d", m.group(0)) and not names("x " + m.group(0)[1:])]
    if not opts:
        return None
    m = rng.choice(opts)
    new = re.sub(r"\s{2,}", " ", s[:m.start()] + s[m.end():])
    return _whole(s, new, "drop_clause")


ERRORS: dict[str, Callable[..., Edit | None]] = {
    "negation": negation, "antonym": antonym, "number": number, "date": date, "entity": entity, "role": role,
    "modality": modality, "cause": cause, "detail": detail,
}
FAITHFUL: dict[str, Callable[..., Edit | None]] = {
    "synonym": synonym, "reorder": reorder, "passive": passive, "drop_clause": drop_clause,
    "number_format": number_format,
}
KINDS = tuple(ERRORS)
FAITHFUL_KINDS = tuple(FAITHFUL)


def perturb(sentence: str, kind: str, rng: random.Random | None = None, context: str = "", **kw) -> Edit | None:
    """One edit of `kind` (an error or a faithful rewrite), or None when the sentence offers none.
    `context` is the document the sentence comes from (names for entity swaps, facts for causes)."""
    fn = ERRORS.get(kind) or FAITHFUL.get(kind)
    if fn is None:
        raise ValueError(f"unknown kind {kind!r}; errors: {', '.join(KINDS)}; faithful: {', '.join(FAITHFUL_KINDS)}")
    return fn(sentence, rng or random.Random(0), context, **kw)


def _weighted_order(kinds: list[str], weights: dict[str, float] | None, rng: random.Random) -> list[str]:
    kinds = list(kinds)
    w = [max((weights or {}).get(k, 1.0), 1e-6) for k in kinds]
    order = []
    while kinds:
        i = rng.choices(range(len(kinds)), weights=w)[0]
        order.append(kinds.pop(i))
        w.pop(i)
    return order


def any_edit(sentence: str, rng: random.Random, faithful: bool, context: str = "",
             weights: dict[str, float] | None = None, **kw) -> Edit | None:
    """The first kind (in a seeded, weighted random order) that applies to the sentence."""
    table = FAITHFUL if faithful else ERRORS
    for k in _weighted_order(list(table), weights, rng):
        e = table[k](sentence, rng, context, **kw)
        if e is not None:
            return e
    return None


# "cause" and "detail" apply to almost any sentence; without a lower weight they would crowd out the
# kinds that need a name, a number or a negation.
DEFAULT_WEIGHTS = {"cause": 0.6, "detail": 0.6, "modality": 1.5, "role": 1.2, "passive": 2.0, "drop_clause": 1.5}
_PP = re.compile(r"\b(?:in|at|on|for|with|during|near|from|under|outside|inside|amid)\s+(?:the |a |an |his |her |their )?"
                 r"(?:[A-Za-z][a-z'-]*\s+){0,2}[A-Za-z][a-z'-]*")


def phrase_bank(docs: Sequence[PoolPair], rng: random.Random, limit: int = 3000) -> list[str]:
    """Prepositional phrases ("in the capital", "at a rally in Leeds") from the documents, for `detail`:
    a phrase from one document is an unsupported detail in another, and more varied than a fixed list."""
    out: list[str] = []
    for d in rng.sample(list(docs), min(len(docs), 400)):
        for m in _PP.finditer(d.premise[:3000]):
            words = m.group(0).split()
            if 3 <= len(words) <= 5 and is_content(words[-1]):  # ends on a content word, not "the"/"of"
                out.append(m.group(0))
    rng.shuffle(out)
    return sorted(set(out[:limit]))


def generate_pairs(docs: Sequence[PoolPair], per_doc: int = 4, max_pairs: int = 30000, faithful_share: float = 0.4,
                   window: int = 3, seed: int = 0, min_words: int = 6, max_words: int = 45,
                   weights: dict[str, float] | None = None, kinds: Sequence[str] | None = None) -> list[PoolPair]:
    """(evidence window, edited sentence) pairs over the premises of `docs` (one document per distinct
    doc_key). For each pair a label is drawn (faithful with `faithful_share`), then a kind by `weights`,
    then a sentence of the document it applies to. Each pair keeps its document's licence fields;
    source_set is "synthetic", kind "error/<kind>" or "faithful/<kind>". The premise is the window the
    retriever picks for the edited sentence, as at inference. `kinds` restricts the edits, e.g.
    ("negation", "role", "cause", "synonym") for a set in the style of the hand-written subtle cases."""
    unknown = set(kinds or ()) - set(ERRORS) - set(FAITHFUL)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; errors: {', '.join(KINDS)}; faithful: {', '.join(FAITHFUL_KINDS)}")
    if not 0.0 <= faithful_share <= 1.0:
        raise ValueError(f"faithful_share must be in [0, 1], got {faithful_share}")
    rng = random.Random(seed)
    seen, uniq = set(), []
    for d in docs:
        if d.doc_key not in seen:
            seen.add(d.doc_key)
            uniq.append(d)
    rng.shuffle(uniq)
    phrases = phrase_bank(uniq, rng) if uniq else []
    weights = {**DEFAULT_WEIGHTS, **(weights or {})}
    out: list[PoolPair] = []
    for d in uniq:
        if len(out) >= max_pairs:
            break
        out += _doc_edits(d, rng, per_doc, faithful_share, window, (min_words, max_words), weights, phrases, kinds)
    return out[:max_pairs]


def _doc_edits(d: PoolPair, rng: random.Random, per_doc: int, faithful_share: float, window: int,
               length: tuple[int, int], weights: dict[str, float], phrases: list[str],
               kinds: Sequence[str] | None = None) -> list[PoolPair]:
    doc = d.premise
    sents = [doc[a:b] for a, b in sentences(doc)]
    sents = [s for s in sents if length[0] <= len(s.split()) <= length[1]]
    retriever = None
    out, used = [], set()
    for _ in range(min(per_doc, len(sents))):
        faithful = rng.random() < faithful_share
        table = FAITHFUL if faithful else ERRORS
        allowed = [k for k in table if kinds is None or k in kinds]
        e = None
        for kind in _weighted_order(allowed, weights, rng):
            for s in rng.sample(sents, len(sents)):
                if s not in used:
                    e = table[kind](s, rng, doc, phrases=phrases)
                    if e is not None:
                        break
            if e is not None:
                break
        if e is None:
            continue
        used.add(e.original)
        retriever = retriever or WindowRetriever(doc, window)
        out.append(PoolPair(
            premise=retriever.best(e.text), hypothesis=e.text, label=e.label, source_set="synthetic",
            licence=d.licence, ship_ok=d.ship_ok, doc_key=d.doc_key, spans=e.spans if e.label else (),
            kind=f"{'error' if e.label else 'faithful'}/{e.kind}", level="pair", synthetic=True,
            meta={"origin": d.source_set, "original": e.original}))
    return out
