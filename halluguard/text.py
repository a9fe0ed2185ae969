"""Text helpers with character offsets: sentences, chunks, tokens, numbers, dates, stems.

    from halluguard import text
    for s in text.split_sentences("Dr. Smith paid $1.5 million. Then he left."):
        print(s.start, s.end, s.text)          # 0 28 'Dr. Smith paid $1.5 million.' ...
    text.chunk_text(long_doc, max_words=400, overlap_words=50)   # windows with offsets
    text.extract_numbers("about 1.5 million people, 25%")        # values 1500000.0 and 25.0

Every offset is a Python string index into the text given, half-open (``text[start:end]``), so spans
found here can be shown on the original text unchanged. Pure standard library: the CLI imports this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# ----------------------------------------------------------------------------------------------
# Sentences
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of text with its half-open character offsets into the original string."""

    start: int
    end: int
    text: str


# Lower-cased tokens that end with "." but do not end a sentence (the dot is part of the word).
ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr sen rep gov gen col lt sgt capt cmdr adm rev hon pres messrs mme mlle
    vs etc e.g i.e cf al approx est dept univ assn bros inc ltd co corp plc llc no nos vol pp fig figs
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun
    a.m p.m u.s u.k u.n e.u u.s.a d.c ph.d b.a m.a b.sc m.sc mt ft ave blvd rd hwy op ed eds"""
    .split()
)

# A candidate sentence end: terminal punctuation, optional closing quotes/brackets.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*")
_LIST_ITEM = re.compile(r"\s*(?:[-*\u2022\u2023\u25e6>]|\d{1,3}[.)]|[a-zA-Z][.)])\s+")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the '.' at `dot` belongs to an abbreviation or an initial ("J. K. Rowling")."""
    m = _WORD_BEFORE.search(text, max(0, dot - 12), dot)
    if not m:
        return False
    word = m.group(1)
    if len(word) == 1 and word.isupper():  # an initial
        return True
    return word.lower().rstrip(".") in ABBREVIATIONS


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _line_breaks(text: str) -> list[int]:
    """Positions after which a newline ends a sentence (paragraphs, list items, headings)."""
    cuts = []
    for m in re.finditer(r"\n", text):
        i = m.start()
        before = text[:i].rstrip(" \t")
        nxt = text[i + 1 :]
        if not before or before.endswith("\n"):
            cuts.append(i)  # blank line: paragraph break
            continue
        stripped = nxt.lstrip(" \t")
        if not stripped or stripped.startswith("\n"):
            cuts.append(i)
            continue
        # Hard-wrapped prose ("...the\ncat") continues; a new item, a capitalised line or a line
        # after ':' / terminal punctuation starts a new sentence.
        if (
            _LIST_ITEM.match(nxt)
            or before[-1] in ".!?:;\u2026\"'\u201d)"
            or stripped[0].isupper()
            or stripped[0].isdigit()
        ):
            cuts.append(i)
    return cuts


def split_sentences(text: str) -> list[Segment]:
    """Split text into sentences with character offsets (whitespace trimmed, empty pieces dropped).

    Handles abbreviations (Dr., U.S., e.g.), initials, decimals (3.5), closing quotes after the
    full stop, list items and paragraph breaks. Offsets index the original `text`.
    """
    if not text:
        return []
    cuts: set[int] = set(_line_breaks(text))
    n = len(text)
    for m in _END.finditer(text):
        end = m.end()
        punct = m.group(0)
        nxt = text[end : end + 1]
        if end < n and not nxt.isspace():
            continue  # "3.5", "U.S.A", "e.g.," -- no whitespace after the dot
        # What follows the whitespace?
        j = end
        while j < n and text[j].isspace():
            j += 1
        if j >= n:
            cuts.add(end)
            continue
        follower = text[j]
        if punct[0] == "." and len(punct.rstrip("\"'\u201d\u2019)]")) == 1:
            if _is_abbreviation(text, m.start()):
                continue
            # A list number at the start of a line ("1. First point") is not a sentence.
            line_start = text.rfind("\n", 0, m.start()) + 1
            if re.fullmatch(r"\s*\d{1,3}", text[line_start : m.start()]):
                continue
            # Lower-case continuation after "." is almost always an abbreviation we do not know.
            if follower.islower():
                continue
        # A capital, a digit, a quote/bracket/bullet, or any follower after "!" / "?" starts a sentence.
        if follower.isupper() or not follower.isalpha() or punct[0] in "!?":
            cuts.add(end)
    out: list[Segment] = []
    prev = 0
    for c in sorted(cuts):
        s, e = _strip(text, prev, c)
        if e > s:
            out.append(Segment(s, e, text[s:e]))
        prev = c
    s, e = _strip(text, prev, n)
    if e > s:
        out.append(Segment(s, e, text[s:e]))
    return out


