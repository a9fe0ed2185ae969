"""Sentence splitting with offsets, chunking, numbers, dates and stems (halluguard.text)."""

import pytest

from halluguard import text as T


def _texts(s):
    segs = T.split_sentences(s)
    for seg in segs:  # offsets always index the original string
        assert s[seg.start : seg.end] == seg.text
    return [seg.text for seg in segs]


def test_split_abbreviations_and_decimals():
    s = "Dr. Smith paid $1.5 million to the U.S. Treasury in Jan. 2020. Then he left, e.g. by car. Done."
    assert _texts(s) == [
        "Dr. Smith paid $1.5 million to the U.S. Treasury in Jan. 2020.",
        "Then he left, e.g. by car.",
        "Done.",
    ]


def test_split_quotes_initials_and_marks():
    s = 'He said "Go home." She did! J. K. Rowling wrote it? Yes.'
    assert _texts(s) == ['He said "Go home."', "She did!", "J. K. Rowling wrote it?", "Yes."]


def test_split_lists_and_paragraphs():
    s = "The passage describes two films:\n\n1. Veeram, a 2014 film.\n2. Veeram (2016), a drama.\n- a bullet"
    assert _texts(s) == [
        "The passage describes two films:",
        "1. Veeram, a 2014 film.",
        "2. Veeram (2016), a drama.",
        "- a bullet",
    ]
    # Hard-wrapped prose is one sentence.
    assert _texts("the cat sat\non the mat. The end") == ["the cat sat\non the mat.", "The end"]


def test_split_leading_whitespace_offsets():
    s = "   First one.   Second one.  "
    segs = T.split_sentences(s)
    assert [(x.start, x.end) for x in segs] == [(3, 13), (16, 27)]
    assert T.split_sentences("") == [] and T.split_sentences("   ") == []


def test_split_units_cuts_run_on_sentences():
    s = " ".join(f"w{i}" for i in range(130))
    units = T.split_units(s, max_words=60)
    assert [len(u.text.split()) for u in units] == [60, 60, 10]
    assert all(s[u.start : u.end] == u.text for u in units)


def test_chunk_text_overlap_and_offsets():
    s = " ".join(f"Sentence number {i} has five words." for i in range(40))
    chunks = T.chunk_text(s, max_words=30, overlap_words=10)
    assert len(chunks) > 1
    assert all(len(c.text.split()) <= 30 for c in chunks)
    assert all(s[c.start : c.end] == c.text for c in chunks)
    # consecutive chunks overlap and together cover the whole text
    assert all(b.start < a.end for a, b in zip(chunks, chunks[1:]))
    assert chunks[0].start == 0 and chunks[-1].end == len(s)
    with pytest.raises(ValueError, match="overlap_words"):
        T.chunk_text(s, max_words=10, overlap_words=10)


@pytest.mark.parametrize(
    "text,value,kind",
    [
        ("1.5 million", 1.5e6, "number"),
        ("1,500,000", 1.5e6, "number"),
        ("three", 3, "number"),
        ("twenty-five", 25, "number"),
        ("25 per cent", 25, "percent"),
        ("40%", 40, "percent"),
        ("$5bn", 5e9, "money"),
        ("\u00a33.2m", 3.2e6, "money"),
        ("in 2019", 2019, "year"),
        ("the 21st", 21, "ordinal"),
    ],
)
def test_extract_numbers_values(text, value, kind):
    nums = T.extract_numbers(text)
    assert len(nums) == 1
    assert nums[0].value == pytest.approx(value) and nums[0].kind == kind
    assert text[nums[0].start : nums[0].end] == nums[0].text


def test_numbers_not_inside_words_and_rounding():
    assert T.extract_numbers("A4 paper and COVID19") == []
    a, = T.extract_numbers("1.5 million")
    b, = T.extract_numbers("1,532,000")
    c, = T.extract_numbers("2.5 million")
    assert T.numbers_match(a, b) and not T.numbers_match(a, c)
    y1, = T.extract_numbers("2014")
    y2, = T.extract_numbers("2016")
    assert not T.numbers_match(y1, y2)


def test_extract_dates():
    d = T.extract_dates("On Monday, May 5, and in March; you may go.")
    assert [(x.text, x.kind, x.value) for x in d] == [("Monday", "weekday", 1), ("May", "month", 5), ("March", "month", 3)]
    # "May" without a number: a month after a word only a date follows, a name or a modal otherwise
    assert [x.value for x in T.extract_dates("Work begins in May and ends by mid-May.")] == [5, 5]
    assert T.extract_dates("Theresa May said so. May I ask? Prime Minister May resigned.") == []