def split_units(text: str, max_words: int = 60) -> list[Segment]:
    """Sentences, with any sentence longer than `max_words` words cut into word windows.

    Used for alignment so one run-on "sentence" (a table, a transcript without punctuation, a
    50,000-word blob) never becomes a single huge unit.
    """
    out: list[Segment] = []
    for sent in split_sentences(text):
        words = list(re.finditer(r"\S+", sent.text))
        if len(words) <= max_words:
            out.append(sent)
            continue
        for i in range(0, len(words), max_words):
            w = words[i : i + max_words]
            s, e = sent.start + w[0].start(), sent.start + w[-1].end()
            out.append(Segment(s, e, text[s:e]))
    return out


def chunk_text(text: str, max_words: int = 400, overlap_words: int = 50) -> list[Segment]:
    """Cut text into windows of at most `max_words` words, consecutive windows sharing
    `overlap_words` words; windows end on sentence boundaries when a sentence fits.

    Offsets index the original text, so evidence found in a chunk maps back to the source.
    """
    if max_words <= 0:
        raise ValueError(f"max_words must be positive, got {max_words}")
    if not 0 <= overlap_words < max_words:
        raise ValueError(f"overlap_words must be in [0, max_words), got {overlap_words}")
    units = split_units(text, max_words=max(1, max_words // 2))
    if not units:
        return []
    counts = [len(u.text.split()) for u in units]
    chunks: list[Segment] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (words + counts[j] <= max_words or j == i):
            words += counts[j]
            j += 1
        s, e = units[i].start, units[j - 1].end
        chunks.append(Segment(s, e, text[s:e]))
        if j >= len(units):
            break
        # Step back over whole units until about `overlap_words` words are shared.
        k, back = j, 0
        while k - 1 > i and back + counts[k - 1] <= overlap_words:
            k -= 1
            back += counts[k]
        i = k
    return chunks


# ----------------------------------------------------------------------------------------------
# Tokens, stopwords, stems
# ----------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*%?|[^\W\d_]+(?:[-'\u2019][^\W\d_]+)*|\d*[^\W_]+", re.UNICODE)

STOPWORDS = frozenset(
    """a an the and or but if then else than so as of at by for from in into on onto to with without
    within about above across after against along among around before behind below beneath beside
    besides between beyond during except inside near off out outside over past since through
    throughout till toward towards under underneath until up upon via per
    i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves one ones someone something
    anyone anything everyone everything nobody nothing none each every either neither both few more
    most other others another such some any many much all own same what which who whom whose this that
    these those there here where when why how whether while
    am is are was were be been being have has had having do does did doing done will would shall
    should can could may might must ought let lets get gets got also just only very too quite rather
    really even still yet already again ever not no nor never n't s t d ll m re ve
    mr mrs ms dr said says say saying told tells tell according stated states reported reports
    including include includes included like well however although though because since thus therefore
    whereas meanwhile moreover furthermore additionally summary passage text article source document
    describes discusses mentions provides highlights notes overall""".split()
)

NEGATIONS = frozenset(
    """not no never none nobody nothing neither nor without cannot can't won't don't doesn't didn't isn't
    aren't wasn't weren't hasn't haven't hadn't shouldn't wouldn't couldn't mustn't n't nowhere
    fail fails failed failing deny denies denied refuse refuses refused lack lacks lacked unable""".split()
)


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    text: str

    @property
    def lower(self) -> str:
        return self.text.lower()


def tokenize(text: str) -> list[Token]:
    """Word and number tokens with offsets ("isn't" and "state-of-the-art" stay one token)."""
    return [Token(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(text)]


@lru_cache(maxsize=200_000)
def normalize_word(word: str) -> str:
    """Lower-case, fold curly apostrophes, drop a possessive ("Obama's" -> "obama")."""
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    elif w.endswith("s'"):
        w = w[:-1]
    return w


_IRREGULAR = {
    "men": "man", "women": "woman", "children": "child", "people": "person", "mice": "mouse",
    "feet": "foot", "teeth": "tooth", "went": "go", "gone": "go", "won": "win", "lost": "lose",
    "said": "say", "made": "make", "took": "take", "taken": "take", "gave": "give", "given": "give",
    "found": "find", "held": "hold", "left": "leave", "led": "lead", "began": "begin", "begun": "begin",
    "came": "come", "became": "become", "ran": "run", "saw": "see", "seen": "see", "knew": "know",
    "known": "know", "told": "tell", "thought": "think", "brought": "bring", "bought": "buy",
    "sold": "sell", "paid": "pay", "spent": "spend", "met": "meet", "kept": "keep", "felt": "feel",
    "fell": "fall", "fallen": "fall", "rose": "rise", "risen": "rise", "wrote": "write",
    "written": "write", "chose": "choose", "chosen": "choose", "built": "build", "sent": "send",
    "hit": "hit", "struck": "strike", "died": "die", "dead": "die", "death": "die", "dying": "die",
    "killed": "kill", "better": "good", "best": "good", "worse": "bad", "worst": "bad",
    "born": "bear", "shot": "shoot", "caught": "catch", "fought": "fight", "stole": "steal",
    "stolen": "steal", "drove": "drive", "driven": "drive", "flew": "fly", "flown": "fly",
    "grew": "grow", "grown": "grow", "threw": "throw", "thrown": "throw", "ate": "eat",
    "eaten": "eat", "spoke": "speak", "spoken": "speak", "broke": "break", "broken": "break",
}


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light stemmer (possessives, plurals, -ed/-ing/-ly/-er/-ment/-ion, common irregulars).

    Deliberately conservative: it should map "companies"/"company", "announced"/"announcing",
    "Obama's"/"Obama" together without merging unrelated words.
    """
    w = normalize_word(word)
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or not w.isalpha():
        return w
    for suf, rep, minlen in (
        ("ational", "ate", 10), ("ization", "ize", 8), ("iveness", "ive", 8), ("fulness", "ful", 8),
        ("ousness", "ous", 8), ("ements", "", 9), ("ement", "", 8), ("ments", "", 8), ("ment", "", 7),
        ("ations", "ate", 8), ("ation", "ate", 7), ("ities", "", 7), ("ity", "", 6), ("ingly", "", 7),
        ("ances", "", 8), ("ance", "", 7), ("ences", "", 8), ("ence", "", 7), ("ions", "", 8), ("ion", "", 7),
        ("als", "", 7), ("al", "", 6), ("th", "", 6),
        ("edly", "", 6), ("ies", "y", 5), ("ied", "y", 5), ("ying", "y", 6), ("ing", "", 6),
        ("sses", "ss", 5), ("ness", "", 6), ("ers", "", 6), ("er", "", 5), ("ed", "", 5),
        ("ly", "", 5), ("es", "", 5), ("s", "", 4),
    ):
        if w.endswith(suf) and len(w) >= minlen:
            if suf == "s" and (w.endswith("ss") or w.endswith("us") or w.endswith("is")):
                return w
            if suf == "es" and not re.search(r"(?:[sxz]|ch|sh)es$", w):
                w = w[:-1]  # "makes" -> "make", keep the e
                break
            w = w[: len(w) - len(suf)] + rep
            break
    # "stopped" -> "stopp" -> "stop"; "making" -> "mak" cannot be undone, which is fine: both
    # sides of a comparison go through the same function.
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    if len(w) >= 4 and w.endswith("e"):
        w = w[:-1]  # "make"/"mak", "issue"/"issu" meet
    return w


@lru_cache(maxsize=200_000)
def is_content(tok: str) -> bool:
    """A token that carries content: not a stopword, not punctuation, not a bare one-letter word."""
    w = normalize_word(tok)
    return bool(w) and w not in STOPWORDS and (len(w) > 1 or w.isdigit()) and any(c.isalnum() for c in w)


# ----------------------------------------------------------------------------------------------
# Numbers
# ----------------------------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "dozen": 12, "dozens": 12, "half": 0.5, "twice": 2, "double": 2, "triple": 3,
}
# Ordinals as words ("third"); "first"/"second" are left out: too often not a number.
_ORDINALS = {
    "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20, "hundredth": 100,
}
_SCALES = {
    "hundred": 1e2, "thousand": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "m": 1e6, "mn": 1e6,
    "mln": 1e6, "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12,
    "thousands": 1e3, "hundreds": 1e2, "lakh": 1e5, "crore": 1e7,
}
_NUMWORD = "|".join(sorted(list(_UNITS) + list(_ORDINALS), key=len, reverse=True))
_SCALEWORD = "|".join(sorted(_SCALES, key=len, reverse=True))
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<cur>[$\u00a3\u20ac\u00a5]\s?)?"
    r"(?:(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<ord>st|nd|rd|th)?"
    rf"|(?P<word>(?:{_NUMWORD})(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?))"
    rf"(?:(?:\s?|-)(?P<scale>(?:{_SCALEWORD})\b))?"
    r"(?P<pct>\s?(?:%|per\s?cent\b|percent\b|pc\b))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class NumberMention:
    """A number found in text: where it is, its normalized value and what kind it is."""

    start: int
    end: int
    text: str
    value: float
    kind: str  # "year", "percent", "money", "ordinal", "number"
    precision: float  # how coarse the written form is (1.5 million -> 1e5), for rounding checks


def extract_numbers(text: str) -> list[NumberMention]:
    """Numbers in digits or words with their values: "1.5 million" and "1,500,000" both give
    1500000.0, "three" gives 3, "25 per cent" gives 25 (kind "percent"), "$5bn" 5e9 ("money")."""
    out: list[NumberMention] = []
    for m in _NUMBER.finditer(text):
        s, e = m.start(), m.end()
        # Whole words only: "A4", "COVID19", "3D" are names, not quantities.
        if s > 0 and (text[s - 1].isalnum() or text[s - 1] in "_"):
            continue
        if e < len(text) and text[e - 1].isalnum() and (text[e].isalpha() or text[e] == "_"):
            continue
        digits, word, scale = m.group("digits"), m.group("word"), m.group("scale")
        if scale and scale.lower() in ("m", "b", "k") and not (m.group("cur") or digits):
            scale = None  # "five m" is not five million
        if scale and not m.group("cur") and scale.lower() in ("m", "b") and digits and not (
            m.group(0)[len(m.group("digits")) :].startswith(scale)
        ):
            scale = None  # "5 m" (metres) stays 5
        if not scale and m.group("scale"):
            e = m.start("scale") if not m.group("pct") else e
            e = s + len(text[s:e].rstrip(" -"))
        if digits:
            raw = digits.replace(",", "")
            try:
                value = float(raw)
            except ValueError:
                continue
            frac = raw.split(".")[1] if "." in raw else ""
            precision = 10 ** (-len(frac)) if frac else 1.0
        else:
            w = word.lower().replace("-", " ").split()
            if w[0] in _ORDINALS:
                value = float(_ORDINALS[w[0]])
            else:
                value = float(_UNITS.get(w[0], 0))
                if len(w) > 1:
                    value += {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                              "eight": 8, "nine": 9}[w[1]]
            precision = 1.0
        if scale:
            mult = _SCALES[scale.lower()]
            value *= mult
            precision *= mult
        end = s + len(text[s:e].rstrip(" -"))
        if m.group("pct"):
            kind = "percent"
        elif m.group("cur"):
            kind = "money"
        elif m.group("ord") or (word and word.split("-")[0].split()[0].lower() in _ORDINALS):
            kind = "ordinal"
        elif digits and not scale and "," not in digits and "." not in digits and 1800 <= value <= 2100 and len(digits) == 4:
            kind = "year"
        else:
            kind = "number"
        out.append(NumberMention(s, end, text[s:end], value, kind, precision))
    return out


def numbers_match(a: NumberMention, b: NumberMention) -> bool:
    """Do two mentions state the same quantity, allowing the rounding the coarser one implies?

    "1.5 million" matches "1,532,000"; "3" matches "three"; "2014" does not match "2016".
    """
    if a.value == b.value:
        return True
    if a.kind == "year" or b.kind == "year":
        return False
    big = max(abs(a.value), abs(b.value))
    if big == 0:
        return False
    coarse = max(a.precision, b.precision)
    if abs(a.value - b.value) <= coarse / 2 + 1e-9 * big:
        return True  # "1.5 million" vs 1,532,000 (rounded to 100k)
    # "about 40%" vs "39.6%"; one significant figure of slack for large figures only.
    return big >= 1000 and abs(a.value - b.value) / big <= 0.05


# ----------------------------------------------------------------------------------------------
# Dates
# ----------------------------------------------------------------------------------------------

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
WEEKDAYS = {
    "monday": 1, "mon": 1, "tuesday": 2, "tue": 2, "tues": 2, "wednesday": 3, "wed": 3,
    "thursday": 4, "thu": 4, "thurs": 4, "friday": 5, "fri": 5, "saturday": 6, "sat": 6,
    "sunday": 7, "sun": 7,
}
_DATE_WORD = re.compile(
    r"\b(" + "|".join(sorted(set(MONTHS) | set(WEEKDAYS), key=len, reverse=True)) + r")\b\.?"
)


@dataclass(frozen=True)
class DateMention:
    start: int
    end: int
    text: str
    kind: str  # "month" or "weekday"
    value: int


_BEFORE_MONTH = re.compile(r"\b(?:in|by|until|till|since|from|through|before|after|during|early|late|mid|"
                           r"last|next|this|of)[\s-]+$", re.IGNORECASE)


def extract_dates(text: str) -> list[DateMention]:
    """Month and weekday names with offsets ("May" only when capitalised; short forms need the
    capital too, so "mar", "sat" and "sun" as words are not dates). Years come from
    `extract_numbers` (kind "year")."""
    out = []
    for m in _DATE_WORD.finditer(text.lower()):
        word = text[m.start(1) : m.end(1)]
        low = word.lower()
        if not word[0].isupper():
            continue
        full = low in ("january", "february", "march", "april", "june", "july", "august", "september",
                       "october", "november", "december", "monday", "tuesday", "wednesday", "thursday",
                       "friday", "saturday", "sunday")
        if not full:
            # "May", "Mar", "Sun", "Wed": only when next to a day number or a year, or "May" after a word
            # that only a date follows ("in May", "until May", "early May"; "Theresa May" and "May I" stay out).
            around = text[max(0, m.start() - 4) : m.end() + 6]
            if not re.search(r"\d", around) and not (low == "may" and _BEFORE_MONTH.search(text[: m.start(1)])):
                continue
        if low in MONTHS:
            out.append(DateMention(m.start(1), m.end(1), word, "month", MONTHS[low]))
        else:
            out.append(DateMention(m.start(1), m.end(1), word, "weekday", WEEKDAYS[low]))
    return out



# Words with an opposite: a summary that uses one side where its evidence uses the other ("profit rose"
# vs "profit fell", "voted for" vs "voted against") states the reverse of the source. Each entry pairs two
# poles; words inside a pole count as the same claim ("rose" is supported by "increased"). Kept to pairs
# whose meaning rarely depends on context: looser ones ("higher"/"lower", which stem to "high"/"low",
# "more"/"fewer", "raise", "jump") fired as often on faithful dev summaries as on hallucinated ones.
_OPPOSITE_POLES = [
    (("rise rises rising rose risen increase increases increasing increased grow grows growing grew grown "
      "growth climb climbs climbed soar soars soared surge surged gain gains gained boost boosted "
      "expand expanded up"),
     ("fall falls falling fell fallen decrease decreases decreasing decreased decline declines declined "
      "shrink shrinks shrank shrunk drop drops dropped dip dipped slump slumped plunge plunged slide slid "
      "down cut cuts reduce reduced")),
    ("larger bigger greater", "smaller lesser"),
    ("longer", "shorter"),
    ("stronger", "weaker"),
    ("higher", "lower"),
    ("warmer", "colder cooler"),
    ("faster", "slower"),
    ("older", "younger"),
    ("earlier", "later"),
    ("better improve improved improves", "worse worsen worsened deteriorate deteriorated"),
    ("best", "worst"),
    ("most", "least"),
    ("largest biggest", "smallest"),
    ("highest", "lowest"),
    ("win wins won winning winner victory", "lose loses lost losing loser defeat defeated"),
    ("accept accepts accepted approve approves approved approval", "reject rejects rejected refuse refused"),
    ("support supports supported supporter supporters", "oppose opposes opposed opponent opponents"),
    ("buy buys bought buying purchase purchased", "sell sells sold selling"),
    ("import imports imported", "export exports exported"),
    ("hire hires hired hiring", "fire fired layoffs"),
    ("allow allows allowed permit permitted", "ban bans banned prohibit prohibited forbid forbidden"),
    ("confirm confirms confirmed", "deny denies denied"),
    ("agree agrees agreed", "disagree disagrees disagreed"),
    ("include includes included", "exclude excludes excluded"),
    ("legal", "illegal"),
    ("guilty convicted", "innocent acquitted"),
    ("succeed succeeded success successful", "fail failed failure unsuccessful"),
    ("profit profits surplus", "loss losses deficit"),
    ("survive survived survivors", "die died dead killed"),
    ("full", "partial"),
    ("permanent permanently", "temporary temporarily"),
    ("public", "private"),
    ("before", "after"),
    ("first", "last"),
    ("maximum", "minimum"),
    ("majority", "minority"),
    ("north northern", "south southern"),
    ("east eastern", "west western"),
    ("male", "female"),
    ("positive", "negative"),
    ("open opened opens opening", "closed close closes closing"),
    ("add adds added", "remove removes removed"),
    ("strengthen strengthened", "weaken weakened"),
    ("optimistic", "pessimistic"),
]
# One way only: the summary's "for" against the evidence's "against" is a flipped vote, and so is its
# "against" where the evidence "approved"; the reverse ("games against Celtic" beside any "for", "approved
# the suit against the firm") is how everyday text reads.
_ONE_WAY = [("for", "against"), ("against", "approve approves approved approval")]
# A summary's "against" states a vote only right after one ("voted against"; "accusations against them"
# beside a court that "approved" the detention is no flipped vote: a SummEdits dev case).
_VOTE_ONLY = frozenset({stem("against")})
_VOTE_WORDS = frozenset(stem(w) for w in "vote votes voted voting ruled decided came argued".split())


def _build_opposites() -> dict[str, tuple[tuple[frozenset[str], frozenset[str]], ...]]:
    out: dict[str, list[tuple[frozenset[str], frozenset[str]]]] = {}
    for (a, b), both in [(p, True) for p in _OPPOSITE_POLES] + [(p, False) for p in _ONE_WAY]:
        pa, pb = frozenset(stem(w) for w in a.split()), frozenset(stem(w) for w in b.split())
        for own, opp in ((pa, pb), (pb, pa)) if both else ((pa, pb),):
            for st in own:
                out.setdefault(st, []).append((own, opp))
    return {k: tuple(v) for k, v in out.items()}


OPPOSITES = _build_opposites()


def _than_sides(toks: Sequence[Token], k: int, reach: int = 4) -> tuple[set[str], set[str]] | None:
    """For a comparative at k followed by "than" ("stronger than Europe"): 4-letter prefixes of the
    content words before it and after "than" (same clause), or None when no "than" follows."""
    j = next((j for j in range(k + 1, min(len(toks), k + 3)) if toks[j].text.lower() == "than"), None)
    if j is None:
        return None
    before = {toks[m].text.lower()[:4] for m in range(max(0, k - reach), k) if is_content(toks[m].text)}
    after = {toks[m].text.lower()[:4] for m in range(j + 1, min(len(toks), j + 1 + reach)) if is_content(toks[m].text)}
    return before, after


def _converse(s_toks: Sequence[Token], i: int, e_toks: Sequence[Token], k: int) -> bool:
    """Do the two comparatives compare the same two things the other way round? "Asian demand was
    stronger than European demand" and "demand in Europe was weaker than in Asia": what follows "than"
    on one side stands before the comparative on the other, both ways."""
    a, b = _than_sides(s_toks, i), _than_sides(e_toks, k)
    if a is None or b is None:
        return False
    (s_before, s_after), (e_before, e_after) = a, b
    return bool(s_after & e_before) and bool(s_before & e_after) and not (s_after & e_after)


def opposite_mismatches(text: str, evidence: str, context: str = "", window: int = 4) -> list[tuple[Token, str]]:
    """Tokens of `text` contradicted by an opposite word in `evidence`: [(Token "rose", "down")] for "profit
    rose to 38 million" against "a profit of 38 million, down from 45 million".

    A pole word in the evidence only speaks to the summary word if it stands within `window` tokens of
    one of the summary word's own neighbours (its anchors: "profit", "38", "million"), so "revenue grew"
    in the same paragraph neither supports nor contradicts "profit rose". The summary word is
    contradicted when the evidence has an anchored opposite and neither `evidence` nor `context` (more
    source text near it, e.g. the runner-up evidence) has an anchored word of its own pole."""
    sum_toks = tokenize(text)
    sum_st = [stem(t.text) for t in sum_toks]
    if not any(st in OPPOSITES for st in sum_st):
        return []  # the common case, and cheap

    def sentences(t: str) -> list[tuple[list[Token], list[str]]]:  # the window never crosses a sentence end
        toks = [tokenize(seg.text) for seg in split_sentences(t)] if t.strip() else []
        return [(ts, [stem(x.text) for x in ts]) for ts in toks]

    ev_sents, ctx_sents = sentences(evidence), sentences(context)

    def anchored(sents, pole: frozenset[str], anchors: set[str]) -> list[tuple[int, list[Token], int]]:
        """Pole words as (how many anchors stand near it, its sentence's tokens, its index there): at
        least one anchor, unless there are none."""
        out_ = []
        for toks, stems in sents:
            for k, st in enumerate(stems):
                if st in pole:
                    near = {stems[m] for m in range(max(0, k - window), min(len(stems), k + window + 1))} & anchors
                    if near or not anchors:
                        out_.append((len(near), toks, k))
        return out_

    out = []
    for i, tok in enumerate(sum_toks):
        entries = OPPOSITES.get(sum_st[i], ())
        if not entries or (sum_st[i] in _VOTE_ONLY and not (i and sum_st[i - 1] in _VOTE_WORDS)):
            continue
        # A neighbour nearer an opposite word of the sentence is that word's: in "some investors sold,
        # many funds bought more", "funds" anchors "bought", not "sold".
        opposite_stems = frozenset().union(*(opp for _, opp in entries))
        poles = [j for j in range(len(sum_toks)) if sum_st[j] in opposite_stems]
        anchors = {sum_st[j] for j in range(max(0, i - window), min(len(sum_toks), i + window + 1))
                   if j != i and is_content(sum_toks[j].text) and sum_st[j] not in OPPOSITES
                   and not any(abs(j - q) < abs(j - i) for q in poles)}
        for own, opp in entries:
            same = anchored(ev_sents, own, anchors) + anchored(ctx_sents, own, anchors)
            hits = anchored(ev_sents, opp, anchors)
            if any(_converse(sum_toks, i, toks, k) for _, toks, k in hits):
                break  # "Europe weaker than Asia" for "Asia stronger than Europe": the same claim
            # The pole word nearest more of the sentence's own words speaks to it: in "revenue was up 8
            # percent, while profit fell 3 percent", "fell" (profit, 3, percent) and not "up" (percent)
            # is what "profit rose 3 percent" is about. A tie counts as support.
            if same and (not hits or max(h[0] for h in same) >= max(h[0] for h in hits)):
                break  # the evidence says the same thing
            if hits:
                _, toks, k = max(hits, key=lambda h: h[0])
                out.append((tok, toks[k].text))
                break
    return out


__all__ = [
    "ABBREVIATIONS", "NEGATIONS", "OPPOSITES", "STOPWORDS", "DateMention", "NumberMention", "Segment", "Token",
    "chunk_text", "extract_dates", "extract_numbers", "is_content", "normalize_word", "numbers_match", "opposite_mismatches",
    "split_sentences", "split_units", "stem", "tokenize",
]