def test_stem_and_content():
    assert T.stem("companies") == T.stem("company")
    assert T.stem("announced") == T.stem("announcing")
    assert T.stem("Obama's") == "obama"
    assert T.stem("won") == T.stem("win")
    assert not T.is_content("the") and T.is_content("budget")
    toks = T.tokenize("It isn't state-of-the-art.")
    assert [t.text for t in toks] == ["It", "isn't", "state-of-the-art"]


@pytest.mark.parametrize(
    "summary, evidence, expected",
    [
        ("Profit rose to 38 million.", "Profit was 38 million, down from 45 million.", [("rose", "down")]),
        ("The mayor voted for the budget.", "The mayor voted against the budget.", [("for", "against")]),
        ("The effect was larger in older adults.", "The effect was smaller in older adults.", [("larger", "smaller")]),
        ("The farmer sold the land.", "The farmer bought the land in 1990.", [("sold", "bought")]),
        ("The council voted against the library.", "The council voted to approve the library.", [("against", "approve")]),
        # "against" the evidence also uses is no flipped vote, whatever else the evidence approved
        ("The board filed a suit against the firm.", "The board approved a suit against the firm.", []),
        # two pole words in one sentence: each keeps the neighbours nearer to it
        ("Some investors sold, while many funds bought more.", "Some investors sold their shares, while many funds bought more.", []),
        ("Some funds sold, while many investors bought more.", "Some investors sold their shares, while many funds bought more.",
         [("sold", "bought"), ("bought", "sold")]),
        # "against" states a vote only after one: a court "approved" the detention, the summary's "against" is no vote
        ("Police look into accusations against them.", "A judge approved the detention as police look into accusations.", []),
        # a synonym on the same pole is support, not a contradiction
        ("Sales rose sharply.", "Sales increased while costs fell.", []),
        # neither pole in the evidence: nothing to contradict (that is the novelty check's business)
        ("Sales rose sharply.", "Sales were 5 million.", []),
    ],
)
def test_opposite_mismatches(summary, evidence, expected):
    got = T.opposite_mismatches(summary, evidence)
    assert [(tok.text, ev) for tok, ev in got] == expected
    for tok, _ in got:
        assert summary[tok.start : tok.end] == tok.text


def test_opposite_poles_are_symmetric_except_one_way_pairs():
    one_way = {T.stem(w) for a, _ in T._ONE_WAY for w in a.split()}
    for st, entries in T.OPPOSITES.items():
        for own, opp in entries:
            assert st in own and st not in opp
            if own & one_way:
                assert not any((opp, own) in T.OPPOSITES.get(s2, ()) for s2 in opp), st
            else:
                assert all((opp, own) in T.OPPOSITES[s2] for s2 in opp), st
    # "against" in a summary is never contradicted by a mere "for" in the evidence
    assert T.opposite_mismatches("They played against Celtic.", "A win for the club.") == []


def test_opposite_needs_the_own_pole_absent_from_the_context_too():
    ev = "Revenue grew 4 percent."
    assert [t.text for t, _ in T.opposite_mismatches("Profit fell.", ev)] == ["fell"]
    assert T.opposite_mismatches("Profit fell.", ev, context="Profit was down from 45 million.") == []


def test_opposite_words_count_only_near_the_same_subject():
    ev = "Northwind reported a profit of 38 million dollars, down from 45 million. Revenue grew 4 percent."
    # "grew" speaks of revenue, not profit: it neither supports "profit rose" nor contradicts "revenue rose"
    assert [(t.text, w) for t, w in T.opposite_mismatches("Its profit rose to 38 million dollars.", ev)] == [("rose", "down")]
    assert T.opposite_mismatches("Its revenue rose 4 percent.", ev) == []
    assert T.opposite_mismatches("Its profit rose.", "Profit rose.", context="Revenue fell sharply.") == []


def test_opposite_words_the_nearer_pole_wins():
    """Both poles near some of the sentence's words: the one nearer more of them speaks to it."""
    ev = "Revenue was up 8 percent from a year earlier, while profit fell 3 percent."
    assert [(t.text, w) for t, w in T.opposite_mismatches("Profit rose 3 percent.", ev)] == [("rose", "fell")]
    assert T.opposite_mismatches("Revenue rose 8 percent.", ev) == []
    assert T.opposite_mismatches("Profit fell 3 percent.", ev) == []


@pytest.mark.parametrize("summary,flagged", [
    ("Asian demand was stronger than European demand.", False),  # the same comparison the other way round
    ("Demand in Asia was weaker than in Europe.", False),
    ("Demand in Europe was stronger than in Asia.", True),
    ("Sales in Europe were higher than in Asia.", True),
])
def test_converse_comparatives_agree(summary, flagged):
    ev = {"Demand": "Demand in Europe was weaker than in Asia.",
          "Sales": "Sales in Europe were lower than in Asia."}
    got = T.opposite_mismatches(summary, ev["Sales" if "Sales" in summary else "Demand"])
    assert bool(got) == flagged, got
